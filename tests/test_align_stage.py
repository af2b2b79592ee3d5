"""Stage 2 in a run: distance objectives train only the embedder and lower the logged distance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xmodal import CrossModalEstimator
from xmodal.cli import main
from xmodal.errors import XmodalError
from xmodal.train import ALIGNERS

BASE = dict(body="vit-tiny-random", validation=0, max_tokens=16, batch_size=8, verbose=False, source_size=60,
            proxy="mnist")
TINY = dict(BASE, align="none")  # stage 2 is off unless a test asks for it


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path / "cache"))


def _task(n=24, length=20, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 2, length)).astype(np.float32) + y[:, None, None]
    return X, y


@pytest.mark.parametrize("align", ["otdd", "mmd", "euclidean", "transrate"])
def test_distance_alignment_moves_only_the_embedder_and_lowers_the_distance(align):
    X, y = _task()
    est = CrossModalEstimator(align=align, align_epochs=6, align_lr=1e-2, align_steps=2, epochs=0, **BASE)
    est.fit(X, y)
    rep = est.report_.align
    assert rep["objective"] == align and len(rep["history"]) >= 2
    assert rep["final_distance"] < rep["initial_distance"]
    # the stage's seconds split into set-up, optimiser steps and the per-epoch curve value
    assert 0 < rep["setup_seconds"] <= rep["seconds"]
    assert all(0 < h["curve_seconds"] < h["seconds"] for h in rep["history"][1:])
    assert rep["setup_seconds"] + sum(h["seconds"] for h in rep["history"][1:]) <= rep["seconds"]
    torch.manual_seed(0)  # rebuild the untouched model: the body must equal it, the embedder must not
    from xmodal.model import assemble, build_body, resolve_body

    fresh = assemble(build_body(resolve_body("vit-tiny-random")), "classification", 3, (2, 20), max_tokens=16)
    for a, b in zip(est.model_.body.parameters(), fresh.body.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (est.model_.embedder.projection.weight - fresh.embedder.projection.weight).abs().max() > 1e-4


def test_dense_task_gets_pseudo_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 1, 8, 8)).astype(np.float32)
    y = np.cumsum(X[:, 0], axis=-1)
    est = CrossModalEstimator(task="dense-regression", align="otdd", align_epochs=2, epochs=0, **BASE).fit(X, y)
    assert 2 <= est.report_.align["target_classes"] <= est.report_.align["source_classes"]


def test_early_stopping_and_registry():
    assert {"none", "warmup", "otdd", "mmd", "euclidean", "transrate"} <= set(ALIGNERS)
    X, y = _task()
    # lr so small that the distance cannot improve by 1 %: patience ends the stage early
    est = CrossModalEstimator(align="otdd", align_epochs=30, align_lr=1e-9, epochs=0, **BASE).fit(X, y)
    assert est.report_.align["stopped_early"]
    assert len(est.report_.align["history"]) == 1 + 10  # epoch 0 + the default patience of 10


def test_cli_writes_the_alignment_curve(tmp_path):
    X, y = _task(n=30)
    path = tmp_path / "toy.npz"
    np.savez(path, X_train=X[:24], y_train=y[:24], X_test=X[24:], y_test=y[24:])
    run = tmp_path / "run"
    args = ["--quiet", "fit", str(path), "--body", "vit-tiny-random", "--max-tokens", "16", "--epochs", "1",
            "--align", "otdd", "--align-epochs", "3", "--proxy", "mnist", "--source-size", "60", "--out", str(run)]
    assert main(args) == 0
    assert (run / "align_curve.png").stat().st_size > 1000
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["align"]["objective"] == "otdd"


def test_curve_subset_keeps_small_classes_whole_and_is_fixed():
    from xmodal.align.targets import curve_subset

    labels = torch.tensor([0] * 5 + [1] * 30 + [2] * 3)
    idx = curve_subset(labels, 10, seed=0)
    assert torch.bincount(labels[idx]).tolist() == [5, 10, 3]
    assert torch.equal(idx, curve_subset(labels, 10, seed=0)) and torch.equal(idx, idx.sort().values)
    assert not torch.equal(idx, curve_subset(labels, 10, seed=1))
    assert torch.equal(curve_subset(labels, None, seed=0), torch.arange(38))


def test_the_logged_curve_uses_the_capped_subset():
    X, y = _task(n=30)
    capped = CrossModalEstimator(align="otdd", align_epochs=2, epochs=0, align_curve_per_class=4, **BASE).fit(X, y)
    full = CrossModalEstimator(align="otdd", align_epochs=2, epochs=0, align_curve_per_class=None, **BASE).fit(X, y)
    assert capped.report_.align["curve_samples"] == 12 and full.report_.align["curve_samples"] == 30
    with pytest.raises(XmodalError, match="curve_per_class"):
        CrossModalEstimator(align="otdd", align_curve_per_class=1, **BASE).fit(X, y)
