"""The validation protocol's split: rows of the *training* data held out to score a run and to
make every automatic choice (tuning, ``strategy="auto"``), so that the test split never is.

Classification targets are split stratified (each class keeps its share on both sides, as
scikit-learn's ``train_test_split(stratify=y)`` does); a class too small to give a row to both sides
stays whole in the training part. Other targets (regression, multi-label, dense maps) are split at
random. The split depends only on ``(N, y, fraction, seed)``, so every run of the same data and
seed holds out the same rows.
"""

from __future__ import annotations

import numpy as np

from xmodal.errors import XmodalError

__all__ = ["validation_split"]


def validation_split(
    y: np.ndarray, fraction: float, seed: int = 0, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, validation)`` of a seeded split of ``N`` rows (both sorted).

    Args:
        y: targets ``(N, …)``; with ``stratify``, ``(N,)`` class indices.
        fraction: share of the rows held out, in ``(0, 1)``; at least one row is held out and at
            least one per class is kept for training.
        seed: seeds the shuffle (``0 … 2³²−1``).
        stratify: split every class in the same proportion.

    Raises:
        XmodalError: ``fraction`` outside ``(0, 1)``, or too few rows to hold any out.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise XmodalError(f"validation fraction must be in (0, 1), got {fraction}")
    n = int(np.shape(y)[0])
    if n < 2:
        raise XmodalError(f"a validation split needs at least 2 training rows, got {n}; pass validation=0")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED_5A11]))
    if not stratify:
        order = rng.permutation(n)
        n_val = min(n - 1, max(1, int(round(fraction * n))))
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    labels = np.asarray(y)
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        rows = rows[rng.permutation(rows.size)]
        take = int(round(fraction * rows.size)) if rows.size > 1 else 0
        take = min(take, rows.size - 1)  # every class keeps a training row
        val.append(rows[:take])
    held = np.concatenate(val) if val else np.empty(0, dtype=np.int64)
    if held.size == 0:  # tiny classes: hold out one row of the largest class
        counts = {c: int((labels == c).sum()) for c in np.unique(labels)}
        big = max(counts, key=counts.get)
        if counts[big] < 2:
            raise XmodalError(
                f"every class has a single training row ({n} rows), so none can be held out for validation; "
                "pass validation=0 or give a validation set"
            )
        held = np.flatnonzero(labels == big)[:1]
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)
