"""The plots a run folder gets: the stage-2 curve and the stage-3 learning curve (PNG, matplotlib Agg).

* :func:`save_align_curve` — the logged distance per stage-2 epoch (ORCA's Fig. 4), with the epochs
  where the learning rate stepped down and the early stop marked;
* :func:`save_learning_curve` — the training loss per stage-3 epoch of every training run of a fit
  (validation runs and the refit), with the validation metric on a second axis where there is one;
* :func:`save_performance_profile` — the Dolan–Moré profile of ``xmodal bench``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["save_align_curve", "save_learning_curve", "save_performance_profile"]


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
    fig.tight_layout()
    fig.savefig(path)
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
