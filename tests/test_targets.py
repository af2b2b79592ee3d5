"""The target side of stage 2: k-means pseudo-labels follow the targets, class labels pass through,
class-wise samples and the logged subset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from xmodal.align.targets import classwise_sample, curve_subset, pseudo_labels, target_labels
from xmodal.errors import XmodalError
from xmodal.model import assemble, build_body, resolve_body


def _grouped_fields(n_per=10, groups=4, seed=0):
    """Dense targets ``(N, 1, 16, 16)`` around ``groups`` well separated prototypes, and the group of each."""
    g = np.random.default_rng(seed)
    protos = g.standard_normal((groups, 1, 16, 16)).astype(np.float32) * 3
    which = np.repeat(np.arange(groups), n_per)
    return protos[which] + 0.1 * g.standard_normal((len(which), 1, 16, 16)).astype(np.float32), which


def test_pseudo_labels_recover_the_groups_of_dense_targets():
    y, which = _grouped_fields()
    lab = pseudo_labels(y, 4, seed=0)
    assert lab.dtype == torch.int64 and lab.shape == (40,)
    assert set(lab.tolist()) == {0, 1, 2, 3}
    assert adjusted_rand_score(which, lab.numpy()) == 1.0
    assert torch.equal(lab, pseudo_labels(torch.from_numpy(y), 4, seed=0))  # tensor or array, same labels
    std = pseudo_labels(y, 4, seed=0, standardize=True)
    assert adjusted_rand_score(which, std.numpy()) == 1.0


def test_pseudo_labels_move_with_the_targets_not_the_row_order():
    y, which = _grouped_fields()
    perm = np.random.default_rng(1).permutation(len(y))
    lab, lab_perm = pseudo_labels(y, 4, seed=0).numpy(), pseudo_labels(y[perm], 4, seed=0).numpy()
    assert adjusted_rand_score(lab[perm], lab_perm) == 1.0
    # targets with no structure in common with the groups get labels unrelated to them
    noise = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    assert adjusted_rand_score(which, pseudo_labels(noise, 4, seed=0).numpy()) < 0.3


def test_pseudo_labels_renumber_the_clusters_that_received_points():
    y = np.array([[0.0], [0.0], [0.0], [5.0]])  # 2 distinct values, 3 clusters requested
    lab = pseudo_labels(y, 3, seed=0)
    assert set(lab.tolist()) == set(range(int(lab.max()) + 1))
    assert lab[0] == lab[1] == lab[2] != lab[3]


@pytest.mark.parametrize("bad", [
    lambda: pseudo_labels(np.zeros((0, 1, 4, 4)), 2),
    lambda: pseudo_labels(np.zeros((3, 1, 4, 4)), 4),  # k > N
    lambda: pseudo_labels(np.zeros((3, 2)), 0),
    lambda: pseudo_labels(np.full((6, 4), np.nan), 2),
    lambda: pseudo_labels(np.zeros((6, 0)), 2),
    lambda: pseudo_labels(np.array([{"a": 1}] * 3, dtype=object), 2),
])
def test_pseudo_labels_refuse_bad_targets(bad):
    with pytest.raises(XmodalError):
        bad()


def test_target_labels_follow_the_task_kind():
    body = build_body(resolve_body("vit-tiny-random"))
    y, which = _grouped_fields(groups=3)
    dense = assemble(body, "dense-regression", 1, (1, 16, 16), max_tokens=16)
    lab = target_labels(dense, torch.from_numpy(y), k_source=3, seed=0)
    assert adjusted_rand_score(which, lab.numpy()) == 1.0  # the pseudo-labels are the target groups
    # more source classes than groups: the clusters split groups but never mix two of them
    fine = target_labels(dense, torch.from_numpy(y), k_source=6, seed=0).numpy()
    assert all(len(set(which[fine == c])) == 1 for c in np.unique(fine))
    classes = assemble(body, "classification", 3, (1, 16, 16), max_tokens=16)
    labels = torch.tensor([2, 0, 1, 1, 0])
    assert torch.equal(target_labels(classes, labels, k_source=10, seed=0), labels)  # class labels as they are


def test_classwise_sample_and_curve_subset():
    labels = torch.tensor([0] * 50 + [1] * 3 + [2] * 10)
    idx = classwise_sample(labels, 5, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[idx]).tolist() == [5, 3, 5]
    sub = curve_subset(labels, 5, seed=0)
    assert torch.equal(sub, sub.sort().values) and torch.bincount(labels[sub]).tolist() == [5, 3, 5]
    assert torch.equal(sub, curve_subset(labels, 5, seed=0))  # fixed for a seed
    assert torch.equal(curve_subset(labels, None, seed=0), torch.arange(63))
