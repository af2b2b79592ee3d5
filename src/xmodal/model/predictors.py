"""Predictors ``h``: turn body features ``(N, T, D)`` into task outputs.

* :class:`PooledHead` — mean over tokens, then a linear map to ``K`` outputs: ``(N, K)``.
  Serves multi-class, multi-label and per-sample regression.
* :class:`DenseHead` — a linear map per token to ``k^d · K`` values, then the N-d analogue of
  pixel-shuffle puts each token's ``k^d`` block back in place and the right padding is cropped:
  ``(N, K, *S)`` at the input's resolution (ORCA §3.1, footnote 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["PooledHead", "DenseHead", "unpatchify"]


class PooledHead(nn.Module):
    """``(N, T, D)`` → mean over ``T`` → ``(N, K)``."""

    def __init__(self, width: int, num_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, num_outputs)

    def linear_inputs(self, features: torch.Tensor) -> torch.Tensor:
        """What :attr:`linear` reads: ``(N, T, D)`` → ``(N, D)``."""
        return features.mean(dim=1)

    def arrange(self, values: torch.Tensor, grid: Sequence[int] | None = None) -> torch.Tensor:
        """:attr:`linear`'s outputs ``(N, K)`` as the head's output (unchanged)."""
        return values

    def forward(self, features: torch.Tensor, grid: Sequence[int] | None = None) -> torch.Tensor:
        return self.arrange(self.linear(self.linear_inputs(features)), grid)


def unpatchify(values: torch.Tensor, grid: Sequence[int], k: int, channels: int) -> torch.Tensor:
    """Inverse of patchify: ``(N, ∏grid, K·k^d)`` → ``(N, K, grid_1·k, …, grid_d·k)``.

    For ``d = 2`` this is :func:`torch.nn.functional.pixel_shuffle` applied to the token grid.
    """
    d = len(grid)
    n = values.shape[0]
    x = values.reshape(n, *grid, channels, *([k] * d))
    # (N, g1..gd, K, k1..kd) → (N, K, g1, k1, g2, k2, …)
    order = [0, d + 1]
    for i in range(d):
        order += [1 + i, d + 2 + i]
    x = x.permute(*order)
    return x.reshape(n, channels, *(g * k for g in grid))


class DenseHead(nn.Module):
    """``(N, T, D)`` → ``(N, K, *S)``: per-token linear to ``k^d · K``, un-patchify, crop."""

    def __init__(self, width: int, num_outputs: int, spatial: Sequence[int], k: int) -> None:
        super().__init__()
        self.spatial = tuple(spatial)
        self.k = k
        self.num_outputs = num_outputs
        self.linear = nn.Linear(width, num_outputs * k ** len(self.spatial))

    def linear_inputs(self, features: torch.Tensor) -> torch.Tensor:
        """What :attr:`linear` reads: the tokens ``(N, T, D)`` themselves."""
        return features

    def arrange(self, values: torch.Tensor, grid: Sequence[int] | None = None) -> torch.Tensor:
        """:attr:`linear`'s outputs ``(N, T, k^d·K)`` → ``(N, K, *S)``: un-patchified, padding cropped."""
        if grid is None:
            raise ValueError("DenseHead needs the token grid")
        out = unpatchify(values, grid, self.k, self.num_outputs)
        crop = (slice(None), slice(None)) + tuple(slice(0, s) for s in self.spatial)
        return out[crop]

    def forward(self, features: torch.Tensor, grid: Sequence[int] | None = None) -> torch.Tensor:
        return self.arrange(self.linear(self.linear_inputs(features)), grid)
