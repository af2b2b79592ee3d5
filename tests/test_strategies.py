"""Transfer strategies by one name: the registry, which parameters each one trains, MoNA's
Finetuning++ embedder init (vision kernels and language word embeddings), conflicts with
``align``/``mode``, what a run records (fit report, save/load, run key) and the command line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

import xmodal.estimator.runs as est_mod  # where the training runs build bodies
from xmodal import CrossModalEstimator, XmodalError, load
from xmodal.cli import main
from xmodal.model.assembly import assemble
from xmodal.model.bodies import BodySource, build_body, resolve_body
from xmodal.model.embedder_init import adapt_patch_kernel, init_projection_from_body
from xmodal.strategies import (
    STRATEGIES,
    Strategy,
    get_strategy,
    list_strategies,
    resolve_strategy,
    strategy_for,
)
from xmodal.train import ALIGNERS
from xmodal.train.modes import get_mode

BASE = dict(body="vit-tiny-random", validation=0, max_tokens=8, batch_size=8, device="cpu", verbose=False)
TINY = dict(BASE, align="none")  # stage 2 is off unless a test asks for it
TINY_BERT = {
    "model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
    "intermediate_size": 64, "vocab_size": 100, "max_position_embeddings": 64,
}
# name → (align, mode, embedder_init), as the two papers define them
EXPECTED = {
    "finetune": ("none", "full", "random"),
    "finetune++": ("none", "full", "body"),
    "frozen": ("none", "frozen", "random"),
    "fpt": ("none", "fpt", "random"),
    "scratch": ("none", "scratch", "random"),
    "warmup": ("warmup", "full", "random"),
    "orca": ("otdd", "full", "random"),
    "orca-mmd": ("mmd", "full", "random"),
    "orca-euclidean": ("euclidean", "full", "random"),
    "orca-transrate": ("transrate", "full", "random"),
    "mona": ("mona", "full", "random"),
}


def series(n=16, length=16, channels=1, seed=0):
    """A learnable series task: is the mean positive?  X: (N, C, L), y: (N,)."""
    rng = np.random.default_rng(seed)
    shift = rng.uniform(0.3, 1.0, n) * rng.choice([-1.0, 1.0], n)
    X = (rng.normal(size=(n, channels, length)) + shift[:, None, None]).astype(np.float32)
    return X, (X.mean(axis=(1, 2)) > 0).astype(np.int64)


@pytest.fixture()
def no_weights(monkeypatch):
    """Fail the test if fit gets as far as building (loading) a body."""

    def refuse(*args, **kwargs):
        pytest.fail("build_body was called: the settings should have been refused before any weights load")

    monkeypatch.setattr(est_mod, "build_body", refuse)


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return build_body(resolve_body("vit-tiny-random"))


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    return build_body(BodySource("tiny-bert", "language", config=dict(TINY_BERT)))


def _source_kernel(body) -> nn.Conv2d:
    return body._source_embeddings[0].patch_embeddings.projection


# ------------------------------------------------------------------ registry


def test_registry_holds_the_papers_strategies():
    assert [s.name for s in list_strategies()] == list(EXPECTED)
    for name, (align, mode, init) in EXPECTED.items():
        s = get_strategy(name)
        assert (s.align, s.mode, s.embedder_init) == (align, mode, init), name
        assert s.description


def test_unknown_strategy_lists_the_known_names():
    with pytest.raises(XmodalError, match=r"unknown strategy 'orcaa'.*'finetune\+\+'.*'mona'"):
        get_strategy("orcaa")


def test_strategy_none_is_named_after_align_and_mode():
    assert resolve_strategy(None, "otdd", "full").name == "orca"
    assert resolve_strategy(None, "none", "frozen").name == "frozen"
    assert resolve_strategy(None).name == "orca"  # the estimator's defaults: align-then-refine
    assert resolve_strategy(None, None, "scratch").name == "scratch"  # a random body: nothing to align to
    assert resolve_strategy(None, None, "frozen").align == "otdd"
    assert resolve_strategy("finetune", None).align == "none"
    custom = resolve_strategy(None, "warmup", "fpt")
    assert (custom.name, custom.align, custom.mode, custom.embedder_init) == ("custom", "warmup", "fpt", "random")
    assert strategy_for("none", "full", "body") == "finetune++"


def test_an_aligner_is_looked_up_only_when_the_strategy_is_used():
    ghost = Strategy("ghost", "an aligner nobody registered", "no-such-aligner", "full")  # no error here
    with pytest.raises(XmodalError, match="needs the stage-2 aligner 'no-such-aligner'"):
        ghost.validate()
    aligner, mode = get_strategy("orca").validate()
    assert aligner is ALIGNERS["otdd"] and mode.name == "full"
    with pytest.raises(XmodalError, match="embedder_init"):
        Strategy("bad", "", "none", "full", embedder_init="pretrained")


def test_mona_without_its_aligner_is_refused_before_weights_load(no_weights, monkeypatch):
    monkeypatch.delitem(ALIGNERS._items, "mona", raising=False)  # as where the mona aligner is not installed
    assert get_strategy("mona").align == "mona"
    X, y = series()
    with pytest.raises(XmodalError, match="strategy 'mona' needs the stage-2 aligner 'mona'"):
        CrossModalEstimator(strategy="mona", **BASE).fit(X, y)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"strategy": "nope"}, "unknown strategy 'nope'"),
        ({"strategy": "orca", "align": "warmup"}, "strategy 'orca' runs align='otdd'.*align='warmup'"),
        ({"strategy": "finetune++", "align": "mmd"}, "conflicts with align='mmd'"),
        ({"strategy": "frozen", "mode": "fpt"}, "conflicts with mode='fpt'"),
        ({"strategy": "warmup", "align": "mmd", "mode": "scratch"}, "align='mmd' and mode='scratch'"),
    ],
)
def test_unknown_or_conflicting_strategy_is_refused_before_weights_load(no_weights, kwargs, match):
    X, y = series()
    with pytest.raises(XmodalError, match=match):
        CrossModalEstimator(**kwargs, **BASE).fit(X, y)


def test_align_or_mode_equal_to_the_strategys_is_no_conflict():
    assert CrossModalEstimator(strategy="orca", align="otdd").resolve_strategy().name == "orca"
    assert CrossModalEstimator(strategy="fpt", mode="fpt").resolve_strategy().name == "fpt"
    assert CrossModalEstimator(strategy="warmup", mode="full").resolve_strategy().align == "warmup"


# ------------------------------------------------------------------ what each strategy trains


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_strategy_trains_exactly_its_parameters(vit, name):
    model = assemble(vit, "classification", 2, (1, 16), 8)
    mode = get_mode(get_strategy(name).mode)
    chosen = mode.apply(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {id(p) for p in chosen} == {id(p) for n, p in model.named_parameters() if n in trainable}
    everything = {n for n, _ in model.named_parameters()}
    f_and_h = {n for n in everything if n.startswith(("embedder.", "head."))}
    body_norms = {
        f"body.{m_name}.{p_name}"
        for m_name, module in model.body.named_modules()
        if isinstance(module, nn.LayerNorm)
        for p_name, _ in module.named_parameters()
    }
    # the tiny ViT: 2 blocks × 2 LayerNorms + the final one, weight and bias of width 64 each
    assert sum(p.numel() for n, p in model.named_parameters() if n in body_norms) == 5 * 2 * 64
    expected = {"full": everything, "scratch": everything, "frozen": f_and_h, "fpt": f_and_h | body_norms}
    assert trainable == expected[mode.name]
    assert mode.pretrained_body == (name != "scratch")
    for p in model.parameters():
        p.requires_grad_(True)


def test_strategies_drive_the_fit(monkeypatch):
    calls = []
    real = est_mod.build_body

    def spy(source, pretrained=True):
        calls.append(pretrained)
        return real(source, pretrained=pretrained)

    monkeypatch.setattr(est_mod, "build_body", spy)
    X, y = series()
    base = CrossModalEstimator(epochs=0, **TINY).fit(X, y)
    frozen = CrossModalEstimator(strategy="frozen", epochs=2, lr=1e-2, **BASE).fit(X, y)
    for key, value in base.model_.body.state_dict().items():
        torch.testing.assert_close(frozen.model_.body.state_dict()[key], value, rtol=0, atol=0, msg=key)
    head_a, head_b = base.model_.head.state_dict(), frozen.model_.head.state_dict()
    assert any(not torch.equal(head_a[k], head_b[k]) for k in head_a)  # the head did train
    warm = CrossModalEstimator(strategy="warmup", align_epochs=1, epochs=0, **BASE).fit(X, y)
    assert [r["epoch"] for r in warm.report_.align["history"]] == [1]
    assert warm.report_.strategy == {"name": "warmup", "align": "warmup", "mode": "full", "embedder_init": "random"}
    CrossModalEstimator(strategy="scratch", epochs=0, **BASE).fit(X, y)
    assert calls == [True, True, True, False]
    assert (base.strategy_, frozen.strategy_, warm.strategy_) == ("finetune", "frozen", "warmup")


# ------------------------------------------------------------------ finetune++: vision bodies


def test_finetune_pp_copies_the_vit_kernel_for_rgb_patches_of_its_size():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3, 16, 16)).astype(np.float32)
    y = np.arange(12) % 2
    kw = {**TINY, "max_tokens": 16}  # 16 × 16 in 16 tokens: k = 4, the tiny ViT's patch size
    plain = CrossModalEstimator(strategy="finetune", epochs=0, **kw).fit(X, y)
    pp = CrossModalEstimator(strategy="finetune++", epochs=0, **kw).fit(X, y)
    source = _source_kernel(pp.model_.body)
    assert pp.model_.embedder.k == 4
    torch.testing.assert_close(pp.model_.embedder.projection.weight, source.weight, rtol=0, atol=0)
    torch.testing.assert_close(pp.model_.embedder.projection.bias, source.bias, rtol=0, atol=0)
    assert not torch.allclose(plain.model_.embedder.projection.weight, _source_kernel(plain.model_.body).weight)
    init = pp.report_.strategy["init"]
    assert init["method"] == "patch-conv" and init["source_shape"] == [64, 3, 4, 4] and init["channels"] == "kept"
    assert "init" not in plain.report_.strategy


def test_finetune_pp_maps_the_2d_kernel_to_a_1d_gray_kernel(vit):
    model = assemble(vit, "classification", 2, (1, 32), 8)  # k = 4 = p
    report = init_projection_from_body(model.embedder, vit)
    w_s = _source_kernel(vit).weight.detach()  # (64, 3, 4, 4)
    rows = w_s.mean(dim=2)  # (64, 3, 4): the kernel's rows averaged
    expected = rows.sum(dim=1, keepdim=True) * (w_s.norm() / rows.norm())  # gray = sum of channels, energy kept
    torch.testing.assert_close(model.embedder.projection.weight, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.embedder.projection.bias, _source_kernel(vit).bias)
    assert report["target_shape"] == [64, 1, 4] and report["gain"] == pytest.approx(float(w_s.norm() / rows.norm()))


def test_finetune_pp_resamples_channels_and_patch_size(vit):
    w_s = _source_kernel(vit).weight.detach()
    # 2 channels at k = 8 (bilinear from p = 4): energy-preserving gain, then the channel mean repeated × 3/2
    w, gain = adapt_patch_kernel(w_s, 2, 2, 8)
    assert w.shape == (64, 2, 8, 8)
    resized = torch.nn.functional.interpolate(w_s, size=(8, 8), mode="bilinear")  # (64, 3, 8, 8)
    assert gain == pytest.approx(float(w_s.norm() / resized.norm()), rel=1e-5)
    assert 0.5 < gain < 1.0  # 4 times the taps: an interpolated kernel needs less than 1, at least 1/2
    expected = (resized * gain).mean(dim=1, keepdim=True) * (3 / 2)
    torch.testing.assert_close(w, expected.expand(-1, 2, -1, -1), rtol=1e-5, atol=1e-6)
    # downsampling (p = 4 → k = 2) averages 2 × 2 blocks
    w2, _ = adapt_patch_kernel(w_s, 3, 2, 2)
    blocks = w_s.reshape(64, 3, 2, 2, 2, 2).mean(dim=(3, 5))
    torch.testing.assert_close(w2 / w2.norm(), blocks / blocks.norm(), rtol=1e-5, atol=1e-6)
    # 3-D: the kernel replicated along depth, energy kept (gain 1/sqrt(p) at k = p)
    w3, gain3 = adapt_patch_kernel(w_s, 3, 3, 4)
    assert w3.shape == (64, 3, 4, 4, 4) and gain3 == pytest.approx(0.5, rel=1e-5)
    for z in range(4):
        torch.testing.assert_close(w3[:, :, z], w_s * gain3)
    torch.testing.assert_close(w3.norm(), w_s.norm())


def test_finetune_pp_on_swin_copies_its_patch_kernel():
    torch.manual_seed(0)
    swin = build_body(resolve_body("swin-tiny-random"))
    model = assemble(swin, "classification", 2, (3, 16, 16), 16)
    init_projection_from_body(model.embedder, swin)
    torch.testing.assert_close(model.embedder.projection.weight, _source_kernel(swin).weight, rtol=0, atol=0)


# ------------------------------------------------------------------ finetune++: language bodies


def _residual_outside(columns: np.ndarray, basis: np.ndarray) -> float:
    """Largest norm of a column's part orthogonal to span(basis) (basis: orthonormal columns)."""
    return float(np.linalg.norm(columns - basis @ (basis.T @ columns), axis=0).max())


def test_finetune_pp_language_columns_lie_in_the_span_of_the_top_word_directions(bert):
    model = assemble(bert, "classification", 2, (1, 24), 8)  # k = 3: 3 columns in a width of 32
    before = model.embedder.projection.weight.detach().reshape(32, -1).double().numpy()
    report = init_projection_from_body(model.embedder, bert)
    E = bert._source_embeddings[0].word_embeddings.weight.detach().double().numpy()  # (V, D) = (100, 32)
    centred = E - E.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    top = vt[:3].T  # (32, 3)
    W = model.embedder.projection.weight.detach().reshape(32, -1).double().numpy()  # (D, C·k) = (32, 3)
    assert _residual_outside(before, top) > 0.05  # the random init is not in that span
    assert _residual_outside(W, top) < 1e-5
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), s[:3] / np.sqrt(len(E)), rtol=1e-5)
    np.testing.assert_allclose(np.abs(W.T @ vt[:3].T), np.diag(s[:3] / np.sqrt(len(E))), atol=1e-5)
    np.testing.assert_allclose(model.embedder.projection.bias.detach().numpy(), E.mean(0), rtol=1e-5, atol=1e-6)
    assert report["method"] == "word-embeddings" and report["source_shape"] == [100, 32]
    assert report["directions"] == 3 and not report["cycled"]


def test_finetune_pp_language_columns_cycle_when_the_patch_exceeds_the_width(bert):
    model = assemble(bert, "classification", 2, (3, 16, 16), 16)  # C·k² = 3·16 = 48 > D = 32
    report = init_projection_from_body(model.embedder, bert)
    W = model.embedder.projection.weight.detach().reshape(32, -1)
    assert report["cycled"] and report["directions"] == 32
    # columns 0..15 share their direction with columns 32..47 (each at 1/sqrt(2) of the variance's root)
    torch.testing.assert_close(W[:, 32:], W[:, :16], rtol=1e-5, atol=1e-6)
    E = bert._source_embeddings[0].word_embeddings.weight.detach().double()
    lam = torch.linalg.eigvalsh(torch.cov(E.T, correction=0)).flip(0)
    torch.testing.assert_close(W[:, 16:32].double().norm(dim=0), lam[16:32].sqrt(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(W[:, :16].double().norm(dim=0), (lam[:16] / 2).sqrt(), rtol=1e-4, atol=1e-6)


def test_finetune_pp_refuses_a_body_without_an_input_embedding(vit):
    class Toy(nn.Module):
        family = "toy"

    model = assemble(vit, "classification", 2, (1, 16), 8)
    with pytest.raises(XmodalError, match="finetune\\+\\+ is not available for body family 'toy'"):
        init_projection_from_body(model.embedder, Toy())


# ------------------------------------------------------------------ what a run records


def test_strategy_round_trips_through_save_and_load(tmp_path):
    X, y = series()
    est = CrossModalEstimator(strategy="finetune++", epochs=1, **BASE).fit(X, y)
    folder = est.save(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    assert config["params"]["strategy"] == "finetune++"
    assert config["strategy"] == {"name": "finetune++", "align": "none", "mode": "full", "embedder_init": "body"}
    report = json.loads((folder / "fit_report.json").read_text())
    assert report["strategy"]["init"]["method"] == "patch-conv"
    again = load(folder, device="cpu")
    assert again.get_params()["strategy"] == "finetune++" and again.strategy_ == "finetune++"
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    assert again.resolve_strategy().embedder_init == "body"

    plain = CrossModalEstimator(align="warmup", align_epochs=1, epochs=0, **BASE).fit(X, y)
    config = json.loads((plain.save(tmp_path / "p") / "config.json").read_text())
    assert config["params"]["strategy"] is None and config["strategy"]["name"] == "warmup"
    assert load(tmp_path / "p").strategy_ == "warmup"


def test_run_key_holds_the_resolved_strategy(tmp_path):
    X, y = series()
    first = CrossModalEstimator(strategy="warmup", align_epochs=1, epochs=1, **BASE).fit(X, y, checkpoint_dir=tmp_path)
    # the same run spelled with align=: resumes (nothing trained again) instead of being refused
    again = CrossModalEstimator(align="warmup", align_epochs=1, epochs=1, **BASE).fit(X, y, checkpoint_dir=tmp_path)
    assert again.report_.finetune == first.report_.finetune and again.report_.align == first.report_.align
    other = tmp_path / "other"
    CrossModalEstimator(strategy="finetune", epochs=1, **BASE).fit(X, y, checkpoint_dir=other)
    with pytest.raises(XmodalError, match="other settings.*strategy"):
        CrossModalEstimator(strategy="finetune++", epochs=1, **BASE).fit(X, y, checkpoint_dir=other)


# ------------------------------------------------------------------ command line


def run_cli(capsys, *args):
    code = main(["--quiet", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def npz(tmp_path):
    """24 training and 12 test series (1 channel, length 24), binary labels shifted apart."""
    rng = np.random.default_rng(0)
    y = np.arange(36) % 2
    X = (rng.normal(size=(36, 1, 24)) + 1.5 * y[:, None, None]).astype(np.float32)
    path = tmp_path / "toy.npz"
    np.savez(path, X_train=X[:24], y_train=y[:24], X_test=X[24:], y_test=y[24:])
    return path


FAST_BASE = ["--body", "vit-tiny-random", "--validation", "0",
             "--epochs", "1", "--max-tokens", "8", "--batch-size", "8", "--device", "cpu"]
FAST = [*FAST_BASE, "--align", "none"]


def test_cli_lists_every_strategy(capsys):
    code, out, err = run_cli(capsys, "strategies")
    assert code == 0, err
    for s in STRATEGIES.values():
        assert re.search(rf"│ {re.escape(s.name)} +│ {re.escape(s.align)} +│ {re.escape(s.mode)} +│", out), s.name


def test_cli_fit_with_finetune_pp_records_the_strategy(tmp_path, npz, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "fit", npz, *FAST_BASE, "--strategy", "finetune++", "--out", run)
    assert code == 0, err
    assert "strategy: finetune++" in out and "test accuracy" in out
    config = json.loads((run / "config.json").read_text())
    assert (config["strategy"], config["align"], config["mode"], config["embedder_init"]) == (
        "finetune++", "none", "full", "body")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["strategy"]["name"] == "finetune++"
    assert metrics["strategy"]["init"]["source_shape"] == [64, 3, 4, 4]
    assert metrics["strategy"]["init"]["target_shape"] == [64, 1, 3]  # length 24 in 8 tokens: k = 3
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["strategy"]["name"] == "finetune++" and saved["params"]["strategy"] == "finetune++"


def test_cli_fit_without_strategy_records_the_matching_name(tmp_path, npz, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "fit", npz, *FAST, "--mode", "frozen", "--out", run)
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert (config["strategy"], config["mode"], config["embedder_init"]) == ("frozen", "frozen", "random")


def test_cli_conflicting_strategy_is_one_error_line_and_writes_nothing(tmp_path, npz, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "fit", npz, *FAST_BASE, "--strategy", "orca", "--align", "warmup", "--out", run)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert "conflicts with align='warmup'" in err
    assert not run.exists()


def test_cli_unknown_strategy_is_a_usage_error(npz, capsys):
    assert main(["fit", str(npz), "--strategy", "orcaa"]) == 2
    assert "unknown strategy 'orcaa'" in capsys.readouterr().err
    assert main(["fit", str(npz), "--strategy", "auto", "--candidates", "orca,nope"]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err
