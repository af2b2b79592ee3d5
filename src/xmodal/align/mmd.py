"""Maximum mean discrepancy (Gretton et al., 2012) with a multi-bandwidth Gaussian kernel.

ORCA's ablation (section 4.2.1 / appendix A.4) lists MMD as one of the embedding-learning metrics
but does not give its kernel or estimator; this module fixes them as follows.

Kernel: ``k(x, y) = Σ_b exp(-‖x - y‖² / (2 σ_b²))`` — a sum of Gaussians whose bandwidths default to
``σ_b = median × (0.25, 0.5, 1, 2, 4)``, where ``median`` is the median pairwise Euclidean distance
between *source* features (computed once, on at most ``median_samples`` seeded-random source rows).
Fixing the bandwidths on the source means the target is pulled to the source's scale; with a
target-dependent bandwidth the embedder could shrink the loss by rescaling its output.

Estimators of ``MMD²`` (``estimator=``):

* ``"unbiased"`` (default, Gretton et al.'s ``MMD²_u``):
  ``Σ_{i≠j} k(a_i, a_j) / (n(n-1)) + Σ_{i≠j} k(b_i, b_j) / (m(m-1)) - 2 Σ_{i,j} k(a_i, b_j) / (nm)``.
  Its expectation is the population MMD², so it can be slightly negative when the two samples come
  from the same distribution (and ``mmd2(X, X)`` is ``-O(1/n)``, not 0). Needs ≥ 2 rows per side.
* ``"biased"`` (the V-statistic): the same with the diagonals included and ``n²``, ``m²`` as
  denominators. Always ≥ 0 (up to rounding) and exactly 0 for identical inputs.

Implementation choice: geomloss's ``SamplesLoss("gaussian")`` (summed over the bandwidths, ×2 since its
kernel loss is MMD²/2) computes the same biased value but recomputes its three distance matrices for
every bandwidth, has no unbiased estimator, and was slower per call when measured against this module
(geomloss is not a dependency, so that comparison is not rerun here); POT only has a kernel-matrix
helper (``ot.utils.kernel``), no MMD. Hence plain torch: one squared-distance matrix per block, reused
for every bandwidth, in row chunks so that ``value`` on a large target set never holds more than
``2²²`` kernel entries at once.

Source-only work is done once in :class:`MMD`'s constructor: the bandwidths and the source-source
kernel mean over the *full* source set. ``loss`` then only evaluates the target-target and
target-source terms on subsamples (at most ``max_samples`` rows per side, drawn from a seeded
generator), which is still an unbiased estimate of MMD²_u and has no source-source sampling noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from xmodal.align.numerics import CHUNK_ELEMS, as_float, sq_dists
from xmodal.align.objectives import SubsampledObjective, check_features, register_objective
from xmodal.errors import XmodalError

__all__ = ["MMD", "mmd2", "median_heuristic", "DEFAULT_SCALES"]

#: Multipliers of the median heuristic that give the default bandwidths.
DEFAULT_SCALES: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
_ESTIMATORS = ("unbiased", "biased")
def _kernel_sum(A: torch.Tensor, B: torch.Tensor, gammas: torch.Tensor, exclude_diagonal: bool) -> torch.Tensor:
    """``Σ_{i,j} Σ_b exp(-γ_b ‖a_i - b_j‖²)``, computed in row chunks; with ``exclude_diagonal`` (``A is B``)
    the ``i == j`` terms are left out."""
    n, m = A.shape[0], B.shape[0]
    rows = max(1, CHUNK_ELEMS // max(m, 1))
    total = A.new_zeros(())
    for i0 in range(0, n, rows):
        d2 = sq_dists(A[i0 : i0 + rows], B)
        K = torch.exp(-gammas[0] * d2)
        for g in gammas[1:]:
            K = K + torch.exp(-g * d2)
        if exclude_diagonal:
            r = d2.shape[0]
            keep = torch.ones_like(K, dtype=torch.bool)
            keep[torch.arange(r, device=K.device), torch.arange(i0, i0 + r, device=K.device)] = False
            K = K * keep
        total = total + K.sum()
    return total


def _kernel_mean(A: torch.Tensor, B: torch.Tensor, gammas: torch.Tensor, within: bool, unbiased: bool) -> torch.Tensor:
    n, m = A.shape[0], B.shape[0]
    if within and unbiased:
        return _kernel_sum(A, A, gammas, exclude_diagonal=True) / (n * (n - 1))
    return _kernel_sum(A, B, gammas, exclude_diagonal=False) / (n * m)


def _check_bandwidths(bandwidths: Sequence[float] | torch.Tensor) -> list[float]:
    try:
        bw = [float(b) for b in (bandwidths.tolist() if isinstance(bandwidths, torch.Tensor) else bandwidths)]
    except (TypeError, ValueError):
        raise XmodalError(f"MMD bandwidths must be a sequence of positive numbers, got {bandwidths!r}") from None
    if not bw or not all(b > 0 and b < float("inf") for b in bw):
        raise XmodalError(f"MMD bandwidths must be a non-empty sequence of finite positive numbers, got {bw}")
    return bw


def _gammas(bandwidths: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor([1.0 / (2.0 * b * b) for b in bandwidths], dtype=like.dtype, device=like.device)


def _check_estimator(estimator: str) -> bool:
    if estimator not in _ESTIMATORS:
        raise XmodalError(f"unknown MMD estimator {estimator!r}; choose one of {list(_ESTIMATORS)}")
    return estimator == "unbiased"


def mmd2(
    Xa: torch.Tensor, Xb: torch.Tensor, bandwidths: Sequence[float] | torch.Tensor, *, unbiased: bool = True
) -> torch.Tensor:
    """Squared MMD between the rows of ``Xa (n, D)`` and ``Xb (m, D)`` (differentiable 0-d tensor).

    The kernel is ``Σ_σ exp(-‖x - y‖² / (2σ²))`` over ``bandwidths`` (absolute values, not multiples of
    the median). ``unbiased=True`` gives Gretton et al.'s ``MMD²_u`` (needs n, m ≥ 2; may be
    slightly negative), ``False`` the biased V-statistic (≥ 0, exactly 0 for identical inputs).
    """
    check_features(Xa, None, "first")
    check_features(Xb, None, "second")
    if Xa.shape[1] != Xb.shape[1]:
        raise XmodalError(f"MMD needs features of equal width, got {Xa.shape[1]} and {Xb.shape[1]}")
    bw = _check_bandwidths(bandwidths)
    if unbiased and min(Xa.shape[0], Xb.shape[0]) < 2:
        raise XmodalError("the unbiased MMD estimate needs at least 2 samples per set; pass unbiased=False")
    Xa, Xb = as_float(Xa), as_float(Xb)
    dtype = torch.promote_types(Xa.dtype, Xb.dtype)
    Xa, Xb = Xa.to(dtype), Xb.to(dtype=dtype, device=Xa.device)
    g = _gammas(bw, Xa)
    return (
        _kernel_mean(Xa, Xa, g, within=True, unbiased=unbiased)
        + _kernel_mean(Xb, Xb, g, within=True, unbiased=unbiased)
        - 2.0 * _kernel_mean(Xa, Xb, g, within=False, unbiased=unbiased)
    )


def median_heuristic(X: torch.Tensor, max_samples: int = 2000, seed: int = 0) -> float:
    """Median Euclidean distance over distinct pairs of rows of ``X`` (a random subset of at most
    ``max_samples`` rows, drawn with a generator seeded by ``seed``)."""
    check_features(X, None, "median-heuristic")
    if X.shape[0] < 2:
        raise XmodalError("the median heuristic needs at least 2 samples; pass explicit MMD bandwidths")
    X = as_float(X)
    if X.shape[0] > max_samples:
        gen = torch.Generator().manual_seed(seed)
        X = X[torch.randperm(X.shape[0], generator=gen)[:max_samples].to(X.device)]
    with torch.no_grad():
        iu = torch.triu_indices(X.shape[0], X.shape[0], offset=1, device=X.device)
        d = sq_dists(X, X)[iu[0], iu[1]].sqrt()
        m = d.numel()  # NumPy's median: the mean of the two middle values when m is even
        med = float(d.kthvalue((m + 1) // 2).values + d.kthvalue(m // 2 + 1).values) / 2
    if not med > 0:
        raise XmodalError("the median pairwise distance of the features is 0 (all rows equal?); pass explicit "
                          "MMD bandwidths")
    return med


@register_objective
class MMD(SubsampledObjective):
    """Squared MMD between target and source features (multi-bandwidth Gaussian kernel).

    Options:
        scales: multipliers of the source median heuristic (default ``DEFAULT_SCALES``).
        median: use this value instead of computing the median heuristic on the source.
        bandwidths: absolute bandwidths σ (overrides ``scales``/``median``).
        estimator: ``"unbiased"`` (default) or ``"biased"``; see the module docstring.
        max_samples: rows per side used by each ``loss`` call (default 1000; ``None`` = all).
        median_samples: source rows used for the median heuristic (default 2000).
        seed: seeds the subsampling generator and the median-heuristic subset.

    ``value`` is the full-set estimate (no subsampling), computed in chunks.
    """

    name = "mmd"
    uses_labels = False

    def __init__(self, Xs: torch.Tensor, ys: torch.Tensor | None = None, *,
                 scales: Sequence[float] = DEFAULT_SCALES, median: float | None = None,
                 bandwidths: Sequence[float] | None = None, estimator: str = "unbiased",
                 max_samples: int | None = 1000, median_samples: int = 2000, seed: int = 0) -> None:
        super().__init__(
            Xs, ys, scales=scales, median=median, bandwidths=bandwidths, estimator=estimator,
            max_samples=max_samples, median_samples=median_samples, seed=seed,
        )
        self.unbiased = _check_estimator(estimator)
        if max_samples is not None and max_samples < 2:
            raise XmodalError(f"MMD max_samples must be ≥ 2 or None, got {max_samples}")
        if self.unbiased and Xs.shape[0] < 2:
            raise XmodalError("the unbiased MMD estimate needs at least 2 source samples")
        self.Xs = as_float(Xs)
        if bandwidths is None:
            if median is None:
                median = median_heuristic(self.Xs, max_samples=median_samples, seed=seed)
            elif not (median > 0 and median < float("inf")):
                raise XmodalError(f"MMD median must be a finite positive number, got {median}")
            bandwidths = [median * s for s in _check_bandwidths(scales)]
        self.median = median
        self.bandwidths = _check_bandwidths(bandwidths)
        self.max_samples = max_samples
        self._gen = torch.Generator().manual_seed(seed)
        self._gammas = _gammas(self.bandwidths, self.Xs)
        with torch.no_grad():
            self._source_term = _kernel_mean(self.Xs, self.Xs, self._gammas, within=True, unbiased=self.unbiased)

    def _estimate(self, Xt: torch.Tensor, Xs: torch.Tensor) -> torch.Tensor:
        if self.unbiased and Xt.shape[0] < 2:
            raise XmodalError("the unbiased MMD estimate needs at least 2 target samples; use estimator='biased'")
        Xt = as_float(Xt)
        Xs = Xs.to(dtype=Xt.dtype, device=Xt.device)
        g = self._gammas.to(dtype=Xt.dtype, device=Xt.device)
        src = self._source_term.to(dtype=Xt.dtype, device=Xt.device)
        return (
            _kernel_mean(Xt, Xt, g, within=True, unbiased=self.unbiased)
            + src
            - 2.0 * _kernel_mean(Xt, Xs, g, within=False, unbiased=self.unbiased)
        )

