"""ASHA tuning on Optuna: a tiny study prunes and writes a best configuration that `fit --config`
reproduces bit-for-bit; studies resume; a shared PostgreSQL study divides trials between workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xmodal import XmodalError
from xmodal.cli import main
from xmodal.config import RunConfig
from xmodal.defaults import RULE
from xmodal.tuning import SearchSpace, parse_duration, study_key, tune
from xmodal.tuning.pgserver import find_pg_bin, temporary_postgres

SPACE = {"lr": {"log": [1e-5, 3e-2]}, "epochs": {"scale": [1, 2]}, "optimizer": ["adamw", "sgd"]}
TINY = dict(body="vit-tiny-random", max_tokens=8, device="cpu", verbose=False, epochs=4)


def sign_of_mean(n=48, length=16, seed=0):
    rng = np.random.default_rng(seed)
    shift = rng.uniform(0.2, 1.0, n) * rng.choice([-1.0, 1.0], n)
    X = (rng.normal(size=(n, 1, length)) + shift[:, None, None]).astype(np.float32)
    return X, (X.mean(axis=(1, 2)) > 0).astype(np.int64)


@pytest.fixture()
def data_npz(tmp_path):
    X, y = sign_of_mean()
    Xt, yt = sign_of_mean(n=20, seed=7)
    path = tmp_path / "signs.npz"
    np.savez(path, X_train=X, y_train=y, X_test=Xt, y_test=yt)
    space = tmp_path / "space.yaml"
    space.write_text(json.dumps(SPACE))  # JSON is YAML
    return path, space


def test_tuning_prunes_writes_the_best_config_and_fit_config_reproduces_it(tmp_path, data_npz, capsys):
    data, space = data_npz
    out = tmp_path / "tune"
    base = ["--body", "vit-tiny-random", "--max-tokens", "8", "--epochs", "4", "--device", "cpu"]
    code = main(["--quiet", "tune", str(data), *base, "--space", str(space), "--trials", "8", "--budget", "none",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "tune.json").read_text())
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] == 8
    assert summary["counts"]["pruned"] >= 1 and summary["pruning"]["saved_s"] > 0
    for f in ("best_config.yaml", "trials.csv", "trials.md", "history.png", "importance.png", "study.journal"):
        assert (out / f).is_file(), f
    best = RunConfig.load(out / "best_config.yaml")
    assert best.body == "vit-tiny-random" and best.epochs in (4, 8)
    assert best.lr == pytest.approx(summary["best_settings"]["lr"])
    trials_csv = (out / "trials.csv").read_text().splitlines()
    assert len(trials_csv) == 9 and trials_csv[0].startswith("trial,state,value")

    # the best trial, repeated by `fit --config … --strategy finetune --no-refit`: the same numbers, exactly
    run = tmp_path / "run"
    code = main(["--quiet", "fit", str(data), "--config", str(out / "best_config.yaml"), "--strategy", "finetune",
                 "--no-refit", "--out", str(run)])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["validation"]["score"] == summary["best_value"]
    import optuna

    study = optuna.load_study(study_name="xmodal", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / "study.journal"))))
    trial = study.trials[summary["best_trial"]]
    curve = [json.loads(line)["val_accuracy"] for line in (run / "log.jsonl").read_text().splitlines()
             if json.loads(line)["stage"] == "finetune"]
    assert curve == [trial.intermediate_values[e] for e in sorted(trial.intermediate_values)]


def test_a_study_resumes_from_its_journal_and_refuses_other_data(tmp_path, monkeypatch):
    """A study is joined only with the data, settings and automatic settings it was started on: its first
    trial runs the automatic settings and the space scales from them (``tune.json`` keeps the key)."""
    from xmodal.model.bodies import FAMILIES, resolve_body

    X, y = sign_of_mean()
    first = tune(X, y, TINY, space=SPACE, n_trials=3, budget=None, out=tmp_path, progress=False)
    key = json.loads((tmp_path / "tune.json").read_text())["key"]
    assert key == study_key(X, y, TINY, space=SPACE) and key["automatic"]["epochs"] == 4  # TINY sets epochs
    assert key["automatic"]["lr"] == RULE.lr  # ViT's family sets no learning rate of its own: the rule's
    params = [t.params for t in first.study.trials]
    again = tune(X, y, TINY, space=SPACE, n_trials=5, budget=None, out=tmp_path, progress=False)
    assert len(again.study.trials) == 5 and [t.params for t in again.study.trials[:3]] == params
    assert again.study.trials[0].user_attrs["origin"] == "defaults"  # the automatic defaults go first
    with pytest.raises(XmodalError, match="other data or settings"):
        tune(X[:40], y[:40], TINY, space=SPACE, n_trials=6, budget=None, out=tmp_path, progress=False)
    # the same data and settings, but the automatic learning rate changed since the study started
    monkeypatch.setattr(FAMILIES[resolve_body(TINY["body"]).family], "auto_lr", RULE.lr * 2)
    assert study_key(X, y, TINY, space=SPACE)["automatic"]["lr"] == RULE.lr * 2
    with pytest.raises(XmodalError, match=r"differs in \['automatic'\]"):
        tune(X, y, TINY, space=SPACE, n_trials=6, budget=None, out=tmp_path, progress=False)


def test_bad_spaces_budgets_and_options_are_refused_before_any_trial(tmp_path):
    X, y = sign_of_mean()
    with pytest.raises(XmodalError, match="unknown setting 'learning_rate'"):
        SearchSpace({"learning_rate": [1e-3]})
    with pytest.raises(XmodalError, match="cannot be tuned"):
        SearchSpace({"seed": [0, 1]})
    with pytest.raises(XmodalError, match="0 < lo < hi"):
        SearchSpace({"lr": {"log": [0, 1e-2]}})
    with pytest.raises(XmodalError, match="unknown kind"):
        SearchSpace({"lr": {"loguniform": [1e-5, 1e-2]}})
    with pytest.raises(XmodalError, match="automatic value"):
        SearchSpace({"weight_decay": {"scale": [1, 2]}})
    assert parse_duration("20m") == 1200 and parse_duration("1h30m") == 5400 and parse_duration("90") == 90
    with pytest.raises(XmodalError, match="not a duration"):
        parse_duration("soon")
    with pytest.raises(XmodalError, match="budget"):
        tune(X, y, TINY, budget=None, n_trials=None, out=tmp_path)
    with pytest.raises(XmodalError, match="validation"):
        tune(X, y, {**TINY, "validation": 0}, n_trials=2, out=tmp_path)
    with pytest.raises(XmodalError, match="unknown strategy"):
        tune(X, y, TINY, n_trials=2, out=tmp_path, tune_strategy="nope")
    with pytest.raises(XmodalError, match="unsupported storage"):
        tune(X, y, TINY, n_trials=2, out=tmp_path, storage="redis://localhost")
    assert not list(tmp_path.iterdir())  # nothing written


# ------------------------------------------------------------------ PostgreSQL: two workers, one study


@pytest.fixture()
def postgres():
    """A throw-away PostgreSQL server in a temporary folder, run as an unprivileged user; its URL."""
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL's initdb is not installed (Debian: apt-get install postgresql)")
    with temporary_postgres() as url:
        yield url


def _worker(data: Path, space: Path, url: str, out: Path, trials: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "xmodal.cli", "--quiet", "tune", str(data), "--body", "vit-tiny-random",
           "--max-tokens", "8", "--epochs", "30", "--device", "cpu", "--space", str(space), "--pruner", "none",
           "--trials", str(trials), "--budget", "none", "--storage", url, "--study", "shared", "--out", str(out)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study_and_a_killed_one_loses_only_its_trial(tmp_path, data_npz, postgres):
    import optuna
    from optuna.trial import TrialState

    data, _ = data_npz
    space = tmp_path / "slow-space.yaml"
    space.write_text(json.dumps({"lr": {"log": [1e-4, 1e-2]}, "optimizer": ["adamw", "adam"]}))
    a = _worker(data, space, postgres, tmp_path / "a", 8)
    b = _worker(data, space, postgres, tmp_path / "b", 8)
    storage = optuna.storages.RDBStorage(postgres.replace("postgresql://", "postgresql+psycopg://"))
    deadline = time.monotonic() + 240
    victim = None
    while time.monotonic() < deadline and victim is None:  # kill worker a in its second trial
        time.sleep(0.3)
        try:
            study = optuna.load_study(study_name="shared", storage=storage)
        except KeyError:
            continue
        mine = [t for t in study.get_trials() if t.user_attrs.get("worker", "").endswith(f":{a.pid}")]
        if any(t.state == TrialState.COMPLETE for t in mine):
            running = [t for t in mine if t.state == TrialState.RUNNING]
            if running:
                victim = running[0].number
                a.send_signal(signal.SIGKILL)
    assert victim is not None, "worker a never reached a second trial"
    a.wait(timeout=30)
    out_b, _ = b.communicate(timeout=300)
    assert b.returncode == 0, out_b
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    assert len(trials) >= 8 and not [t for t in trials if t.state == TrialState.RUNNING]
    assert study.trials[victim].state == TrialState.FAIL
    assert "is gone" in study.trials[victim].user_attrs["failed_because"]
    workers = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials}
    assert workers == {str(a.pid), str(b.pid)}  # the trials were divided between the two
    assert [t.number for t in trials] == list(range(len(trials)))  # each trial run once, by one worker
    assert sum(t.state == TrialState.FAIL for t in trials) == 1
    summary = json.loads((tmp_path / "b" / "tune.json").read_text())
    best = RunConfig.load(tmp_path / "b" / "best_config.yaml")
    assert summary["best_value"] == study.best_value and best.lr == pytest.approx(study.best_params["lr"])


def test_fit_tune_tunes_first_and_fits_with_the_best_configuration(tmp_path, data_npz, capsys):
    data, space = data_npz
    run = tmp_path / "run"
    code = main(["--quiet", "fit", str(data), "--body", "vit-tiny-random", "--max-tokens", "8", "--epochs", "3",
                 "--device", "cpu", "--strategy", "finetune", "--tune", "--space", str(space), "--trials", "3",
                 "--budget", "none", "--out", str(run)])
    assert code == 0, capsys.readouterr().err
    best = RunConfig.load(run / "tune" / "best_config.yaml")
    used = RunConfig.load(run / "run_config.yaml")
    assert used == best and used.strategy == "finetune"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["validation"]["score"] is not None and "accuracy" in metrics["test"]


def test_the_budget_stops_a_running_trial_and_a_study_without_a_finished_trial_is_an_error(tmp_path):
    import optuna

    X, y = sign_of_mean()
    with pytest.raises(XmodalError, match="no trial finished"):
        tune(X, y, {**TINY, "epochs": 400}, space=SPACE, budget=1, out=tmp_path, progress=False)
    study = optuna.load_study(study_name="xmodal", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.journal"))))
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.user_attrs["stopped"] == "budget"
    assert 1 <= trial.user_attrs["epochs_run"] < 400


def test_named_spaces_resolve_and_the_local_space_stays_near_the_automatic_settings(tmp_path):
    import optuna

    from xmodal.tuning import DEFAULT_SPACE, LOCAL_SPACE, ORCA_SPACE, resolve_space

    assert resolve_space(None) is DEFAULT_SPACE is LOCAL_SPACE and resolve_space("local") is LOCAL_SPACE
    assert resolve_space("orca") is ORCA_SPACE and ORCA_SPACE.to_spec()["lr"] == {"log": [1e-6, 1e-2]}
    path = tmp_path / "space.json"
    path.write_text(json.dumps(SPACE))
    assert resolve_space(str(path)).to_spec() == SearchSpace(SPACE).to_spec() == resolve_space(SPACE).to_spec()
    with pytest.raises(XmodalError, match="not a named space .*local, orca"):
        resolve_space("wide")
    with pytest.raises(XmodalError, match="unknown setting"):
        resolve_space({"learning_rate": [1e-3]})

    auto = RunConfig(lr=2e-4, max_tokens=16, epochs=40)
    start = LOCAL_SPACE.defaults(auto)
    assert start is not None and start["lr_scale"] == 1.0 and start["optimizer"] == "adamw"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = []
    study.optimize(lambda t: drawn.append(LOCAL_SPACE.sample(t, auto)) or 0.0, n_trials=40)
    assert all(2e-5 - 1e-12 <= d["lr"] <= 2e-3 + 1e-12 for d in drawn)
    assert {d["optimizer"] for d in drawn} == {"adamw", "adam"}
    assert {d["max_tokens"] for d in drawn} == {8, 16, 32} and {d["epochs"] for d in drawn} == {20, 40, 80}
    assert len({round(d["lr"], 12) for d in drawn}) == 5  # the five factors of the automatic lr


def test_the_floor_space_never_trains_a_trial_for_fewer_epochs_than_the_automatic_count():
    import optuna

    from xmodal.tuning import FLOOR_SPACE, LOCAL_SPACE, resolve_space

    assert resolve_space("local-floor") is FLOOR_SPACE
    assert {k: v for k, v in FLOOR_SPACE.to_spec().items() if k != "epochs"} == \
        {k: v for k, v in LOCAL_SPACE.to_spec().items() if k != "epochs"}
    auto = RunConfig(lr=2e-4, max_tokens=16, epochs=5)
    assert FLOOR_SPACE.defaults(auto)["epochs_scale"] == 1.0  # trial 0 is still the automatic settings
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = []
    study.optimize(lambda t: drawn.append(FLOOR_SPACE.sample(t, auto)) or 0.0, n_trials=30)
    assert {d["epochs"] for d in drawn} == {5, 10}
