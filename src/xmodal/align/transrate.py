"""TransRate (Huang et al., "Frustratingly Easy Transferability Estimation", ICML 2022).

TransRate estimates the mutual information between features ``Z`` and labels ``Y`` of the *target*
task with coding rates: ``TrR(Z, Y) = R(Z, ε) - R(Z | Y, ε)``, on features centred over all samples.
Higher = more transferable, so the objective's ``loss`` (and ``value``) is ``-TrR``. ORCA's ablation
(section 4.2.1 / appendix A.4) calls it "the mutual-information-based TransRate" and minimises it as
an embedding-learning metric without further detail.

Two conventions (``convention=``):

* ``"code"`` (default): the authors' released ten-line implementation (reproduced in the paper's
  appendix and in many copies) —
  ``R(Z, ε) = ½ logdet(I_d + ZᵀZ / (n ε))`` and ``R(Z | Y, ε) = (1/K) Σ_k R(Z_k, ε)``, an unweighted
  mean over classes, with ``Z_k`` the (globally centred) rows of class ``k`` and ``n`` replaced by
  ``n_k`` inside ``R(Z_k)``; ``ε = 1e-4``. Only the ``K`` classes present in ``y`` count (the released
  code loops over ``0..max(y)`` and would produce NaN for an absent class).
* ``"mcr2"``: the coding rate of Yu et al.'s MCR² — ``R(Z, ε) = ½ logdet(I_d + d ZᵀZ / (n ε²))`` with
  class-size weights ``R(Z | Y, ε) = Σ_k (n_k / n) R(Z_k, ε)``. With ``ε = 1e-4`` the factor
  ``d / (n ε²)`` is huge and the rate is dominated by ``rank(Z) · log(1/ε²)``; pass a larger ``eps``
  (MCR² uses ``ε² = 0.5``) with this convention.

``normalize=True`` divides the centred features by their root-mean-square row norm first. Without it,
scaling ``Z`` by ``a`` changes TrR by about ``½ (rank Z - mean_k rank Z_k) log a²`` for large ``a`` —
unbounded whenever the whole set has higher rank than the average class, e.g. a batch of fewer
rows than the feature width (768 for RoBERTa/Swin) — so minimising ``-TrR`` can simply inflate the
embedder's output. The original metric has no such normalisation, so it is off by default.

The determinant is taken of the smaller of the ``d × d`` and ``n × n`` Gram matrices (Sylvester's
identity: ``det(I_d + c ZᵀZ) = det(I_n + c ZZᵀ)``), by Cholesky, in float64 (float32 on MPS).

The :class:`TransRate` objective uses the source features only to validate the target width: the
metric is a property of the target features and target labels alone.
"""

from __future__ import annotations

import torch

from xmodal.align.numerics import precise_dtype
from xmodal.align.objectives import Objective, check_features, register_objective
from xmodal.errors import XmodalError

__all__ = ["TransRate", "coding_rate", "transrate", "CONVENTIONS"]

CONVENTIONS = ("code", "mcr2")


def _check_eps(eps: float, convention: str) -> None:
    if convention not in CONVENTIONS:
        raise XmodalError(f"unknown TransRate convention {convention!r}; choose one of {list(CONVENTIONS)}")
    if not (eps > 0 and eps < float("inf")):
        raise XmodalError(f"TransRate eps must be a finite positive number, got {eps}")


def _logdet_i_plus(c: float, Z: torch.Tensor) -> torch.Tensor:
    """``logdet(I + c ZᵀZ)`` via the smaller Gram matrix."""
    n, d = Z.shape
    G = Z @ Z.T if n < d else Z.T @ Z
    M = torch.eye(G.shape[0], dtype=G.dtype, device=G.device) + c * G
    L, info = torch.linalg.cholesky_ex(M)
    if int(info) == 0:
        return 2.0 * torch.log(torch.diagonal(L)).sum()
    return torch.linalg.slogdet(M)[1]


def _rate(Z: torch.Tensor, eps: float, convention: str) -> torch.Tensor:
    n, d = Z.shape
    c = 1.0 / (n * eps) if convention == "code" else d / (n * eps * eps)
    return 0.5 * _logdet_i_plus(c, Z)


def coding_rate(Z: torch.Tensor, eps: float = 1e-4, *, convention: str = "code") -> torch.Tensor:
    """Coding rate ``R(Z, ε)`` of the rows of ``Z (n, d)`` as they are (no centring); see the module
    docstring for the two conventions. Differentiable 0-d tensor (float64 except on MPS)."""
    check_features(Z, None, "coding-rate")
    _check_eps(eps, convention)
    return _rate(Z.to(precise_dtype(Z.device)), eps, convention)


def transrate(
    Z: torch.Tensor, y: torch.Tensor, eps: float = 1e-4, *, convention: str = "code", normalize: bool = False
) -> torch.Tensor:
    """TransRate ``R(Z, ε) - R(Z | Y, ε)`` of features ``Z (n, d)`` and integer labels ``y (n,)``
    (higher = more transferable). Features are centred over all rows first; differentiable."""
    check_features(Z, y, "TransRate")
    _check_eps(eps, convention)
    Z = Z.to(precise_dtype(Z.device))
    Z = Z - Z.mean(0, keepdim=True)
    if normalize:
        rms = Z.pow(2).sum(1).mean().sqrt()
        if not float(rms.detach()) > 0:
            raise XmodalError("TransRate normalize=True needs features that are not all equal")
        Z = Z / rms
    n = Z.shape[0]
    y = y.to(Z.device)
    classes = torch.unique(y)
    conditional = Z.new_zeros(())
    for k in classes:
        Zk = Z[y == k]
        w = 1.0 / len(classes) if convention == "code" else Zk.shape[0] / n
        conditional = conditional + w * _rate(Zk, eps, convention)
    return _rate(Z, eps, convention) - conditional


@register_objective
class TransRate(Objective):
    """``-TransRate`` of the target features and target labels (lower = more transferable).

    Options:
        eps: distortion ε (default 1e-4, the authors' code).
        convention: ``"code"`` (default) or ``"mcr2"``; see the module docstring.
        normalize: divide centred features by their RMS row norm (scale-invariant loss).
        max_samples: rows used per ``loss`` call (default ``None`` = all; TrR depends on n through
            ``1/(n ε)``, so subsampled values are not comparable with full-set ones).
        seed: seeds the subsampling generator.

    The source features ``Xs`` are used only to check the target width; ``ys`` is not used.
    """

    name = "transrate"
    uses_labels = True

    def __init__(self, Xs: torch.Tensor, ys: torch.Tensor | None = None, *, eps: float = 1e-4,
                 convention: str = "code", normalize: bool = False, max_samples: int | None = None,
                 seed: int = 0) -> None:
        super().__init__(
            Xs, ys, eps=eps, convention=convention, normalize=normalize, max_samples=max_samples, seed=seed
        )
        _check_eps(eps, convention)
        if max_samples is not None and max_samples < 2:
            raise XmodalError(f"TransRate max_samples must be ≥ 2 or None, got {max_samples}")
        self.eps = float(eps)
        self.convention = convention
        self.normalize = bool(normalize)
        self.max_samples = max_samples
        self._gen = torch.Generator().manual_seed(seed)

    def _check_labels(self, Xt: torch.Tensor, yt: torch.Tensor | None) -> None:
        if yt is None:
            raise XmodalError("TransRate needs target labels (pseudo-labels for dense tasks)")
        self._check_target(Xt, yt)

    def loss(self, Xt: torch.Tensor, yt: torch.Tensor) -> torch.Tensor:
        """``-TrR`` of (a subsample of) the target set, differentiable w.r.t. ``Xt``."""
        self._check_labels(Xt, yt)
        if self.max_samples is not None and Xt.shape[0] > self.max_samples:
            idx = torch.randperm(Xt.shape[0], generator=self._gen)[: self.max_samples]
            Xt, yt = Xt[idx.to(Xt.device)], yt[idx.to(yt.device)]
        tr = transrate(Xt, yt, self.eps, convention=self.convention, normalize=self.normalize)
        return -tr.to(Xt.dtype if Xt.is_floating_point() else torch.float32)

    def value(self, Xt: torch.Tensor, yt: torch.Tensor) -> float:
        """Full-set ``-TrR`` (no subsampling, no gradient)."""
        self._check_labels(Xt, yt)
        with torch.no_grad():
            return -float(transrate(Xt, yt, self.eps, convention=self.convention, normalize=self.normalize))
