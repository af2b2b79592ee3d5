"""Per-class row index of a labelled feature set: what OTDD's inner problems and class-wise loss iterate over.

:class:`ClassIndex` lists, for each present label, a padded tensor of row indices (optionally capped by a
seeded random subset) with a 0/1 mask, so that all classes' OT problems form one batch;
:class:`ClassSubset` is the same view re-indexed to a subsampled row set. :func:`sqdist` gives the
squared Euclidean cost matrices the problems are built from.
"""

from __future__ import annotations

import torch

__all__ = ["ClassIndex", "ClassSubset", "sqdist"]


def sqdist(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``(n, m)`` squared Euclidean distances, clamped at 0."""
    d2 = torch.addmm((A * A).sum(1, keepdim=True) + (B * B).sum(1).unsqueeze(0), A, B.T, alpha=-2.0)
    return d2.clamp_min(0.0)


class ClassIndex:
    """Index structure of one labelled set: the present labels, and per class a padded list of row
    indices (capped at ``cap`` by a seeded random subset) with 0/1 weights."""

    def __init__(self, y: torch.Tensor, cap: int | None, gen: torch.Generator | None, device: torch.device):
        yc = y.detach().cpu().long()
        self.labels = torch.unique(yc)  # sorted
        self.compact = torch.searchsorted(self.labels, yc).to(device)  # (n,) in 0..K-1
        rows, counts = [], []
        for c in self.labels.tolist():
            idx = (yc == c).nonzero().flatten()
            counts.append(len(idx))
            if cap is not None and len(idx) > cap:
                idx = idx[torch.randperm(len(idx), generator=gen)[:cap]]
            rows.append(idx)
        L = max(len(r) for r in rows)
        self.idx = torch.zeros(len(rows), L, dtype=torch.long)
        self.mask = torch.zeros(len(rows), L, dtype=torch.bool)
        for k, r in enumerate(rows):
            self.idx[k, : len(r)] = r
            self.mask[k, : len(r)] = True
        self.idx, self.mask = self.idx.to(device), self.mask.to(device)
        self.counts = torch.tensor(counts, dtype=torch.long)
        self.K = len(rows)
        self.sizes = [len(r) for r in rows]

    def onehot(self, dtype: torch.dtype) -> torch.Tensor:
        return torch.nn.functional.one_hot(self.compact, self.K).to(dtype)


class ClassSubset:
    """A :class:`ClassIndex`-like view whose indices point into a subsampled row set."""

    def __init__(self, idx: torch.Tensor, mask: torch.Tensor, K: int) -> None:
        self.idx, self.mask, self.K = idx, mask, K
