"""OTDD objective and the batched Sinkhorn solver: exactness against POT, debiasing, gradients, errors."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import scipy.linalg
import torch

from xmodal.align.bures import bures_cross, gauss_stats
from xmodal.align.classes import ClassIndex
from xmodal.align.objectives import get_objective
from xmodal.align.otdd import OTDD, otdd_distance
from xmodal.align.sinkhorn import sinkhorn_cost, sinkhorn_divergence
from xmodal.errors import XmodalError

F64 = torch.float64


def _data(n: int, d: int, k: int, seed: int, shift: float = 0.0, sep: float = 3.0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(k, d, generator=g, dtype=dtype) * sep
    y = torch.arange(n) % k
    return mu[y] + torch.randn(n, d, generator=g, dtype=dtype) + shift, y


def _uniform(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def _emd_otdd(Xa, ya, Xb, yb):
    """Exact OTDD with POT: label distances W2² by ``ot.emd2`` between class samples, then ``ot.emd2``
    on the joint cost ‖x - x'‖² + W2²(y, y')."""
    Xa, Xb, ya, yb = Xa.double().numpy(), Xb.double().numpy(), ya.numpy(), yb.numpy()
    la, lb = np.unique(ya), np.unique(yb)
    W = np.array([[ot.emd2(_uniform((ya == k).sum()), _uniform((yb == m).sum()), ot.dist(Xa[ya == k], Xb[yb == m]),
                           numItermax=10**7) for m in lb] for k in la])
    C = ot.dist(Xa, Xb) + W[np.searchsorted(la, ya)][:, np.searchsorted(lb, yb)]
    return ot.emd2(_uniform(len(Xa)), _uniform(len(Xb)), C, numItermax=10**7), W


def _bures(A: np.ndarray, B: np.ndarray) -> float:
    """Closed-form W2² between the Gaussians fitted to A and B (population covariances), via scipy sqrtm."""
    Sa, Sb = np.cov(A.T, bias=True), np.cov(B.T, bias=True)
    r = scipy.linalg.sqrtm(Sa)
    cross = scipy.linalg.sqrtm(r @ Sb @ r).real
    return float(((A.mean(0) - B.mean(0)) ** 2).sum() + np.trace(Sa) + np.trace(Sb) - 2 * np.trace(cross))


# ------------------------------------------------------------------------------------------- Sinkhorn
def test_sinkhorn_matches_pot_entropic_and_sharp():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 3, generator=g, dtype=F64), torch.randn(25, 3, generator=g, dtype=F64) + 1
    C = torch.cdist(x, y) ** 2
    a, b = torch.full((20,), 1 / 20, dtype=F64), torch.full((25,), 1 / 25, dtype=F64)
    eps_abs = 0.05 * float(C.mean())
    P = ot.sinkhorn(a.numpy(), b.numpy(), C.numpy(), eps_abs, method="sinkhorn_log", stopThr=1e-13, numItermax=10**5)
    transport = float((P * C.numpy()).sum())
    entropic = transport + eps_abs * float((P * np.log(P / np.outer(a, b))).sum())
    assert sinkhorn_cost(C, a, b, 0.05, tol=1e-11).item() == pytest.approx(entropic, rel=1e-8)
    assert sinkhorn_cost(C, a, b, 0.05, tol=1e-11, sharp=True).item() == pytest.approx(transport, rel=1e-7)
    # absolute ε via scale=1
    assert sinkhorn_cost(C, a, b, eps_abs, scale=1.0, tol=1e-11).item() == pytest.approx(entropic, rel=1e-8)


def test_batched_sinkhorn_equals_per_pair():
    g = torch.Generator().manual_seed(1)
    sizes = [(5, 7), (12, 3), (9, 10)]
    N, M = max(s[0] for s in sizes), max(s[1] for s in sizes)
    C = torch.full((3, N, M), 50.0, dtype=F64)  # padded entries: arbitrary finite values
    a, b = torch.zeros(3, N, dtype=F64), torch.zeros(3, M, dtype=F64)
    single = []
    for k, (p, q) in enumerate(sizes):
        c = torch.cdist(torch.randn(p, 2, generator=g, dtype=F64), torch.randn(q, 2, generator=g, dtype=F64)) ** 2
        C[k, :p, :q], a[k, :p], b[k, :q] = c, 1.0, 1.0
        single.append(sinkhorn_cost(c, torch.ones(p, dtype=F64), torch.ones(q, dtype=F64), 0.1, tol=1e-11,
                                    max_iters=10**5))
    batched = sinkhorn_cost(C, a, b, 0.1, tol=1e-11, max_iters=10**5)
    torch.testing.assert_close(batched, torch.stack(single), rtol=1e-8, atol=1e-10)


def test_sinkhorn_divergence_self_zero_and_gradient():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(8, 2, generator=g, dtype=F64), torch.randn(9, 2, generator=g, dtype=F64) + 0.5
    a, b = torch.ones(8, dtype=F64), torch.ones(9, dtype=F64)
    Cxx = torch.cdist(x, x) ** 2
    assert abs(sinkhorn_divergence(Cxx, Cxx, Cxx, a, a, 0.1, tol=1e-12).item()) < 1e-9

    def div(xx):
        return sinkhorn_divergence(torch.cdist(xx, y) ** 2, torch.cdist(xx, xx) ** 2, torch.cdist(y, y) ** 2, a, b,
                                   0.2, scale=1.0, tol=1e-13, max_iters=10**5)

    assert torch.autograd.gradcheck(div, (x.clone().requires_grad_(True),), eps=1e-6, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------------------------- OTDD exactness
def test_exact_otdd_matches_emd_for_small_eps():
    Xa, ya = _data(36, 4, 3, 0)
    Xb, yb = _data(45, 4, 2, 1, shift=0.5)
    ref, W_ref = _emd_otdd(Xa, ya, Xb, yb)
    kw = dict(epsilon=3e-3, inner_epsilon=3e-3, sharp=True, tol=1e-5, max_iters=3000)  # measured errors ≤ 2e-4
    # inner label problems (non-debiased inner, so W is the plain OT between class samples)
    obj = OTDD(Xb, yb, inner_debiased=False, **kw)
    _, W_ts = obj.label_distances(Xa, ya)
    np.testing.assert_allclose(W_ts.numpy(), W_ref, rtol=1e-3)
    # outer problem, non-debiased: the plain OT value
    plain = otdd_distance(Xa, ya, Xb, yb, debiased=False, **kw).item()
    assert plain == pytest.approx(ref, rel=1e-3)
    # debiased: the self-terms vanish as ε → 0, so it tends to the same exact value
    deb = otdd_distance(Xa, ya, Xb, yb, debiased=True, **kw).item()
    assert deb == pytest.approx(ref, rel=2e-3)


def test_debiased_vs_plain_entropic_values():
    """Entropic values: the debiased divergence removes the (positive) self-terms, S_ε ≤ OT_ε, and is the
    closer of the two to the exact OTDD at the same ε."""
    Xa, ya = _data(36, 4, 3, 2)
    Xb, yb = _data(45, 4, 2, 3, shift=0.5)
    ref, _ = _emd_otdd(Xa, ya, Xb, yb)
    plain = otdd_distance(Xa, ya, Xb, yb, debiased=False, epsilon=0.02, inner_epsilon=0.02).item()
    deb = otdd_distance(Xa, ya, Xb, yb, debiased=True, epsilon=0.02, inner_epsilon=0.02).item()
    assert deb < plain
    assert abs(deb - ref) < abs(plain - ref)


def test_default_sinkhorn_within_2_percent_of_exact():
    Xa, ya = _data(150, 16, 4, 4, sep=1.0)
    Xb, yb = _data(160, 16, 5, 5, shift=0.3, sep=1.0)
    ref, _ = _emd_otdd(Xa, ya, Xb, yb)
    val = otdd_distance(Xa.float(), ya, Xb.float(), yb).item()  # all defaults, float32
    assert val == pytest.approx(ref, rel=0.02)


@pytest.mark.parametrize("inner", ["exact", "gaussian"])
def test_self_distance_is_zero(inner):
    X, y = _data(60, 8, 3, 6, dtype=torch.float32)
    obj = OTDD(X, y, inner=inner)
    scale = obj.outer_scale
    assert abs(obj.value(X, y)) < 1e-4 * scale
    W_tt, W_ts = obj.label_distances(X, y)
    assert torch.all(torch.diagonal(W_tt) == 0)
    torch.testing.assert_close(W_ts, obj.W_ss, rtol=1e-3, atol=1e-3 * scale)


@pytest.mark.parametrize("d,n", [(3, 10), (12, 6)])  # n > d: Cholesky factor; n ≤ d: data factor
def test_gaussian_inner_matches_scipy_bures(d, n):
    Xa, ya = _data(2 * n, d, 2, 7)
    Xb, yb = _data(3 * n, d, 3, 8, shift=0.3)
    obj = OTDD(Xb, yb, inner="gaussian")
    W_tt, W_ts = obj.label_distances(Xa, ya)
    A, B = Xa.numpy(), Xb.numpy()
    ref_ts = np.array([[_bures(A[ya == k], B[yb == m]) for m in range(3)] for k in range(2)])
    np.testing.assert_allclose(W_ts.numpy(), ref_ts, rtol=1e-6)
    assert W_tt[0, 1].item() == pytest.approx(_bures(A[ya == 0], A[ya == 1]), rel=1e-6)
    ref_ss = np.array([[_bures(B[yb == k], B[yb == m]) for m in range(3)] for k in range(3)])
    np.testing.assert_allclose(obj.W_ss.numpy(), ref_ss, rtol=1e-6, atol=1e-5)  # sqrtm: diag ±2e-7
    # full gaussian-mode OTDD (small ε, sharp, non-debiased) = emd with the Bures label costs
    C = ot.dist(A, B) + ref_ts[ya][:, yb]
    ref = ot.emd2(_uniform(len(A)), _uniform(len(B)), C, numItermax=10**7)
    val = otdd_distance(Xa, ya, Xb, yb, inner="gaussian", debiased=False, sharp=True, epsilon=3e-3, tol=1e-5,
                        max_iters=3000).item()
    assert val == pytest.approx(ref, rel=1e-3)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # classes with n ≤ d: singular Σ by design
def test_gaussian_source_classes_of_mixed_size_match_scipy_bures():
    # source classes under and over d: exact-rank factors (data for n ≤ d, Cholesky for n > d)
    d = 12
    g = torch.Generator().manual_seed(29)
    yb = torch.cat([torch.full((n,), k) for k, n in enumerate((5, 30, 12, 2))])
    Xb = torch.randn(4, d, generator=g, dtype=F64)[yb] * 3 + torch.randn(len(yb), d, generator=g, dtype=F64)
    Xa, ya = _data(40, d, 2, 28, shift=0.3)
    obj = OTDD(Xb, yb, inner="gaussian")
    assert obj.src_gauss["offsets"] == [0, 5, 5 + d, 5 + d + 12, 5 + d + 12 + 2]
    _, W_ts = obj.label_distances(Xa, ya)
    A, B = Xa.numpy(), Xb.numpy()
    ref = np.array([[_bures(A[ya == k], B[yb == m]) for m in range(4)] for k in range(2)])
    np.testing.assert_allclose(W_ts.numpy(), ref, rtol=1e-6)
    # the padded factors of _gauss_stats give the same values
    gt = gauss_stats(obj._prepare_target(Xa, ya), ClassIndex(ya, None, None, obj.device))
    padded = {k: v for k, v in obj.src_gauss.items() if k in ("mu", "tr", "F")}
    torch.testing.assert_close(bures_cross(gt, padded), W_ts, rtol=1e-6, atol=1e-6)


def test_float32_bures_product_matches_float64():
    # 384-d features with a 10^4 spread of scales; source classes larger than D (Cholesky factors),
    # target classes smaller (data factors), as in a stage-2 step
    g = torch.Generator().manual_seed(30)
    scales = torch.logspace(-2, 2, 384, dtype=F64)
    ys, yt = torch.arange(1500) % 3, torch.arange(32) % 2
    Xs = (torch.randn(3, 384, generator=g, dtype=F64)[ys] + torch.randn(1500, 384, generator=g, dtype=F64)) * scales
    Xt = (torch.randn(2, 384, generator=g, dtype=F64)[yt] + 2 * torch.randn(32, 384, generator=g, dtype=F64)) * scales
    obj = OTDD(Xs, ys, inner="gaussian")
    gt = gauss_stats(obj._prepare_target(Xt, yt), ClassIndex(yt, None, None, obj.device))
    ref = bures_cross(gt, obj.src_gauss)
    fast = bures_cross(gt, obj.src_gauss, torch.float32)
    assert fast.dtype == ref.dtype == F64
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=0.0)


# -------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("inner", ["exact", "gaussian"])
def test_gradcheck_full_otdd(inner):
    Xa, ya = _data(6, 2, 2, 9)
    Xb, yb = _data(8, 2, 2, 10, shift=0.3)
    obj = OTDD(Xb, yb, inner=inner, epsilon=0.1, inner_epsilon=0.1, tol=1e-13, max_iters=10**5)
    x = Xa.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: obj.distance(z, ya), (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_classwise_loss():
    Xa, ya = _data(6, 2, 2, 11)
    Xb, yb = _data(8, 2, 2, 12, shift=0.3)
    obj = OTDD(Xb, yb, n_per_class=None, epsilon=0.1, inner_epsilon=0.1, tol=1e-13, max_iters=10**5)
    x = Xa.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: obj.loss(z, ya), (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_detach_label_costs_removes_label_gradient_path():
    Xa, ya = _data(10, 3, 2, 13)
    Xb, yb = _data(12, 3, 2, 14, shift=0.3)
    kw = dict(epsilon=0.1, inner_epsilon=0.1, tol=1e-12, max_iters=10**5)
    grads, values = [], []
    for detach in (False, True):
        x = Xa.clone().requires_grad_(True)
        d = OTDD(Xb, yb, detach_label_costs=detach, **kw).distance(x, ya)
        (gx,) = torch.autograd.grad(d, x)
        grads.append(gx)
        values.append(d.item())
    assert values[0] == pytest.approx(values[1], rel=1e-12)  # same value ...
    assert (grads[0] - grads[1]).abs().max() > 1e-2 * grads[0].abs().max()  # ... different gradient
    W_tt, W_ts = OTDD(Xb, yb, detach_label_costs=True, **kw).label_distances(Xa.clone().requires_grad_(True), ya)
    assert not W_ts.requires_grad and not W_tt.requires_grad


# --------------------------------------------------------------------------------- objective / loss
def test_registered_and_loss_is_algorithm_1():
    assert get_objective("otdd") is OTDD and OTDD.uses_labels
    Xa, ya = _data(30, 4, 3, 15)
    Xb, yb = _data(40, 4, 2, 16, shift=0.3)
    kw = dict(epsilon=0.02, inner_epsilon=0.02, tol=1e-8, max_iters=10**4)
    obj = OTDD(Xb, yb, n_per_class=None, **kw)
    classwise = sum((ya == k).double().mean() * otdd_distance(Xa[ya == k], ya[ya == k], Xb, yb, **kw) for k in range(3))
    assert obj.loss(Xa, ya).item() == pytest.approx(classwise.item(), rel=1e-5)


def test_loss_subsampling_is_reproducible():
    Xa, ya = _data(30, 4, 3, 17)
    Xb, yb = _data(40, 4, 2, 18, shift=0.3)
    first = [OTDD(Xb, yb, n_per_class=4, source_per_class=6, seed=3).loss(Xa, ya).item() for _ in range(2)]
    assert first[0] == first[1]  # fresh objects, same seed → same first draw
    obj = OTDD(Xb, yb, n_per_class=4, seed=3)
    seq = [obj.loss(Xa, ya).item() for _ in range(3)]
    assert len(set(seq)) == 3  # the call counter changes the draw
    obj2 = OTDD(Xb, yb, n_per_class=4, seed=3)
    assert [obj2.loss(Xa, ya).item() for _ in range(3)] == seq


def test_minimising_the_loss_lowers_the_full_otdd():
    g = torch.Generator().manual_seed(24)
    mu = torch.randn(5, 16, generator=g)
    ys = torch.randint(0, 5, (200,), generator=g)
    Xs = mu[ys] + 0.3 * torch.randn(200, 16, generator=g)
    yt = torch.randint(0, 3, (90,), generator=g)
    Z = torch.randn(90, 8, generator=g) + 2 * torch.randn(3, 8, generator=g)[yt]
    torch.manual_seed(0)
    embed = torch.nn.Linear(8, 16)
    opt = torch.optim.Adam(embed.parameters(), lr=0.05)
    obj = OTDD(Xs, ys, n_per_class=16)
    start = obj.value(embed(Z).detach(), yt)
    for _ in range(25):
        loss = obj.loss(embed(Z), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert obj.value(embed(Z).detach(), yt) < 0.6 * start


def test_one_sample_class_is_a_dirac():
    """Documented handling: a class with one sample is a Dirac measure; its label distance is the mean
    squared distance to the other class (exactly as the POT reference computes it)."""
    Xa, ya = _data(13, 3, 3, 19)
    ya = ya.clone()
    ya[:] = torch.tensor([0] * 6 + [1] * 6 + [2])
    Xb, yb = _data(12, 3, 2, 20, shift=0.3)
    ref, W_ref = _emd_otdd(Xa, ya, Xb, yb)
    obj = OTDD(Xb, yb, inner_debiased=False, epsilon=3e-3, inner_epsilon=3e-3, sharp=True, tol=1e-5, max_iters=3000)
    _, W_ts = obj.label_distances(Xa, ya)
    np.testing.assert_allclose(W_ts.numpy(), W_ref, rtol=1e-3)
    assert np.isfinite(OTDD(Xb, yb).value(Xa, ya))


# ------------------------------------------------------------------------------------------ errors
def test_bad_inputs_raise_xmodal_error():
    Xb, yb = _data(12, 3, 2, 21)
    obj = OTDD(Xb, yb)
    with pytest.raises(XmodalError, match="width"):
        obj.loss(torch.randn(5, 4, dtype=F64), torch.zeros(5, dtype=torch.long))
    with pytest.raises(XmodalError, match="width"):
        obj.value(torch.randn(5, 4, dtype=F64), torch.zeros(5, dtype=torch.long))
    with pytest.raises(XmodalError, match="empty"):
        obj.value(torch.zeros(0, 3, dtype=F64), torch.zeros(0, dtype=torch.long))
    with pytest.raises(XmodalError, match="labels"):
        obj.value(torch.randn(5, 3, dtype=F64), torch.zeros(4, dtype=torch.long))
    with pytest.raises(XmodalError, match="equal width"):
        otdd_distance(torch.randn(5, 4), torch.zeros(5, dtype=torch.long), Xb, yb)
    with pytest.raises(XmodalError, match="empty"):
        otdd_distance(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), Xb, yb)
    with pytest.raises(XmodalError, match="empty"):
        OTDD(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(XmodalError, match="inner"):
        OTDD(Xb, yb, inner="sliced")
    with pytest.raises(XmodalError, match="epsilon"):
        OTDD(Xb, yb, epsilon=0.0)
    with pytest.raises(XmodalError, match="n_per_class"):
        OTDD(Xb, yb, n_per_class=0)
    C, w = torch.rand(2, 3, 4), torch.ones(2, 3)
    with pytest.raises(XmodalError, match="weights"):
        sinkhorn_cost(C, w, torch.ones(2, 5))
    with pytest.raises(XmodalError, match="positive total weight"):
        sinkhorn_cost(C, w, torch.zeros(2, 4))
    with pytest.raises(XmodalError, match="empty"):
        sinkhorn_cost(torch.rand(1, 0, 4), torch.ones(1, 0), torch.ones(1, 4))
    with pytest.raises(XmodalError, match="cost tensor"):
        sinkhorn_cost(torch.rand(4), torch.ones(4), torch.ones(4))
    with pytest.raises(XmodalError, match="eps"):
        sinkhorn_cost(C, w, torch.ones(2, 4), eps=-1.0)
    with pytest.raises(XmodalError, match="C_bb"):
        sinkhorn_divergence(C, torch.rand(2, 3, 3), None, w, torch.ones(2, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    Xa, ya = _data(40, 8, 3, 22, dtype=torch.float32)
    Xb, yb = _data(50, 8, 4, 23, shift=0.3, dtype=torch.float32)
    cpu = otdd_distance(Xa, ya, Xb, yb).item()
    gpu = otdd_distance(Xa.cuda(), ya.cuda(), Xb.cuda(), yb.cuda()).item()
    assert gpu == pytest.approx(cpu, rel=1e-3)


# ------------------------------------------------------------------------------ far targets: adaptive ε
def _counting_solver(monkeypatch) -> list[tuple[int, float]]:
    import xmodal.align.sinkhorn as sinkhorn

    solves: list[tuple[int, float]] = []
    inner = sinkhorn.sinkhorn_potentials

    def counted(*args, **kwargs):
        res = inner(*args, **kwargs)
        solves.append((res.iters, res.error))
        return res

    monkeypatch.setattr(sinkhorn, "sinkhorn_potentials", counted)
    return solves


def test_far_target_raises_outer_epsilon_and_converges(monkeypatch):
    """A target far from the source (a fresh embedder) makes the source-relative ε nearly unregularised:
    the fixed-ε solves stop at max_iters short of tol. The adaptive ε (default) converges every solve and
    stays close to the exact OTDD, which the far shift dominates."""
    Xs, ys = _data(120, 8, 3, 1, dtype=torch.float32)
    Xt, yt = _data(90, 8, 3, 2, shift=10.0, dtype=torch.float32)
    solves = _counting_solver(monkeypatch)
    fixed = OTDD(Xs, ys, inner="gaussian", adapt_epsilon=False, max_iters=300)
    solves.clear()
    fixed.value(Xt, yt)
    assert any(err >= 1e-4 for _, err in solves)  # the case this option exists for
    adaptive = OTDD(Xs, ys, inner="gaussian", max_iters=300)
    solves.clear()
    val = adaptive.value(Xt, yt)
    assert solves and all(err < 1e-4 for _, err in solves)
    assert max(adaptive._ot_ss_levels) >= 2  # ε was raised at least 4×
    ref = otdd_distance(Xt.double(), yt, Xs.double(), ys, inner="gaussian", adapt_epsilon=False, epsilon=1e-3,
                        debiased=True, max_iters=20000).item()
    assert val == pytest.approx(ref, rel=0.02)
    # the class-wise training loss converges too and its gradient pulls the target towards the source
    Xg = Xt.clone().requires_grad_(True)
    solves.clear()
    adaptive.loss(Xg, yt).backward()
    assert all(err < 1e-4 for _, err in solves)
    with torch.no_grad():
        moved = Xt - 0.05 * Xg.grad / Xg.grad.norm() * Xt.norm()
    assert adaptive.value(moved, yt) < val


def test_near_target_keeps_the_fixed_epsilon():
    Xs, ys = _data(80, 6, 3, 3, dtype=torch.float32)
    Xt, yt = _data(70, 6, 3, 4, shift=0.2, dtype=torch.float32)
    adaptive, fixed = OTDD(Xs, ys, inner="gaussian"), OTDD(Xs, ys, inner="gaussian", adapt_epsilon=False)
    assert adaptive.value(Xt, yt) == fixed.value(Xt, yt)
    assert float(adaptive.loss(Xt, yt)) == float(fixed.loss(Xt, yt))
    assert set(adaptive._ot_ss_levels) == {0}
