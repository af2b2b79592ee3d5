"""MoNA's source-knowledge probe and modality knowledge discrepancy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmodal import CrossModalEstimator
from xmodal.errors import XmodalError
from xmodal.evaluate import modality_discrepancy, source_probe
from xmodal.evaluate.source_knowledge import best_matching_error
from xmodal.model import assemble, build_body, resolve_body


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path / "cache"))


def test_best_matching_error_solves_the_relabelling():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert best_matching_error(np.array([2, 2, 0, 0, 1, 1]), y, 3)[0] == 0.0  # a pure relabelling
    err, match = best_matching_error(np.array([2, 2, 0, 1, 1, 1]), y, 3)
    assert err == pytest.approx(1 / 6) and match.tolist() == [2, 0, 1]
    assert best_matching_error(np.zeros(6, dtype=int), y, 3)[0] == pytest.approx(4 / 6)


def test_source_probe_reads_mnist_through_a_random_vit_above_chance():
    torch.manual_seed(0)
    body = build_body(resolve_body("vit-tiny-random"))
    res = source_probe(body, "mnist", n=150)
    assert res["chance"] == pytest.approx(0.1)
    assert res["accuracy"] > 3 * res["chance"]


def _model(n_classes, shape=(1, 16, 16)):
    torch.manual_seed(0)
    return assemble(build_body(resolve_body("vit-tiny-random")), "classification", n_classes, shape, max_tokens=16)


def test_discrepancy_is_bounded_by_the_shuffled_baseline_and_enumerates_small_cases():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    X = rng.normal(size=(40, 1, 16, 16)).astype(np.float32) + 2.0 * y[:, None, None, None]
    res = modality_discrepancy(_model(2), X, y, proxy="mnist", source_size=100)
    assert res["exhaustive"] and res["subsets_tried"] == 45  # C(10, 2)
    assert 0.0 <= res["discrepancy"] <= res["baseline"] <= 0.5 + 1e-9  # 2 classes: a matching errs ≤ 1/2
    assert len(res["best_subset"]) == 2 and set(res["matching"]) == {0, 1}
    # fewer trials than subsets: random subsets, never a better value than the exhaustive search
    few = modality_discrepancy(_model(2), X, y, proxy="mnist", source_size=100, trials=5)
    assert not few["exhaustive"] and few["discrepancy"] >= res["discrepancy"]


def test_discrepancy_refuses_more_target_than_source_classes_and_bad_inputs():
    rng = np.random.default_rng(0)
    y = np.arange(44) % 11
    X = rng.normal(size=(44, 1, 16, 16)).astype(np.float32)
    with pytest.raises(XmodalError, match="at least as many source classes"):
        modality_discrepancy(_model(11), X, y, proxy="mnist", source_size=100)
    with pytest.raises(XmodalError):
        modality_discrepancy(_model(2), X[:, :, :8], y % 2, proxy="mnist", source_size=100)
    with pytest.raises(XmodalError):
        modality_discrepancy(_model(2), X, (y % 2)[:10], proxy="mnist", source_size=100)


def test_discrepancy_from_a_fitted_estimator():
    rng = np.random.default_rng(1)
    y = np.arange(24) % 3
    X = rng.normal(size=(24, 2, 20)).astype(np.float32) + y[:, None, None]
    est = CrossModalEstimator(body="vit-tiny-random", max_tokens=16, epochs=1, batch_size=8, verbose=False,
                              validation=0, strategy="finetune").fit(X, y)
    res = modality_discrepancy(est, X, y, proxy="mnist", source_size=100)
    assert res["target_classes"] == 3 and 0.0 <= res["discrepancy"] <= res["baseline"]
