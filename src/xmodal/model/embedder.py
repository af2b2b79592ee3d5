"""The embedder ``f``: N-d patchify convolution → LayerNorm → positional embedding.

ORCA §3.1: a convolution with kernel = stride = ``k`` maps an input ``(C, *S)`` to a grid of
``D``-dimensional tokens; ``k`` is the smallest patch size whose token count fits the body's
sequence length. Unlike the reference code, which only accepts ``k`` that divide the length (so a
prime length collapses to one token of size ``L``), every spatial axis is zero-padded on the right
up to a multiple of ``k``: the token count along an axis of length ``s`` is ``ceil(s / k)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from xmodal.errors import XmodalError

__all__ = ["choose_patch_size", "token_grid", "Embedder"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def token_grid(spatial: Sequence[int], k: int) -> tuple[int, ...]:
    """Tokens per spatial axis for patch size ``k``: ``ceil(s / k)`` for each axis length ``s``."""
    return tuple(-(-int(s) // k) for s in spatial)


def choose_patch_size(spatial: Sequence[int], max_tokens: int) -> int:
    """The smallest patch size ``k ≥ 1`` whose token count ``∏ ceil(s_i / k)`` is ≤ ``max_tokens``.

    Args:
        spatial: the input's spatial shape ``S`` (1 to 3 axes), e.g. ``(150,)`` or ``(16, 16)``.
        max_tokens: the body's sequence budget ``S_max`` (its maximum number of positions, or less).

    Examples: ``(150,)`` with 512 → 1; ``(521,)`` with 512 → 2 (261 tokens, length padded to 522);
    ``(85, 85)`` with 512 → 4 (22 × 22 = 484 tokens).
    """
    if max_tokens < 1:
        raise XmodalError(f"max_tokens must be ≥ 1, got {max_tokens}")
    if not spatial or any(s < 1 for s in spatial):
        raise XmodalError(f"spatial shape must have 1 to 3 positive axes, got {tuple(spatial)}")
    hi = max(spatial)
    lo = 1
    # the token count is non-increasing in k, so bisect for the first k that fits
    while lo < hi:
        mid = (lo + hi) // 2
        if math.prod(token_grid(spatial, mid)) <= max_tokens:
            hi = mid
        else:
            lo = mid + 1
    return lo


class Embedder(nn.Module):
    """Map ``(N, C, *S)`` inputs to ``(N, T, D)`` tokens, ``T = ∏ ceil(S_i / k)``.

    Args:
        in_channels: ``C``.
        spatial: ``S``, 1 to 3 axes.
        width: ``D``, the body's hidden size.
        max_tokens: token budget used to choose ``k`` (see :func:`choose_patch_size`).
        patch_size: force ``k`` instead of choosing it.
    """

    def __init__(
        self,
        in_channels: int,
        spatial: Sequence[int],
        width: int,
        max_tokens: int,
        patch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.spatial = tuple(int(s) for s in spatial)
        if len(self.spatial) not in _CONV:
            raise XmodalError(f"inputs need 1, 2 or 3 spatial axes, got {len(self.spatial)}")
        self.k = int(patch_size) if patch_size else choose_patch_size(self.spatial, max_tokens)
        self.grid = token_grid(self.spatial, self.k)
        self.num_tokens = math.prod(self.grid)
        self.width = width
        self.projection = _CONV[len(self.spatial)](in_channels, width, kernel_size=self.k, stride=self.k)
        self.norm = nn.LayerNorm(width)
        self.position = nn.Parameter(torch.zeros(self.num_tokens, width))
        nn.init.trunc_normal_(self.position, std=0.02)
        # right padding per axis, in F.pad's order (last axis first)
        pad: list[int] = []
        for s, g in zip(reversed(self.spatial), reversed(self.grid), strict=True):
            pad += [0, g * self.k - s]
        self._pad = tuple(pad)

    def init_from_body(self, position: torch.Tensor | None, norm: nn.LayerNorm | None) -> None:
        """Start the positional embedding (``(T, D)``) and LayerNorm from the body's own, when it has them."""
        with torch.no_grad():
            if position is not None:
                rows = min(self.num_tokens, position.shape[0])
                self.position[:rows].copy_(position[:rows].to(self.position.dtype))
            if norm is not None and norm.weight is not None:
                self.norm.weight.copy_(norm.weight)
                self.norm.bias.copy_(norm.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, *S)`` → ``(N, T, D)``."""
        if any(self._pad):
            x = F.pad(x, self._pad)
        tokens = self.projection(x).flatten(2).transpose(1, 2)
        return self.norm(tokens) + self.position
