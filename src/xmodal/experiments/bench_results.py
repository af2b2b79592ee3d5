"""The outputs of ``xmodal bench``: ``RESULTS.md`` (per-task tables, the head-to-head with the expert
peer and ``scratch``), ``results.csv`` and the performance profile (Dolan & Moré, 2002, as in the papers'
Fig. 2: for each method the fraction of tasks on which its error is within a factor τ of the best
method's, errors being 1 − accuracy or the lower-is-better metric itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xmodal.evaluate.report import mean_pm, write_csv
from xmodal.experiments.cells import summarize_cells
from xmodal.experiments.suite import CHOICES, REFERENCES, transfers
from xmodal.files import atomic_write_text

__all__ = ["environment_lines", "head_to_head", "performance_profile", "plot_performance_profile", "write_results"]


def _summary(rows: list[dict[str, Any]], task: str, method: str) -> dict[str, float] | None:
    cells = [r for r in rows if r["task"] == task and r["method"] == method]
    if not cells:
        return None
    s = summarize_cells(cells, ("value", "align_s", "finetune_s", "total_s"))
    if "value" not in s:  # every seed diverged: the method has no score on this task
        return None
    return {"mean": s["value"], "std": s["value_std"], "n": s["n"] - s["diverged"], "diverged": s["diverged"],
            "align_s": s.get("align_s", 0.0), "finetune_s": s.get("finetune_s", 0.0), "total_s": s.get("total_s", 0.0),
            "higher": bool(cells[0]["higher_is_better"]), "metric": cells[0]["metric"]}


def head_to_head(rows: list[dict[str, Any]], tasks: list[str], methods: list[str]) -> list[dict[str, Any]]:
    """Per task: xmodal against the expert peer and against ``scratch``.

    xmodal is the strategy chosen on validation (``tuned:auto``, else ``auto``, when among ``methods``);
    without one, the best mean test score among ``methods`` other than ``peer`` and ``scratch`` (an
    optimistic choice made on the test split, kept for runs without validation cells).

    Returns one dict per task that has a transfer strategy: ``task``, ``best`` (strategy name),
    ``best_mean``, ``peer_mean`` / ``scratch_mean`` (``None`` when not run) and ``beats_peer`` /
    ``beats_scratch`` (strictly better mean; ``None`` when the other side was not run).
    """
    out = []
    for t in tasks:
        sums = {m: _summary(rows, t, m) for m in methods}
        chosen = next((m for m in ("tuned:auto", "auto", "defaults:auto") if sums.get(m) is not None), None)
        transfer = ({chosen: sums[chosen]} if chosen else
                    {m: s for m, s in sums.items() if s is not None and transfers(m)})
        if not transfer:
            continue
        higher = next(iter(transfer.values()))["higher"]
        pick = max if higher else min
        best = pick(transfer, key=lambda m: transfer[m]["mean"])
        b = transfer[best]["mean"]
        row: dict[str, Any] = {"task": t, "best": best, "best_mean": b}
        for other in REFERENCES:
            o = sums.get(other)
            row[f"{other}_mean"] = None if o is None else o["mean"]
            row[f"beats_{other}"] = None if o is None else (b > o["mean"] if higher else b < o["mean"])
        out.append(row)
    return out




def _error(mean: float, higher: bool) -> float:
    """Lower-is-better error of a metric value (1 − accuracy-like metrics; the value itself otherwise)."""
    return 1.0 - mean if higher else mean


def performance_profile(
    rows: list[dict[str, Any]], tasks: list[str], methods: list[str], taus: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Dolan–Moré profile: ``ρ_m(τ)`` = fraction of tasks where method ``m``'s mean error ≤ τ × the best
    method's (a method missing on a task counts as failed there). Returns ``(taus, {method: ρ(taus)})``."""
    ratios: dict[str, list[float]] = {m: [] for m in methods}
    for t in tasks:
        errs = {}
        for m in methods:
            s = _summary(rows, t, m)
            errs[m] = _error(s["mean"], s["higher"]) if s else float("inf")
        best = min(errs.values())
        for m in methods:
            e = errs[m]
            if best <= 0:
                ratios[m].append(1.0 if e <= 0 else float("inf"))
            else:
                ratios[m].append(e / best)
    finite = [r for v in ratios.values() for r in v if np.isfinite(r)]
    if taus is None:
        hi = max(finite + [1.0]) * 1.05
        taus = np.exp(np.linspace(0.0, np.log(max(hi, 1.05)), 200))
    prof = {m: np.array([(np.array(v) <= tau).mean() if v else 0.0 for tau in taus]) for m, v in ratios.items()}
    return taus, prof


def plot_performance_profile(taus: np.ndarray, prof: dict[str, np.ndarray], path: str | Path, title: str) -> None:
    """Step plot of the profile (log-τ axis), as PNG (:func:`xmodal.evaluate.report.save_performance_profile`)."""
    from xmodal.evaluate.report import save_performance_profile

    save_performance_profile(taus, prof, path, title)


def write_results(
    rows: list[dict[str, Any]], out_dir: Path, tasks: list[str], methods: list[str], seconds: float | None
) -> dict[str, str]:
    """Write ``RESULTS.md``, ``results.csv`` and ``performance_profile.png`` into ``out_dir``
    (``seconds``: wall time of the run that computed cells; ``None`` for a report-only run)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# xmodal benchmark results", "",
             "Mean ± std over seeds of the test metric (a single value where only one seed ran); best per task "
             "in **bold** (↑ higher / ↓ lower is better).", "",
             *_metric_table(rows, tasks, methods), "",
             "Mean seconds per cell (stage 2 + stage 3 for xmodal strategies; fit + predict for peers):", "",
             *_time_table(rows, tasks, methods), *_duel_lines(head_to_head(rows, tasks, methods))]
    taus, prof = performance_profile(rows, tasks, methods)
    png = out_dir / "performance_profile.png"
    plot_performance_profile(taus, prof, png, f"performance profile ({len(tasks)} tasks)")
    lines += ["", "![performance profile](performance_profile.png)", "",
              "Fraction of tasks on which each method is the best (ρ(1)): "
              + ", ".join(f"{m} {prof[m][0]:.2f}" for m in methods), "",
              ("" if seconds is None else
               f"Wall time of this run (cells computed now; resumed cells cost nothing): {seconds:.0f} s. ")
              + f"Sum of the {len(rows)} cells' own times (the cost of running them all at once): "
              f"{sum(float(r.get('total_s', 0)) for r in rows):.0f} s.", "", *environment_lines(rows),
              *protocol_lines(rows)]
    md = out_dir / "RESULTS.md"
    atomic_write_text(md, "\n".join(lines))
    csv_path = out_dir / "results.csv"
    write_csv(rows, csv_path, ["task", "method", "seed", "metric", "value", "validation", "chosen", "not_learned",
                               "refit_collapsed", "refit_on_validation_rows", "protocol", "diverged", "tune_s",
                               "align_s", "finetune_s", "total_s", "peer"])
    return {"markdown": str(md), "csv": str(csv_path), "profile": str(png)}


def environment_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Where the cells ran: each environment (:func:`xmodal.runtime.environment`) with its number of cells, and
    the cells measured before environments were recorded. A fit is bit-for-bit repeatable in one environment,
    but another SIMD level or thread count changes its floating-point sums and, on small tasks, its score by as
    much as another seed does (``python benchmarks/reproducibility.py``, ``results/RELIABILITY.md``)."""
    counts: dict[str, int] = {}
    for r in rows:
        if "chosen" in r:  # a validation choice's row repeats one of the cells counted here
            continue
        env = r.get("env")
        label = ("not recorded" if not env else
                 f"torch {env['torch']}, transformers {env['transformers']}, numpy {env['numpy']}, "
                 f"{env['cpu']} ({env['cpu_capability']}), {env['threads']} threads")
        counts[label] = counts.get(label, 0) + 1
    if not counts:
        return []
    lines = ["Where the cells ran (the same cell gives another score under another SIMD level or thread count, by "
             "as much as another seed does: compare methods measured alike, or within the seeds' spread):", ""]
    lines += [f"- {label}: {n} cells" for label, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    return [*lines, ""]


def older_protocol(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The xmodal cells among ``rows`` that an older validation protocol made than today's
    (:data:`xmodal.estimator.protocol.PROTOCOL_VERSION`), counted by version ("before versions were recorded"
    for cells that predate the field). A cell's key holds its settings, not the protocol, so ``bench`` reuses
    such a cell; moving its file away reruns it under today's protocol. Peers run no protocol, failed cells
    scored nothing and a validation choice's row (``chosen``) repeats a cell: none is counted."""
    from xmodal.estimator.protocol import PROTOCOL_VERSION

    counts: dict[str, int] = {}
    for r in rows:
        if "chosen" in r or r.get("peer") or r.get("method") == "peer" or r.get("value") is None:
            continue
        version = r.get("protocol")
        if version is None or int(version) < PROTOCOL_VERSION:
            label = "before versions were recorded" if version is None else f"version {version}"
            counts[label] = counts.get(label, 0) + 1
    return counts


def protocol_lines(rows: list[dict[str, Any]]) -> list[str]:
    """A sentence on :func:`older_protocol`'s cells for a report, and a blank line; empty when all are current."""
    from xmodal.estimator.protocol import PROTOCOL_VERSION

    if not (counts := older_protocol(rows)):
        return []
    return [f"Cells made by an older validation protocol than today's (version {PROTOCOL_VERSION}, "
            "`xmodal.estimator.protocol`; bench reuses them until their files are moved away): "
            + ", ".join(f"{n} {label}" for label, n in counts.items()) + ".", ""]


def _metric_table(rows: list[dict[str, Any]], tasks: list[str], methods: list[str]) -> list[str]:
    """Per task, mean ± std of the test metric of every method; the best in bold; failed cells said."""
    lines = ["| task | metric | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 2)]
    for t in tasks:
        sums = {m: _summary(rows, t, m) for m in methods}
        present = [s for s in sums.values() if s]
        if not present:
            continue
        higher = present[0]["higher"]
        best = (max if higher else min)(s["mean"] for s in present)
        cells = []
        for m, s in sums.items():
            if s is None:
                failed = [r for r in rows if r["task"] == t and r["method"] == m and r.get("diverged")]
                cells.append(f"diverged ({len(failed)} seeds)" if failed else "–")
                continue
            txt = mean_pm(s["mean"], s["std"], s["n"]) + ("" if s["n"] > 1 else " (1 seed)")
            txt = f"**{txt}**" if s["mean"] == best else txt
            cells.append(txt + (f" ({s['diverged']} diverged)" if s.get("diverged") else ""))
        lines.append(f"| {t} | {present[0]['metric']} {'↑' if higher else '↓'} | " + " | ".join(cells) + " |")
    return lines


def _time_table(rows: list[dict[str, Any]], tasks: list[str], methods: list[str]) -> list[str]:
    """Per task, the mean seconds of every method's cells (stage 2 + stage 3, or the peer's total)."""
    lines = ["| task | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 1)]
    for t in tasks:
        sums = {m: _summary(rows, t, m) for m in methods}
        if not any(sums.values()):
            continue
        cells = []
        for s in sums.values():
            if s is None:
                cells.append("–")
            elif s["align_s"] > 0:
                cells.append(f"{s['align_s']:.1f} + {s['finetune_s']:.1f}")
            elif s["finetune_s"] > 0:
                cells.append(f"0 + {s['finetune_s']:.1f}")
            else:
                cells.append(f"{s['total_s']:.1f}")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return lines


def _duel_lines(duel: list[dict[str, Any]]) -> list[str]:
    """The head-to-head table (:func:`head_to_head`) and the counts of tasks where xmodal wins."""
    if not duel:
        return []
    by_val = any(d["best"] in CHOICES for d in duel)
    lines = ["", ("xmodal with the strategy chosen on validation (auto: orca or finetune per seed, by their "
                  "validation score; the test split chooses nothing)" if by_val else
                  "xmodal's best transfer strategy (best mean test score among the methods other than peer "
                  "and scratch: a choice made on the test split)") + " against the expert peer and scratch:", "",
             "| task | best strategy | its mean | peer | scratch |", "|---|---|---|---|---|"]
    for d in duel:
        vs = ["–" if d[f"{o}_mean"] is None else
              f"{d[f'{o}_mean']:.4f} ({'beaten' if d[f'beats_{o}'] else 'not beaten'})" for o in REFERENCES]
        lines.append(f"| {d['task']} | {d['best']} | {d['best_mean']:.4f} | {vs[0]} | {vs[1]} |")
    for o in REFERENCES:
        known = [d for d in duel if d[f"beats_{o}"] is not None]
        if known:
            lines += ["", f"Beats {o} on {sum(d[f'beats_{o}'] for d in known)} of {len(known)} tasks."]
    return lines
