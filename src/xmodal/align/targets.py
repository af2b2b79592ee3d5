"""The target side of stage 2: the labels an objective sees, the class-wise samples it is fed, and
the embedded target features.

Class labels are used as they are. Targets that are not class labels (regression, dense, multi-label)
get pseudo-labels: ORCA (appendix A.3.4) clusters the flattened targets with k-means, k = the number
of source classes. The clustering is scikit-learn's :class:`~sklearn.cluster.KMeans` (k-means++
initialisation, Lloyd iterations); it runs once per run on at most a few thousand targets, so a
hand-written GPU version buys nothing measurable.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from xmodal.errors import XmodalError
from xmodal.model.assembly import CrossModalModel

__all__ = ["pseudo_labels", "target_labels", "classwise_sample", "curve_subset", "embed_features"]


def pseudo_labels(y: np.ndarray | torch.Tensor, k: int, seed: int = 0, *, standardize: bool = False) -> torch.Tensor:
    """k-means pseudo-labels ``(N,)`` int64 for targets ``y`` ``(N, ...)``.

    Each target is flattened to a vector, optionally standardised per coordinate (zero mean, unit
    variance; constant coordinates are only centred) and clustered into ``k`` clusters
    (``random_state=seed``); the labels are renumbered ``0..k'-1`` over the ``k' ≤ k`` clusters that
    received a point.

    Raises:
        XmodalError: no targets, empty or non-finite targets, or ``k`` outside ``1 … N``.
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    Y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if Y.dtype == object or Y.ndim < 1:
        raise XmodalError(f"pseudo_labels needs a numeric array of shape (N, ...), got {Y.dtype} {Y.shape}")
    N = Y.shape[0]
    if N == 0:
        raise XmodalError("pseudo_labels got no targets (N = 0)")
    Y = Y.reshape(N, -1).astype(np.float64)
    if Y.shape[1] == 0:
        raise XmodalError(f"pseudo_labels got empty targets (shape {tuple(y.shape)})")
    if not np.isfinite(Y).all():
        raise XmodalError("pseudo_labels: the targets contain NaN/Inf")
    if not 1 <= k <= N:
        raise XmodalError(f"pseudo_labels needs 1 ≤ k ≤ N = {N}, got k = {k}")
    if standardize:
        std = Y.std(0)
        Y = (Y - Y.mean(0)) / np.where(std > 0, std, 1.0)
    with warnings.catch_warnings():  # fewer distinct targets than k: the empty clusters are dropped below
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(Y)
    _, relabelled = np.unique(labels, return_inverse=True)
    return torch.as_tensor(relabelled.reshape(-1), dtype=torch.int64)


def target_labels(model: CrossModalModel, y: torch.Tensor, k_source: int, seed: int) -> torch.Tensor:
    """Labels for the objective ``(N,)``: class labels as they are (``model.kind.class_labels``),
    k-means pseudo-labels with ``k = min(k_source, N)`` (at least 2) otherwise."""
    if model.kind.class_labels:
        return y.long()
    k = max(2, min(k_source, y.shape[0]))
    return pseudo_labels(y, k, seed=seed)


def classwise_sample(labels: torch.Tensor, per_class: int, gen: torch.Generator) -> torch.Tensor:
    """Indices of up to ``per_class`` samples of every label (ORCA's Algorithm 1), drawn with ``gen``."""
    picks = []
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    return torch.cat(picks)


def curve_subset(labels: torch.Tensor, per_class: int | None, seed: int) -> torch.Tensor:
    """Sorted row indices of a fixed class-stratified subset: every class at or under ``per_class``
    whole, larger ones cut to a seeded random ``per_class`` (all rows when ``per_class`` is None)."""
    if per_class is None:
        return torch.arange(labels.shape[0])
    gen = torch.Generator().manual_seed(seed + 15485863)
    return classwise_sample(labels.cpu(), per_class, gen).sort().values


def embed_features(model: CrossModalModel, X: torch.Tensor, device: torch.device, batch: int = 256) -> torch.Tensor:
    """Token-mean-pooled embedder outputs ``(N, D)`` float32 for ``X`` ``(N, C, *S)``, without gradients."""
    feats = []
    with torch.no_grad():
        for xb in X.split(batch):
            feats.append(model.embed(xb.to(device)).mean(dim=1).float())
    return torch.cat(feats)
