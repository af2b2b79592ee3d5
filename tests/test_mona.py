"""MoNA stage 2: the losses on hand-made features, the differentiable inner step, and the stage in a run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xmodal import CrossModalEstimator
from xmodal.align.mona import alignment_loss, inner_update, source_features_through, uniformity_loss
from xmodal.errors import XmodalError
from xmodal.model import assemble, build_body, resolve_body
from xmodal.model.bodies import SourceTokens
from xmodal.train import AlignConfig, get_aligner

BASE = dict(body="vit-tiny-random", validation=0, max_tokens=16, batch_size=8, verbose=False, proxy="mnist")
TINY = dict(BASE, align="none")  # stage 2 is off unless a test asks for it


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path / "cache"))


def test_alignment_and_uniformity_on_hand_made_features():
    e = torch.eye(3)
    # same-class pairs: (e1, e1) at distance 0 and (e2, e3) at distance sqrt(2) → mean of 0 and 2
    z = torch.stack([e[0], e[0], e[1], e[2]])
    y = torch.tensor([0, 0, 1, 1])
    assert alignment_loss(z, y).item() == pytest.approx(1.0)
    assert alignment_loss(z, torch.tensor([0, 1, 2, 3])).item() == 0.0  # no same-class pair
    # two antipodal points: ‖z1 - z2‖² = 4 → log exp(-2·4) = -8
    assert uniformity_loss(torch.stack([e[0], -e[0]])).item() == pytest.approx(-8.0)
    # coincident points: log exp(0) = 0; spreading them lowers the loss
    assert uniformity_loss(torch.stack([e[0], e[0], e[0]])).item() == pytest.approx(0.0, abs=1e-6)
    spread = torch.stack([e[0], e[1], e[2], -e[0], -e[1], -e[2]])
    pairs = torch.pdist(spread).pow(2)
    ref = math.log(torch.exp(-2 * pairs).mean().item())
    assert uniformity_loss(spread).item() == pytest.approx(ref, rel=1e-6)
    with pytest.raises(XmodalError):
        uniformity_loss(e[:1])
    with pytest.raises(XmodalError):
        alignment_loss(z, y[:3])


def _tiny_model(dtype=torch.float64):
    torch.manual_seed(0)
    body = build_body(resolve_body("vit-tiny-random"))
    model = assemble(body, "classification", 3, (2, 20), max_tokens=16).to(dtype)
    model.eval()  # no dropout: the finite-difference check needs a deterministic function
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 2, 20, generator=gen, dtype=dtype)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    src = SourceTokens(torch.randn(8, 4, body.in_width, generator=gen, dtype=dtype), None, (2, 2))
    ys = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    return model, x, y, src, ys


def _source_loss(model, x, y, src, ys, lr):
    params, _ = inner_update(model, x, y, lr)
    z = source_features_through(model.body, params, src)
    return alignment_loss(z, ys) + uniformity_loss(z)


def test_inner_step_changes_the_encoder_and_carries_the_gradient_to_the_embedder():
    model, x, y, src, ys = _tiny_model()
    w = model.embedder.projection.weight
    params, _ = inner_update(model, x, y, lr=0.5)
    moved = max((params[n] - p).abs().max().item() for n, p in model.body.named_parameters())
    assert moved > 1e-4  # the outer loss sees a different body
    loss = _source_loss(model, x, y, src, ys, lr=0.5)
    (g,) = torch.autograd.grad(loss, [w])
    assert g.abs().max() > 1e-8
    # without the inner step the source loss does not depend on the embedder at all
    z0 = source_features_through(model.body, dict(model.body.named_parameters()), src)
    g0 = torch.autograd.grad(alignment_loss(z0, ys) + uniformity_loss(z0), [w], allow_unused=True)[0]
    assert g0 is None or g0.abs().max() == 0
    # the second-order gradient matches central finite differences on a few entries (float64 end to end)
    for idx in [(0, 0, 0), (3, 1, 0), (7, 0, 1)]:
        h = 1e-4
        with torch.no_grad():
            w[idx] += h
        up = _source_loss(model, x, y, src, ys, lr=0.5).item()
        with torch.no_grad():
            w[idx] -= 2 * h
        down = _source_loss(model, x, y, src, ys, lr=0.5).item()
        with torch.no_grad():
            w[idx] += h
        assert g[idx].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-10)


def test_more_inner_steps_move_the_encoder_further():
    model, x, y, *_ = _tiny_model()
    base = dict(model.body.named_parameters())
    one, _ = inner_update(model, x, y, lr=0.2, steps=1)
    three, _ = inner_update(model, x, y, lr=0.2, steps=3)
    dist = lambda p: sum(((p[n] - base[n]) ** 2).sum() for n in base).sqrt().item()  # noqa: E731
    assert dist(three) > dist(one) > 0


def _task(n=24, length=20, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 2, length)).astype(np.float32) + y[:, None, None]
    return X, y


def test_mona_stage_trains_embedder_and_head_only_and_logs_each_epoch():
    X, y = _task()
    est = CrossModalEstimator(align="mona", align_epochs=3, align_steps=2, align_lr=1e-3, epochs=0, **BASE)
    est.fit(X, y)
    rep = est.report_.align
    assert rep["objective"] == "mona" and len(rep["history"]) == 3
    assert {"target_loss", "source_align", "source_uniform"} <= set(rep["history"][0])
    torch.manual_seed(0)
    fresh = assemble(build_body(resolve_body("vit-tiny-random")), "classification", 3, (2, 20), max_tokens=16)
    for a, b in zip(est.model_.body.parameters(), fresh.body.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (est.model_.embedder.projection.weight - fresh.embedder.projection.weight).abs().max() > 1e-5
    assert all(p.requires_grad for p in est.model_.parameters())  # flags restored


def test_mona_options_are_checked():
    aligner = get_aligner("mona")
    with pytest.raises(XmodalError, match="unknown MoNA options"):
        aligner.check_options({"lamda": 1.0})
    with pytest.raises(XmodalError, match="out of range"):
        aligner.check_options({"inner_lr": 0})
    aligner.check_options({"lam": 0.5, "source_batch": 8})
    assert AlignConfig(options={"lam": 0.5}).options["lam"] == 0.5


def test_bad_mona_options_are_refused_before_training(monkeypatch):
    import xmodal.estimator.runs as estimator

    monkeypatch.setattr(estimator, "build_body", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    X, y = _task()
    with pytest.raises(XmodalError, match="unknown MoNA options"):
        CrossModalEstimator(strategy="mona", align_options={"lambda": 1}, **BASE).fit(X, y)


def test_selected_source_batch_is_cut_to_its_longest_sentence_without_changing_features():
    from xmodal.model.bodies.base import SourceTokens, body_from_config

    torch.manual_seed(0)
    body = body_from_config("language", {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
                                         "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100,
                                         "max_position_embeddings": 64}).eval()
    lengths = torch.tensor([3, 12, 5, 7])
    mask = (torch.arange(12).unsqueeze(0) < lengths.unsqueeze(1)).long()
    src = SourceTokens(torch.randn(4, 12, 32), mask, (12,))
    part = src.select(torch.tensor([0, 2, 3]))
    assert part.tokens.shape == (3, 7, 32) and part.grid == (7,) and part.mask.shape == (3, 7)
    with torch.no_grad():
        full = body.encode_source(src)[[0, 2, 3]]
        cut = body.encode_source(part)
    torch.testing.assert_close(cut, full, rtol=1e-5, atol=1e-6)
