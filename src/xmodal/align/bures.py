"""Gaussian label distances for OTDD: the Bures–Wasserstein distance between Gaussians fitted to classes.

``W2²(N(μ, Σ), N(μ', Σ')) = ‖μ - μ'‖² + tr Σ + tr Σ' - 2 tr (Σ^½ Σ' Σ^½)^½``. The last trace is the sum
of the square roots of the eigenvalues of ``M Mᵀ`` with ``M = F F'ᵀ``, where ``FᵀF = Σ``: ``F`` is the
centred class data ``/ √n`` when ``n ≤ D`` (so the eigenproblem has the size of the smaller class, not
``D``) and the Cholesky factor of ``Σ + δI`` otherwise. Eigenvalues come from ``torch.linalg.eigvalsh``
in float64 (float32 on MPS); its backward needs no eigenvector differences, so repeated eigenvalues are
harmless, and those below ``1e-12 · λ_max`` count as 0 (no gradient).

A class set ``cls`` is any object with ``idx`` ``(K, L)`` row indices, ``mask`` ``(K, L)`` and ``K``
(:class:`xmodal.align.otdd` builds them).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from xmodal.align.numerics import precise_dtype

__all__ = ["sqrt_trace", "gauss_stats", "exact_rank_factors", "bures_pairs", "bures_cross", "bures_all_pairs"]


def sqrt_trace(G: torch.Tensor) -> torch.Tensor:
    """``tr(G^{1/2})`` of a batch of PSD Gram matrices ``(..., r, r)``: the sum of the square roots of
    the eigenvalues (``eigvalsh``, whose backward needs no eigenvector differences); eigenvalues under
    ``1e-12 ×`` the largest count as 0 (their square root has an unbounded gradient)."""
    lam = torch.linalg.eigvalsh(G)
    floor = 1e-12 * lam.amax(-1, keepdim=True).detach().clamp_min(torch.finfo(lam.dtype).tiny)
    return torch.where(lam > floor, lam.clamp_min(floor).sqrt(), torch.zeros_like(lam)).sum(-1)


def gauss_stats(X: torch.Tensor, cls: Any) -> dict[str, torch.Tensor]:
    """Per-class mean ``(K, D)``, trace of the covariance ``(K,)`` and a factor ``F (K, r, D)`` with
    ``FᵀF = Σ`` (float64; centred data / √n if n ≤ D, else Cholesky of Σ + δI)."""
    wd = precise_dtype(X.device)
    pts = X[cls.idx].to(wd)  # (K, L, D)
    w = cls.mask.to(wd)
    n = w.sum(1)  # (K,)
    mu = (pts * w.unsqueeze(2)).sum(1) / n.unsqueeze(1)
    Z = (pts - mu.unsqueeze(1)) * w.unsqueeze(2)  # padded rows 0
    tr = (Z * Z).sum((1, 2)) / n
    D = X.shape[1]
    if Z.shape[1] <= D:
        F = Z / n.sqrt().reshape(-1, 1, 1)
    else:
        cov = Z.transpose(1, 2) @ Z / n.reshape(-1, 1, 1)
        jitter = 1e-10 * (tr / D).clamp_min(torch.finfo(wd).tiny).reshape(-1, 1, 1)
        eye = torch.eye(D, dtype=wd, device=X.device)
        F = torch.linalg.cholesky(cov + jitter * eye).transpose(1, 2)  # Lᵀ: (Lᵀ)ᵀ Lᵀ = L Lᵀ = Σ + δI
    return {"mu": mu, "tr": tr, "F": F}

def exact_rank_factors(X: torch.Tensor, cls: Any) -> dict[str, Any]:
    """Per-class covariance factors of exact size, stacked: ``rows (R, D)`` whose block ``l``
    (``offsets[l]:offsets[l+1]``) is ``F_l`` with ``F_lᵀF_l = Σ_l`` — the centred data / √n (``n_l``
    rows) when ``n_l ≤ D``, else the Cholesky factor (``D`` rows); ``rows32`` is its float32 copy.

    The padded ``F (K, r, D)`` of :func:`gauss_stats` gives every class the rank of the largest
    one (e.g. 11 classes in 384-d, one of 1476 points and the others 23-283: 11 × 384 = 4224 rows against
    384 + 918 = 1302 here), so the target × source product of every stage-2 step is that much smaller."""
    wd = precise_dtype(X.device)
    D = X.shape[1]
    blocks = []
    for k in range(cls.K):
        pts = X[cls.idx[k][cls.mask[k]]].to(wd)
        n = pts.shape[0]
        Z = pts - pts.mean(0, keepdim=True)
        if n <= D:
            blocks.append(Z / math.sqrt(n))
        else:
            cov = Z.T @ Z / n
            jitter = 1e-10 * max(float(torch.diagonal(cov).mean()), torch.finfo(wd).tiny)
            blocks.append(torch.linalg.cholesky(cov + jitter * torch.eye(D, dtype=wd, device=X.device)).T)
    offsets = [0]
    for blk in blocks:
        offsets.append(offsets[-1] + blk.shape[0])
    rows = torch.cat(blocks)
    return {"rows": rows, "rows32": rows.float(), "offsets": offsets}

def bures_pairs(ga: dict, gb: dict, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """Bures–Wasserstein ``W2²`` between Gaussians ``ga[i]`` and ``gb[j]`` (batched over the pairs)."""
    mean_term = ((ga["mu"][i] - gb["mu"][j]) ** 2).sum(-1)
    Fa, Fb = ga["F"][i], gb["F"][j]
    M = Fa @ Fb.transpose(1, 2)  # (P, ra, rb)
    G = M @ M.transpose(1, 2) if M.shape[1] <= M.shape[2] else M.transpose(1, 2) @ M
    return mean_term + ga["tr"][i] + gb["tr"][j] - 2.0 * sqrt_trace(G)

def bures_cross(ga: dict, gb: dict, gemm_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Bures–Wasserstein ``W2² (K_a, K_b)`` between every Gaussian of ``ga`` and every one of ``gb``.

    Same value as :func:`bures_pairs` over all pairs, but all ``F_a[k] F_b[l]ᵀ`` come from ONE matrix
    product of the stacked factors instead of gathering a ``(D, D)`` factor copy per pair (the time of a
    stage-2 step: ``python benchmarks/otdd_speed.py --inner gaussian``).
    ``gemm_dtype`` (e.g. float32) runs that product — the only large one, ``K_a r_a × D × K_b r_b``
    — in a cheaper dtype; the small ``r × r`` Gram matrices and their eigenvalues stay in the
    factors' dtype. When ``gb`` holds exact-rank factors (:func:`exact_rank_factors`, the source's),
    the product is against those (float32 copy ``rows32``) and the eigenproblems are per source
    class, of size ``min(r_a, n_l)``."""
    Ka, ra, D = ga["F"].shape
    Fa = ga["F"]
    cast = gemm_dtype is not None and gemm_dtype != Fa.dtype
    if "rows" in gb:
        Fb, offs = (gb["rows32"].to(gemm_dtype) if cast else gb["rows"]), gb["offsets"]
        M = ((Fa.to(gemm_dtype) if cast else Fa).reshape(Ka * ra, D) @ Fb.T).to(Fa.dtype).reshape(Ka, ra, -1)
        roots = []
        for lo, hi in zip(offs[:-1], offs[1:], strict=True):
            Ml = M[:, :, lo:hi]
            G = Ml @ Ml.transpose(1, 2) if ra <= hi - lo else Ml.transpose(1, 2) @ Ml
            roots.append(sqrt_trace(G))
        root = torch.stack(roots, 1)
    else:
        Kb, rb, _ = gb["F"].shape
        Fb = gb["F"]
        if cast:
            Fa, Fb = Fa.to(gemm_dtype), Fb.to(gemm_dtype)
        M = (Fa.reshape(Ka * ra, D) @ Fb.reshape(Kb * rb, D).T).to(ga["F"].dtype).reshape(Ka, ra, Kb, rb)
        M = M.permute(0, 2, 1, 3).reshape(Ka * Kb, ra, rb)
        G = M @ M.transpose(1, 2) if ra <= rb else M.transpose(1, 2) @ M
        root = sqrt_trace(G).reshape(Ka, Kb)
    mean_term = ((ga["mu"].unsqueeze(1) - gb["mu"].unsqueeze(0)) ** 2).sum(-1)
    return mean_term + ga["tr"].unsqueeze(1) + gb["tr"].unsqueeze(0) - 2.0 * root

def bures_all_pairs(g: dict, dtype: torch.dtype) -> torch.Tensor:
    """Symmetric ``(K, K)`` Bures–Wasserstein ``W2²`` between the Gaussians of ``g`` (zero diagonal)."""
    K = g["mu"].shape[0]
    device = g["mu"].device
    W = torch.zeros(K, K, dtype=dtype, device=device)
    if K > 1:
        i, j = torch.triu_indices(K, K, offset=1, device=device)
        d = bures_pairs(g, g, i, j).to(dtype)
        W = W.index_put((i, j), d).index_put((j, i), d)
    return W
