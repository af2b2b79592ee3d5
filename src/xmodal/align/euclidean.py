"""Mean pairwise Euclidean distance between target and source features.

ORCA's ablation (appendix A.4) names this metric only as "(pairwise) Euclidean distance"; it gives no
formula. We read it as the mean distance over all (target, source) pairs,

    d(T, S) = 1/(n_t n_s) Σ_i Σ_j ‖x^t_i - x^s_j‖₂,

(``squared=True`` uses ‖·‖₂² instead, which equals ‖μ_t - μ_s‖² + tr Σ_t + tr Σ_s). Unlike MMD it does
not vanish when the two distributions coincide, and minimising it pulls every target feature towards
the source's geometric median (it rewards collapse rather than matching the spread) — which is what
the ablation measures, so we keep the plain definition.
"""

from __future__ import annotations

import torch

from xmodal.align.numerics import CHUNK_ELEMS, as_float
from xmodal.align.objectives import SubsampledObjective, check_features, register_objective
from xmodal.errors import XmodalError

__all__ = ["PairwiseEuclidean", "mean_pairwise_euclidean"]

def _mean_dist(Xa: torch.Tensor, Xb: torch.Tensor, squared: bool) -> torch.Tensor:
    n, m = Xa.shape[0], Xb.shape[0]
    rows = max(1, CHUNK_ELEMS // m)
    total = Xa.new_zeros(())
    for i0 in range(0, n, rows):
        d = torch.cdist(Xa[i0 : i0 + rows], Xb)  # backward is 0 (not NaN) at zero distance
        total = total + (d * d if squared else d).sum()
    return total / (n * m)


def mean_pairwise_euclidean(Xa: torch.Tensor, Xb: torch.Tensor, *, squared: bool = False) -> torch.Tensor:
    """Mean Euclidean distance (``squared``: squared distance) over all pairs of rows of ``Xa (n, D)``
    and ``Xb (m, D)``, as a differentiable 0-d tensor."""
    check_features(Xa, None, "first")
    check_features(Xb, None, "second")
    if Xa.shape[1] != Xb.shape[1]:
        raise XmodalError(f"pairwise Euclidean distance needs features of equal width, got {Xa.shape[1]} and "
                          f"{Xb.shape[1]}")
    Xa, Xb = as_float(Xa), as_float(Xb)
    dtype = torch.promote_types(Xa.dtype, Xb.dtype)
    return _mean_dist(Xa.to(dtype), Xb.to(dtype=dtype, device=Xa.device), squared)


@register_objective
class PairwiseEuclidean(SubsampledObjective):
    """Mean pairwise Euclidean distance between target and source features (labels unused).

    Options:
        max_samples: rows per side used by each ``loss`` call (default 1000; ``None`` = all),
            drawn without replacement from a generator seeded by ``seed``.
        squared: average squared distances instead.
        seed: seeds the subsampling generator.

    ``value`` is the full-set mean (no subsampling), computed in chunks.
    """

    name = "euclidean"
    uses_labels = False

    def __init__(self, Xs: torch.Tensor, ys: torch.Tensor | None = None, *, max_samples: int | None = 1000,
                 squared: bool = False, seed: int = 0) -> None:
        super().__init__(Xs, ys, max_samples=max_samples, squared=squared, seed=seed)
        if max_samples is not None and max_samples < 1:
            raise XmodalError(f"euclidean max_samples must be ≥ 1 or None, got {max_samples}")
        self.Xs = as_float(Xs)
        self.max_samples = max_samples
        self.squared = bool(squared)
        self._gen = torch.Generator().manual_seed(seed)

    def _estimate(self, Xt: torch.Tensor, Xs: torch.Tensor) -> torch.Tensor:
        Xt = as_float(Xt)
        return _mean_dist(Xt, Xs.to(dtype=Xt.dtype, device=Xt.device), self.squared)

