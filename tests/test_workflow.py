"""The workflow end to end on tiny data: patch rule, shapes, training, persistence, refused inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from xmodal import CrossModalEstimator, XmodalError, load
from xmodal.model import assemble, build_body, resolve_body
from xmodal.model.embedder import choose_patch_size, token_grid

TINY = dict(body="vit-tiny-random", max_tokens=16, batch_size=8, verbose=False)


def _brute_k(spatial, budget):
    return next(k for k in itertools.count(1) if math.prod(-(-s // k) for s in spatial) <= budget)


@pytest.mark.parametrize("budget", [1, 7, 64, 512])
def test_patch_rule_matches_brute_force_including_primes(budget):
    lengths = [1, 2, 23, 97, 150, 512, 513, 521, 997, 1009, 1460]
    for length in lengths:
        k = choose_patch_size((length,), budget)
        assert k == _brute_k((length,), budget)
        tokens = token_grid((length,), k)[0]
        assert tokens <= budget
        if length > 1 and budget > 1:
            assert tokens > 1  # a prime length never collapses to one token
    for shape in [(85, 85), (16, 16), (3, 1000), (5, 6, 7), (13, 17, 19)]:
        assert choose_patch_size(shape, budget) == _brute_k(shape, budget)


def test_prime_length_is_padded_not_collapsed():
    body = build_body(resolve_body("vit-tiny-random"))
    model = assemble(body, "classification", 3, (2, 521), max_tokens=256)
    assert model.embedder.k == 3 and model.grid == (174,)
    assert model.embed(torch.randn(2, 2, 521)).shape == (2, 174, body.in_width)


CASES = {
    "tabular": ((30,), None),
    "1d": ((3, 37), None),
    "2d": ((2, 9, 11), None),
    "3d": ((1, 5, 6, 7), None),
}


@pytest.mark.parametrize("layout", list(CASES))
@pytest.mark.parametrize(
    "task", ["classification", "multilabel", "regression", "dense-classification", "dense-regression"]
)
def test_output_shapes_every_rank_and_task(layout, task):
    sample, _ = CASES[layout]
    n, k = 3, 4
    spatial = sample if layout == "tabular" else sample[1:]
    c = 1 if layout == "tabular" else sample[0]
    body = build_body(resolve_body("vit-tiny-random"))
    model = assemble(body, task, k, (c, *spatial), max_tokens=16)
    out = model(torch.randn(n, c, *spatial))
    dense = task.startswith("dense")
    assert tuple(out.shape) == ((n, k, *spatial) if dense else (n, k))


def _separable(n=48, length=24, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 1, length)).astype(np.float32) + (2.0 * y - 1.0)[:, None, None]
    return X, y


def test_finetuning_loss_falls_and_runs_repeat_exactly():
    X, y = _separable()
    a = CrossModalEstimator(epochs=6, lr=1e-3, **TINY).fit(X, y)
    losses = [r["loss"] for r in a.report_.finetune]
    assert losses[-1] < 0.5 * losses[0]
    assert a.score(X, y) > 0.9
    b = CrossModalEstimator(epochs=6, lr=1e-3, **TINY).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize(
    "task,make_y",
    [
        ("classification", lambda X, rng: (X.mean(axis=(1, 2)) > 0).astype(int)),
        ("regression", lambda X, rng: X.mean(axis=(1, 2))),
        ("dense-regression", lambda X, rng: np.cumsum(X[:, 0], axis=-1)),
    ],
)
def test_save_load_gives_identical_predictions(tmp_path, task, make_y):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 1, 12)).astype(np.float32)
    y = make_y(X, rng)
    est = CrossModalEstimator(task=task, epochs=1, **TINY).fit(X, y)
    pred = est.predict(X)
    assert pred.shape == np.asarray(y).shape
    est.save(tmp_path / "m")
    again = load(tmp_path / "m")
    np.testing.assert_array_equal(again.predict(X), pred)


def test_language_body_save_load(tmp_path):
    X, y = _separable(n=12, length=10)
    est = CrossModalEstimator(body="minilm-l6", max_tokens=8, epochs=1, verbose=False).fit(X, y)
    est.save(tmp_path / "m")
    np.testing.assert_array_equal(load(tmp_path / "m").predict_proba(X), est.predict_proba(X))


def test_modes_freeze_the_right_parameters():
    from xmodal.train.modes import get_mode

    body = build_body(resolve_body("vit-tiny-random"))
    model = assemble(body, "classification", 2, (1, 20), max_tokens=16)
    count = {name: len(get_mode(name).apply(model)) for name in ("full", "fpt", "frozen")}
    n_all = len(list(model.parameters()))
    n_fh = len(list(model.embedder.parameters())) + len(list(model.head.parameters()))
    n_ln = len(list(model.body.layer_norm_parameters()))
    assert count == {"full": n_all, "fpt": n_fh + n_ln, "frozen": n_fh}
    assert sum(p.requires_grad for p in model.parameters()) == n_fh  # last applied: frozen


def test_warmup_moves_embedder_not_body():
    X, y = _separable(n=16)
    est = CrossModalEstimator(align="warmup", align_epochs=2, epochs=0, **TINY).fit(X, y)
    torch.manual_seed(0)  # the estimator's seed: rebuild the model as it was before stage 2
    fresh = assemble(build_body(resolve_body("vit-tiny-random")), "classification", 2, (1, 24), max_tokens=16)
    assert len(est.report_.align["history"]) == 2
    for a, b in zip(est.model_.body.parameters(), fresh.body.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    moved = est.model_.embedder.projection.weight - fresh.embedder.projection.weight
    assert moved.abs().max() > 1e-4


def test_checkpoint_resume_runs_no_epoch_twice(tmp_path):
    X, y = _separable(n=16)
    first = CrossModalEstimator(epochs=3, **TINY).fit(X, y, checkpoint_dir=tmp_path)
    assert (tmp_path / "finetune.ckpt.safetensors").exists()
    second = CrossModalEstimator(epochs=3, **TINY).fit(X, y, checkpoint_dir=tmp_path)
    assert [r["epoch"] for r in second.report_.finetune] == [1, 2, 3]  # restored history, nothing rerun
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))


REFUSED = [
    ("nan", lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), y), {}, "NaN"),
    ("inf", lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 5, np.inf, X), y), {}, "NaN/Inf"),
    ("rank", lambda X, y: (X.reshape(-1), y), {}, "rank|empty|shape"),
    ("length", lambda X, y: (X, y[:-1]), {}, "same length"),
    ("negative label", lambda X, y: (X, y - 1), {}, "negative"),
    ("gap in labels", lambda X, y: (X, y + 1), {}, "no sample"),
    ("non-integer", lambda X, y: (X, y + 0.5), {"task": "classification"}, "integer"),
    ("single class", lambda X, y: (X, np.zeros_like(y)), {}, "single class"),
    ("empty", lambda X, y: (X[:0], y[:0]), {}, "empty"),
    ("dense shape", lambda X, y: (X, np.zeros((len(y), 7), np.float32)), {"task": "dense-regression"}, "spatial"),
    ("unknown body", lambda X, y: (X, y), {"body": "no-such-body"}, "unknown body"),
    ("hub offline", lambda X, y: (X, y), {"body": "nonexistent-org/nonexistent-model"}, "cannot load body"),
    ("unknown align", lambda X, y: (X, y), {"align": "magic"}, "unknown alignment"),
    ("unknown mode", lambda X, y: (X, y), {"mode": "magic"}, "unknown fine-tuning mode"),
]


@pytest.mark.parametrize("name,corrupt,kwargs,match", REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_input_refused_before_training(monkeypatch, name, corrupt, kwargs, match):
    import xmodal.estimator as est_mod

    X, y = _separable(n=12)
    Xb, yb = corrupt(X.astype(np.float64), y)
    monkeypatch.setattr(est_mod, "train_loop", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(XmodalError, match=match):
        CrossModalEstimator(**{**TINY, **kwargs}).fit(Xb, yb)


def test_predict_refuses_unfitted_and_wrong_layout():
    X, y = _separable(n=12)
    with pytest.raises(XmodalError, match="not fitted"):
        CrossModalEstimator(**TINY).predict(X)
    est = CrossModalEstimator(epochs=0, **TINY).fit(X, y)
    with pytest.raises(XmodalError, match="per-sample shape"):
        est.predict(X[:, :, :10])
    with pytest.raises(XmodalError, match="classes"):
        est.evaluate(X, np.full(len(y), 5))
    with pytest.raises(XmodalError, match="classification"):
        CrossModalEstimator(task="regression", epochs=0, **TINY).fit(X, y.astype(float)).predict_proba(X)
