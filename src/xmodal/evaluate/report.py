"""Report writers shared by ``fit``, ``tune``, ``compare`` and ``bench``: plots (PNG, matplotlib Agg),
CSV files and Markdown tables, every file written atomically.

* :func:`save_align_curve` — the logged distance per stage-2 epoch (ORCA's Fig. 4), with the epochs
  where the learning rate stepped down and the early stop marked;
* :func:`save_learning_curve` — the training loss per stage-3 epoch of every training run of a fit
  (validation runs and the refit), with the validation metric on a second axis where there is one;
* :func:`save_performance_profile` — the Dolan–Moré profile of ``xmodal bench``;
* :func:`save_figure` — any matplotlib figure (e.g. Optuna's plots of ``xmodal tune``);
* :func:`write_csv`, :func:`markdown_table`, :func:`mean_pm` — tables of cells and trials.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xmodal.files import atomic_write_text

__all__ = ["save_align_curve", "save_learning_curve", "save_performance_profile", "save_figure", "write_csv",
           "markdown_table", "mean_pm"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(plt: Any, fig: Any, ax: Any, path: str | Path, title: str, **legend: Any) -> None:
    """Title, grid, legend, tight layout; write ``path`` and free the figure."""
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(**legend)
    save_figure(fig, path)


def save_figure(fig: Any, path: str | Path, dpi: int | None = None) -> None:
    """Lay out ``fig``, write it to ``path`` (format from the suffix) atomically, and free it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        fig.tight_layout()
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def save_align_curve(report: dict[str, Any], path: str | Path, title: str = "stage 2") -> None:
    """Draw ``report["history"]`` (``epoch``, ``distance``, ``lr``) of a distance aligner to ``path``."""
    plt = _pyplot()
    history = report["history"]
    epochs = [h["epoch"] for h in history]
    dist = [h["distance"] for h in history]
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=120)
    ax.plot(epochs, dist, marker="o", ms=3, label="distance")
    lrs = [(h["epoch"], h["lr"]) for h in history if "lr" in h]
    steps = [e for (e, lr), (_, prev) in zip(lrs[1:], lrs[:-1], strict=True) if lr < prev]
    for i, e in enumerate(steps):  # the schedule's step acts on the epoch after the drop
        ax.axvline(e - 0.5, color="grey", ls="--", lw=0.8, label="lr × 0.2" if i == 0 else None)
    if report.get("stopped_early"):
        ax.axvline(epochs[-1], color="tab:red", ls=":", lw=1.2, label=f"early stop (epoch {epochs[-1]})")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_xlabel("stage-2 epoch")
    ax.set_ylabel(f"{report.get('objective', 'distance')} (curve subset)")
    _finish(plt, fig, ax, path, title, fontsize=7)


def save_learning_curve(runs: Sequence[dict[str, Any]], histories: Sequence[Sequence[dict[str, Any]]],
                        path: str | Path, title: str = "stage 3") -> None:
    """Training loss per epoch of each run (``runs[i]["label"]``), and ``val_*`` metrics on a second axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    twin = None
    for i, (run, hist) in enumerate(zip(runs, histories, strict=True)):
        if not hist:
            continue
        color = f"C{i % 10}"
        epochs = [h["epoch"] for h in hist]
        ax.plot(epochs, [h["loss"] for h in hist], color=color, marker="o", ms=3, label=f"{run['label']}: loss")
        for key in sorted({k for h in hist for k in h if k.startswith("val_")}):
            twin = twin or ax.twinx()
            twin.plot(epochs, [h.get(key) for h in hist], color=color, ls="--", marker="s", ms=3,
                      label=f"{run['label']}: {key[4:]} (validation)")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_xlabel("stage-3 epoch")
    ax.set_ylabel("training loss")
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        twin.set_ylabel("validation metric")
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    _finish(plt, fig, ax, path, title, handles=handles, labels=labels, fontsize=7, loc="best")


def save_performance_profile(taus: Sequence[float], prof: dict[str, Sequence[float]], path: str | Path,
                             title: str) -> None:
    """Step plot of a performance profile ``{method: ρ(τ)}`` on a log-τ axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    for m, rho in prof.items():
        ax.step(taus, rho, where="post", label=m)
    ax.set_xscale("log")
    ax.set_xlabel("τ (error ≤ τ × best error)")
    ax.set_ylabel("fraction of tasks")
    ax.set_ylim(-0.02, 1.02)
    _finish(plt, fig, ax, path, title, fontsize=8)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path, columns: Sequence[str] | None = None) -> None:
    """One line per row; ``columns`` (default: every key, in first-seen order) name the header and pick the
    fields (missing ones empty). Floats are written in full precision."""
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Lines of a Markdown table; floats shown with 4 significant digits, ``None`` empty."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows]


def mean_pm(mean: float, std: float, n: int, fmt: str = ".4f", std_fmt: str | None = None) -> str:
    """``mean ± std`` over ``n`` seeds; the value alone for a single seed (there is no spread)."""
    if n <= 1:
        return format(mean, fmt)
    return f"{format(mean, fmt)} ± {format(std, std_fmt or fmt)}"

