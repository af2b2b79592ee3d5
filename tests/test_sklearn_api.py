"""The estimator in scikit-learn's own tools: ``check_estimator``, tags, ``clone``, pipelines,
``cross_val_score`` and ``GridSearchCV``; ``score`` follows scikit-learn (accuracy, R²)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from xmodal import CrossModalEstimator
from xmodal.estimator import NotFitted

FAST = dict(body="vit-tiny-random", epochs=1, max_tokens=2, batch_size=16, validation=0, align="none",
            device="cpu", verbose=False)

#: the checks that do not apply, and why (everything else in check_estimator must pass)
SKIPPED = {
    "check_classifiers_train": "asserts training accuracy > 0.83 on 2-feature blobs; the one-epoch random tiny body "
                               "of this test does not get there (learning is tested on real tasks elsewhere)",
    "check_regressors_train": "asserts a training R² > 0.5 after fitting; the one-epoch random tiny body of this test "
                              "does not get there (learning is tested on real tasks elsewhere)",
}


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_check_estimator_passes_with_the_documented_skips(task):
    est = CrossModalEstimator(**FAST, task=task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, expected_failed_checks=SKIPPED, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed, failed
    assert len(results) > 40


def test_tags_follow_the_task():
    assert is_classifier(CrossModalEstimator(task="classification"))
    assert is_regressor(CrossModalEstimator(task="regression"))
    auto = CrossModalEstimator()
    assert not is_classifier(auto) and not is_regressor(auto)
    assert clone(CrossModalEstimator(task="regression", lr=1e-3)).get_params()["lr"] == 1e-3


def _blobs(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return rng.normal(size=(n, 4)) + 3.0 * y[:, None], y


def test_cross_val_score_and_grid_search_in_a_pipeline_give_finite_scores():
    X, y = _blobs()
    pipe = make_pipeline(StandardScaler(), CrossModalEstimator(**{**FAST, "epochs": 3}, task="classification"))
    scores = cross_val_score(pipe, X, y, cv=2, error_score="raise")
    assert scores.shape == (2,) and np.isfinite(scores).all() and (scores >= 0).all()
    grid = GridSearchCV(pipe, {"crossmodalestimator__lr": [1e-3, 3e-3]}, cv=2, error_score="raise").fit(X, y)
    assert np.isfinite(grid.best_score_) and grid.best_params_["crossmodalestimator__lr"] in (1e-3, 3e-3)


def test_score_is_r2_for_regression_and_the_task_metric_stays_in_evaluate():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    est = CrossModalEstimator(**{**FAST, "epochs": 5}, task="regression").fit(X, y)
    pred = est.predict(X)
    r2 = 1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert est.score(X, y) == pytest.approx(r2, abs=1e-4)
    assert est.evaluate(X, y, ["mse"])["mse"] == pytest.approx(((pred - y) ** 2).mean(), rel=1e-4)


def test_unfitted_is_sklearns_not_fitted_error():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        CrossModalEstimator().predict(np.zeros((2, 3)))
    assert issubclass(NotFitted, ValueError)
