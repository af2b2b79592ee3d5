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

import csv
import hashlib
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xmodal.config import SHARED
from xmodal.data.dataset import Dataset
from xmodal.data.tasks import get_task_kind
from xmodal.errors import TrainingDiverged, XmodalError
from xmodal.files import write_json

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


def _cell_key(dataset: str, n_train: int, strategy: str, seed: int, params: dict, probe: bool) -> str:
    blob = json.dumps({"dataset": dataset, "n_train": n_train, "strategy": strategy, "seed": seed,
                       "params": params, "probe": probe}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _final_otdd(est: Any, X: np.ndarray, y: np.ndarray, Xs: torch.Tensor, ys: torch.Tensor, k_s: int) -> float:
    """Gaussian-inner OTDD between the embedded training set (the fitted embedder) and the proxy features."""
    from xmodal.align.distance import embed_features, target_labels
    from xmodal.align.otdd import OTDD
    from xmodal.data.validation import check_X

    model = est.model_
    device = next(model.parameters()).device
    Xc = torch.from_numpy(check_X(X, est.spatial_dims))
    was = model.training
    model.eval()
    try:
        feats = embed_features(model, Xc, device).cpu()
    finally:
        model.train(was)
    labels = target_labels(model, torch.as_tensor(np.asarray(y)), k_s, est.seed)
    return float(OTDD(Xs, ys, inner="gaussian").value(feats, labels))


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
    from xmodal.align.source_cache import source_features_cached
    from xmodal.estimator import CrossModalEstimator, body_fingerprint
    from xmodal.evaluate.source_knowledge import source_probe
    from xmodal.model.bodies import build_body, resolve_body
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

    # the pretrained body: source features for the OTDD column and the proxy embedding of the probe
    source = resolve_body(params.get("body", "minilm-l6"))
    torch.manual_seed(0)
    pretrained = build_body(source, pretrained=True)
    proxy = params.get("proxy") or pretrained.default_proxy
    Xs, ys, k_s = source_features_cached(pretrained, body_fingerprint(source), proxy,
                                         int(params.get("source_size", 5000)), 0)
    pre_probe = source_probe(pretrained, proxy, probe_size)["accuracy"] if probe else None

    X_train, X_test = data.fit_inputs(data.X_train), data.fit_inputs(data.X_test)
    rows: list[dict[str, Any]] = []
    metric = None
    for name in strategies:
        for seed in seeds:
            key = _cell_key(data.name, len(data.X_train), name, seed, params, probe)
            cell_file = out_dir / "cells" / f"{name}-seed{seed}.json" if out_dir else None
            if cell_file is not None and cell_file.exists():
                saved = json.loads(cell_file.read_text())
                if saved.get("key") == key:
                    rows.append(saved["row"])
                    metric = saved["row"]["metric"]
                    if progress:
                        shown = "diverged" if saved["row"].get("diverged") else f"{saved['row']['value']:.4f}"
                        print(f"[done before] {name} seed {seed}: {metric} {shown}", flush=True)
                    continue
            t0 = time.perf_counter()
            est = CrossModalEstimator(strategy=name, seed=seed, verbose=False, **params)
            try:
                est.fit(X_train, data.y_train)
            except TrainingDiverged as exc:  # a failed cell, recorded as such; the comparison goes on
                metric = get_task_kind(data.task).default_metric
                row = {"strategy": name, "seed": seed, "metric": metric, "value": None, "diverged": str(exc)[:300],
                       "align_s": 0.0, "finetune_s": 0.0, "total_s": time.perf_counter() - t0}
                rows.append(row)
                _save_cell(cell_file, key, row)
                if progress:
                    print(f"{name} seed {seed}: diverged ({exc})", flush=True)
                continue
            metric = est.model_.kind.default_metric
            value = est.score(X_test, data.y_test, metric=est.model_.kind.default_metric)
            row: dict[str, Any] = {
                "strategy": name, "seed": seed, "metric": metric, "value": float(value),
                "validation": est.validation_score_,
                "align_s": float(est.report_.seconds.get("align", 0.0)),
                "finetune_s": float(est.report_.seconds.get("finetune", 0.0)),
                "final_otdd": _final_otdd(est, X_train, data.y_train, Xs, ys, k_s),
            }
            if probe:
                row["probe"] = source_probe(est.model_.body, proxy, probe_size, source_body=pretrained)["accuracy"]
            row["total_s"] = time.perf_counter() - t0
            rows.append(row)
            _save_cell(cell_file, key, row)
            if progress:
                print(f"{name} seed {seed}: {metric} {value:.4f}  (stage 2 {row['align_s']:.1f}s, "
                      f"stage 3 {row['finetune_s']:.1f}s, final OTDD {row['final_otdd']:.4g})", flush=True)
    summary = summarize(rows, strategies)
    result = CompareResult(data.name, metric or "", rows, summary, pre_probe, time.perf_counter() - t_start)
    if out_dir is not None:
        md = out_dir / "compare.md"
        md.write_text(to_markdown(result, params))
        write_csv(rows, out_dir / "compare.csv")
        result.files = {"markdown": str(md), "csv": str(out_dir / "compare.csv")}
    return result


def _save_cell(path: Path | None, key: str, row: dict[str, Any]) -> None:
    """A finished cell, written atomically (strict JSON) so that a rerun skips it."""
    if path is not None:
        write_json(path, {"key": key, "row": row})


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(rows: list[dict[str, Any]], order: list[str] | None = None) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of every numeric column, one row per strategy."""
    names = order or list(dict.fromkeys(r["strategy"] for r in rows))
    out = []
    for name in names:
        cells = [r for r in rows if r["strategy"] == name]
        if not cells:
            continue
        s: dict[str, Any] = {"strategy": name, "seeds": len(cells), "metric": cells[0]["metric"],
                             "diverged": sum(1 for c in cells if c.get("diverged"))}
        for col in ("value", "validation", "align_s", "finetune_s", "final_otdd", "probe"):
            vals = [float(c[col]) for c in cells if c.get(col) is not None]
            if vals:
                s[col], s[col + "_std"] = _mean_std(vals)
        out.append(s)
    return out


def _pm(row: dict[str, Any], key: str, fmt: str, std_fmt: str) -> str:
    """``mean ± std`` of ``row[key]``; the value alone for a single seed (no spread), as ``xmodal bench`` does."""
    if row["seeds"] == 1:
        return format(row[key], fmt)
    return f"{format(row[key], fmt)} ± {format(row[key + '_std'], std_fmt)}"


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
    cols = ["strategy", "seed", "metric", "value", "diverged", "validation", "align_s", "finetune_s", "final_otdd",
            "probe", "total_s"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
