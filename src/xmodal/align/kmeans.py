"""k-means in torch (any device) and pseudo-labels for dense targets.

ORCA (appendix A.3.4) clusters the targets of dense tasks with k-means to obtain pseudo-labels for
OTDD, with k = the number of source classes (10 for CIFAR-10). :func:`pseudo_labels` does that;
:func:`kmeans` is the clustering itself:

* initialisation: greedy k-means++ (Arthur & Vassilvitskii, 2007), trying ``2 + ⌊ln k⌋`` candidates
  per centre and keeping the one that lowers the potential most, as scikit-learn does;
* full-batch (``batch_size=None``): Lloyd iterations until the squared centre shift is at most
  ``tol × mean feature variance`` (scikit-learn's relative tolerance), the labels stop changing, or
  ``iters`` iterations; an empty cluster is re-seeded with the point farthest from its centre;
* mini-batch (``batch_size=b``): Sculley (2010) — per step, a batch of ``b`` rows drawn with
  replacement is assigned to the current centres and each centre moves with per-centre learning rate
  ``1 / (points it has absorbed so far)``, which makes it the running mean of its points (the batch is
  applied in one vectorised update, equivalent to Sculley's per-point loop with cached assignments).
  ``iters`` then counts passes over the data (``⌈iters · n / b⌉`` steps at most, as scikit-learn's
  ``max_iter``); it stops early when the squared centre shift of a step is at most the tolerance or
  the smoothed batch inertia has not improved for 10 steps. Initialisation runs on
  ``min(n, max(3b, k))`` random rows.

All randomness comes from a CPU ``torch.Generator`` seeded by ``seed``, so results repeat exactly on
a given device. Distances are computed in row chunks, so ``n`` is bounded only by memory for ``X``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from xmodal.errors import XmodalError

__all__ = ["kmeans", "pseudo_labels", "inertia"]

_CHUNK_ELEMS = 1 << 22


def _sq_dists(X: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    d2 = (X * X).sum(1, keepdim=True) - 2.0 * (X @ C.T) + (C * C).sum(1).unsqueeze(0)
    return d2.clamp_min_(0.0)


def _assign(X: torch.Tensor, C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of each row and the squared distance to it."""
    rows = max(1, _CHUNK_ELEMS // C.shape[0])
    labels, mins = [], []
    for i0 in range(0, X.shape[0], rows):
        d, lab = _sq_dists(X[i0 : i0 + rows], C).min(1)
        labels.append(lab)
        mins.append(d)
    return torch.cat(labels), torch.cat(mins)


def inertia(X: torch.Tensor, centres: torch.Tensor) -> float:
    """Sum of squared distances from each row of ``X`` to its nearest centre."""
    with torch.no_grad():
        return float(_assign(_as_float(X), centres.to(_as_float(X)))[1].sum())


def _as_float(X: torch.Tensor) -> torch.Tensor:
    return X if X.is_floating_point() else X.float()


def _sample(weights: torch.Tensor, num: int, gen: torch.Generator) -> torch.Tensor:
    """``num`` indices drawn with replacement proportionally to ``weights`` (uniformly if all 0)."""
    w = weights.detach().to("cpu", torch.float64)
    total = float(w.sum())
    if not total > 0 or not math.isfinite(total):
        return torch.randint(len(w), (num,), generator=gen)
    return torch.multinomial(w / total, num, replacement=True, generator=gen)


def _kmeans_pp(X: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    n = X.shape[0]
    trials = 2 + int(math.log(k))
    idx = [int(torch.randint(n, (1,), generator=gen))]
    closest = _sq_dists(X, X[idx[0] : idx[0] + 1]).squeeze(1)
    for _ in range(1, k):
        cand = _sample(closest, trials, gen).to(X.device)
        new_closest = torch.minimum(closest.unsqueeze(1), _sq_dists(X, X[cand]))  # (n, trials)
        best = int(new_closest.sum(0).argmin())
        idx.append(int(cand[best]))
        closest = new_closest[:, best]
    return X[torch.tensor(idx, device=X.device)].clone()


def _lloyd(X: torch.Tensor, C: torch.Tensor, iters: int, tol_abs: float) -> torch.Tensor:
    k = C.shape[0]
    prev = None
    for _ in range(iters):
        labels, mind = _assign(X, C)
        if prev is not None and torch.equal(labels, prev):
            break
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(C).index_add_(0, labels, X)
        new = sums / counts.clamp_min(1).unsqueeze(1).to(X.dtype)
        empty = (counts == 0).nonzero().squeeze(1)
        if len(empty):  # re-seed empty clusters with the worst-fitted points
            far = mind.topk(len(empty)).indices
            new[empty] = X[far]
        shift = float(((new - C) ** 2).sum())
        C, prev = new, labels
        if shift <= tol_abs:
            break
    return C


def _minibatch(
    X: torch.Tensor, C: torch.Tensor, iters: int, tol_abs: float, b: int, gen: torch.Generator
) -> torch.Tensor:
    n, k = X.shape[0], C.shape[0]
    v = torch.zeros(k, dtype=X.dtype, device=X.device)
    ewa, best, stall = None, math.inf, 0
    alpha = min(1.0, 2.0 * b / (n + 1))
    for _ in range(max(1, math.ceil(iters * n / b))):
        Xb = X[torch.randint(n, (b,), generator=gen).to(X.device)]
        lab, d = _assign(Xb, C)
        m = torch.bincount(lab, minlength=k).to(X.dtype)
        sums = torch.zeros_like(C).index_add_(0, lab, Xb)
        v_new = v + m
        moved = m > 0
        new = C.clone()
        new[moved] = (C[moved] * v[moved].unsqueeze(1) + sums[moved]) / v_new[moved].unsqueeze(1)
        shift = float(((new - C) ** 2).sum())
        C, v = new, v_new
        if tol_abs > 0 and shift <= tol_abs:
            break
        batch_inertia = float(d.sum()) / b
        ewa = batch_inertia if ewa is None else (1 - alpha) * ewa + alpha * batch_inertia
        if ewa < best:
            best, stall = ewa, 0
        else:
            stall += 1
            if stall >= 10:
                break
    return C


def kmeans(
    X: torch.Tensor,
    k: int,
    iters: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
    batch_size: int | None = None,
    *,
    n_init: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster the rows of ``X (n, d)`` into ``k`` groups.

    Returns ``(labels (n,) int64, centres (k, d))`` on ``X``'s device (centres in ``X``'s float
    dtype). ``batch_size`` selects mini-batch k-means; ``n_init`` runs that many seeded restarts and
    keeps the lowest inertia. See the module docstring for the algorithms and stopping rules.
    """
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(X)
    if not isinstance(X, torch.Tensor) or X.ndim != 2:
        raise XmodalError(f"k-means needs a 2-D (n, d) array, got shape {getattr(X, 'shape', type(X))}")
    n = X.shape[0]
    if n == 0 or X.shape[1] == 0:
        raise XmodalError(f"k-means got an empty array (shape {tuple(X.shape)})")
    if not isinstance(k, int | np.integer) or k < 1 or k > n:
        raise XmodalError(f"k-means needs 1 ≤ k ≤ n = {n} clusters, got k={k}")
    if iters < 1 or n_init < 1 or not tol >= 0:
        raise XmodalError(f"k-means needs iters ≥ 1, n_init ≥ 1, tol ≥ 0 (got {iters}, {n_init}, {tol})")
    if batch_size is not None and batch_size < 1:
        raise XmodalError(f"k-means batch_size must be ≥ 1 or None, got {batch_size}")
    X = _as_float(X)
    if not torch.isfinite(X).all():
        raise XmodalError("k-means input contains NaN/Inf")
    k = int(k)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        X = X.detach()
        tol_abs = float(tol) * float(X.var(0, unbiased=False).mean()) if n > 1 else 0.0
        best = None
        for _ in range(n_init):
            if batch_size is None:
                C = _lloyd(X, _kmeans_pp(X, k, gen), iters, tol_abs)
            else:
                init_n = min(n, max(3 * batch_size, k))
                sub = X[torch.randperm(n, generator=gen)[:init_n].to(X.device)] if init_n < n else X
                C = _minibatch(X, _kmeans_pp(sub, k, gen), iters, tol_abs, batch_size, gen)
            labels, mind = _assign(X, C)
            score = float(mind.sum())
            if best is None or score < best[0]:
                best = (score, labels, C)
    return best[1].to(torch.int64), best[2]


def pseudo_labels(
    y: np.ndarray | torch.Tensor,
    k: int,
    seed: int = 0,
    *,
    standardize: bool = False,
    iters: int = 50,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Pseudo-labels for dense targets ``y (N, ...)``: each target is flattened to a vector, optionally
    standardised per coordinate (zero mean, unit variance; constant coordinates are only centred),
    clustered with :func:`kmeans`, and the labels are renumbered ``0..k'-1`` over the ``k' ≤ k``
    non-empty clusters (in order of cluster index).

    Returns an ``(N,)`` int64 tensor on ``y``'s device (CPU for NumPy input); ``device`` picks where
    the clustering runs (default: ``y``'s device).
    """
    if isinstance(y, np.ndarray):
        if y.dtype == object:
            raise XmodalError("pseudo_labels needs a numeric array")
        y = torch.from_numpy(np.ascontiguousarray(y))
    if not isinstance(y, torch.Tensor) or y.ndim < 1:
        raise XmodalError(f"pseudo_labels needs an array of shape (N, ...), got {getattr(y, 'shape', type(y))}")
    out_device = y.device
    N = y.shape[0]
    if N == 0:
        raise XmodalError("pseudo_labels got no targets (N = 0)")
    Y = y.reshape(N, -1)
    Y = Y.to(torch.float32) if not Y.is_floating_point() or Y.dtype in (torch.float16, torch.bfloat16) else Y
    if device is not None:
        Y = Y.to(device)
    if Y.shape[1] == 0:
        raise XmodalError(f"pseudo_labels got empty targets (shape {tuple(y.shape)})")
    if not torch.isfinite(Y).all():
        raise XmodalError("pseudo_labels: the targets contain NaN/Inf")
    if standardize:
        std = Y.std(0, unbiased=False)
        Y = (Y - Y.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
    labels, _ = kmeans(Y, k, iters=iters, seed=seed, batch_size=batch_size)
    _, relabelled = torch.unique(labels, return_inverse=True)
    return relabelled.to(device=out_device, dtype=torch.int64)
