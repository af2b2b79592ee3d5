"""The assembled model h ∘ g ∘ f: output shapes for every input rank and task kind, body families,
initialisation of the embedder from the body, and which parameters each fine-tuning mode trains."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xmodal.data.validation import check_Xy
from xmodal.errors import XmodalError
from xmodal.model import assemble, build_body, resolve_body
from xmodal.model.embedder import choose_patch_size
from xmodal.tasks import get_task_kind
from xmodal.train.modes import MODES, get_mode

TASKS = ["classification", "multilabel", "regression", "dense-classification", "dense-regression"]
# user layouts: (N, F) tabular rows, (N, C, L), (N, C, H, W), (N, C, D, H, W)
LAYOUTS = {"tabular": (30,), "1d": (2, 37), "2d": (2, 9, 11), "3d": (1, 5, 6, 7)}
N, K = 6, 3


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return build_body(resolve_body("vit-tiny-random"))


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    return build_body(resolve_body("swin-tiny-random"))


@pytest.fixture(scope="module")
def minilm():
    torch.manual_seed(0)
    return build_body(resolve_body("minilm-l6"))


def make_data(layout: str, task: str, seed: int = 0):
    """User-layout X and targets y for a task: every class present, 0/1 multilabel, real values."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, *LAYOUTS[layout])).astype(np.float32)
    spatial = LAYOUTS[layout] if layout == "tabular" else LAYOUTS[layout][1:]
    if task == "classification":
        y = np.arange(N) % K
    elif task == "multilabel":
        y = rng.integers(0, 2, size=(N, K))
    elif task == "regression":
        y = rng.normal(size=(N, K))
    elif task == "dense-classification":
        y = rng.integers(0, K, size=(N, *spatial))
        y.reshape(-1)[:K] = np.arange(K)
    else:
        y = rng.normal(size=(N, K, *spatial)).astype(np.float32)
    return X, y, spatial


def check_forward(body, layout, task, max_tokens=16):
    X, y, spatial = make_data(layout, task)
    Xc, yc, name, k = check_Xy(X, y, task)
    assert (name, k) == (task, K)
    assert tuple(Xc.shape[2:]) == spatial
    model = assemble(body, task, k, Xc.shape[1:], max_tokens=max_tokens)
    assert math.prod(model.grid) <= max_tokens
    assert model.spec.patch_size == model.embedder.k == choose_patch_size(spatial, min(max_tokens, body.max_tokens))
    out = model(torch.from_numpy(Xc))
    kind = get_task_kind(task)
    assert tuple(out.shape) == ((N, K, *spatial) if kind.dense else (N, K))
    # the canonical targets fit the raw output: the loss is a finite scalar that reaches the embedder
    loss = kind.loss(out, torch.from_numpy(yc))
    assert loss.ndim == 0 and torch.isfinite(loss)
    model.zero_grad()
    loss.backward()
    assert model.embedder.projection.weight.grad is not None
    assert model.embedder.projection.weight.grad.abs().sum() > 0
    with torch.no_grad():
        pred = kind.predict(model.decode(out))
    assert tuple(pred.shape) == tuple(yc.shape)
    return model


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_vit_output_shapes_every_rank_and_task(vit, layout, task):
    check_forward(vit, layout, task)


@pytest.mark.parametrize("task", ["classification", "dense-regression", "dense-classification"])
@pytest.mark.parametrize("layout", ["1d", "2d"])
def test_language_body_output_shapes(minilm, layout, task):
    model = check_forward(minilm, layout, task)
    assert model.body.family == "language"
    assert model.embedder.width == minilm.in_width == 384


def test_prime_length_is_padded_not_collapsed(vit):
    model = assemble(vit, "dense-regression", 1, (1, 521), max_tokens=256)
    assert model.embedder.k == 3 and model.grid == (174,)
    assert tuple(model(torch.randn(2, 1, 521)).shape) == (2, 1, 521)


def test_max_tokens_defaults_to_and_is_capped_by_the_body(vit):
    assert assemble(vit, "classification", 2, (1, 1000)).spec.max_tokens == vit.max_tokens == 256
    model = assemble(vit, "classification", 2, (1, 1000), max_tokens=10_000)
    assert model.spec.max_tokens == 256 and math.prod(model.grid) <= 256


def test_assemble_refuses_a_zero_token_budget(vit):
    with pytest.raises(XmodalError, match="max_tokens"):
        assemble(vit, "classification", 2, (1, 20), max_tokens=0)


# ------------------------------------------------------------------ Swin: pooled only


@pytest.mark.parametrize("task", ["dense-classification", "dense-regression"])
def test_swin_refuses_dense_tasks(swin, task):
    with pytest.raises(XmodalError, match="merges tokens"):
        assemble(swin, task, 2, (1, 8, 8), max_tokens=16)


@pytest.mark.parametrize(
    "layout,task", [("1d", "classification"), ("2d", "classification"), ("3d", "regression"), ("tabular", "multilabel")]
)
def test_swin_pooled_tasks(swin, layout, task):
    model = check_forward(swin, layout, task)
    assert not model.body.keeps_tokens


def test_swin_2d_grid_larger_than_a_window(swin):
    # 12 x 12 tokens: more than one 4 x 4 window and not a multiple of window * 2 (padded inside the body)
    model = assemble(swin, "classification", 4, (1, 12, 12), max_tokens=256)
    assert model.grid == (12, 12)
    assert tuple(model(torch.randn(2, 1, 12, 12)).shape) == (2, 4)


# ------------------------------------------------------------------ initialisation from the body


def test_language_embedder_starts_from_bert_position_and_norm(minilm):
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(resolve_body("minilm-l6").location)
    emb = bert.embeddings
    model = assemble(minilm, "classification", 2, (1, 40), max_tokens=16)
    t = math.prod(model.grid)
    assert t == 14  # k = 3
    expected = emb.position_embeddings.weight[:t] + emb.token_type_embeddings.weight[0]
    torch.testing.assert_close(model.embedder.position.data, expected.detach(), rtol=0, atol=0)
    torch.testing.assert_close(model.embedder.norm.weight.data, emb.LayerNorm.weight.data, rtol=0, atol=0)
    torch.testing.assert_close(model.embedder.norm.bias.data, emb.LayerNorm.bias.data, rtol=0, atol=0)
    assert minilm.max_tokens == emb.position_embeddings.weight.shape[0] == 512
    # the encoder weights are the pretrained ones (the pass-through replaced only the embedding layer)
    torch.testing.assert_close(
        minilm.model.encoder.layer[0].attention.self.query.weight, bert.encoder.layer[0].attention.self.query.weight,
        rtol=0, atol=0,
    )


def test_init_from_body_false_keeps_a_fresh_position(minilm):
    model = assemble(minilm, "classification", 2, (1, 40), max_tokens=16, init_from_body=False)
    assert not torch.equal(model.embedder.position.data, minilm.position_embeddings(model.grid)[:14])


def test_vit_embedder_position_on_the_native_grid_is_the_body_position():
    from transformers import AutoConfig, AutoModel

    source = resolve_body("vit-tiny-random")
    torch.manual_seed(3)
    body = build_body(source)
    torch.manual_seed(3)
    cfg = dict(source.config)
    reference = AutoModel.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    # 64 x 64 images with the ViT's own budget: k = 4, a 16 x 16 grid, the ViT's own patch grid
    model = assemble(body, "classification", 2, (3, 64, 64))
    assert model.grid == (16, 16)
    native = reference.embeddings.position_embeddings.detach()[0, 1:]  # without the CLS row
    torch.testing.assert_close(model.embedder.position.data, native, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ fine-tuning modes


def _ids(params):
    return {id(p) for p in params}


def test_modes_freeze_exactly_the_right_parameters(vit):
    model = assemble(vit, "classification", 2, (1, 20), max_tokens=16)
    every = _ids(model.parameters())
    f_and_h = _ids(model.embedder.parameters()) | _ids(model.head.parameters())
    layer_norms = _ids(model.body.layer_norm_parameters())
    # ViT-tiny: 2 blocks x (layernorm_before, layernorm_after) + the final layernorm, weight and bias each
    assert len(layer_norms) == 10
    expected = {"full": every, "scratch": every, "fpt": f_and_h | layer_norms, "frozen": f_and_h}
    numel = {p_id: p.numel() for p_id, p in ((id(p), p) for p in model.parameters())}
    for name, want in expected.items():
        chosen = get_mode(name).apply(model)
        assert _ids(chosen) == want, name
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        assert trainable == want, name
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == sum(numel[i] for i in want)
    frozen_body = [p for p in model.body.parameters() if id(p) not in layer_norms]
    get_mode("fpt").apply(model)
    assert frozen_body and not any(p.requires_grad for p in frozen_body)
    get_mode("full").apply(model)  # leave the shared body trainable for other tests


def test_mode_registry():
    assert set(MODES) == {"full", "fpt", "frozen", "scratch"}
    assert [name for name, m in MODES.items() if not m.pretrained_body] == ["scratch"]
    with pytest.raises(XmodalError, match="unknown fine-tuning mode"):
        get_mode("lora")


def test_scratch_body_has_the_architecture_but_not_the_weights(minilm):
    scratch = build_body(resolve_body("minilm-l6"), pretrained=False)
    pre = dict(minilm.named_parameters())
    new = dict(scratch.named_parameters())
    assert pre.keys() == new.keys()
    assert all(pre[k].shape == new[k].shape for k in pre)
    changed = [k for k in pre if "weight" in k and "LayerNorm" not in k and not torch.equal(pre[k], new[k])]
    assert len(changed) >= 6 * 6  # every linear map of every layer was re-drawn
