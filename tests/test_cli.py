"""The ``xmodal`` command in-process: listings, a run folder from .npz and CSV, predict, evaluate,
and every user error as one ``error: …`` line with exit status 2."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from xmodal.cli import main

FAST_BASE = ["--body", "vit-tiny-random", "--validation", "0",
             "--epochs", "2", "--max-tokens", "8", "--batch-size", "8", "--device", "cpu"]
FAST = [*FAST_BASE, "--align", "none"]


@pytest.fixture()
def npz(tmp_path):
    """40 training and 20 test series (1 channel, length 24), binary labels shifted apart."""
    rng = np.random.default_rng(0)
    y = np.r_[np.arange(60) % 2]
    X = (rng.normal(size=(60, 1, 24)) + 1.5 * y[:, None, None]).astype(np.float32)
    path = tmp_path / "toy.npz"
    np.savez(path, X_train=X[:40], y_train=y[:40], X_test=X[40:], y_test=y[40:])
    return path


@pytest.fixture()
def csv(tmp_path):
    """A header, 5 numeric feature columns on very different scales, a 0/1 label column."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(48, 5)) * np.array([1.0, 10.0, 100.0, 0.1, 5.0])
    y = (X[:, 0] > 0).astype(int)
    lines = ["f1,f2,f3,f4,f5,label"] + [",".join(f"{v:.5f}" for v in x) + f",{t}" for x, t in zip(X, y, strict=True)]
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(capsys, *args):
    code = main(["--quiet", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command,expect", [("bodies", "vit-tiny-random"), ("datasets", "gunpoint")])
def test_listings_exit_0(capsys, command, expect):
    code, out, err = run_cli(capsys, command)
    assert code == 0, err
    assert expect in out.lower()


def test_fit_writes_a_run_folder_then_predict_and_evaluate(tmp_path, npz, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "fit", npz, *FAST, "--out", run)
    assert code == 0, err
    assert "test accuracy" in out

    config = json.loads((run / "config.json").read_text())
    assert config["body"] == "vit-tiny-random" and config["epochs"] == 2 and config["task"] == "classification"
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert metrics["train_samples"] == 40 and metrics["test_samples"] == 20
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in log] == [("finetune", 1), ("finetune", 2)]
    assert all(np.isfinite(r["loss"]) for r in log)
    for name in ("config.json", "body_config.json", "model.safetensors"):
        assert (run / "model" / name).is_file(), name
    assert (run / "learning_curve.png").is_file()
    assert not (run / "checkpoints").exists()  # removed on success (--keep-checkpoints keeps them)

    # predict reads X_test from the archive (X, X_test, X_train in that order)
    pred_file = tmp_path / "pred.npy"
    code, out, err = run_cli(capsys, "predict", run / "model", npz, "--out", pred_file, "--proba")
    assert code == 0, err
    pred = np.load(pred_file)
    assert pred.shape == (20,) and set(np.unique(pred)) <= {0, 1}
    proba = np.load(tmp_path / "pred_proba.npy")
    assert proba.shape == (20, 2)
    np.testing.assert_array_equal(proba.argmax(axis=1), pred)

    csv_file = tmp_path / "pred.csv"
    assert run_cli(capsys, "predict", run / "model", npz, "--out", csv_file)[0] == 0
    assert len(csv_file.read_text().splitlines()) == 20

    # evaluate prints JSON; the reloaded model scores the test split exactly as fit did
    code, out, err = run_cli(capsys, "evaluate", run / "model", npz)
    assert code == 0, err
    result = json.loads(out)
    assert result == metrics["test"] and "scored the test split" in err  # fit's metrics, the same values
    code, out, _ = run_cli(capsys, "evaluate", run / "model", npz, "--metrics", "accuracy,macro_f1")
    assert code == 0 and set(json.loads(out)) == {"accuracy", "macro_f1"}


def test_fit_on_a_csv_table(tmp_path, csv, capsys):
    run = tmp_path / "tab"
    code, out, err = run_cli(capsys, "fit", csv, "--target", "label", "--test-size", "0.25", *FAST, "--out", run)
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_samples"] == 36 and metrics["test_samples"] == 12
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    spec = json.loads((run / "model" / "config.json").read_text())["spec"]
    assert spec["sample_shape"] == [1, 5] and spec["task"] == "classification"

    pred_file = tmp_path / "pred.npy"
    code, _, err = run_cli(capsys, "predict", run / "model", csv, "--target", "label", "--out", pred_file)
    assert code == 0, err
    assert np.load(pred_file).shape == (48,)
    # the training CSV without --target: the extra column is named as the likely target
    code, _, err = run_cli(capsys, "predict", run / "model", csv, "--out", pred_file)
    assert code == 2 and "--target" in err and "6 columns" in err


def test_csv_with_a_text_column_predicts_and_evaluates_with_the_training_categories(tmp_path, capsys):
    rng = np.random.default_rng(2)
    colour = rng.choice(["red", "green", "blue"], size=48)
    x = rng.normal(size=48)
    y = np.where((colour == "red") | (x > 1), "yes", "no")  # text labels: predictions come back as text
    rows = ["x,colour,label"] + [f"{a:.4f},{c},{t}" for a, c, t in zip(x, colour, y, strict=True)]
    train = tmp_path / "train.csv"
    train.write_text("\n".join(rows) + "\n")
    new = tmp_path / "new.csv"  # a table with only two of the colours: same columns after encoding
    new.write_text("x,colour\n0.5,red\n-0.3,green\n")
    run = tmp_path / "cat"
    code, _, err = run_cli(capsys, "fit", train, "--target", "label", *FAST, "--out", run)
    assert code == 0, err
    spec = json.loads((run / "model" / "config.json").read_text())["spec"]
    assert spec["sample_shape"] == [1, 4]  # x + colour=blue/green/red
    assert json.loads((run / "model" / "table_encoding.json").read_text())["columns"][1]["categories"] == [
        "blue", "green", "red"]
    pred_file = tmp_path / "pred.npy"
    code, _, err = run_cli(capsys, "predict", run / "model", new, "--out", pred_file)
    assert code == 0, err
    pred = np.load(pred_file)
    assert pred.shape == (2,) and set(pred.tolist()) <= {"no", "yes"}
    csv_out = tmp_path / "pred.csv"
    assert run_cli(capsys, "predict", run / "model", new, "--out", csv_out)[0] == 0
    assert set(csv_out.read_text().split()) <= {"no", "yes"}
    code, out, err = run_cli(capsys, "evaluate", run / "model", train, "--target", "label")
    assert code == 0, err
    assert 0.0 <= json.loads(out)["accuracy"] <= 1.0


def test_csv_table_is_scaled_per_column(tmp_path, csv, capsys):
    run = tmp_path / "tab"
    code, _, err = run_cli(capsys, "fit", csv, "--target", "label", *FAST, "--epochs", "0", "--out", run)
    assert code == 0, err
    spec = json.loads((run / "model" / "config.json").read_text())["spec"]
    assert spec["feature_scaling"] == "position"


def test_a_finished_run_folder_is_not_overwritten_and_resume_has_nothing_to_do(tmp_path, npz, capsys):
    run = tmp_path / "run"
    assert run_cli(capsys, "fit", npz, *FAST, "--out", run)[0] == 0
    before = (run / "metrics.json").read_text()
    code, _, err = run_cli(capsys, "fit", npz, *FAST, "--out", run)
    assert code == 2 and "finished run" in err
    code, out, err = run_cli(capsys, "fit", npz, "--out", run, "--resume")
    assert code == 0 and "already finished" in out, err
    assert (run / "metrics.json").read_text() == before


def test_an_interrupted_run_is_marked_and_resumes_from_its_folder_alone(tmp_path, npz, capsys, monkeypatch):
    import xmodal.train.session as loop  # every loop checkpoints through EpochRun

    run = tmp_path / "run"
    real = loop.save_checkpoint

    def stop_after_epoch_1(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", stop_after_epoch_1)
    code, _, err = run_cli(capsys, "fit", npz, *FAST, "--lr", "3e-4", "--out", run, "--keep-checkpoints")
    assert code == 130 and "--resume" in err
    assert json.loads((run / "FAILED.json").read_text())["error"] == "interrupted"
    streamed = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in streamed] == [1] and np.isfinite(streamed[0]["loss"])  # written as it went
    monkeypatch.setattr(loop, "save_checkpoint", real)
    code, _, err = run_cli(capsys, "fit", npz, "--out", run)
    assert code == 2 and "unfinished run (it stopped: interrupted)" in err and "--resume" in err
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    code, _, err = run_cli(capsys, "fit", npz, "--lr", "1e-3", "--out", run, "--resume")
    assert code == 2 and "lr=0.001 (the run has 0.0003)" in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == files
    code, out, err = run_cli(capsys, "fit", npz, "--out", run, "--resume")  # the folder says everything else
    assert code == 0, err
    assert not (run / "FAILED.json").exists() and not (run / "checkpoints").exists()
    assert json.loads((run / "config.json").read_text())["lr"] == 3e-4
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]


def test_resume_with_other_settings_is_a_clean_error(tmp_path, npz, capsys):
    run = tmp_path / "run"
    assert run_cli(capsys, "fit", npz, *FAST, "--out", run, "--keep-checkpoints")[0] == 0
    (run / "metrics.json").unlink()  # as if it had stopped before the end
    code, _, err = run_cli(capsys, "fit", npz, *FAST, "--max-tokens", "4", "--out", run, "--resume")
    assert code == 2 and err.startswith("error:") and "max_tokens=4" in err


def _nan_npz(tmp_path):
    X = np.ones((10, 1, 8), np.float32)
    X[3, 0, 2] = np.nan
    path = tmp_path / "bad.npz"
    np.savez(path, X_train=X, y_train=np.arange(10) % 2)
    return path


@pytest.mark.parametrize(
    "make_args,match",
    [
        (lambda tmp, npz: ["fit", _nan_npz(tmp), *FAST, "--out", tmp / "r"], "NaN"),
        (lambda tmp, npz: ["fit", tmp / "missing.npz", *FAST, "--out", tmp / "r"], "not found|does not exist"),
        (lambda tmp, npz: ["fit", npz, *FAST, "--body", "no-such-body", "--out", tmp / "r"], "unknown body"),
        (lambda tmp, npz: ["fit", npz, *FAST, "--mode", "lora", "--out", tmp / "r"], "unknown fine-tuning mode"),
        (lambda tmp, npz: ["fit", "no-such-dataset", *FAST, "--out", tmp / "r"], "unknown dataset"),
        (lambda tmp, npz: ["predict", tmp / "no-model", npz, "--out", tmp / "p.npy"], "no xmodal model"),
        (lambda tmp, npz: ["evaluate", tmp / "no-model", npz], "no xmodal model"),
    ],
    ids=["nan", "missing file", "unknown body", "unknown mode", "unknown dataset", "predict no model", "eval no model"],
)
def test_user_errors_exit_2_with_one_error_line(tmp_path, npz, capsys, make_args, match):
    code, _, err = run_cli(capsys, *make_args(tmp_path, npz))
    assert code == 2
    assert err.startswith("error:") and re.search(match, err), err
    assert len(err.strip().splitlines()) == 1


def test_predict_with_the_wrong_layout_exits_2(tmp_path, npz, capsys):
    run = tmp_path / "run"
    assert run_cli(capsys, "fit", npz, *FAST, "--epochs", "0", "--out", run)[0] == 0
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 1, 10), np.float32))
    code, _, err = run_cli(capsys, "predict", run / "model", wrong, "--out", tmp_path / "p.npy")
    assert code == 2 and err.startswith("error:") and "per-sample shape" in err
    missing = tmp_path / "absent.npy"
    code, _, err = run_cli(capsys, "predict", run / "model", missing, "--out", tmp_path / "p.npy")
    assert code == 2 and "does not exist" in err


def test_evaluate_on_data_without_a_test_split_warns_that_it_scores_every_row(tmp_path, csv, capsys):
    run = tmp_path / "run"
    assert run_cli(capsys, "fit", csv, *FAST, "--test-size", "0.25", "--out", run)[0] == 0
    code, out, err = run_cli(capsys, "evaluate", run / "model", csv)
    assert code == 0 and "no test split" in err and "all its 48 rows were scored" in err
    assert set(json.loads(out)) == set(json.loads((run / "metrics.json").read_text())["test"])


def test_the_cli_runs_as_a_module_for_worker_processes():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "xmodal.cli", "strategies"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "orca" in done.stdout, done.stderr
