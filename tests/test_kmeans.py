"""Torch k-means (full-batch and mini-batch) against scikit-learn, and pseudo-labels for dense targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from xmodal.align.kmeans import inertia, kmeans, pseudo_labels
from xmodal.errors import XmodalError


def _blobs(n=600, d=8, k=5, seed=0):
    X, y = make_blobs(n, n_features=d, centers=k, cluster_std=0.5, random_state=seed)
    return X, y


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_blobs_match_sklearn(dtype):
    X, truth = _blobs()
    labels, centres = kmeans(torch.tensor(X, dtype=dtype), 5, seed=0)
    assert labels.dtype == torch.int64 and labels.shape == (600,)
    assert centres.shape == (5, 8) and centres.dtype == dtype
    sk = KMeans(5, n_init=1, random_state=0).fit(X)
    assert adjusted_rand_score(sk.labels_, labels.numpy()) == 1.0
    assert adjusted_rand_score(truth, labels.numpy()) == 1.0


def test_minibatch_on_blobs():
    X, truth = _blobs(n=2000, k=6, seed=1)
    labels, centres = kmeans(torch.tensor(X, dtype=torch.float32), 6, seed=0, batch_size=128)
    assert adjusted_rand_score(truth, labels.numpy()) > 0.95
    sk = KMeans(6, n_init=1, random_state=0).fit(X)
    assert inertia(torch.tensor(X), centres.double()) <= 1.05 * sk.inertia_


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inertia_close_to_sklearn_on_random_data(seed):
    R = np.random.default_rng(seed).standard_normal((500, 2))
    _, centres = kmeans(torch.tensor(R), 4, iters=300, seed=seed, n_init=10)
    ours = inertia(torch.tensor(R), centres)
    ref = KMeans(4, n_init=10, max_iter=300, random_state=seed).fit(R).inertia_
    assert abs(ours / ref - 1) < 0.01


def test_labels_are_nearest_centres_and_centres_are_means():
    X = torch.tensor(np.random.default_rng(3).standard_normal((300, 5)))
    labels, C = kmeans(X, 7, iters=300, seed=0)
    assert torch.equal(labels, torch.cdist(X, C).argmin(1))
    for j in range(7):
        assert torch.allclose(C[j], X[labels == j].mean(0), atol=1e-6)


def test_seeded_repeatability():
    X = torch.tensor(np.random.default_rng(4).standard_normal((400, 6)))
    for bs in (None, 64):
        a = kmeans(X, 8, seed=5, batch_size=bs)
        b = kmeans(X, 8, seed=5, batch_size=bs)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(kmeans(X, 8, seed=5)[1], kmeans(X, 8, seed=6)[1])


def test_edge_cases():
    X = torch.randn(6, 3)
    labels, C = kmeans(X, 6)  # k == n: every point its own cluster
    assert sorted(labels.tolist()) == list(range(6))
    labels, C = kmeans(X, 1)
    assert labels.eq(0).all() and torch.allclose(C[0], X.mean(0), atol=1e-6)
    dup = torch.zeros(5, 2)  # fewer distinct points than clusters: still returns, no NaN
    labels, C = kmeans(dup, 3)
    assert torch.isfinite(C).all() and labels.shape == (5,)
    labels, _ = kmeans(np.random.default_rng(0).integers(0, 5, (20, 2)), 2)  # NumPy int input
    assert labels.shape == (20,)


def test_pseudo_labels_dense_targets():
    g = np.random.default_rng(0)
    protos = g.standard_normal((4, 1, 16, 16)).astype(np.float32) * 3
    which = np.repeat(np.arange(4), 10)
    y = protos[which] + 0.1 * g.standard_normal((40, 1, 16, 16)).astype(np.float32)
    lab = pseudo_labels(y, 4, seed=0)
    assert lab.dtype == torch.int64 and lab.shape == (40,)
    assert set(lab.tolist()) == {0, 1, 2, 3}
    assert adjusted_rand_score(which, lab.numpy()) == 1.0
    assert torch.equal(lab, pseudo_labels(torch.from_numpy(y), 4, seed=0))
    assert torch.equal(lab, pseudo_labels(y, 4, seed=0))
    std = pseudo_labels(y, 4, seed=0, standardize=True, batch_size=16)
    assert std.shape == (40,) and int(std.max()) < 4


def test_pseudo_labels_reindex_nonempty_clusters():
    y = np.array([[0.0], [0.0], [0.0], [5.0]])  # 2 distinct values, 3 clusters requested
    lab = pseudo_labels(y, 3, seed=0)
    assert set(lab.tolist()) == set(range(int(lab.max()) + 1))
    assert lab[0] == lab[1] == lab[2] != lab[3]


def test_errors():
    X = torch.randn(5, 3)
    for bad in (
        lambda: kmeans(X, 6),  # k > n
        lambda: kmeans(X, 0),
        lambda: kmeans(torch.randn(0, 3), 1),  # n == 0
        lambda: kmeans(torch.randn(5), 2),  # not 2-D
        lambda: kmeans(torch.full((5, 3), float("nan")), 2),
        lambda: kmeans(X, 2, batch_size=0),
        lambda: kmeans(X, 2, iters=0),
        lambda: pseudo_labels(np.zeros((0, 1, 4, 4)), 2),
        lambda: pseudo_labels(np.zeros((3, 1, 4, 4)), 4),  # k > N
        lambda: pseudo_labels(np.full((6, 4), np.nan), 2),
        lambda: pseudo_labels(np.zeros((6, 0)), 2),
    ):
        with pytest.raises(XmodalError):
            bad()
