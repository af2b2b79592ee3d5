"""The command line in-process: a run folder from .npz and CSV, predict, evaluate, and error exits."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from xmodal.cli import main

FAST = ["--body", "vit-tiny-random", "--epochs", "2", "--max-tokens", "8", "--batch-size", "8"]


@pytest.fixture()
def npz(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    X = rng.normal(size=(60, 1, 24)).astype(np.float32) + y[:, None, None]
    path = tmp_path / "toy.npz"
    np.savez(path, X_train=X[:40], y_train=y[:40], X_test=X[40:], y_test=y[40:])
    return path


def test_fit_predict_evaluate_from_npz(tmp_path, npz, capsys):
    run = tmp_path / "run"
    assert main(["--quiet", "fit", str(npz), *FAST, "--out", str(run)]) == 0
    for name in ("config.json", "metrics.json", "log.jsonl", "model/model.safetensors"):
        assert (run / name).exists(), name
    assert main(["--quiet", "fit", str(npz), *FAST, "--out", str(run)]) == 2  # no silent overwrite
    assert main(["--quiet", "fit", str(npz), *FAST, "--out", str(run), "--resume"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert len((run / "log.jsonl").read_text().splitlines()) == 2
    out = tmp_path / "pred.npy"
    assert main(["predict", str(run / "model"), str(npz), "--out", str(out), "--proba"]) == 0
    pred = np.load(out)
    assert pred.shape == (20,) and set(np.unique(pred)) <= {0, 1}
    assert np.load(tmp_path / "pred_proba.npy").shape == (20, 2)
    capsys.readouterr()
    assert main(["evaluate", str(run / "model"), str(npz), "--metrics", "accuracy,macro_f1"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"accuracy", "macro_f1"}


def test_fit_csv_with_holdout(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 5))
    label = np.where(X[:, 0] > 0, "yes", "no")
    rows = ["a,b,c,d,e,label"] + [",".join(f"{v:.4f}" for v in x) + f",{t}" for x, t in zip(X, label, strict=True)]
    csv = tmp_path / "rows.csv"
    csv.write_text("\n".join(rows) + "\n")
    run = tmp_path / "tab"
    assert main(["--quiet", "fit", str(csv), "--target", "label", "--test-size", "0.2", *FAST, "--out", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text())["test_samples"] == 10
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run / "model"), str(csv), "--target", "label", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 50


@pytest.mark.parametrize(
    "args,match",
    [
        (["fit", "missing.npz"], "does not exist|not found|no such"),
        (["fit", "no-such-dataset"], "unknown dataset"),
        (["fit", "gunpoint", "--body", "no-such-body", "--epochs", "0"], "unknown body"),
        (["predict", "not-a-model-folder", "x.npy"], "no xmodal model"),
    ],
)
def test_errors_exit_2_with_message(tmp_path, monkeypatch, capsys, args, match):
    monkeypatch.chdir(tmp_path)
    assert main(["--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:")
    assert re.search(match, err, flags=re.IGNORECASE), err


def test_nan_npz_refused(tmp_path, capsys):
    X = np.ones((10, 1, 8), np.float32)
    X[3, 0, 2] = np.nan
    path = tmp_path / "bad.npz"
    np.savez(path, X_train=X, y_train=np.arange(10) % 2)
    assert main(["--quiet", "fit", str(path), *FAST, "--out", str(tmp_path / "r")]) == 2
    assert "NaN" in capsys.readouterr().err
