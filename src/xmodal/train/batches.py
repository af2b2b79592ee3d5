"""Batches of in-memory rows for the loops, through PyTorch's ``DataLoader``.

The loops draw their own index batches (a seeded shuffle, a class-wise sample); this module turns a
list of index tensors into ``(X[idx], y[idx])`` batches. On CPU the rows are indexed in the loop's
process (no workers: fancy indexing of in-memory tensors is cheaper than sending batches between
processes). On CUDA, ``workers`` processes index ahead of the loop and the batches arrive in pinned
(page-locked) memory, so the copy to the GPU (``non_blocking=True``) overlaps the previous step.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["batch_loader", "cuda_workers"]


class _Rows(Dataset):
    """``dataset[idx]`` for an index tensor ``idx`` ``(B,)`` → ``(X[idx], y[idx])``: one fetch per batch."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        return self.X.shape[0]

    def __getitem__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[idx], self.y[idx]


def cuda_workers() -> int:
    """Loader processes per training process on CUDA: ``$XMODAL_LOADER_WORKERS``, default 2."""
    try:
        return max(0, int(os.environ.get("XMODAL_LOADER_WORKERS", "2")))
    except ValueError:
        return 2


def batch_loader(X: torch.Tensor, y: torch.Tensor, batches: list[torch.Tensor], device: torch.device,
                 workers: int | None = None) -> DataLoader:
    """Iterate ``(X[idx], y[idx])`` for each ``idx`` in ``batches``, in order.

    Args:
        X: rows ``(N, …)`` on CPU. y: targets ``(N, …)`` on CPU.
        batches: index tensors ``(B_i,)``; each is one batch.
        device: where the batches go; CUDA turns on pinned memory and :func:`cuda_workers` workers.
        workers: loader processes (default: 0 on CPU, :func:`cuda_workers` on CUDA).
    """
    cuda = device.type == "cuda"
    workers = (cuda_workers() if cuda else 0) if workers is None else workers
    return DataLoader(_Rows(X, y), sampler=batches, batch_size=None, num_workers=workers, pin_memory=cuda,
                      prefetch_factor=2 if workers else None)
