"""Optimal transport dataset distance (OTDD; Alvarez-Melis & Fusi, 2020), ORCA's stage-2 objective.

Definition (ORCA appendix A.1, p = 2). Each dataset is a set of points ``(x, y)``. A label ``y`` is
represented by its class-conditional feature distribution, and two labels are compared by the
squared 2-Wasserstein distance between those distributions, ``W2²(y, y')`` (the *inner* problems).
The OTDD is the OT cost between the two datasets under the ground cost

    c((x, y), (x', y')) = ‖x - x'‖² + W2²(y, y')                                    (the *outer* problem)

Both the feature and the label term use the plain squared Euclidean distance. (The reference code,
microsoft/otdd, solves its exact inner problems with geomloss, whose ``p = 2`` cost is
``‖x - x'‖² / 2``, so its label distances are half of ours for the same data; compare values across
the two implementations only with that in mind.)

A class with a single sample is a Dirac measure: its exact label distance to another class is the
mean squared distance to that class's samples, its Gaussian has zero covariance. This is handled,
not refused.

Solvers (``xmodal.align.sinkhorn``): all OT problems are entropic, log-domain, batched.

* Outer: the debiased Sinkhorn divergence ``S_ε = OT_ε(A, B) - ½ OT_ε(A, A) - ½ OT_ε(B, B)``
  (``debiased=False``: ``OT_ε(A, B)`` alone), uniform weights on the points.
* Inner ``inner="exact"`` (default): ``W2²`` between the empirical class samples, solved by Sinkhorn
  at a small ε; by default also debiased (``inner_debiased=True``, as ORCA's call of the reference
  code, ``inner_ot_debiased=True``): the label distance of a class to itself is then exactly 0 and
  the ε-bias of the label costs is removed to first order. Every class is capped at
  ``max_per_class`` samples (a seeded random subset) in the inner problems.
* Inner ``inner="gaussian"``: the Bures–Wasserstein distance between Gaussians fitted to the classes
  (mean and population covariance), ``‖μ - μ'‖² + tr Σ + tr Σ' - 2 tr (Σ^½ Σ' Σ^½)^½``
  (:mod:`xmodal.align.bures`).

ε is relative to the *source* (the ``Xs`` given to :class:`OTDD`, the second dataset of
:func:`otdd_distance`): inner ``ε = inner_epsilon · s_x`` and outer ``ε = epsilon · s · 2^k``, where
``s_x = mean ‖x_i - x_j‖²`` over all source pairs, ``s_y`` the mean source label distance over pairs
of source points, ``s = s_x + s_y``, and ``k = 0`` while the target is near the source. One ε for
all three terms keeps the debiasing exact, and a source-derived ε lets the source self-term be
precomputed and pulls the target to the source's scale (an ε proportional to the target's own
spread would let the embedder change the regularisation by rescaling its output).

Far targets (``adapt_epsilon=True``, the default). When the target lies far from the source — a
freshly built embedder, a body whose proxy is unlike the task — the outer costs are many times
``s`` and ``epsilon · s`` is a nearly unregularised temperature for them: Sinkhorn needs
``O(cost range / ε)`` iterations, stops at ``max_iters`` short of ``tol`` and a stage-2 step takes
seconds. Each outer problem therefore uses ``k = ⌊log₂(c̄ / s)⌋`` (0 when ``c̄ < 2 s``, at most 40),
with ``c̄`` the mean outer cost of that problem under the independent coupling: ε is at least
``epsilon · c̄ / 2``, a fixed relative temperature of the problem actually solved. ``k`` takes
powers of two, so the source self-term is computed once per level and cached; it falls back to 0 as
the target approaches the source (at ``c̄ < 2 s``), where the values are those of the fixed ε. Moving
away cannot lower the loss: the Sinkhorn divergence of the squared Euclidean cost contains the
squared distance of the means at every ε. The iterations and time saved against the fixed ε:
``python benchmarks/select_cost.py --task darcy-85``.

Gradients w.r.t. the target features flow through the outer problem *and* through the
target-involving label distances (envelope gradients of every Sinkhorn problem); with
``detach_label_costs=True`` the label distances are constants, which reproduces the reference code
(it converts them with ``.item()``).

Work done once per source (``OTDD.__init__``): centring, per-class source samples, the
source-to-source label distances (``W_ss``), the source self-OT terms of the inner problems and the
full-source self-term ``OT_ε(S, S)`` of the outer problem (the reference recomputes all of these at
every call). Per call, all target-involving label distances (target–target and target–source pairs)
form ONE batched Sinkhorn problem (padded to a common size, no Python loop over pairs); the
self-terms ``OT_ε(T_k, T_k)`` that debias them form one more batched (symmetric) problem.

``loss`` is ORCA's Algorithm 1 with one round: for every target class ``k`` up to ``n_per_class``
samples ``T_k`` are drawn (``torch.Generator`` seeded from ``seed`` and a call counter), the
class-wise distance ``OTDD(T_k, S)`` to the source ``S`` is computed (all classes in one batch) and
the estimate is ``Σ_k w_k OTDD(T_k, S)`` with ``w_k`` the class's share of the given target rows. As
in Algorithm 1, ``S`` is the entire source by default (its self-term is then the precomputed one);
``source_per_class`` subsamples it per class at every call instead. ``value`` is the full-set OTDD.

Precision: float32 unless the inputs are float64; features are centred on the source mean before
squared distances are formed (less cancellation). Memory of a full-set call is a few
``n_t × n_s`` matrices; ``__init__`` holds a few ``n_s × n_s`` ones for the outer self-term.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from xmodal.align.bures import bures_all_pairs, bures_cross, exact_rank_factors, gauss_stats
from xmodal.align.classes import ClassIndex, ClassSubset, sqdist
from xmodal.align.numerics import working_dtype
from xmodal.align.objectives import Objective, check_features, register_objective
from xmodal.align.sinkhorn import sinkhorn_cost, sinkhorn_divergence
from xmodal.errors import XmodalError

__all__ = ["OTDD", "otdd_distance", "INNER_METHODS", "DEFAULT_EPSILON"]

INNER_METHODS = ("exact", "gaussian")

#: Most doublings of the outer ε for a target far from the source (see the module docstring).
_MAX_LEVEL = 40

#: Default relative ε of the outer and inner problems: the accuracy/speed trade-off against POT's exact
#: ``emd2`` OTDD (a smaller ε is closer and slower) is measured by ``python benchmarks/otdd_correctness.py``
#: and ``python benchmarks/otdd_speed.py``.
DEFAULT_EPSILON = 0.002


def _check_options(inner: str, epsilon: float, inner_epsilon: float, max_per_class, n_per_class,
                   source_per_class, max_iters: int, tol: float) -> None:
    if inner not in INNER_METHODS:
        raise XmodalError(f"unknown OTDD inner method {inner!r}; choose one of {list(INNER_METHODS)}")
    for name, v in (("epsilon", epsilon), ("inner_epsilon", inner_epsilon), ("tol", tol)):
        if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
            raise XmodalError(f"OTDD {name} must be a finite positive number, got {v!r}")
    for name, v in (("max_per_class", max_per_class), ("n_per_class", n_per_class),
                    ("source_per_class", source_per_class)):
        if v is not None and (not isinstance(v, int) or v < 1):
            raise XmodalError(f"OTDD {name} must be a positive integer or None, got {v!r}")
    if not isinstance(max_iters, int) or max_iters < 1:
        raise XmodalError(f"OTDD max_iters must be a positive integer, got {max_iters!r}")


@register_objective
class OTDD(Objective):
    """Optimal transport dataset distance between target ``(Xt, yt)`` and the source ``(Xs, ys)``.

    Options:
        inner: ``"exact"`` (default; Sinkhorn between class samples) or ``"gaussian"`` (Bures).
        epsilon: relative temperature of the outer problem (default 0.002; see the module docstring).
        inner_epsilon: relative temperature of the inner (label) problems (default 0.002).
        debiased: debiased Sinkhorn divergence for the outer problem (default True).
        inner_debiased: debias the exact inner problems too (default True).
        sharp: report ``<P, C>`` of the entropic plans instead of the entropic OT values (default
            False; see :func:`~xmodal.align.sinkhorn.sinkhorn_cost`).
        max_per_class: cap on the samples per class in the inner problems (default 1000; None = all).
        detach_label_costs: treat target-involving label distances as constants (default False).
        n_per_class: target samples per class in each ``loss`` call (default 256; None = all given).
        source_per_class: source samples per class in each ``loss`` call (default None = the entire
            source, as ORCA's Algorithm 1, with its precomputed self-term).
        adapt_epsilon: raise the outer ε in powers of two for targets far from the source (default
            True; see the module docstring). False: the fixed ``epsilon · s`` of earlier versions.
        max_iters, tol: Sinkhorn budget and stopping rule (L1 marginal error) of every problem.
        seed: seeds the per-class caps (fixed) and the ``loss`` subsamples (seed + call counter).
    """

    name = "otdd"
    uses_labels = True
    counters = ("_calls",)

    def __init__(
        self,
        Xs: torch.Tensor,
        ys: torch.Tensor,
        *,
        inner: str = "exact",
        epsilon: float = DEFAULT_EPSILON,
        inner_epsilon: float = DEFAULT_EPSILON,
        debiased: bool = True,
        inner_debiased: bool = True,
        sharp: bool = False,
        max_per_class: int | None = 1000,
        detach_label_costs: bool = False,
        n_per_class: int | None = 256,
        source_per_class: int | None = None,
        adapt_epsilon: bool = True,
        max_iters: int = 1000,
        tol: float = 1e-4,
        seed: int = 0,
    ) -> None:
        super().__init__(
            Xs, ys, inner=inner, epsilon=epsilon, inner_epsilon=inner_epsilon, debiased=debiased,
            inner_debiased=inner_debiased, sharp=sharp, max_per_class=max_per_class,
            detach_label_costs=detach_label_costs, n_per_class=n_per_class, source_per_class=source_per_class,
            adapt_epsilon=adapt_epsilon, max_iters=max_iters, tol=tol, seed=seed,
        )
        _check_options(inner, epsilon, inner_epsilon, max_per_class, n_per_class, source_per_class, max_iters, tol)
        self.inner, self.epsilon, self.inner_epsilon = inner, float(epsilon), float(inner_epsilon)
        self.debiased, self.inner_debiased, self.sharp = bool(debiased), bool(inner_debiased), bool(sharp)
        self.max_per_class, self.detach_label_costs = max_per_class, bool(detach_label_costs)
        self.adapt_epsilon = bool(adapt_epsilon)
        self.n_per_class, self.source_per_class = n_per_class, source_per_class
        self.max_iters, self.tol, self.seed = max_iters, float(tol), int(seed)
        self._calls = 0
        self.device = Xs.device
        self.dtype = working_dtype(Xs)

        with torch.no_grad():
            Xs = Xs.detach().to(self.dtype)
            self.center = Xs.mean(0)
            self.Xs = Xs - self.center
            self.src = ClassIndex(ys, max_per_class, torch.Generator().manual_seed(self.seed), self.device)
            # mean ‖x_i - x_j‖² over all ordered source pairs = 2 · mean ‖x - x̄‖²
            self.feature_scale = max(2.0 * float((self.Xs * self.Xs).sum(1).mean()), torch.finfo(self.dtype).tiny)
            self.inner_eps_abs = self.inner_epsilon * self.feature_scale
            if inner == "exact":
                self.W_ss, self.src_self = self._source_label_costs_exact()
            else:
                self.src_gauss = gauss_stats(self.Xs, self.src)
                self.src_gauss.update(exact_rank_factors(self.Xs, self.src))
                self.W_ss = bures_all_pairs(self.src_gauss, self.dtype)
                self.src_self = None
            p = self.src.counts.to(self.device, self.dtype) / self.src.counts.sum()
            self.label_scale = float(p @ self.W_ss @ p)
            self.outer_scale = self.feature_scale + max(self.label_scale, 0.0)
            self.outer_eps_abs = self.epsilon * self.outer_scale
            self._Os = self.src.onehot(self.dtype)
            # OT_ε(S, S) of the outer problem per ε level (module docstring); level 0 now, the others on demand
            self._ot_ss_levels: dict[int, torch.Tensor] = {}
            self.ot_ss = self._source_self_term_at(0) if self.debiased else None

    # ----------------------------------------------------------------------------------------- helpers
    def _kw(self) -> dict[str, Any]:
        return dict(max_iters=self.max_iters, tol=self.tol, sharp=self.sharp)

    def _inner_ot(self, C: torch.Tensor, w_rows: torch.Tensor, w_cols: torch.Tensor, symmetric: bool) -> torch.Tensor:
        return sinkhorn_cost(C, w_rows.to(C.dtype), w_cols.to(C.dtype), self.inner_epsilon, scale=self.feature_scale,
                             symmetric=symmetric, **self._kw())

    def _source_label_costs_exact(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``W_ss (K_s, K_s)`` and the inner self-terms ``OT_ε(S_l, S_l) (K_s,)`` (no gradient)."""
        S, K = self.src, self.src.K
        pts = self.Xs[S.idx]  # (K, L, D)
        sq = (pts * pts).sum(-1)
        w = S.mask
        self_C = (sq.unsqueeze(2) + sq.unsqueeze(1) - 2.0 * pts @ pts.transpose(1, 2)).clamp_min(0.0)
        self_ot = self._inner_ot(self_C, w, w, True)
        W = torch.zeros(K, K, dtype=self.dtype, device=self.device)
        if K > 1:
            i, j = torch.triu_indices(K, K, offset=1, device=self.device)
            C = (sq[i].unsqueeze(2) + sq[j].unsqueeze(1) - 2.0 * pts[i] @ pts[j].transpose(1, 2)).clamp_min(0.0)
            ot = self._inner_ot(C, w[i], w[j], False)
            if self.inner_debiased:
                ot = ot - 0.5 * self_ot[i] - 0.5 * self_ot[j]
            W[i, j] = ot
            W[j, i] = ot
        if not self.inner_debiased:
            W = W + torch.diag_embed(self_ot)
        return W, self_ot

    def _source_self_term(self, Xs: torch.Tensor, Os: torch.Tensor, level: int = 0) -> torch.Tensor:
        """``OT_ε(S, S)`` of the outer problem for the source rows ``Xs`` with one-hot labels ``Os``, at
        the outer ε of ``level`` (``epsilon · s · 2^level``)."""
        C = torch.addmm(sqdist(Xs, Xs), Os @ self.W_ss, Os.T)
        w = torch.ones(1, C.shape[0], dtype=self.dtype, device=self.device)
        return sinkhorn_cost(C.unsqueeze(0), w, w, self.epsilon, scale=self.outer_scale * 2.0 ** level,
                             symmetric=True, **self._kw())[0]

    def _source_self_term_at(self, level: int) -> torch.Tensor:
        """The full source's outer self-term at ``level``, computed once per level."""
        if level not in self._ot_ss_levels:
            with torch.no_grad():
                self._ot_ss_levels[level] = self._source_self_term(self.Xs, self._Os, level)
        return self._ot_ss_levels[level]

    def _outer_eps(
        self, C_ab: torch.Tensor, a: torch.Tensor, source: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per outer problem of ``C_ab (B, n, m)`` with row weights ``a (B, n)`` (uniform columns): the
        ε scale ``s · 2^k (B,)`` and, when debiased, the source self-terms at those levels ``(B,)``
        (cached for the full source; computed for the ``source`` rows and one-hot labels if given)."""
        with torch.no_grad():
            levels = [0] * C_ab.shape[0]
            if self.adapt_epsilon:
                w = a.detach().to(C_ab.dtype)
                mean_cost = (w.unsqueeze(2) * C_ab.detach()).sum((1, 2)) / (w.sum(1) * C_ab.shape[2])
                ratio = (mean_cost / self.outer_scale).clamp(1.0, 2.0 ** _MAX_LEVEL)
                levels = torch.floor(torch.log2(ratio)).long().tolist()
            scale = torch.tensor([self.outer_scale * 2.0 ** k for k in levels], dtype=self.dtype, device=self.device)
            if not self.debiased:
                return scale, None
            if source is None:
                terms = {k: self._source_self_term_at(k) for k in set(levels)}
            else:
                terms = {k: self._source_self_term(*source, level=k) for k in set(levels)}
            return scale, torch.stack([terms[k] for k in levels])

    # ------------------------------------------------------------------------------ target label costs
    def _target_label_costs(
        self, Xt: torch.Tensor, D_tt: torch.Tensor, D_ts: torch.Tensor, tcls: ClassIndex | ClassSubset,
        cross_target: bool, gemm_dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Label distances ``W_tt (K_t, K_t)`` and ``W_ts (K_t, K_s)`` for the target classes ``tcls``
        (rows of ``Xt`` / ``D_tt`` / ``D_ts``). Without ``cross_target`` only the diagonal of
        ``W_tt`` is computed (class-wise OTDD has one target label). ``gemm_dtype``: see
        :func:`~xmodal.align.bures.bures_cross` (gaussian mode only)."""
        Kt, Ks = tcls.K, self.src.K
        dev = self.device
        if self.inner == "gaussian":
            gt = gauss_stats(Xt, tcls)
            W_ts = bures_cross(gt, self.src_gauss, gemm_dtype).to(self.dtype)
            W_tt = (bures_all_pairs(gt, self.dtype) if cross_target
                    else torch.zeros(Kt, Kt, dtype=self.dtype, device=dev))
            return W_tt, W_ts
        # exact: ONE batched problem over all cross pairs; columns index [target rows | source rows]
        nt = D_tt.shape[0]
        D_all = torch.cat([D_tt, D_ts], dim=1)
        S = self.src
        if cross_target and Kt > 1:
            i, j = torch.triu_indices(Kt, Kt, offset=1, device=dev)
        else:
            i = j = torch.zeros(0, dtype=torch.long, device=dev)
        rows_k = torch.cat([i, torch.arange(Kt, device=dev).repeat_interleave(Ks)])
        L = max(tcls.idx.shape[1], S.idx.shape[1])
        col_t = torch.nn.functional.pad(tcls.idx, (0, L - tcls.idx.shape[1]))
        msk_t = torch.nn.functional.pad(tcls.mask, (0, L - tcls.mask.shape[1]))
        col_s = torch.nn.functional.pad(S.idx + nt, (0, L - S.idx.shape[1]), value=nt)
        msk_s = torch.nn.functional.pad(S.mask, (0, L - S.mask.shape[1]))
        cols = torch.cat([col_t[j], col_s.repeat(Kt, 1)])
        cmask = torch.cat([msk_t[j], msk_s.repeat(Kt, 1)])
        r_idx, r_mask = tcls.idx[rows_k], tcls.mask[rows_k]
        C = D_all[r_idx.unsqueeze(2), cols.unsqueeze(1)]  # (P, n_max, L)
        ot = self._inner_ot(C, r_mask, cmask, False)
        C_self = D_tt[tcls.idx.unsqueeze(2), tcls.idx.unsqueeze(1)]
        t_self = self._inner_ot(C_self, tcls.mask, tcls.mask, True)  # (K_t,)
        n_tt = i.numel()
        ot_tt, ot_ts = ot[:n_tt], ot[n_tt:].reshape(Kt, Ks)
        if self.inner_debiased:
            ot_tt = ot_tt - 0.5 * t_self[i] - 0.5 * t_self[j]
            ot_ts = ot_ts - 0.5 * t_self.unsqueeze(1) - 0.5 * self.src_self.to(ot.dtype).unsqueeze(0)
            diag = torch.zeros_like(t_self)
        else:
            diag = t_self
        W_tt = torch.diag_embed(diag)
        if n_tt:
            W_tt = W_tt.index_put((i, j), ot_tt).index_put((j, i), ot_tt)
        return W_tt, ot_ts

    # ---------------------------------------------------------------------------------------- public
    def _prepare_target(self, Xt: torch.Tensor, yt: torch.Tensor) -> torch.Tensor:
        self._check_target(Xt, yt)
        return Xt.to(device=self.device, dtype=self.dtype) - self.center

    def distance(self, Xt: torch.Tensor, yt: torch.Tensor) -> torch.Tensor:
        """Full-set OTDD between ``(Xt, yt)`` and the source, a 0-d tensor differentiable w.r.t. ``Xt``."""
        X = self._prepare_target(Xt, yt)
        tcls = ClassIndex(yt, self.max_per_class, torch.Generator().manual_seed(self.seed), self.device)
        D_tt, D_ts = sqdist(X, X), sqdist(X, self.Xs)
        W_tt, W_ts = self._target_label_costs(X, D_tt, D_ts, tcls, cross_target=True)
        if self.detach_label_costs:
            W_tt, W_ts = W_tt.detach(), W_ts.detach()
        Ot = tcls.onehot(self.dtype)
        C_ab = torch.addmm(D_ts, Ot @ W_ts, self._Os.T)
        a = torch.ones(1, X.shape[0], dtype=self.dtype, device=self.device)
        b = torch.ones(1, self.Xs.shape[0], dtype=self.dtype, device=self.device)
        scale, ot_ss = self._outer_eps(C_ab.unsqueeze(0), a)
        if not self.debiased:
            return sinkhorn_cost(C_ab.unsqueeze(0), a, b, self.epsilon, scale=scale, **self._kw())[0]
        C_aa = torch.addmm(D_tt, Ot @ W_tt, Ot.T)
        return sinkhorn_divergence(C_ab.unsqueeze(0), C_aa.unsqueeze(0), None, a, b, self.epsilon, ot_bb=ot_ss,
                                   scale=scale, **self._kw())[0]

    def label_distances(self, Xt: torch.Tensor, yt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The label-to-label distances of a full-set call: ``W_tt (K_t, K_t)`` between the target classes
        and ``W_ts (K_t, K_s)`` from target to source classes, rows/columns in increasing label order
        (only labels present count). Differentiable w.r.t. ``Xt`` (unless ``detach_label_costs``)."""
        X = self._prepare_target(Xt, yt)
        tcls = ClassIndex(yt, self.max_per_class, torch.Generator().manual_seed(self.seed), self.device)
        W_tt, W_ts = self._target_label_costs(X, sqdist(X, X), sqdist(X, self.Xs), tcls, cross_target=True)
        if self.detach_label_costs:
            W_tt, W_ts = W_tt.detach(), W_ts.detach()
        return W_tt, W_ts

    def value(self, Xt: torch.Tensor, yt: torch.Tensor) -> float:
        """Full-set OTDD as a float (no gradient)."""
        with torch.no_grad():
            return float(self.distance(Xt, yt))

    def loss(self, Xt: torch.Tensor, yt: torch.Tensor) -> torch.Tensor:
        """ORCA Algorithm 1: ``Σ_k w_k OTDD(T_k, S)`` over class-wise target subsamples ``T_k`` (one round),
        differentiable w.r.t. ``Xt``. Reproducible: the ``c``-th call draws from a generator seeded with
        ``seed · 1000003 + c``, so a fresh objective with the same seed repeats the same sequence."""
        X = self._prepare_target(Xt, yt)
        self._calls += 1
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self._calls)
        tcls = ClassIndex(yt, self.n_per_class, gen, self.device)
        w_cls = (tcls.counts.to(self.dtype) / tcls.counts.sum()).to(self.device)
        rows = tcls.idx[tcls.mask]  # sampled target rows, class by class
        Xsub = X[rows]
        # re-index the class structure to the sampled rows
        pos = torch.zeros(tcls.mask.shape, dtype=torch.long, device=self.device)
        pos[tcls.mask] = torch.arange(rows.numel(), device=self.device)
        tsub = ClassSubset(pos, tcls.mask, tcls.K)
        if self.source_per_class is None:
            src_rows, Xs_sub, Os_sub = None, self.Xs, self._Os
        else:
            scls = ClassIndex(self.ys, self.source_per_class, gen, self.device)
            src_rows = scls.idx[scls.mask]
            Xs_sub, Os_sub = self.Xs[src_rows], self._Os[src_rows]
        D_tt = sqdist(Xsub, Xsub)
        D_ts = sqdist(Xsub, self.Xs)  # against the whole source: the inner problems use the capped classes
        # float32 features: the target × source Bures product in float32 too (the eigenvalues stay in
        # float64). With many target classes (e.g. 11 k-means classes of a dense task) that product is
        # most of a step; see bures.bures_cross.
        gemm = torch.float32 if self.dtype == torch.float32 and self.device.type != "mps" else None
        W_tt, W_ts = self._target_label_costs(Xsub, D_tt, D_ts, tsub, cross_target=False, gemm_dtype=gemm)
        if self.detach_label_costs:
            W_tt, W_ts = W_tt.detach(), W_ts.detach()
        D_out = D_ts if src_rows is None else D_ts[:, src_rows]
        # class-wise outer problems, batched over the target classes (rows padded)
        idx, mask = tsub.idx, tsub.mask
        Kt, m = tsub.K, Xs_sub.shape[0]
        C_ab = D_out[idx] + (W_ts @ Os_sub.T).unsqueeze(1)  # (K_t, n_max, m)
        a = mask.to(self.dtype)
        b = torch.ones(Kt, m, dtype=self.dtype, device=self.device)
        scale, ot_ss = self._outer_eps(C_ab, a, None if src_rows is None else (Xs_sub, Os_sub))
        if self.debiased:
            C_aa = D_tt[idx.unsqueeze(2), idx.unsqueeze(1)] + torch.diagonal(W_tt).reshape(Kt, 1, 1)
            d = sinkhorn_divergence(C_ab, C_aa, None, a, b, self.epsilon, ot_bb=ot_ss, scale=scale, **self._kw())
        else:
            d = sinkhorn_cost(C_ab, a, b, self.epsilon, scale=scale, **self._kw())
        return (w_cls * d).sum()


def otdd_distance(
    Xa: torch.Tensor,
    ya: torch.Tensor,
    Xb: torch.Tensor,
    yb: torch.Tensor,
    inner: str = "exact",
    epsilon: float = DEFAULT_EPSILON,
    debiased: bool = True,
    **options: Any,
) -> torch.Tensor:
    """Full-set OTDD between datasets ``(Xa, ya)`` and ``(Xb, yb)`` (a 0-d tensor).

    ``(Xb, yb)`` plays the source role of :class:`OTDD`: ε is relative to its cost scale and its
    precomputations carry no gradient; the result is differentiable w.r.t. ``Xa``. ``options`` are
    the other :class:`OTDD` options (``inner_epsilon``, ``inner_debiased``, ``sharp``,
    ``max_per_class``, ``detach_label_costs``, ``max_iters``, ``tol``, ``seed``). Equals
    ``OTDD(Xb, yb, ...).distance(Xa, ya)``.
    """
    check_features(Xa, ya, "first")
    check_features(Xb, yb, "second")
    if Xa.shape[1] != Xb.shape[1]:
        raise XmodalError(f"OTDD needs features of equal width, got {Xa.shape[1]} and {Xb.shape[1]}")
    return OTDD(Xb, yb, inner=inner, epsilon=epsilon, debiased=debiased, **options).distance(Xa, ya)
