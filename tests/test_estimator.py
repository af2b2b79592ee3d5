"""CrossModalEstimator end to end on tiny data: learning, exact repeats, persistence, layouts,
alignment, checkpoint resume, and inputs refused at the boundary (before any weights load)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import xmodal.estimator.runs as est_mod  # where the training runs build bodies
from xmodal import CrossModalEstimator, XmodalError, load

BASE = dict(body="vit-tiny-random", validation=0, max_tokens=8, batch_size=8, device="cpu", verbose=False)
TINY = dict(BASE, align="none")  # stage 2 is off unless a test asks for it


def sign_of_mean(n=48, length=16, seed=0):
    """A learnable 1-D task: is the series' mean positive? (means kept away from 0)."""
    rng = np.random.default_rng(seed)
    shift = rng.uniform(0.3, 1.0, n) * rng.choice([-1.0, 1.0], n)
    X = (rng.normal(size=(n, 1, length)) + shift[:, None, None]).astype(np.float32)
    return X, (X.mean(axis=(1, 2)) > 0).astype(np.int64)


@pytest.fixture()
def no_weights(monkeypatch):
    """Fail the test if fit gets as far as building (loading) a body."""

    def refuse(*args, **kwargs):
        pytest.fail("build_body was called: the input should have been refused before any weights load")

    monkeypatch.setattr(est_mod, "build_body", refuse)
    monkeypatch.setattr(est_mod, "train_loop", lambda *a, **k: pytest.fail("training started"))


@pytest.fixture()
def hub_offline(monkeypatch):
    """Make hub look-ups fail at once instead of timing out on a network this machine may not have."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


# ------------------------------------------------------------------ learning and repeatability


def test_finetuning_loss_falls_on_a_learnable_task():
    X, y = sign_of_mean()
    est = CrossModalEstimator(epochs=5, lr=1e-3, **TINY).fit(X, y)
    losses = [r["loss"] for r in est.report_.finetune]
    assert [r["epoch"] for r in est.report_.finetune] == [1, 2, 3, 4, 5]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]
    assert est.score(X, y) >= 0.9
    assert set(est.report_.seconds) == {"build", "align", "finetune"}
    assert est.task_ == "classification" and est.n_outputs_ == 2


def test_cpu_runs_repeat_exactly_with_the_same_seed():
    X, y = sign_of_mean(n=24)
    kw = dict(epochs=2, lr=1e-3, **TINY)
    a = CrossModalEstimator(seed=3, **kw).fit(X, y)
    b = CrossModalEstimator(seed=3, **kw).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert [r["loss"] for r in a.report_.finetune] == [r["loss"] for r in b.report_.finetune]
    c = CrossModalEstimator(seed=4, **kw).fit(X, y)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


# ------------------------------------------------------------------ layouts and persistence


def _targets(kind, X, rng):
    if kind == "classification":
        return (X.mean(axis=(1, 2)) > 0).astype(int)
    if kind == "regression":
        return X.mean(axis=(1, 2)).astype(np.float64)  # (N,)
    return np.cumsum(X[:, 0], axis=-1)  # dense-regression, (N, L)


@pytest.mark.parametrize("task", ["classification", "regression", "dense-regression"])
def test_save_load_gives_identical_predictions(tmp_path, task):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 1, 12)).astype(np.float32)
    y = _targets(task, X, rng)
    est = CrossModalEstimator(task=task, epochs=1, **TINY).fit(X, y)
    pred = est.predict(X)
    assert pred.shape == y.shape  # (N,) labels, (N,) values, (N, L) maps
    folder = est.save(tmp_path / "m")
    for name in ("config.json", "body_config.json", "model.safetensors", "fit_report.json"):
        assert (folder / name).is_file(), name
    again = load(folder, device="cpu")
    assert again.task_ == task and again.get_params()["body"] == "vit-tiny-random"
    np.testing.assert_array_equal(again.predict(X), pred)
    if task == "classification":
        np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
        assert again.score(X, y) == est.score(X, y)
    else:  # scikit-learn's convention: a regressor has no predict_proba
        assert not hasattr(again, "predict_proba")


LAYOUTS = [
    # (task, X per-sample shape, spatial_dims, y maker, expected predict shape per sample)
    ("classification", (1, 10), None, lambda n, r: np.arange(n) % 3, ()),
    ("multilabel", (2, 10), None, lambda n, r: np.eye(3, dtype=int)[np.arange(n) % 3], (3,)),
    ("regression", (1, 10), None, lambda n, r: r.normal(size=n), ()),
    ("regression", (1, 10), None, lambda n, r: r.normal(size=(n, 1)), (1,)),
    ("regression", (7,), None, lambda n, r: r.normal(size=(n, 2)), (2,)),  # tabular rows
    ("dense-classification", (1, 10), None, lambda n, r: np.arange(n * 10).reshape(n, 10) % 3, (10,)),
    ("dense-regression", (1, 10), None, lambda n, r: r.normal(size=(n, 10)), (10,)),
    ("dense-regression", (1, 10), None, lambda n, r: r.normal(size=(n, 2, 10)), (2, 10)),
    ("dense-regression", (6, 5), 2, lambda n, r: r.normal(size=(n, 6, 5)), (6, 5)),  # channel-less images
    ("dense-regression", (6, 5), 2, lambda n, r: r.normal(size=(n, 1, 6, 5)), (1, 6, 5)),
]


@pytest.mark.parametrize("task,sample,spatial_dims,make_y,per_sample", LAYOUTS)
def test_predict_returns_the_users_layout(task, sample, spatial_dims, make_y, per_sample):
    rng = np.random.default_rng(0)
    n = 9
    X = rng.normal(size=(n, *sample)).astype(np.float32)
    y = make_y(n, rng)
    est = CrossModalEstimator(task="auto", spatial_dims=spatial_dims, epochs=0, **TINY).fit(X, y)
    assert est.task_ == task
    pred = est.predict(X)
    assert pred.shape == (n, *per_sample)
    if task in ("classification", "dense-classification"):
        assert pred.dtype == np.int64 and set(np.unique(pred)) <= {0, 1, 2}
        proba = est.predict_proba(X)
        k_axis = proba.shape[1]
        assert k_axis == 3
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    elif task == "multilabel":
        assert set(np.unique(pred)) <= {0.0, 1.0}
        proba = est.predict_proba(X)
        assert proba.shape == (n, 3) and ((proba >= 0) & (proba <= 1)).all()
    else:
        with pytest.raises(AttributeError, match="predict_proba"):
            est.predict_proba(X)


def test_regression_predictions_are_in_the_users_units():
    # targets far from 0 with a large spread: predictions must be decoded from standardised units
    X, _ = sign_of_mean(n=16)
    y = 1000.0 + 50.0 * X.mean(axis=(1, 2))
    est = CrossModalEstimator(task="regression", epochs=0, **TINY).fit(X, y)
    pred = est.predict(X)
    assert pred.shape == (16,)
    assert abs(pred.mean() - 1000.0) < 100.0


# ------------------------------------------------------------------ stage 2


def test_warmup_moves_the_embedder_and_leaves_the_body_unchanged():
    X, y = sign_of_mean(n=16)
    plain = CrossModalEstimator(align="none", epochs=0, **BASE).fit(X, y)
    warm = CrossModalEstimator(align="warmup", align_epochs=2, align_lr=1e-2, epochs=0, **BASE).fit(X, y)
    assert [r["epoch"] for r in warm.report_.align["history"]] == [1, 2]
    assert plain.report_.align["history"] == []
    body_a, body_b = plain.model_.body.state_dict(), warm.model_.body.state_dict()
    assert body_a.keys() == body_b.keys()
    for key in body_a:
        torch.testing.assert_close(body_a[key], body_b[key], rtol=0, atol=0, msg=key)
    moved = warm.model_.embedder.projection.weight - plain.model_.embedder.projection.weight
    assert moved.abs().max() > 1e-4
    assert not torch.equal(warm.model_.embedder.position, plain.model_.embedder.position)
    # stage 2 froze nothing for good: every parameter is trainable again afterwards
    assert all(p.requires_grad for p in warm.model_.parameters())


def test_scratch_mode_builds_a_random_body(monkeypatch):
    calls = []
    real = est_mod.build_body

    def spy(source, pretrained=True):
        calls.append(pretrained)
        return real(source, pretrained=pretrained)

    monkeypatch.setattr(est_mod, "build_body", spy)
    X, y = sign_of_mean(n=12)
    for mode in ("full", "fpt", "frozen", "scratch"):
        CrossModalEstimator(mode=mode, epochs=1, **TINY).fit(X, y)
    assert calls == [True, True, True, False]


def test_frozen_mode_leaves_the_body_unchanged():
    X, y = sign_of_mean(n=16)
    before = CrossModalEstimator(epochs=0, **TINY).fit(X, y).model_.body.state_dict()
    after = CrossModalEstimator(mode="frozen", epochs=2, lr=1e-2, **TINY).fit(X, y).model_.body.state_dict()
    for key in before:
        torch.testing.assert_close(before[key], after[key], rtol=0, atol=0, msg=key)


# ------------------------------------------------------------------ checkpoints and resume

CKPT = "finetune.ckpt.safetensors"


def test_rerun_of_a_finished_run_trains_nothing_and_predicts_the_same(tmp_path):
    X, y = sign_of_mean(n=16)
    first = CrossModalEstimator(epochs=3, align="warmup", align_epochs=1, **BASE).fit(X, y, checkpoint_dir=tmp_path)
    assert (tmp_path / CKPT).is_file() and (tmp_path / "aligned.safetensors").is_file()
    second = CrossModalEstimator(epochs=3, align="warmup", align_epochs=1, **BASE).fit(X, y, checkpoint_dir=tmp_path)
    # the records come back from the checkpoint (timings included): no epoch was run again
    assert second.report_.finetune == first.report_.finetune
    assert second.report_.align == first.report_.align  # stage-2 history restored, not rerun
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    X, y = sign_of_mean(n=24)
    kw = dict(epochs=3, lr=1e-3, **TINY)
    reference = CrossModalEstimator(**kw).fit(X, y)

    def interrupt_in_epoch_2(record):
        if record["epoch"] == 2:  # before epoch 2's checkpoint is written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        CrossModalEstimator(**kw).fit(X, y, checkpoint_dir=tmp_path, on_epoch=interrupt_in_epoch_2)
    assert (tmp_path / CKPT).is_file()
    assert not (tmp_path / (CKPT + ".tmp")).exists()

    resumed = CrossModalEstimator(**kw).fit(X, y, checkpoint_dir=tmp_path)
    assert [r["epoch"] for r in resumed.report_.finetune] == [1, 2, 3]
    assert [r["loss"] for r in resumed.report_.finetune] == [r["loss"] for r in reference.report_.finetune]
    assert [r["lr"] for r in resumed.report_.finetune] == [r["lr"] for r in reference.report_.finetune]
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))


def test_changed_epochs_are_refused_on_resume(tmp_path):
    # the warm-up/decay schedule depends on the total epochs, so a resumed run must keep them
    X, y = sign_of_mean(n=16)
    CrossModalEstimator(epochs=2, **TINY).fit(X, y, checkpoint_dir=tmp_path)
    with pytest.raises(XmodalError, match="other settings.*epochs"):
        CrossModalEstimator(epochs=4, **TINY).fit(X, y, checkpoint_dir=tmp_path)


def test_checkpoint_from_other_settings_is_refused_clearly(tmp_path):
    X, y = sign_of_mean(n=16)
    CrossModalEstimator(epochs=1, **TINY).fit(X, y, checkpoint_dir=tmp_path)
    with pytest.raises(XmodalError, match="checkpoint"):
        CrossModalEstimator(epochs=1, **{**TINY, "max_tokens": 4}).fit(X, y, checkpoint_dir=tmp_path)


# ------------------------------------------------------------------ refused inputs


def _nan(X, y):
    X = X.copy()
    X[3, 0, 5] = np.nan
    return X, y


REFUSED = [
    ("unknown body", lambda X, y: (X, y), {"body": "no-such-body"}, "unknown body"),
    ("hub id offline", lambda X, y: (X, y), {"body": "nonexistent-org/nonexistent-model"}, "cannot load body"),
    ("unknown align", lambda X, y: (X, y), {"align": "otdd-magic"}, "unknown alignment"),
    ("unknown mode", lambda X, y: (X, y), {"mode": "lora"}, "unknown fine-tuning mode"),
    ("unknown task", lambda X, y: (X, y), {"task": "ranking"}, "unknown task"),
    ("bad epochs", lambda X, y: (X, y), {"epochs": -1}, "epochs"),
    ("bad align epochs", lambda X, y: (X, y), {"align_epochs": -1}, "align_epochs must be"),
    ("bad spatial_dims", lambda X, y: (X, y), {"spatial_dims": 4}, "spatial_dims"),
    ("NaN in X", _nan, {}, "NaN"),
    ("rank 1 X", lambda X, y: (X.reshape(-1), y), {}, "rank"),
    ("length mismatch", lambda X, y: (X, y[:-1]), {}, "same length"),
    ("single class", lambda X, y: (X, np.ones_like(y)), {}, "one class"),
    ("non-integer labels", lambda X, y: (X, y + 0.5), {"task": "classification"}, "integer"),
    ("mixed object labels", lambda X, y: (X, np.array([1 if v else "a" for v in y], dtype=object)), {}, "dtype"),
    ("single text label", lambda X, y: (X, np.full(len(y), "a")), {}, "one class"),
    ("multilabel not 0/1", lambda X, y: (X, np.stack([y, 2 * y], 1)), {"task": "multilabel"}, "0 and 1"),
    (
        "dense shape",
        lambda X, y: (X, np.zeros((len(y), X.shape[-1] + 1), np.float32)),
        {"task": "dense-regression"},
        "spatial shape",
    ),
    ("dense labels shape", lambda X, y: (X, np.zeros((len(y), 3), int)), {"task": "dense-classification"}, "spatial"),
]


@pytest.mark.parametrize("labels", [("no", "yes"), (-1, 1), (3, 7), (1.0, 2.0)], ids=["text", "signed", "gap", "float"])
def test_labels_outside_0_to_k_come_back_as_given(tmp_path, labels):
    """Like scikit-learn's classifiers: any label space is mapped to 0..K-1 and predictions map back."""
    X, y = sign_of_mean(n=24)
    y_user = np.asarray(labels)[y]
    est = CrossModalEstimator(**TINY).fit(X, y_user)
    assert est.task_ == "classification" and est.classes_.tolist() == sorted(labels)
    pred = est.predict(X)
    assert set(pred.tolist()) <= set(labels) and pred.dtype.kind == y_user.dtype.kind
    acc = est.score(X, y_user)
    assert acc == pytest.approx(float((pred == y_user).mean()))
    assert est.predict_proba(X).shape == (24, 2)  # columns in the order of classes_
    same = load(est.save(tmp_path / "m"))
    np.testing.assert_array_equal(same.predict(X), pred)
    assert same.score(X, y_user) == pytest.approx(acc)
    with pytest.raises(XmodalError, match="not fitted on"):
        est.score(X[:2], np.asarray([labels[0], "maybe" if isinstance(labels[0], str) else 99]))


def test_model_folders_saved_before_classes_were_recorded_still_load(tmp_path):
    X, y = sign_of_mean(n=24)
    est = CrossModalEstimator(**TINY).fit(X, y)
    path = est.save(tmp_path / "old")
    config = json.loads((path / "config.json").read_text())
    del config["classes"]
    (path / "config.json").write_text(json.dumps(config))
    old = load(path)
    assert old.classes_.tolist() == [0, 1]
    np.testing.assert_array_equal(old.predict(X), est.predict(X))


def test_labels_already_0_to_k_keep_their_indices():
    X, y = sign_of_mean(n=24)
    est = CrossModalEstimator(**TINY).fit(X, y)
    assert est.classes_.tolist() == [0, 1] and set(est.predict(X).tolist()) <= {0, 1}


@pytest.mark.parametrize("name,corrupt,kwargs,match", REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_input_refused_before_any_weights_load(no_weights, hub_offline, name, corrupt, kwargs, match):
    X, y = sign_of_mean(n=12)
    Xb, yb = corrupt(X, y)
    est = CrossModalEstimator(**{**TINY, **kwargs})
    with pytest.raises(XmodalError, match=match):
        est.fit(Xb, yb)
    assert not hasattr(est, "model_")


@pytest.mark.parametrize(
    "kwargs,make_y",
    [
        ({"body": "swin-tiny-random", "task": "dense-regression"}, lambda X, y: X[:, 0]),
        ({"max_tokens": 0}, lambda X, y: y),
    ],
    ids=["swin-dense", "max_tokens-0"],
)
def test_late_checks_also_happen_before_weights_load(no_weights, kwargs, make_y):
    X, y = sign_of_mean(n=12)
    with pytest.raises(XmodalError):
        CrossModalEstimator(**{**TINY, **kwargs}).fit(X, make_y(X, y))


def test_swin_dense_task_refused():
    X, _ = sign_of_mean(n=12)
    with pytest.raises(XmodalError, match="merges tokens"):
        CrossModalEstimator(**{**TINY, "body": "swin-tiny-random"}, task="dense-regression", epochs=0).fit(X, X[:, 0])


def test_unfitted_estimator_refuses_to_predict(tmp_path):
    X, y = sign_of_mean(n=8)
    est = CrossModalEstimator(**TINY)
    for call in (
        lambda: est.predict(X),
        lambda: est.predict_proba(X),
        lambda: est.evaluate(X, y),
        lambda: est.score(X, y),
        lambda: est.save(tmp_path / "m"),
    ):
        with pytest.raises(XmodalError, match="not fitted"):
            call()


@pytest.fixture(scope="module")
def fitted():
    X, y = sign_of_mean(n=16)
    return CrossModalEstimator(epochs=0, **TINY).fit(X, y), X, y


@pytest.mark.parametrize(
    "bad,match",
    [
        (lambda X: X[:, :, :10], "per-sample shape"),
        (lambda X: np.concatenate([X, X], axis=1), "per-sample shape"),
        (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 0, np.inf, X), "NaN/Inf"),
        (lambda X: X[:0], "empty"),
    ],
    ids=["shorter", "more channels", "inf", "empty"],
)
def test_predict_refuses_wrong_inputs(fitted, bad, match):
    est, X, _ = fitted
    with pytest.raises(XmodalError, match=match):
        est.predict(bad(X))


def test_evaluate_refuses_labels_the_model_does_not_know(fitted):
    est, X, y = fitted
    with pytest.raises(XmodalError, match="2 classes"):
        est.evaluate(X, np.where(y == 1, 2, y))
    with pytest.raises(XmodalError, match="same length"):
        est.evaluate(X, y[:-1])
    with pytest.raises(XmodalError, match=r"label\(s\) \[-1\] that the model was not fitted on"):
        est.evaluate(X, y - 1)
    result = est.evaluate(X, y, ["accuracy", "macro_f1"])
    assert set(result) == {"accuracy", "macro_f1"} and 0.0 <= result["accuracy"] <= 1.0


def test_evaluate_accepts_a_test_set_with_one_class(fitted):
    est, X, y = fitted
    ones = y == 1
    acc = est.score(X[ones], y[ones])
    assert acc == pytest.approx(float((est.predict(X[ones]) == 1).mean()))
    assert est.score(X[:1], y[:1]) in (0.0, 1.0)


def test_set_params_and_get_params():
    est = CrossModalEstimator(**TINY)
    assert est.set_params(epochs=3) is est and est.get_params()["epochs"] == 3
    with pytest.raises(XmodalError, match="unknown parameter"):
        est.set_params(epoch=3)
    json.dumps(est.get_params())  # saved with the model: must be JSON
