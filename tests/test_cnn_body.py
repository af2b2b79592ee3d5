"""The CNN body family (EfficientNet-Lite): built from its config alone (random weights, no pretrained
files), pooled and dense heads on tiny inputs, save/load, refused ranks, the pretrained stem's proxy
features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("efficientnet_lite_pytorch", reason="the CNN body needs pip install 'xmodal[vision]'")

from xmodal import CrossModalEstimator, load  # noqa: E402
from xmodal.errors import XmodalError  # noqa: E402
from xmodal.model import assemble  # noqa: E402
from xmodal.model.bodies import FAMILIES, BodySource, build_body  # noqa: E402
from xmodal.model.bodies.cnn import EfficientNetBody, efficientnet_available  # noqa: E402

RANDOM = BodySource("efficientnet-random", "efficientnet", config={"model_name": "efficientnet-lite0"})


def test_the_body_is_the_network_after_its_stem():
    body = build_body(RANDOM, pretrained=False)
    assert isinstance(body, EfficientNetBody) and FAMILIES["efficientnet"] is EfficientNetBody
    assert (body.in_width, body.out_width) == (32, 1280)
    assert not any(k.startswith("model._conv_stem") or k.startswith("model._fc") for k in body.state_dict())
    tokens = torch.randn(2, 6 * 5, 32)
    out = body(tokens, (6, 5))
    assert out.shape == (2, 30, 1280) and torch.isfinite(out).all()  # upsampled back to the token grid
    out_1d = body(torch.randn(2, 9, 32), (9,))  # a series is a one-row image
    assert out_1d.shape == (2, 9, 1280)


def test_dense_features_resolve_the_token_grid():
    """On a 16 × 16 grid the last map is 1 × 1: alone it gives every token the same feature. Dense tasks get
    hypercolumns, whose finer levels differ between tokens; pooled tasks keep the last map's 1280 channels."""
    torch.manual_seed(0)
    body = build_body(RANDOM, pretrained=False).eval()
    tokens = torch.randn(2, 16 * 16, 32)
    last = body(tokens, (16, 16))
    assert last.shape == (2, 256, 1280) and last.std(dim=1).max() < 1e-5  # one feature for the whole field
    dense = assemble(body, "dense-regression", 1, (1, 16, 16), max_tokens=256)
    assert dense.head.linear.in_features == body.out_width == 1280 + 16 + 24 + 40 + 112
    hyper = body(tokens, (16, 16))
    torch.testing.assert_close(hyper[..., :1280], last)  # the last map is kept, the finer levels added
    assert hyper[..., 1280:].std(dim=1).mean() > 1e-3
    field = dense(torch.randn(2, 1, 16, 16))
    assert field.flatten(2).std(dim=2).min() > 1e-4  # the predicted field varies over the grid


@pytest.mark.parametrize("task, y_shape, out_shape", [
    ("classification", (4,), (4, 3)),
    ("dense-regression", (4, 1, 12, 12), (4, 1, 12, 12)),
])
def test_pooled_and_dense_heads_on_tiny_images(task, y_shape, out_shape):
    torch.manual_seed(0)
    body = build_body(RANDOM, pretrained=False)
    k = 3 if task == "classification" else 1
    model = assemble(body, task, k, (1, 12, 12), max_tokens=36)
    out = model(torch.randn(4, 1, 12, 12))
    assert out.shape == out_shape
    loss = model.kind.loss(out, torch.randint(0, 3, y_shape) if task == "classification" else torch.randn(y_shape))
    loss.backward()
    assert model.embedder.projection.weight.grad is not None


@pytest.mark.skipif(not efficientnet_available(), reason="EfficientNet-Lite0's pretrained weights are not installed")
@pytest.mark.parametrize("dense", [False, True])
def test_saves_and_loads_from_its_config_alone(tmp_path, monkeypatch, dense):
    import xmodal.model.bodies.cnn as cnn

    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 1, 8, 8)).astype(np.float32)
    y = X.cumsum(axis=-1) if dense else (X.mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    est = CrossModalEstimator(body="efficientnet-lite0", strategy="finetune", epochs=1, batch_size=8, max_tokens=16,
                              validation=0, verbose=False, task="dense-regression" if dense else "auto").fit(X, y)
    est.save(tmp_path / "m")
    monkeypatch.setattr(cnn, "_pretrained_state", lambda *a: pytest.fail("load read the pretrained weights"))
    again = load(tmp_path / "m")
    predict = again.predict if dense else again.predict_proba
    np.testing.assert_allclose(predict(X), (est.predict if dense else est.predict_proba)(X), atol=1e-5)
    assert isinstance(again.model_.body, EfficientNetBody) and again.model_.body.hypercolumns == dense


def test_three_dimensional_inputs_are_refused_before_any_weights_load(monkeypatch):
    import xmodal.estimator.runs as runs

    monkeypatch.setattr(runs, "build_body", lambda *a, **k: pytest.fail("weights were loaded"))
    X = np.zeros((6, 1, 4, 4, 4), np.float32)
    with pytest.raises(XmodalError, match="1 or 2 spatial axes, but X has 3"):
        CrossModalEstimator(body="efficientnet-lite0", epochs=1, validation=0).fit(X, np.arange(6) % 2)


@pytest.mark.skipif(not efficientnet_available(), reason="EfficientNet-Lite0's pretrained weights are not installed")
def test_the_pretrained_stem_embeds_the_vision_proxy():
    from xmodal.data.proxies import get_proxy

    body = build_body(BodySource("efficientnet-lite0", "efficientnet", config={"model_name": "efficientnet-lite0"}))
    proxy = get_proxy("mnist")
    part = proxy.subset(np.arange(40))
    feats = body.source_features(part)
    assert feats.shape == (40, 32) and torch.isfinite(feats).all()
    src = body.source_tokens(part)
    assert src.tokens.shape[0] == 40 and src.tokens.shape[2] == 32
    torch.testing.assert_close(src.tokens.mean(1), feats, rtol=1e-4, atol=1e-5)
    # the ReLU6 stem of a pretrained network: non-negative, bounded, not constant across digits
    assert float(feats.min()) >= 0 and float(feats.max()) <= 6 and float(feats.std(0).mean()) > 1e-3


def test_automatic_tokens_learning_rate_and_steps_are_the_familys_own():
    """A CNN's automatic token budget is its full stem grid, its learning rate Adam's CNN rate and its step
    target larger than a transformer's; set values are kept, and transformer families keep the rule's. The
    suite's transformer-chosen tokens and rate are left automatic for the CNN only; its epochs and batch size
    (the budget) stay."""
    from xmodal.config import RunConfig
    from xmodal.defaults import RULE, resolve_settings
    from xmodal.experiments.suite import settings_for_body

    cnn, _ = resolve_settings(RunConfig(), 1000, (28, 28), body=EfficientNetBody)
    assert (cnn.max_tokens, cnn.lr) == (28 * 28, EfficientNetBody.auto_lr) and cnn.lr > RULE.lr
    big, _ = resolve_settings(RunConfig(), 1000, (85, 85), body=EfficientNetBody)
    assert big.max_tokens == EfficientNetBody.auto_tokens == 56 * 56
    kept, auto = resolve_settings(RunConfig(max_tokens=16, lr=1e-4), 1000, (28, 28), body=EfficientNetBody)
    assert (kept.max_tokens, kept.lr) == (16, 1e-4) and "max_tokens" not in auto
    lm, _ = resolve_settings(RunConfig(), 1000, (28, 28), body=FAMILIES["language"])
    assert (lm.max_tokens, lm.lr) == (RULE.tokens, RULE.lr)
    # the CNN's step target: more passes over the same 1000 rows (batch 32 for both), within the samples cap
    assert EfficientNetBody.auto_steps > RULE.steps and cnn.batch_size == lm.batch_size == 32
    assert lm.epochs * 32 >= RULE.steps and cnn.epochs * 32 >= EfficientNetBody.auto_steps and cnn.epochs > lm.epochs
    assert cnn.epochs * 1000 <= RULE.max_samples
    suite = dict(max_tokens=16, epochs=3, batch_size=32, lr=2e-4)
    assert settings_for_body(suite, "minilm-l6") == suite
    if efficientnet_available():
        assert settings_for_body(suite, "efficientnet-lite0") == dict(epochs=3, batch_size=32)
