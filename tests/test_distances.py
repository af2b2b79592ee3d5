"""MMD, mean pairwise Euclidean distance and TransRate: values against direct NumPy/SciPy/scikit-learn
computations, basic properties, gradients, and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist, pdist
from sklearn.metrics.pairwise import rbf_kernel

from xmodal.align.euclidean import PairwiseEuclidean, mean_pairwise_euclidean
from xmodal.align.mmd import DEFAULT_SCALES, MMD, median_heuristic, mmd2
from xmodal.align.objectives import OBJECTIVES, get_objective
from xmodal.align.transrate import TransRate, coding_rate, transrate
from xmodal.errors import XmodalError


def _data(n=60, m=50, d=8, shift=0.0, seed=0):
    g = np.random.default_rng(seed)
    A = g.standard_normal((n, d))
    B = g.standard_normal((m, d)) + shift
    return A, B


def _np_mmd2(A, B, bandwidths, unbiased):
    k = lambda X, Y: sum(rbf_kernel(X, Y, gamma=1.0 / (2 * s * s)) for s in bandwidths)  # noqa: E731
    Kaa, Kbb, Kab = k(A, A), k(B, B), k(A, B)
    n, m = len(A), len(B)
    if unbiased:
        return (
            (Kaa.sum() - np.trace(Kaa)) / (n * (n - 1))
            + (Kbb.sum() - np.trace(Kbb)) / (m * (m - 1))
            - 2 * Kab.mean()
        )
    return Kaa.mean() + Kbb.mean() - 2 * Kab.mean()


def _np_transrate(Z, y, eps=1e-4):
    """The authors' released implementation, transcribed."""

    def rate(Z):
        n, d = Z.shape
        return 0.5 * np.linalg.slogdet(np.eye(d) + 1 / (n * eps) * Z.T @ Z)[1]

    Z = Z - Z.mean(0, keepdims=True)
    K = int(y.max() + 1)
    return rate(Z) - sum(rate(Z[y == i]) for i in range(K)) / K


def _labels(n, k=3):
    return torch.arange(n) % k


def test_registered():
    assert {"mmd", "euclidean", "transrate"} <= set(OBJECTIVES)
    assert get_objective("mmd") is MMD and get_objective("euclidean") is PairwiseEuclidean
    assert get_objective("transrate") is TransRate and TransRate.uses_labels and not MMD.uses_labels


# ---------------------------------------------------------------- MMD


@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd2_matches_sklearn_kernels(unbiased):
    A, B = _data(shift=0.3)
    bw = [0.7, 1.5, 3.0]
    got = float(mmd2(torch.tensor(A), torch.tensor(B), bw, unbiased=unbiased))
    assert got == pytest.approx(_np_mmd2(A, B, bw, unbiased), abs=1e-5, rel=1e-6)


def test_mmd_objective_matches_numpy_with_median_bandwidths():
    A, B = _data(shift=0.5)
    med = float(np.median(pdist(A)))
    bw = [med * s for s in DEFAULT_SCALES]
    obj = MMD(torch.tensor(A), _labels(len(A)), max_samples=None)
    assert obj.median == pytest.approx(med, rel=1e-9)
    assert obj.bandwidths == pytest.approx(bw)
    assert obj.value(torch.tensor(B), _labels(len(B))) == pytest.approx(_np_mmd2(B, A, bw, True), abs=1e-5)
    biased = MMD(torch.tensor(A), None, max_samples=None, estimator="biased")
    assert biased.value(torch.tensor(B)) == pytest.approx(_np_mmd2(B, A, bw, False), abs=1e-5)


def test_mmd_of_identical_sets():
    X = torch.tensor(_data()[0])
    bw = [1.0, 2.0]
    assert float(mmd2(X, X, bw, unbiased=False)) == 0.0
    u = float(mmd2(X, X, bw, unbiased=True))
    assert -0.1 < u <= 0.0  # -O(1/n): the cross term keeps the diagonal
    assert MMD(X, None, estimator="biased", max_samples=None).value(X) == 0.0
    # unbiased on two independent samples of one distribution: close to 0
    A, B = _data(n=200, m=200)
    assert abs(float(mmd2(torch.tensor(A), torch.tensor(B), bw))) < 0.02


def test_mmd_grows_with_mean_shift():
    A, _ = _data()
    obj = MMD(torch.tensor(A), None)
    vals = [obj.value(torch.tensor(_data(shift=s, seed=1)[1])) for s in (0.0, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(vals, vals[1:], strict=False)), vals


def test_mmd_loss_subsamples_reproducibly():
    A, B = _data(n=80, m=90, shift=0.5)
    Xs, Xt = torch.tensor(A), torch.tensor(B)
    l1 = MMD(Xs, None, max_samples=20, seed=3).loss(Xt)
    l2 = MMD(Xs, None, max_samples=20, seed=3).loss(Xt)
    assert float(l1) == float(l2)
    full = MMD(Xs, None, max_samples=None).value(Xt)
    est = np.mean([float(MMD(Xs, None, max_samples=40, seed=s).loss(Xt)) for s in range(20)])
    assert est == pytest.approx(full, rel=0.25)


def test_median_heuristic_subsample():
    A = torch.tensor(_data(n=100)[0])
    assert median_heuristic(A, max_samples=1000) == pytest.approx(float(np.median(pdist(A.numpy()))))
    assert median_heuristic(A, max_samples=30, seed=1) > 0


# ---------------------------------------------------------------- Euclidean


@pytest.mark.parametrize("squared", [False, True])
def test_euclidean_matches_scipy(squared):
    A, B = _data(shift=1.0)
    ref = cdist(B, A, "sqeuclidean" if squared else "euclidean").mean()
    assert float(mean_pairwise_euclidean(torch.tensor(B), torch.tensor(A), squared=squared)) == pytest.approx(ref)
    obj = PairwiseEuclidean(torch.tensor(A), None, max_samples=None, squared=squared)
    assert obj.value(torch.tensor(B)) == pytest.approx(ref)
    assert float(obj.loss(torch.tensor(B))) == pytest.approx(ref)


def test_euclidean_loss_subsamples():
    A, B = _data(n=80, m=90, shift=1.0)
    obj = PairwiseEuclidean(torch.tensor(A), None, max_samples=25, seed=0)
    v = float(obj.loss(torch.tensor(B)))
    assert v == pytest.approx(cdist(B, A).mean(), rel=0.1)


# ---------------------------------------------------------------- TransRate


def test_transrate_matches_numpy():
    g = np.random.default_rng(0)
    for n, d in ((60, 8), (20, 32)):  # both Gram-matrix orientations
        Z = g.standard_normal((n, d))
        y = np.arange(n) % 3
        got = float(transrate(torch.tensor(Z), torch.tensor(y)))
        assert got == pytest.approx(_np_transrate(Z, y), rel=1e-8, abs=1e-6)
        obj = TransRate(torch.zeros(4, d), torch.zeros(4, dtype=torch.int64))
        assert obj.value(torch.tensor(Z), torch.tensor(y)) == pytest.approx(-_np_transrate(Z, y), rel=1e-8)


def test_coding_rate_conventions():
    Z = np.random.default_rng(1).standard_normal((30, 5))
    n, d = Z.shape
    code = 0.5 * np.linalg.slogdet(np.eye(d) + Z.T @ Z / (n * 1e-4))[1]
    mcr2 = 0.5 * np.linalg.slogdet(np.eye(d) + d / (n * 0.5) * Z.T @ Z)[1]
    assert float(coding_rate(torch.tensor(Z))) == pytest.approx(code, rel=1e-10)
    assert float(coding_rate(torch.tensor(Z), 0.5**0.5, convention="mcr2")) == pytest.approx(mcr2, rel=1e-10)
    # mcr2 convention weights classes by size
    y = np.array([0] * 20 + [1] * 10)
    Zc = Z - Z.mean(0)
    r = lambda M: 0.5 * np.linalg.slogdet(np.eye(d) + d / (len(M) * 0.5) * M.T @ M)[1]  # noqa: E731
    ref = r(Zc) - (20 / 30) * r(Zc[:20]) - (10 / 30) * r(Zc[20:])
    got = float(transrate(torch.tensor(Z), torch.tensor(y), 0.5**0.5, convention="mcr2"))
    assert got == pytest.approx(ref, rel=1e-10)


def test_transrate_prefers_separated_classes():
    g = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    means = g.standard_normal((4, 16)) * 6
    Z = torch.tensor(means[y] + g.standard_normal((200, 16)))
    good = float(transrate(Z, torch.tensor(y)))
    rand = float(transrate(Z, torch.tensor(g.permutation(y))))
    assert good > rand + 1.0
    obj = TransRate(torch.zeros(2, 16), None)
    assert obj.value(Z, torch.tensor(y)) < obj.value(Z, torch.tensor(g.permutation(y)))


def test_transrate_normalize_is_scale_invariant():
    g = np.random.default_rng(0)
    Z, y = torch.tensor(g.standard_normal((30, 40))), _labels(30)
    a = float(transrate(Z, y, normalize=True))
    assert float(transrate(10 * Z, y, normalize=True)) == pytest.approx(a, rel=1e-9)
    assert float(transrate(10 * Z, y)) > float(transrate(Z, y)) + 1.0  # the raw metric is not


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "make",
    [
        lambda Xs: MMD(Xs, None, max_samples=30),
        lambda Xs: MMD(Xs, None, estimator="biased"),
        lambda Xs: PairwiseEuclidean(Xs, None, max_samples=30),
        lambda Xs: TransRate(Xs, None),
        lambda Xs: TransRate(Xs, None, normalize=True, max_samples=30),
    ],
)
def test_gradients_flow(make):
    A, B = _data(n=50, m=40, d=12, shift=0.5)
    obj = make(torch.tensor(A, dtype=torch.float32))
    Xt = torch.tensor(B, dtype=torch.float32, requires_grad=True)
    loss = obj.loss(Xt, _labels(len(B)))
    assert loss.ndim == 0 and loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(Xt.grad).all() and Xt.grad.abs().sum() > 0


def test_minimising_mmd_moves_target_towards_source():
    A, B = _data(n=60, m=60, d=4, shift=2.0)
    obj = MMD(torch.tensor(A, dtype=torch.float32), None)
    Xt = torch.tensor(B, dtype=torch.float32, requires_grad=True)
    before = obj.value(Xt.detach())
    for _ in range(40):  # plain gradient descent (torch.optim's first step costs ~1 s of set-up)
        (grad,) = torch.autograd.grad(obj.loss(Xt), Xt)
        with torch.no_grad():
            Xt -= 20.0 * grad
    assert obj.value(Xt.detach()) < 0.5 * before


# ---------------------------------------------------------------- errors


def _bad_pairs():
    good = torch.randn(10, 4)
    return [
        (good, torch.randn(10, 5)),  # width mismatch
        (good, torch.randn(0, 4)),  # empty
        (good, torch.full((10, 4), float("nan"))),  # NaN
        (good, torch.randn(10)),  # not 2-D
    ]


@pytest.mark.parametrize("pair", _bad_pairs())
def test_plain_functions_reject_bad_inputs(pair):
    a, b = pair
    with pytest.raises(XmodalError):
        mmd2(a, b, [1.0])
    with pytest.raises(XmodalError):
        mmd2(b, a, [1.0])
    with pytest.raises(XmodalError):
        mean_pairwise_euclidean(a, b)


@pytest.mark.parametrize("cls", [MMD, PairwiseEuclidean, TransRate])
@pytest.mark.parametrize("pair", _bad_pairs())
def test_objectives_reject_bad_targets(cls, pair):
    good, bad = pair
    obj = cls(good, _labels(10))
    y = _labels(bad.shape[0]) if bad.ndim else None
    with pytest.raises(XmodalError):
        obj.loss(bad, y)
    with pytest.raises(XmodalError):
        obj.value(bad, y)


@pytest.mark.parametrize("cls", [MMD, PairwiseEuclidean, TransRate])
def test_objectives_reject_bad_sources(cls):
    for Xs in (torch.randn(0, 4), torch.full((5, 4), float("nan")), torch.randn(5)):
        with pytest.raises(XmodalError):
            cls(Xs, None)


def test_other_errors():
    X = torch.randn(10, 4)
    with pytest.raises(XmodalError):
        mmd2(X, X, [])
    with pytest.raises(XmodalError):
        mmd2(X, X, [-1.0])
    with pytest.raises(XmodalError):
        mmd2(X[:1], X, [1.0])  # unbiased needs ≥ 2 per side
    assert float(mmd2(X[:1], X, [1.0], unbiased=False)) > 0
    with pytest.raises(XmodalError):
        MMD(X, None, estimator="nope")
    with pytest.raises(XmodalError):
        MMD(torch.ones(5, 4), None)  # median heuristic is 0
    with pytest.raises(XmodalError):
        median_heuristic(X[:1])
    with pytest.raises(XmodalError):
        TransRate(X, None).loss(X, None)  # labels required
    with pytest.raises(XmodalError):
        transrate(X, _labels(9))  # label length
    with pytest.raises(XmodalError):
        transrate(X, -_labels(10) - 1)  # negative labels
    with pytest.raises(XmodalError):
        transrate(torch.randn(0, 4), _labels(0))
    with pytest.raises(XmodalError):
        transrate(torch.full((10, 4), float("nan")), _labels(10))
    with pytest.raises(XmodalError):
        transrate(X, _labels(10), eps=0.0)
    with pytest.raises(XmodalError):
        transrate(X, _labels(10), convention="paper")
    with pytest.raises(XmodalError):
        coding_rate(torch.randn(0, 3))
