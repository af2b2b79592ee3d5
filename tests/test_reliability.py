"""Nothing lost and nothing silent: divergence stops training, run folders are locked, resume checks
its data, stage 2 resumes from its own checkpoint, the proxy cache is checked, and the package and
the command line start without torch."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from xmodal import CrossModalEstimator, XmodalError
from xmodal.align.source_cache import source_features_cached
from xmodal.cli import main
from xmodal.errors import TrainingDiverged
from xmodal.files import json_dumps
from xmodal.model.bodies import build_body, resolve_body
from xmodal.runlock import RunLock
from xmodal.train.checkpoint import load_checkpoint
from xmodal.train.config import TrainConfig
from xmodal.train.finetune import train_loop

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(body="vit-tiny-random", validation=0, max_tokens=8, batch_size=8, epochs=2, device="cpu", verbose=False)
FAST = ["--body", "vit-tiny-random", "--validation", "0", "--epochs", "1", "--max-tokens", "8", "--batch-size", "8",
        "--device", "cpu"]


def _series(n=24, length=16, seed=0, shift=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return (rng.normal(size=(n, 1, length)) + shift * y[:, None, None]).astype(np.float32), y


def _npz(path: Path, seed: int = 0) -> Path:
    X, y = _series(seed=seed)
    np.savez(path, X_train=X[:16], y_train=y[:16], X_test=X[16:], y_test=y[16:])
    return path


def _cli(capsys, *args):
    code = main(["--quiet", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ divergence
def test_the_loop_stops_at_the_first_non_finite_loss_and_keeps_the_last_finite_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    X, y = torch.randn(16, 3), torch.arange(16) % 2
    calls = {"n": 0}

    def loss_fn(out, target):  # finite for the first epoch (4 steps), NaN from the 2nd step of epoch 2
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(out, target)
        return loss * float("nan") if calls["n"] == 6 else loss

    ckpt = tmp_path / "ckpt.safetensors"
    cfg = TrainConfig(epochs=3, batch_size=4, lr=1e-2, seed=0)
    with pytest.raises(TrainingDiverged, match=r"diverged: the loss became non-finite at epoch 2, optimiser step 2"):
        train_loop(model, list(model.parameters()), X, y, loss_fn, cfg, torch.device("cpu"), desc="stage 3 (test)",
                   checkpoint=ckpt, progress=False)
    fresh = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(fresh.parameters())
    epoch, extra, _ = load_checkpoint(ckpt, fresh, opt, None)
    assert epoch == 1 and all(torch.isfinite(p).all() for p in fresh.parameters())
    assert all(math.isfinite(r["loss"]) for r in extra["history"])


def test_a_diverging_fit_is_an_error_not_a_result(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = _cli(capsys, "fit", _npz(tmp_path / "d.npz"), *FAST, "--align", "none", "--lr", "1e30",
                          "--out", run)
    assert code == 2 and "diverged" in err and "stage 3" in err and "smaller learning rate" in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (run / "model").exists() and not (run / "metrics.json").exists()


@pytest.mark.parametrize("align,stage", [("otdd", "otdd"), ("mona", "mona"), ("warmup", "warm-up")])
def test_a_diverging_stage_2_is_an_error(tmp_path, align, stage):
    X, y = _series()
    est = CrossModalEstimator(**TINY, align=align, align_epochs=3, align_lr=1e30, source_size=100,
                              align_options={"source_pool": 16, "source_batch": 8} if align == "mona" else None)
    with pytest.raises(TrainingDiverged, match=rf"stage 2 \({stage}\) diverged"):
        est.fit(X, y, checkpoint_dir=tmp_path)


def test_a_model_folder_with_non_finite_weights_is_refused(tmp_path):
    X, y = _series()
    folder = CrossModalEstimator(**TINY, align="none").fit(X, y).save(tmp_path / "m")
    from safetensors.torch import save_file

    state = load_file(str(folder / "model.safetensors"))
    state["head.linear.bias"] = torch.full_like(state["head.linear.bias"], float("inf"))
    save_file(state, str(folder / "model.safetensors"))
    from xmodal import load

    with pytest.raises(XmodalError, match="non-finite weights"):
        load(folder)


def test_log_and_metrics_are_strict_json(tmp_path, capsys):
    run = tmp_path / "run"
    assert _cli(capsys, "fit", _npz(tmp_path / "d.npz"), *FAST, "--align", "none", "--out", run)[0] == 0

    def refuse(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    for line in (run / "log.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=refuse)
    json.loads((run / "metrics.json").read_text(), parse_constant=refuse)
    assert json_dumps({"a": float("nan"), "b": [float("inf"), 1.0]}) == '{"a": null, "b": [null, 1.0]}'


# ------------------------------------------------------------------ run folders
def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    folder = tmp_path / "run"
    code = ("import os, signal, sys; from xmodal.runlock import RunLock; RunLock(sys.argv[1]).acquire(); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    with RunLock(folder):  # free again at once
        pass


def test_a_second_run_into_a_held_folder_is_refused_naming_the_holder(tmp_path, capsys):
    folder = tmp_path / "run"
    code = ("import sys, time; from xmodal.runlock import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = _cli(capsys, "fit", _npz(tmp_path / "d.npz"), *FAST, "--out", folder)
        assert code == 2 and f"pid {holder.pid}" in err and "in use by another run" in err, err
        with pytest.raises(XmodalError, match="in use by another run"):
            CrossModalEstimator(**TINY).fit(*_series(), checkpoint_dir=folder)
    finally:
        holder.kill()
        holder.wait()


def test_resume_refuses_other_data_of_the_same_shape(tmp_path, capsys):
    run = tmp_path / "run"
    first, other = _npz(tmp_path / "a.npz", seed=0), _npz(tmp_path / "b.npz", seed=1)
    assert _cli(capsys, "fit", first, *FAST, "--align", "none", "--out", run)[0] == 0
    before = (run / "config.json").read_text(), (run / "metrics.json").read_text()
    code, _, err = _cli(capsys, "fit", other, *FAST, "--align", "none", "--out", run, "--resume")
    assert code == 2 and "training data" in err and "differ" in err, err
    assert ((run / "config.json").read_text(), (run / "metrics.json").read_text()) == before
    # the API's checkpoint folder checks the data too
    X, y = _series()
    CrossModalEstimator(**TINY, align="none").fit(X, y, checkpoint_dir=tmp_path / "ck")
    with pytest.raises(XmodalError, match="other training data"):
        CrossModalEstimator(**TINY, align="none").fit(X[::-1].copy(), y, checkpoint_dir=tmp_path / "ck")


# ------------------------------------------------------------------ stage 2 checkpoints
def test_stage_2_resumes_from_its_epoch_checkpoint_to_the_same_result(tmp_path, monkeypatch):
    import xmodal.train.session as distance  # every loop checkpoints through EpochRun

    X, y = _series()
    params = dict(TINY, align="otdd", align_epochs=4, source_size=100, epochs=1)
    reference = CrossModalEstimator(**params).fit(X, y)
    real = distance.save_checkpoint
    saves = {"n": 0}

    def interrupt_after_2_epochs(*args, **kwargs):
        real(*args, **kwargs)
        saves["n"] += 1
        if saves["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(distance, "save_checkpoint", interrupt_after_2_epochs)
    with pytest.raises(KeyboardInterrupt):
        CrossModalEstimator(**params).fit(X, y, checkpoint_dir=tmp_path)
    assert (tmp_path / "align.ckpt.safetensors").exists()
    ran = []

    def record(*args, **kwargs):
        if args[0].name.startswith("align"):  # stage 2's checkpoint (stage 3 saves through the same code)
            ran.append(args[4])  # the epoch just finished
        real(*args, **kwargs)

    monkeypatch.setattr(distance, "save_checkpoint", record)
    resumed = CrossModalEstimator(**params).fit(X, y, checkpoint_dir=tmp_path)
    assert ran == [3, 4]  # epochs 1 and 2 were not repeated
    assert [h["distance"] for h in resumed.report_.align["history"]] == \
        [h["distance"] for h in reference.report_.align["history"]]
    for (k, a), b in zip(reference.model_.state_dict().items(), resumed.model_.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert not (tmp_path / "align.ckpt.safetensors").exists()  # superseded by aligned.*


@pytest.mark.parametrize("name,content", [("aligned.json", "{not json"), ("aligned.json", '{"run_key": {}}'),
                                          ("aligned.safetensors", "garbage"),
                                          ("align.ckpt.safetensors", "garbage")])
def test_damaged_stage_2_files_say_delete_to_restart(tmp_path, name, content):
    X, y = _series()
    params = dict(TINY, align="otdd", align_epochs=1, source_size=100, epochs=1)
    CrossModalEstimator(**params).fit(X, y, checkpoint_dir=tmp_path)
    (tmp_path / "finetune.ckpt.safetensors").unlink()
    if name == "align.ckpt.safetensors":
        for f in ("aligned.json", "aligned.safetensors"):
            (tmp_path / f).unlink()
    (tmp_path / name).write_text(content)
    with pytest.raises(XmodalError, match="damaged.*delete"):
        CrossModalEstimator(**params).fit(X, y, checkpoint_dir=tmp_path)


@pytest.mark.slow
def test_sigkill_in_stage_2_and_stage_3_then_resume_gives_the_uninterrupted_weights(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "crash_resume.py"), "--strategies", "orca",
                           "--points", "2", "--quick", "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    assert {r["stage"] for r in rows} == {2, 3}
    for r in rows:
        assert r["equal"], r
        assert 0 <= r["repeated"] <= r["lost_bound"], r


# ------------------------------------------------------------------ proxy-feature cache
def _body():
    return build_body(resolve_body("vit-tiny-random"))


def test_a_cache_file_with_wrong_values_is_regenerated(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path))
    body = _body()
    feats, labels, k = source_features_cached(body, "key", "mnist", 60, 0)
    path = next((tmp_path / "proxies").glob("*.safetensors"))
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file({"features": feats * 1000.0, "labels": labels}, str(path), metadata=meta)  # well-formed, wrong
    again, _, _ = source_features_cached(body, "key", "mnist", 60, 0)
    assert torch.equal(again, feats)


@pytest.mark.parametrize("where", ["file", "proc"])
def test_an_unusable_cache_folder_degrades_to_memory_with_a_warning(tmp_path, monkeypatch, where):
    if where == "file":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("x")
        monkeypatch.setenv("XMODAL_CACHE", str(blocker))
    else:
        if not Path("/proc").is_dir():
            pytest.skip("no /proc")
        monkeypatch.setenv("XMODAL_CACHE", "/proc/xmodal-cache")
    with pytest.warns(UserWarning, match="cache"):
        feats, labels, k = source_features_cached(_body(), "key", "mnist", 40, 0)
    assert feats.shape[0] == labels.shape[0] == 40 and k >= 2


# ------------------------------------------------------------------ start-up without torch
@pytest.mark.parametrize("argv", [["--help"], ["strategies"], ["fit", "missing.npz"], ["fit", "x.npz", "--seed", "-1"],
                                  ["predict", "no-model", "x.npy"], ["tune", "missing.npz"], ["bench", "--list"]])
def test_the_cli_answers_without_importing_torch(tmp_path, argv):
    code = ("import sys; from xmodal.cli import main\n"
            "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            "heavy = [m for m in ('torch', 'transformers', 'optuna') if m in sys.modules]\n"
            "print('HEAVY', heavy, rc)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path)
    assert "HEAVY [] " in proc.stdout, proc.stdout + proc.stderr  # (wall times: benchmarks/cli_startup.py)


def test_import_xmodal_is_lazy():
    code = ("import sys, xmodal; assert 'torch' not in sys.modules; xmodal.RunConfig(); "
            "assert 'torch' not in sys.modules; xmodal.CrossModalEstimator; assert 'torch' in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import xmodal

    assert "CrossModalEstimator" in dir(xmodal)
    with pytest.raises(AttributeError):
        xmodal.NoSuchThing  # noqa: B018


def test_the_time_estimate_counts_every_planned_stage_3_step(capsys):
    from torch.optim.optimizer import register_optimizer_step_post_hook

    X, y = _series(n=30)
    steps = {"n": 0}
    handle = register_optimizer_step_post_hook(lambda *a: steps.__setitem__("n", steps["n"] + 1))
    try:
        CrossModalEstimator(**{**TINY, "verbose": True, "validation": 0.2, "epochs": 3, "batch_size": 4},
                            strategy="auto", candidates=("finetune", "frozen")).fit(X, y)
    finally:
        handle.remove()
    out = capsys.readouterr().out + capsys.readouterr().err
    planned = int(out.split("stage-3 optimiser steps in all runs")[0].rsplit("(", 1)[1])
    assert planned == steps["n"]  # two validation runs and the refit; no stage 2 in these strategies


def test_the_constant_score_is_the_majority_class_or_the_training_mean():
    from xmodal.estimator.runs import constant_score
    from xmodal.tasks import get_task_kind

    assert constant_score(get_task_kind("classification"), np.array([0, 1, 1, 2, 1]), np.array([1, 0, 1, 1])) == 0.75
    rng = np.random.default_rng(0)
    y = rng.normal(1.0, 1.0, size=(40, 1, 4, 4)).astype(np.float32)
    y_val = rng.normal(1.0, 1.0, size=(10, 1, 4, 4)).astype(np.float32)
    flat = (y_val - y.mean(0, keepdims=True)).reshape(10, -1)
    rel_l2 = np.mean(np.linalg.norm(flat, axis=1) / np.linalg.norm(y_val.reshape(10, -1), axis=1))
    assert constant_score(get_task_kind("dense-regression"), y, y_val) == pytest.approx(rel_l2, rel=1e-5)
    y2, y2_val = y.reshape(40, 16), y_val.reshape(10, 16)
    mse = np.mean((y2_val - y2.mean(0)) ** 2)
    assert constant_score(get_task_kind("regression"), y2, y2_val) == pytest.approx(mse, rel=1e-5)
    assert constant_score(get_task_kind("multilabel"), (y2 > 1).astype(np.float32), (y2_val > 1)) is None


@pytest.mark.parametrize("task, metric, score, constant, warns", [
    ("classification", "accuracy", 0.50, 0.50, True),     # at the majority share
    ("classification", "accuracy", 0.70, 0.50, False),
    # a balanced 10-class split (MPNet on mnist-5k, seed 2, predicted one class): the float32 mean of 100
    # right of 1000 is 0.10000000149, a hair above the float64 share 0.1, and must still count as not learned
    ("classification", "accuracy", float(np.float32(100) / np.float32(1000)), 0.1, True),
    ("classification", "accuracy", float(np.float32(101) / np.float32(1000)), 0.1, False),  # one row better
    ("dense-regression", "rel_l2", 0.64, 0.57, True),    # worse than the mean field (lower is better)
    ("dense-regression", "rel_l2", 0.30, 0.57, False),
    ("regression", "mse", 1.00, 1.00, True),
])
def test_a_model_no_better_than_a_constant_is_reported_as_not_learned(task, metric, score, constant, warns):
    from types import SimpleNamespace

    from xmodal.estimator.runs import NotLearnedWarning, TrainingRun, warn_if_not_learned
    from xmodal.evaluate.metrics import get_metric

    est = SimpleNamespace(task_=task, report_=SimpleNamespace(validation={}))
    run = TrainingRun("validation", None, None, {}, [], {}, 40, 10, score, None, constant)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_if_not_learned(est, run, get_metric(metric))
    assert any(issubclass(w.category, NotLearnedWarning) for w in caught) == warns
    assert ("warning" in est.report_.validation) == warns
    if warns:
        what = "most frequent class" if task == "classification" else "training mean"
        assert what in est.report_.validation["warning"] and f"{constant:.4g}" in est.report_.validation["warning"]
