"""Cases the per-module test files leave out: a real language body through save/load, and more refused inputs."""

from __future__ import annotations

import numpy as np
import pytest

from xmodal import CrossModalEstimator, XmodalError, load

BASE = dict(body="vit-tiny-random", validation=0, max_tokens=16, batch_size=8, verbose=False)
TINY = dict(BASE, align="none")  # stage 2 is off unless a test asks for it


def _separable(n=12, length=10, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    X = rng.normal(size=(n, 1, length)).astype(np.float32) + (2.0 * y - 1.0)[:, None, None]
    return X, y


def test_language_body_save_load(tmp_path):
    X, y = _separable()
    est = CrossModalEstimator(body="minilm-l6", max_tokens=8, epochs=1, verbose=False, validation=0).fit(X, y)
    est.save(tmp_path / "m")
    np.testing.assert_array_equal(load(tmp_path / "m").predict_proba(X), est.predict_proba(X))


def _with(value):
    def corrupt(X, y):
        X = X.astype(np.float64).copy()
        X[1, 0, 3] = value
        return X, y

    return corrupt


REFUSED = [
    ("inf", _with(np.inf), "NaN/Inf"),
    ("NaN label", lambda X, y: (X, np.where(y == 1, np.nan, 0.0)), "NaN"),
    ("empty", lambda X, y: (X[:0], y[:0]), "empty"),
    ("complex", lambda X, y: (X.astype(np.complex64), y), "complex"),
]


@pytest.mark.parametrize("name,corrupt,match", REFUSED, ids=[r[0] for r in REFUSED])
def test_more_bad_input_refused_before_training(monkeypatch, name, corrupt, match):
    import xmodal.estimator.runs as est_mod

    X, y = _separable()
    Xb, yb = corrupt(X, y)
    monkeypatch.setattr(est_mod, "build_body", lambda *a, **k: pytest.fail("weights loaded"))
    with pytest.raises(XmodalError, match=match):
        CrossModalEstimator(**TINY).fit(Xb, yb)
