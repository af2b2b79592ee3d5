"""Small numerical helpers every objective shares: dtypes, chunk sizes and squared distances."""

from __future__ import annotations

import torch

__all__ = ["CHUNK_ELEMS", "as_float", "working_dtype", "precise_dtype", "sq_dists"]

#: entries of a distance or kernel block computed at once (row chunks keep memory bounded for large n)
CHUNK_ELEMS = 1 << 22


def as_float(X: torch.Tensor) -> torch.Tensor:
    """``X`` itself when floating point, else as float32."""
    return X if X.is_floating_point() else X.float()


def working_dtype(t: torch.Tensor) -> torch.dtype:
    """``t``'s dtype when float32 or float64; float32 otherwise (half precision, integers)."""
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32


def precise_dtype(device: torch.device) -> torch.dtype:
    """float64 for numerically delicate steps (covariances, log-determinants); float32 on Apple's MPS,
    which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def sq_dists(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``(n, m)`` squared Euclidean distances between the rows of ``A (n, D)`` and ``B (m, D)``, clamped
    at 0 (differentiable, no square root)."""
    d2 = (A * A).sum(1, keepdim=True) + (B * B).sum(1).unsqueeze(0) - 2.0 * (A @ B.T)
    return d2.clamp_min(0.0)
