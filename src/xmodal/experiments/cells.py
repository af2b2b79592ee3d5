"""Cells: the unit of work of ``compare`` and ``bench`` — one fit of one setting with one seed.

A cell is keyed by a hash of everything that determines its result (:func:`cell_key`) and written,
when it finishes, to its own JSON file (:func:`save_cell`); a rerun reads it back only when the key
matches (:func:`load_cell`), so an interrupted run resumes and a changed setting reruns only what it
affects. :func:`fit_cell` fits an estimator and records a diverged fit as a failed cell instead of
stopping the whole run; :func:`summarize_cells` gives mean ± std over seeds.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from xmodal.errors import TrainingDiverged
from xmodal.files import write_json

__all__ = ["cell_key", "load_cell", "save_cell", "fit_cell", "mean_std", "summarize_cells", "shown_value"]


def cell_key(spec: dict[str, Any]) -> str:
    """A 16-hex-digit hash of ``spec`` (JSON with sorted keys; non-JSON values by ``str``)."""
    blob = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_cell(path: Path | None, key: str) -> dict[str, Any] | None:
    """The row saved at ``path`` under ``key``; ``None`` when there is none or it was saved under another key."""
    if path is None or not path.exists():
        return None
    saved = json.loads(path.read_text())
    return saved["row"] if saved.get("key") == key else None


def save_cell(path: Path | None, key: str, row: dict[str, Any]) -> None:
    """Write a finished cell atomically (strict JSON), so that a rerun skips it; ``path=None``: nothing."""
    if path is not None:
        write_json(path, {"key": key, "row": row})


def fit_cell(fit: Callable[[], Any], row: dict[str, Any], t0: float) -> bool:
    """Run ``fit()``; when it diverges, mark ``row`` as a failed cell (``value`` and ``validation`` ``None``,
    the error kept under ``"diverged"``, no stage times) and return ``False``. Other errors propagate."""
    try:
        fit()
    except TrainingDiverged as exc:
        row.update(value=None, validation=None, diverged=str(exc)[:300], align_s=0.0, finetune_s=0.0,
                   total_s=time.perf_counter() - t0)
        return False
    return True


def shown_value(row: dict[str, Any]) -> str:
    """A cell's value as a progress line shows it (``"diverged"`` for a failed cell)."""
    return "diverged" if row.get("diverged") else f"{row['value']:.4f}"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize_cells(cells: Sequence[dict[str, Any]], columns: Sequence[str]) -> dict[str, Any]:
    """Over the seeds of one setting: ``n`` cells, ``diverged`` of them, and for each numeric column
    present in a cell ``<col>`` (mean) and ``<col>_std``; failed cells count only in ``diverged``."""
    out: dict[str, Any] = {"n": len(cells), "diverged": sum(1 for c in cells if c.get("diverged"))}
    for col in columns:
        vals = [float(c[col]) for c in cells if c.get(col) is not None]
        if vals:
            out[col], out[col + "_std"] = mean_std(vals)
    return out
