"""Batched entropic optimal transport (Sinkhorn) in torch, for OTDD's inner and outer problems.

Problem. For a batch of cost matrices ``C (B, n, m)`` and weights ``a (B, n)``, ``b (B, m)`` (each row
summing to 1) this module computes the *entropic OT value*

    OT_ε(a, b) = min_P <P, C> + ε KL(P | a ⊗ b)   over couplings P with marginals a, b,

returned through its dual form ``<a, f> + <b, g>`` at the Sinkhorn potentials ``f, g`` — **not** the
bare transport cost ``<P, C>``. The two differ by ``ε KL(P | a ⊗ b)`` (≈ ``ε log n`` when ε → 0 and the
optimal plan is a permutation); the entropic value is the one whose debiased combination

    S_ε(a, b) = OT_ε(a, b) - ½ OT_ε(a, a) - ½ OT_ε(b, b)          (:func:`sinkhorn_divergence`)

is the Sinkhorn divergence of Feydy et al. (2019): ``S_ε(a, a) = 0``, ``S_ε ≥ 0`` for the squared
Euclidean cost, and the first-order entropic bias of the three terms cancels, so ``S_ε`` is much
closer to the unregularised OT than ``OT_ε`` is at the same ε.

ε. ``eps`` is *relative*: the absolute temperature of item ``k`` is ``eps · scale[k]``. With
``scale=None`` the scale is the item's mean cost under the independent coupling,
``Σ_ij a_i b_j C_ij`` (padded points do not count); pass ``scale=1.0`` for an absolute ε, or any
float / ``(B,)`` tensor. The scale is treated as a constant (no gradient flows through it).
:func:`sinkhorn_divergence` uses one ε per item for all three of its terms (required for
``S_ε(a, a) = 0``); its default scale is that of ``C_ab``.

Padding. Batches of point sets of different sizes are padded to a common ``n`` / ``m``: give padded
points weight 0 (their cost entries must be finite; their value is irrelevant). Each item's weights
must have a positive sum; they are renormalised to sum to 1.

Algorithm. Log-domain alternating Sinkhorn with ε-scaling (annealing): the temperature starts at the
item's cost range (max - min) and is multiplied by ``scaling`` each iteration (one iteration per
temperature, as in geomloss) until it is within ``16×`` of the target. From there the iterations run
in the *stabilised kernel* form (Schmitzer 2019) at the target ε: ``K = exp((f ⊕ g - C) / ε)`` is
formed once from the log-domain potentials and the updates are matrix-vector products with scaling
vectors ``u, v`` (over-relaxed, ``u ← u^(1-ω) (1/Kv)^ω``, ω = 1.8 by default, Thibault et al. 2021),
which are absorbed back into ``f, g`` (and ``K`` rebuilt) when they leave ``[e^-10, e^10]``. A
matrix-vector product is one read of ``K``; a log-sum-exp is 4-5 passes with an ``exp``, so the kernel
phase is several times cheaper per iteration. The annealing stops at 16 ε rather than ε (the kernel
phase takes over where it is stable) and is not skipped (without it, low-dimensional data fall back
to the slow log domain). If a scaling vector becomes non-finite the solver continues with log-domain
iterations (slower, always stable). The column update of the log-domain iterations runs on a
contiguous transposed copy of ``C`` (a ``logsumexp`` over the non-contiguous axis is slower). The
solver's speed against POT's batched solver at equal values: ``python benchmarks/otdd_speed.py
--solver-only``. Self-problems
(``symmetric=True``: ``OT_ε(a, a)`` with symmetric ``C``) use the averaged update ``f ← ½ (f + T(f))``
without annealing (see :func:`sinkhorn_potentials`). Stopping: when the L1 violation of the
marginals, ``Σ_j |P^T 1 - b|_j`` (total mass 1; the row marginals are exact after a row update), is
below ``tol`` for every item, checked every ``check_every`` iterations (each check synchronises a
GPU), or after ``max_iters`` iterations at the target ε.

Gradients — envelope theorem, not unrolling. The iterations run without autograd; the potentials
are detached and one final row update ``f = -ε LSE_j(log b_j + (g_j - C_ij) / ε)`` is recomputed with
autograd on ``C``. The returned value ``<a, f> + <b, g>`` is then the exact dual objective at
``(f, g)`` (a lower bound of OT_ε that equals it at convergence) and its gradient w.r.t. ``C`` is
the plan ``P = a_i b_j exp((f_i + g_j - C_ij) / ε)`` — exactly the gradient of OT_ε at convergence
(envelope / Danskin). Unrolling all iterations would store every iterate (``iters × B × n × m``
memory) to differentiate through the approximation error of the solver; the envelope gradient costs
one ``logsumexp`` forward and backward. The weights are constants (detached). Costs that depend on
points (``C = c(X, Y)``) get their gradients by the chain rule through ``C``, including both
arguments of a self-cost ``c(X, X)``.

``sharp=True`` returns the transport cost ``<P, C>`` of the entropic plan instead (the "sharp"
Sinkhorn cost). It converges to the unregularised OT much faster as ε → 0 (the entropic value is
biased by about ε log n), so it is the one to compare with an exact solver (``python
benchmarks/otdd_correctness.py`` does, against ``ot.emd2``); its gradient is the same ``P``.

Works on any device and floating dtype (half precision is computed in float32).
"""

from __future__ import annotations

import math

import torch

from xmodal.align.numerics import working_dtype
from xmodal.errors import XmodalError

__all__ = ["sinkhorn_cost", "sinkhorn_divergence", "sinkhorn_potentials", "SinkhornResult"]

#: Absorb the scaling vectors into the potentials when |log u| or |log v| exceeds this.
_ABSORB = 10.0
#: The log-domain annealing stops at this multiple of the target ε; the kernel phase does the rest.
_ANNEAL_STOP = 16.0
#: Over-relaxation is halved towards 1 when the marginal error grows by more than this factor between checks.
_OMEGA_BACKOFF = 1.0


class SinkhornResult:
    """Potentials and diagnostics of a :func:`sinkhorn_potentials` run (all detached)."""

    __slots__ = ("f", "g", "eps", "iters", "error")

    def __init__(self, f: torch.Tensor, g: torch.Tensor, eps: torch.Tensor, iters: int, error: float) -> None:
        self.f, self.g, self.eps, self.iters, self.error = f, g, eps, iters, error

    def __repr__(self) -> str:
        return f"SinkhornResult(iters={self.iters}, error={self.error:.2e}, shape={tuple(self.f.shape)})"


def _check_problem(C: torch.Tensor, a: torch.Tensor, b: torch.Tensor, name: str = "C") -> None:
    if not isinstance(C, torch.Tensor) or C.ndim != 3:
        raise XmodalError(f"{name} must be a (B, n, m) cost tensor, got {getattr(C, 'shape', type(C))}")
    B, n, m = C.shape
    if B == 0 or n == 0 or m == 0:
        raise XmodalError(f"{name} is empty (shape {tuple(C.shape)}); every OT problem needs points on both sides")
    if a.shape != (B, n) or b.shape != (B, m):
        raise XmodalError(
            f"weights must have shapes ({B}, {n}) and ({B}, {m}) to match {name} {tuple(C.shape)}, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if not bool(torch.isfinite(C.detach()).all()):
        raise XmodalError(f"{name} contains NaN/Inf; costs must be finite (padded entries included)")
    for w, side in ((a, "a"), (b, "b")):
        if not torch.isfinite(w).all() or (w < 0).any():
            raise XmodalError(f"weights {side} must be finite and non-negative")
        if (w.sum(-1) <= 0).any():
            raise XmodalError(f"every batch item needs positive total weight on side {side} (all points padded?)")


def _normalise(w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    w = w.detach().to(dtype)  # weights are constants: no gradient w.r.t. them
    return w / w.sum(-1, keepdim=True)


def _abs_eps(
    C: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: float, scale: float | torch.Tensor | None
) -> torch.Tensor:
    """Absolute temperature per item, ``(B,)``, detached."""
    if not (isinstance(eps, (int, float)) and eps > 0 and math.isfinite(eps)):
        raise XmodalError(f"Sinkhorn eps must be a finite positive number, got {eps!r}")
    with torch.no_grad():
        if scale is None:
            s = torch.bmm(a.unsqueeze(1), torch.bmm(C.detach(), b.unsqueeze(2))).reshape(-1)
        else:
            s = torch.as_tensor(scale, dtype=C.dtype, device=C.device).expand(C.shape[0]).clone()
        if not torch.isfinite(s).all() or (s < 0).any():
            raise XmodalError(f"Sinkhorn cost scale must be finite and non-negative, got {s.tolist()}")
        tiny = torch.finfo(C.dtype).tiny ** 0.5
        return (eps * s).clamp_min(tiny)


def _lse_update(
    Cr: torch.Tensor, h: torch.Tensor, e: torch.Tensor
) -> torch.Tensor:
    """``-e · LSE_j(h_j - Cr_ij / e)`` over the last axis; ``Cr (B, n, m)`` contiguous, ``h (B, m)``,
    ``e (B, 1, 1)``."""
    return -e[:, :, 0] * torch.logsumexp(torch.addcmul(h.unsqueeze(1), Cr, -1.0 / e), dim=-1)


def _annealing_steps(e_start: torch.Tensor, e_target: torch.Tensor, scaling: float) -> int:
    """Temperature steps ×``scaling`` from ``e_start`` until within ``_ANNEAL_STOP`` × the target (every item)."""
    ratio = float((e_start / (_ANNEAL_STOP * e_target)).max())
    return max(0, int(math.ceil(math.log(max(ratio, 1.0)) / math.log(1.0 / scaling))))


# over 60 lines only through its docstring (every argument documented); the code is 57 lines
def sinkhorn_potentials(
    C: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    eps_abs: torch.Tensor,
    *,
    symmetric: bool = False,
    Ct: torch.Tensor | None = None,
    max_iters: int = 1000,
    tol: float = 1e-4,
    scaling: float = 0.5,
    check_every: int = 5,
    kernel: bool = True,
    omega: float = 1.8,
) -> SinkhornResult:
    """Dual potentials of the batched entropic OT problems (no autograd; see the module docstring).

    ``a``, ``b`` must already be normalised, ``eps_abs (B,)`` is the absolute target temperature.
    ``symmetric=True`` (requires ``C`` symmetric and ``a`` = ``b``) uses the averaged symmetric
    update (one ``f``, half the work). ``Ct`` is an optional contiguous ``C.transpose(1, 2)``.
    Symmetric problems skip the ε-annealing: from ``f = 0`` the averaged update converges in a few
    iterations because the diagonal ``C_ii = 0`` dominates (fewer iterations than with annealing, at
    equal values).
    ``kernel=False`` disables the stabilised-kernel phase (pure log domain). ``omega`` is the
    over-relaxation factor of the kernel phase (Thibault et al. 2021; 1 = plain Sinkhorn); it is
    halved towards 1 whenever the marginal error grows between two checks; over-relaxation cuts the
    iterations several-fold at small ε (``SinkhornResult.iters`` reports them).
    """
    if not (scaling > 0) or not (1.0 <= omega < 2.0) or not (tol > 0) or check_every < 1 or max_iters < 0:
        raise XmodalError(
            f"Sinkhorn settings out of range (scaling={scaling} > 0, 1 ≤ omega={omega} < 2, tol={tol} > 0, "
            f"check_every={check_every} ≥ 1, max_iters={max_iters} ≥ 0 required)"
        )
    with torch.no_grad():
        C = C.detach()
        dtype = C.dtype
        B, n, m = C.shape
        la = torch.where(a > 0, a.log(), float("-inf"))
        lb = la if symmetric else torch.where(b > 0, b.log(), float("-inf"))
        if not symmetric and Ct is None:
            Ct = C.transpose(1, 2).contiguous()
        e_t = eps_abs.to(dtype).reshape(B, 1, 1)
        # annealing starts at the range of the costs: above it every plan is close to a ⊗ b
        e_cur = torch.maximum((C.amax(dim=(1, 2)) - C.amin(dim=(1, 2))).reshape(B, 1, 1), e_t)
        f = torch.zeros(B, n, dtype=dtype, device=C.device)
        g = f if symmetric else torch.zeros(B, m, dtype=dtype, device=C.device)

        n_anneal = 0 if symmetric or scaling >= 1 else _annealing_steps(e_cur, e_t, scaling)
        for _ in range(n_anneal):  # ε-scaling in the log domain, one iteration per temperature
            f, g = _log_step(C, Ct, la, lb, f, g, e_cur, symmetric)
            e_cur = torch.maximum(e_cur * scaling, e_t)
        e = e_t
        f, g = _log_step(C, Ct, la, lb, f, g, e, symmetric)

        it, err = 0, float("inf")
        if kernel:
            it, err, f, g, ok = _kernel_phase(C, a, b, f, g, e, symmetric, max_iters, tol, check_every, omega)
            if ok:
                return SinkhornResult(f, g, eps_abs, it + n_anneal + 1, err)
        # log-domain iterations at the target temperature (also the fallback of the kernel phase)
        while it < max_iters:
            g_prev = g
            f, g = _log_step(C, Ct, la, lb, f, g, e, symmetric)
            it += 1
            if it % check_every == 0 or it == max_iters:
                # the symmetric step moves f half-way to the exact update T(f)
                err = _marginal_error(2.0 * g_prev - g if symmetric else g_prev, g, b, e)
                if err < tol:
                    break
        return SinkhornResult(f, g, eps_abs, it + n_anneal + 1, err)


def _log_step(C, Ct, la, lb, f, g, e, symmetric):
    if symmetric:
        f = 0.5 * (f + _lse_update(C, la + f / e[:, :, 0], e))
        return f, f
    f = _lse_update(C, lb + g / e[:, :, 0], e)
    g = _lse_update(Ct, la + f / e[:, :, 0], e)
    return f, g


def _marginal_error(g_prev: torch.Tensor, g: torch.Tensor, w: torch.Tensor, e: torch.Tensor) -> float:
    """L1 violation of the marginal on ``g``'s side: the plan ``(f, g_prev)`` has marginal
    ``w · exp((g_prev - g) / e)`` there (``g`` is the exact update from ``f``)."""
    r = ((g_prev - g) / e[:, :, 0]).clamp(-50.0, 50.0)
    return float((w * (r.exp() - 1.0).abs()).sum(-1).max())


def _kernel_phase(C, a, b, f, g, e, symmetric, max_iters, tol, check_every, omega):
    """Stabilised-kernel iterations; returns (iters, error, f, g, ok). ``ok`` is False if the scaling
    vectors became non-finite (the caller then continues in the log domain from the returned f, g).

    ``K = exp((f0 ⊕ g0 - C) / ε)`` for base potentials ``(f0, g0)``; the current potentials are
    ``f0 + ε log u``, ``g0 + ε log v``; ``(u, v)`` are absorbed into ``(f0, g0)`` (and ``K`` rebuilt)
    when they leave ``[e^-τ, e^τ]``."""
    big = 80.0 if C.dtype == torch.float32 else 700.0
    e2 = e[:, :, 0]

    def make_kernel(f0, g0):
        return torch.sub(g0.unsqueeze(1), C).add_(f0.unsqueeze(2)).div_(e).clamp_max_(big).exp_()

    f0, g0 = f, g
    K = make_kernel(f0, g0)
    u = torch.ones_like(f0)
    v = u if symmetric else torch.ones_like(g0)
    it, err = 0, float("inf")
    good = (f0, g0)
    check = True
    prev_err = float("inf")
    while it < max_iters:
        it += 1
        check = it % check_every == 0 or it == max_iters
        if symmetric:
            s = torch.bmm((a * u).unsqueeze(1), K.transpose(1, 2)).squeeze(1)  # K (a u), K symmetric
            if check:
                err = float((a * (u * s - 1.0).abs()).sum(-1).max())
            u = torch.where(a > 0, (u / s).sqrt(), 1.0)
            v = u
        else:
            s_row = torch.bmm((b * v).unsqueeze(1), K.transpose(1, 2)).squeeze(1)  # K (b v)
            # over-relaxed updates u ← u^(1-ω) (1/s)^ω between checks; exact ones (ω = 1) at a check,
            # so that the measured column error is that of the plan (T(g), g) returned
            u_new = s_row.reciprocal() if check or omega == 1.0 else u.pow(1.0 - omega) * s_row.pow(-omega)
            u = torch.where(a > 0, u_new, 1.0)
            s_col = torch.bmm((a * u).unsqueeze(1), K).squeeze(1)  # Kᵀ (a u)
            if check:
                err = float((b * (v * s_col - 1.0).abs()).sum(-1).max())
            v_new = s_col.reciprocal() if check or omega == 1.0 else v.pow(1.0 - omega) * s_col.pow(-omega)
            v = torch.where(b > 0, v_new, 1.0)
        if check:
            lu, lv = u.log(), v.log()
            if not (math.isfinite(err) and bool(torch.isfinite(lu).all()) and bool(torch.isfinite(lv).all())):
                return it, float("inf"), good[0], good[1], False
            if err > _OMEGA_BACKOFF * prev_err:
                omega = 1.0 + 0.5 * (omega - 1.0)
            prev_err = err
            good = (f0 + e2 * lu, g0 + e2 * lv)
            if err < tol:
                break
            if float(lu.abs().max()) > _ABSORB or float(lv.abs().max()) > _ABSORB:
                f0, g0 = good
                K = make_kernel(f0, g0)
                u = torch.ones_like(f0)
                v = u if symmetric else torch.ones_like(g0)
    f, g = good if check else (f0 + e2 * u.log(), g0 + e2 * v.log())
    return it, err, f, (f if symmetric else g), True


def _final_value(
    C: torch.Tensor, a: torch.Tensor, b: torch.Tensor, res: SinkhornResult, sharp: bool = False
) -> torch.Tensor:
    """Differentiable value from detached potentials: ``f = T(g)`` is recomputed with autograd on ``C``
    (a row log-sum-exp on the contiguous ``C``). Entropic: the dual objective ``<a, f> + <b, g>``.
    Sharp: ``<P, C>`` with the plan ``P`` of ``(T(g), g)`` held constant. Both have gradient ``P``."""
    e = res.eps.to(C.dtype).reshape(-1, 1, 1)
    g = res.g
    lb = torch.where(b > 0, b.log(), float("-inf"))
    if not sharp:
        f = _lse_update(C, lb + g / e[:, :, 0], e)
        return (a * f).sum(-1) + (b * g).sum(-1)
    with torch.no_grad():
        Cd = C.detach()
        f = _lse_update(Cd, lb + g / e[:, :, 0], e)
        big = 80.0 if C.dtype == torch.float32 else 700.0  # padded × padded entries may be unbounded
        P = torch.sub(g.unsqueeze(1), Cd).add_(f.unsqueeze(2)).div_(e).clamp_max_(big).exp_()
        P.mul_(a.unsqueeze(2)).mul_(b.unsqueeze(1))
    return (P * C).sum((1, 2))


def _prepare(C, a, b, name="C"):
    _check_problem(C, a, b, name)
    dtype = working_dtype(C)
    return C.to(dtype), _normalise(a, dtype), _normalise(b, dtype)


def _batched(C, a, b):
    """Accept a single ``(n, m)`` problem with ``(n,)``, ``(m,)`` weights as a batch of one."""
    if isinstance(C, torch.Tensor) and C.ndim == 2:
        return C.unsqueeze(0), a.unsqueeze(0), b.unsqueeze(0), True
    return C, a, b, False


def sinkhorn_cost(
    C: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    eps: float = 0.05,
    *,
    scale: float | torch.Tensor | None = None,
    max_iters: int = 1000,
    tol: float = 1e-4,
    scaling: float = 0.5,
    symmetric: bool = False,
    sharp: bool = False,
    Ct: torch.Tensor | None = None,
    check_every: int = 5,
    omega: float = 1.8,
) -> torch.Tensor:
    """Entropic OT values ``OT_ε(a_k, b_k)`` of a batch, shape ``(B,)`` (differentiable w.r.t. ``C``).

    Args:
        C: ``(B, n, m)`` costs (finite); padded points' entries are ignored. A single ``(n, m)``
            problem with ``(n,)``, ``(m,)`` weights is accepted too and gives a 0-d result.
        a, b: ``(B, n)``, ``(B, m)`` non-negative weights; 0 marks padding; renormalised per item.
        eps: relative temperature; absolute ε = ``eps · scale`` (see the module docstring).
        scale: ``None`` → per-item mean cost ``Σ a_i b_j C_ij``; else a float or ``(B,)`` tensor.
        max_iters, tol, check_every: iteration budget at the target ε and the stopping rule (L1
            marginal violation).
        scaling: ε-annealing factor per iteration (``≥ 1`` disables annealing).
        symmetric: ``C`` symmetric and ``a`` equal to ``b`` (a self-problem ``OT_ε(a, a)``).
        sharp: return the transport cost ``<P, C>`` of the entropic plan instead of the entropic value
            ``<P, C> + ε KL(P | a ⊗ b)``; it tends to the unregularised OT much faster as ε → 0
            (the entropic value is biased by ≈ ε log n). Its gradient is still ``P`` (the plan is held
            constant), i.e. that of the entropic value.
        Ct: optional contiguous ``C.transpose(1, 2)`` (detached), to avoid recomputing it.
        omega: over-relaxation of the kernel phase (see :func:`sinkhorn_potentials`).
    """
    C, a, b, single = _batched(C, a, b)
    C, a, b = _prepare(C, a, b)
    e = _abs_eps(C, a, b, eps, scale)
    res = sinkhorn_potentials(C, a, b, e, symmetric=symmetric, Ct=Ct, max_iters=max_iters, tol=tol,
                              scaling=scaling, check_every=check_every, omega=omega)
    out = _final_value(C, a, b, res, sharp)
    return out[0] if single else out


def sinkhorn_divergence(
    C_ab: torch.Tensor,
    C_aa: torch.Tensor,
    C_bb: torch.Tensor | None,
    a: torch.Tensor,
    b: torch.Tensor,
    eps: float = 0.05,
    *,
    ot_bb: torch.Tensor | float | None = None,
    scale: float | torch.Tensor | None = None,
    max_iters: int = 1000,
    tol: float = 1e-4,
    scaling: float = 0.5,
    sharp: bool = False,
    check_every: int = 5,
    omega: float = 1.8,
) -> torch.Tensor:
    """Debiased Sinkhorn divergence ``S_ε = OT_ε(a, b) - ½ OT_ε(a, a) - ½ OT_ε(b, b)``, shape ``(B,)``.

    ``C_ab (B, n, m)``, ``C_aa (B, n, n)`` and ``C_bb (B, m, m)`` are the cross and self costs
    (self costs symmetric; a single unbatched problem is accepted too). If ``OT_ε(b, b)`` is already
    known (e.g. precomputed for a fixed source set at the same absolute ε) pass it as ``ot_bb`` and
    ``C_bb=None``. One absolute ε per item is used for all three terms: ``eps · scale`` with
    ``scale=None`` meaning the mean of ``C_ab`` under ``a ⊗ b``. ``sharp`` as in :func:`sinkhorn_cost`
    (applied to all three terms). Other arguments as in :func:`sinkhorn_cost`.
    """
    single = isinstance(C_ab, torch.Tensor) and C_ab.ndim == 2
    if single:
        C_ab, C_aa = C_ab.unsqueeze(0), C_aa.unsqueeze(0)
        C_bb = None if C_bb is None else C_bb.unsqueeze(0)
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    C_ab, a, b = _prepare(C_ab, a, b, "C_ab")
    _check_problem(C_aa, a, a, "C_aa")
    if C_bb is None and ot_bb is None:
        raise XmodalError("sinkhorn_divergence needs C_bb or a precomputed ot_bb")
    e = _abs_eps(C_ab, a, b, eps, scale)
    kw = dict(max_iters=max_iters, tol=tol, scaling=scaling, check_every=check_every, omega=omega)
    C_aa = C_aa.to(C_ab.dtype)
    ot_ab = _final_value(C_ab, a, b, sinkhorn_potentials(C_ab, a, b, e, **kw), sharp)
    ot_aa = _final_value(C_aa, a, a, sinkhorn_potentials(C_aa, a, a, e, symmetric=True, **kw), sharp)
    if ot_bb is None:
        _check_problem(C_bb, b, b, "C_bb")
        C_bb = C_bb.to(C_ab.dtype)
        ot_bb = _final_value(C_bb, b, b, sinkhorn_potentials(C_bb, b, b, e, symmetric=True, **kw), sharp)
    else:
        ot_bb = torch.as_tensor(ot_bb, dtype=C_ab.dtype, device=C_ab.device).expand(C_ab.shape[0])
    out = ot_ab - 0.5 * ot_aa - 0.5 * ot_bb
    return out[0] if single else out
