"""The ablation runner: strategies side by side on one tiny task, resumable, Markdown + CSV out."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from xmodal.data.readers import dataset_from_arrays
from xmodal.errors import XmodalError
from xmodal.experiments.compare import compare

PARAMS = dict(body="vit-tiny-random", validation=0, max_tokens=16, batch_size=8, epochs=2, lr=1e-3,
              proxy="mnist",
              source_size=60, align_epochs=2, align_steps=1)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path / "cache"))


def _data():
    rng = np.random.default_rng(0)
    y = np.arange(36) % 3
    X = rng.normal(size=(36, 2, 20)).astype(np.float32) + y[:, None, None]
    return dataset_from_arrays("tiny", X[:24], y[:24], X[24:], y[24:])


def test_runner_writes_a_table_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    res = compare(_data(), ["finetune", "frozen", "orca"], [0, 1], PARAMS, out, probe_size=60, progress=False)
    assert len(res.rows) == 6 and [s["strategy"] for s in res.summary] == ["finetune", "frozen", "orca"]
    for s in res.summary:
        assert s["seeds"] == 2 and 0.0 <= s["value"] <= 1.0 and s["final_otdd"] > 0
        assert 0.0 <= s["probe"] <= 1.0
    orca = next(s for s in res.summary if s["strategy"] == "orca")
    assert orca["align_s"] > 0 and next(s for s in res.summary if s["strategy"] == "finetune")["align_s"] < 0.5
    md = (out / "compare.md").read_text()
    assert "| orca |" in md and "**" in md and "Source probe of the pretrained body" in md
    assert "±" in next(line for line in md.splitlines() if line.startswith("| orca |"))  # two seeds
    with open(out / "compare.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {r["strategy"] for r in rows} == {"finetune", "frozen", "orca"}

    # a rerun with the same settings reuses every cell: fitting would fail
    import xmodal.estimator as estimator

    monkeypatch.setattr(estimator.CrossModalEstimator, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    again = compare(_data(), ["finetune", "frozen", "orca"], [0, 1], PARAMS, out, probe_size=60, progress=False)
    assert [r["value"] for r in again.rows] == [r["value"] for r in res.rows]
    # other settings: the cell is stale and must be refitted (here: the patched fit raises)
    with pytest.raises(AssertionError):
        compare(_data(), ["finetune"], [0], {**PARAMS, "epochs": 3}, out, probe_size=60, progress=False)


def test_runner_refuses_bad_requests_before_training(monkeypatch):
    import xmodal.estimator as estimator

    monkeypatch.setattr(estimator.CrossModalEstimator, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    with pytest.raises(XmodalError, match="unknown strategy|strateg"):
        compare(_data(), ["finetune", "nope"], [0], PARAMS)
    with pytest.raises(XmodalError, match="cannot share"):
        compare(_data(), ["finetune"], [0], {**PARAMS, "seed": 3})
    with pytest.raises(XmodalError, match="repeat"):
        compare(_data(), ["finetune", "finetune"], [0], PARAMS)
    d = _data()
    d.X_test = d.y_test = None
    with pytest.raises(XmodalError, match="test split"):
        compare(d, ["finetune"], [0], PARAMS)


def test_cli_compare_on_an_npz(tmp_path, capsys):
    from xmodal.cli import main
    from xmodal.data.readers import write_npz

    d = _data()
    path = tmp_path / "tiny.npz"
    write_npz(path, d)
    out = tmp_path / "cmp"
    argv = ["--quiet", "compare", str(path), "--strategies", "finetune,warmup", "--seeds", "0", "--out", str(out),
            "--no-probe", "--body", "vit-tiny-random", "--max-tokens", "16", "--epochs", "1", "--batch-size", "8",
            "--proxy", "mnist", "--source-size", "60", "--align-epochs", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| finetune |" in text and "| warmup |" in text
    assert "±" not in next(line for line in text.splitlines() if line.startswith("| finetune |"))  # one seed
    assert (out / "compare.csv").exists() and len(list((out / "cells").glob("*.json"))) == 2
    assert main(["compare", str(path), "--strategies", "finetune,bogus", "--out", str(out)]) == 2
    assert "unknown strategy" in capsys.readouterr().err


def test_a_diverged_cell_is_recorded_and_the_comparison_goes_on(tmp_path):
    out = tmp_path / "cmp"
    res = compare(_data(), ["finetune"], [0], {**PARAMS, "lr": 1e30}, out, probe=False, progress=False)
    assert res.rows[0]["value"] is None and "diverged" in res.rows[0]["diverged"]
    assert "diverged (1 seeds)" in (out / "compare.md").read_text()
    again = compare(_data(), ["finetune"], [0], {**PARAMS, "lr": 1e30}, out, probe=False, progress=False)
    assert again.rows == res.rows  # the failed cell is kept, not rerun
