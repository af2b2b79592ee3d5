"""The ablation runner: several transfer strategies on the same data, seeds and hyper-parameters.

``compare`` fits one :class:`~xmodal.CrossModalEstimator` per (strategy, seed) cell and records, per
cell: the test metric, the stage-2 and stage-3 seconds, the final OTDD between the embedded training
set and the source proxy (same Gaussian-inner OTDD for every strategy, so the column compares how
close each strategy leaves the target to the source modality), and MoNA's source-knowledge probe
(linear-probe balanced accuracy on the proxy through the fine-tuned body; the pretrained body's value
is reported once as the reference). Cells are written to ``out/cells/*.json`` as they finish, so a
rerun with the same settings skips finished cells (resumable).

The summary (mean ± std over seeds per strategy) goes to ``out/compare.md`` and ``out/compare.csv``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xmodal.config import SHARED
from xmodal.data.dataset import Dataset
from xmodal.errors import XmodalError
from xmodal.evaluate import report
from xmodal.evaluate.report import mean_pm
from xmodal.experiments.cells import cell_key, fit_cell, load_cell, save_cell, shown_value, summarize_cells
from xmodal.files import atomic_write_text
from xmodal.tasks import get_task_kind

__all__ = ["CompareResult", "compare", "summarize", "to_markdown", "write_csv"]

#: estimator settings a comparison may set for all strategies alike (strategy and seed vary per cell):
#: every :class:`~xmodal.config.RunConfig` setting but :data:`~xmodal.config.PER_CELL` ones
SHARED_PARAMS = SHARED


@dataclass
class CompareResult:
    """Per-cell rows, the per-strategy summary, and the pretrained body's probe accuracy."""

    dataset: str
    metric: str
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    pretrained_probe: float | None
    seconds: float
    files: dict[str, str] = field(default_factory=dict)


# over 60 lines only through its docstring (every argument documented); the code is 56 lines
def compare(
    data: Dataset,
    strategies: list[str],
    seeds: list[int],
    params: dict[str, Any] | None = None,
    out: str | Path | None = None,
    *,
    probe: bool = True,
    probe_size: int = 500,
    progress: bool = True,
) -> CompareResult:
    """Fit every strategy with every seed on ``data`` and summarise.

    Args:
        data: a :class:`~xmodal.data.dataset.Dataset` with a test split (``X_test``/``y_test``).
        strategies: names from :func:`xmodal.strategies.list_strategies` (e.g. ``["finetune", "orca", "mona"]``).
        seeds: one cell per strategy and seed.
        params: estimator settings shared by all cells (keys from :data:`SHARED_PARAMS`).
        out: folder for ``cells/``, ``compare.md`` and ``compare.csv`` (``None``: nothing written, no resume).
        probe: run the source-knowledge probe on every fine-tuned body.
        probe_size: proxy samples of the probe.
        progress: print one line per cell.

    Raises:
        XmodalError: unknown strategy, no test split, an unknown or per-cell setting in ``params``.
    """
    from xmodal.strategies import get_strategy

    params = dict(params or {})
    bad = sorted(set(params) - set(SHARED_PARAMS))
    if bad:
        raise XmodalError(f"compare cannot share the settings {bad}; allowed: {list(SHARED_PARAMS)} "
                          "(strategy and seed vary per cell)")
    if not strategies or not seeds:
        raise XmodalError("compare needs at least one strategy and one seed")
    for name in strategies:
        get_strategy(name)  # unknown names fail before any training
    if len(set(strategies)) != len(strategies) or len(set(seeds)) != len(seeds):
        raise XmodalError(f"strategies and seeds must not repeat (got {strategies}, {seeds})")
    if data.X_test is None or data.y_test is None:
        raise XmodalError(f"dataset {data.name!r} has no test split; give one (e.g. X_test/y_test in the .npz)")
    t_start = time.perf_counter()
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    ref = _Reference(params, probe_size if probe else None)
    rows: list[dict[str, Any]] = []
    for name in strategies:
        for seed in seeds:
            key = cell_key({"dataset": data.name, "n_train": len(data.X_train), "strategy": name, "seed": seed,
                            "params": params, "probe": probe})
            cell_file = out_dir / "cells" / f"{name}-seed{seed}.json" if out_dir else None
            row = load_cell(cell_file, key)
            if row is not None:
                if progress:
                    print(f"[done before] {name} seed {seed}: {row['metric']} {shown_value(row)}", flush=True)
            else:
                row = _run_cell(data, name, seed, params, ref)
                save_cell(cell_file, key, row)
                if progress:
                    print(_progress_line(row), flush=True)
            rows.append(row)
    metric = rows[-1]["metric"] if rows else ""
    result = CompareResult(data.name, metric, rows, summarize(rows, strategies), ref.probe,
                           time.perf_counter() - t_start)
    if out_dir is not None:
        md = out_dir / "compare.md"
        atomic_write_text(md, to_markdown(result, params))
        write_csv(rows, out_dir / "compare.csv")
        result.files = {"markdown": str(md), "csv": str(out_dir / "compare.csv")}
    return result


class _Reference:
    """The pretrained body's side of every cell: the source-proxy features of the OTDD column and the
    source probe's reference accuracy (``probe_size=None``: no probe)."""

    def __init__(self, params: dict[str, Any], probe_size: int | None) -> None:
        from xmodal.align.source_cache import source_features_cached
        from xmodal.evaluate.source_knowledge import source_probe
        from xmodal.model.bodies import body_fingerprint, build_body, resolve_body

        source = resolve_body(params.get("body", "minilm-l6"))
        torch.manual_seed(0)
        self.body = build_body(source, pretrained=True)
        self.proxy = params.get("proxy") or self.body.default_proxy
        self.Xs, self.ys, self.k_source = source_features_cached(self.body, body_fingerprint(source), self.proxy,
                                                                 int(params.get("source_size", 5000)), 0)
        self.probe_size = probe_size
        self.probe = None if probe_size is None else source_probe(self.body, self.proxy, probe_size)["accuracy"]


def _run_cell(data: Dataset, name: str, seed: int, params: dict[str, Any], ref: _Reference) -> dict[str, Any]:
    """Fit strategy ``name`` with ``seed`` and score it on the test split (a diverged fit: a failed row)."""
    from xmodal.data.validation import check_X
    from xmodal.estimator import CrossModalEstimator
    from xmodal.evaluate.source_knowledge import source_otdd, source_probe

    X_train, X_test = data.fit_inputs(data.X_train), data.fit_inputs(data.X_test)
    t0 = time.perf_counter()
    metric = get_task_kind(data.task).default_metric
    row: dict[str, Any] = {"strategy": name, "seed": seed, "metric": metric}
    est = CrossModalEstimator(strategy=name, seed=seed, verbose=False, **params)
    if not fit_cell(lambda: est.fit(X_train, data.y_train), row, t0):
        return row
    metric = row["metric"] = est.model_.kind.default_metric
    Xc = torch.from_numpy(check_X(X_train, est.spatial_dims))
    row.update(value=float(est.score(X_test, data.y_test, metric=metric)), validation=est.validation_score_,
               align_s=float(est.report_.seconds.get("align", 0.0)),
               finetune_s=float(est.report_.seconds.get("finetune", 0.0)),
               final_otdd=source_otdd(est.model_, Xc, torch.as_tensor(np.asarray(data.y_train)), ref.Xs, ref.ys,
                                      ref.k_source, seed))
    if ref.probe_size is not None:
        row["probe"] = source_probe(est.model_.body, ref.proxy, ref.probe_size, source_body=ref.body)["accuracy"]
    row["total_s"] = time.perf_counter() - t0
    return row


def _progress_line(row: dict[str, Any]) -> str:
    if row.get("diverged"):
        return f"{row['strategy']} seed {row['seed']}: diverged ({row['diverged']})"
    return (f"{row['strategy']} seed {row['seed']}: {row['metric']} {row['value']:.4f}  (stage 2 "
            f"{row['align_s']:.1f}s, stage 3 {row['finetune_s']:.1f}s, final OTDD {row['final_otdd']:.4g})")


def summarize(rows: list[dict[str, Any]], order: list[str] | None = None) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of every numeric column, one row per strategy."""
    names = order or list(dict.fromkeys(r["strategy"] for r in rows))
    out = []
    for name in names:
        cells = [r for r in rows if r["strategy"] == name]
        if cells:
            s = summarize_cells(cells, ("value", "validation", "align_s", "finetune_s", "final_otdd", "probe"))
            out.append({"strategy": name, "seeds": s.pop("n"), "metric": cells[0]["metric"], **s})
    return out


def _pm(row: dict[str, Any], key: str, fmt: str, std_fmt: str) -> str:
    """``mean ± std`` of ``row[key]`` over the strategy's seeds (the value alone for one seed)."""
    return mean_pm(row[key], row[key + "_std"], row["seeds"], fmt, std_fmt)


def to_markdown(result: CompareResult, params: dict[str, Any] | None = None) -> str:
    """The summary as a Markdown table (best mean metric in bold) with the settings underneath."""
    from xmodal.evaluate.metrics import get_metric

    higher = get_metric(result.metric).higher_is_better if result.metric else True
    means = [s["value"] for s in result.summary if "value" in s]
    best = (max(means) if higher else min(means)) if means else None
    has_probe = any("probe" in s for s in result.summary)
    has_val = any("validation" in s for s in result.summary)
    head = f"| strategy | test {result.metric} (mean ± std) |{' validation |' if has_val else ''} stage 2 s | " \
           "stage 3 s | final OTDD |"
    sep = "|---|---|" + ("---|" if has_val else "") + "---|---|---|"
    if has_probe:
        head += " source probe |"
        sep += "---|"
    lines = [f"### {result.dataset}: strategies compared ({result.summary[0]['seeds'] if result.summary else 0} "
             "seeds)", "", head, sep]
    for s in result.summary:
        if "value" not in s:
            val = f"diverged ({s['diverged']} seeds)"
        else:
            val = _pm(s, "value", ".4f", ".4f")
            if best is not None and s["value"] == best:
                val = f"**{val}**"
            if s["diverged"]:
                val += f" ({s['diverged']} diverged)"
        shown_val = (f" {_pm(s, 'validation', '.4f', '.4f') if 'validation' in s else '–'} |") if has_val else ""
        otdd = _pm(s, "final_otdd", ".4g", ".2g") if "final_otdd" in s else "–"
        line = f"| {s['strategy']} | {val} |{shown_val} {s['align_s']:.1f} | {s['finetune_s']:.1f} | {otdd} |"
        if has_probe:
            line += f" {_pm(s, 'probe', '.3f', '.3f')} |" if "probe" in s else " – |"
        lines.append(line)
    if result.pretrained_probe is not None:
        lines += ["", f"Source probe of the pretrained body (reference): {result.pretrained_probe:.3f} "
                  "(balanced accuracy of a linear probe on the source proxy)."]
    if params:
        lines += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items()))]
    lines += [f"Total time: {result.seconds:.0f} s.", ""]
    return "\n".join(lines)


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    """One line per (strategy, seed) cell."""
    report.write_csv(rows, path, ["strategy", "seed", "metric", "value", "diverged", "validation", "align_s",
                                  "finetune_s", "final_otdd", "probe", "total_s"])
