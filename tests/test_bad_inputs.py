"""One table of bad inputs, each refused through the command line with one ``error: …`` line, exit
status 2, no traceback, and (where the input allows) before any weights load.

The ``weights`` column says whether a case may load weights: a model folder has to be read to find
that its weights are damaged; everything else is refused first.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import xmodal.estimator.runs as est_mod  # where the training runs build bodies
from xmodal import CrossModalEstimator
from xmodal.cli import main
from xmodal.runlock import RunLock

FAST = ["--body", "vit-tiny-random", "--validation", "0", "--epochs", "1", "--max-tokens", "8",
        "--batch-size", "8", "--device", "cpu"]


@dataclass
class Files:
    """What the cases point at, made once per test in a temporary folder."""

    tmp: Path
    npz: Path
    csv: Path
    model: Path


def _write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _series(n=24, length=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return (rng.normal(size=(n, 1, length)) + y[:, None, None]).astype(np.float32), y


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    X, y = _series()
    est = CrossModalEstimator(body="vit-tiny-random", validation=0, epochs=0, max_tokens=8, batch_size=8,
                              align="none", device="cpu", verbose=False).fit(X, y)
    return est.save(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture()
def files(tmp_path, saved_model, monkeypatch) -> Files:
    monkeypatch.chdir(tmp_path)  # a default run folder (runs/...) lands here
    X, y = _series()
    npz = _write_npz(tmp_path / "ok.npz", X_train=X[:16], y_train=y[:16], X_test=X[16:], y_test=y[16:])
    csv = tmp_path / "ok.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(20)))
    return Files(tmp_path, npz, csv, saved_model)


def _copy_model(f: Files, edit: Callable[[Path], None]) -> Path:
    """A copy of the saved model folder, edited."""
    import shutil

    dst = f.tmp / "edited-model"
    shutil.copytree(f.model, dst)
    edit(dst)
    return dst


def _edit_config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        cfg = json.loads((folder / "config.json").read_text())
        change(cfg)
        (folder / "config.json").write_text(json.dumps(cfg))
    return edit


def _nan_weights(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(folder / "model.safetensors"))


def _body_folder(f: Files, text: str | None) -> Path:
    d = f.tmp / "body"
    d.mkdir()
    if text is not None:
        (d / "config.json").write_text(text)
    return d


def _locked(f: Files) -> Path:
    """A run folder held by another run (a lock taken here, on a separate file description)."""
    run = f.tmp / "busy"
    f.__dict__["lock"] = RunLock(run).acquire()  # released when the test's Files goes away
    return run


def _read_only_dir(f: Files) -> Path:
    """A folder this user cannot write to (root writes anywhere it may, so root gets one under /proc)."""
    if os.geteuid() == 0:
        return Path("/proc/xmodal-run")
    d = f.tmp / "ro"
    d.mkdir()
    d.chmod(0o500)
    return d / "run"


def _npz(f: Files, **arrays) -> Path:
    return _write_npz(f.tmp / "bad.npz", **arrays)


def _bytes(f: Files, name: str, data: bytes) -> Path:
    p = f.tmp / name
    p.write_bytes(data)
    return p


def _text(f: Files, name: str, text: str) -> Path:
    p = f.tmp / name
    p.write_text(text)
    return p


X, Y = _series()
NO_GPU = not torch.cuda.is_available()

# (id, argv from the files, regex the error line must match, may load weights)
CASES: list[tuple[str, Callable[[Files], list], str, bool]] = [
    # ---- options, refused before the data are read
    ("seed -1", lambda f: ["fit", f.npz, *FAST, "--seed", "-1"], "seed must be in 0", False),
    ("seed 2^32", lambda f: ["fit", f.npz, *FAST, "--seed", str(2**32)], "seed must be in 0", False),
    ("float epochs", lambda f: ["fit", f.npz, *FAST, "--epochs", "1.5"], "--epochs", False),
    ("text epochs", lambda f: ["fit", f.npz, *FAST, "--epochs", "many"], "--epochs", False),
    ("lr inf", lambda f: ["fit", f.npz, *FAST, "--lr", "inf"], "lr must be finite", False),
    ("lr nan", lambda f: ["fit", f.npz, *FAST, "--lr", "nan"], "lr must be finite", False),
    ("lr negative", lambda f: ["fit", f.npz, *FAST, "--lr", "-1"], "lr must be > 0", False),
    ("lr zero", lambda f: ["fit", f.npz, *FAST, "--lr", "0"], "lr must be > 0", False),
    ("weight decay inf", lambda f: ["fit", f.npz, *FAST, "--weight-decay", "inf"], "weight_decay must be finite",
     False),
    ("weight decay negative", lambda f: ["fit", f.npz, *FAST, "--weight-decay", "-0.1"], "weight_decay must be",
     False),
    ("align lr nan", lambda f: ["fit", f.npz, *FAST, "--align-lr", "nan"], "align_lr must be finite", False),
    ("warmup ratio 1", lambda f: ["fit", f.npz, *FAST, "--warmup-ratio", "1"], "warmup_ratio", False),
    ("clip negative", lambda f: ["fit", f.npz, *FAST, "--clip-grad-norm", "-1"], "clip_grad_norm", False),
    ("validation 1", lambda f: ["fit", f.npz, *FAST, "--validation", "1"], "validation must be", False),
    ("validation negative", lambda f: ["fit", f.npz, *FAST, "--validation", "-0.1"], "validation must be", False),
    ("batch size 0", lambda f: ["fit", f.npz, *FAST, "--batch-size", "0"], "batch_size must be", False),
    ("accumulate 0", lambda f: ["fit", f.npz, *FAST, "--accumulate", "0"], "accumulate must be", False),
    ("max tokens 0", lambda f: ["fit", f.npz, *FAST, "--max-tokens", "0"], "max_tokens must be", False),
    ("align epochs negative", lambda f: ["fit", f.npz, *FAST, "--align-epochs", "-1"], "align_epochs", False),
    ("align steps 0", lambda f: ["fit", f.npz, *FAST, "--align-steps", "0"], "align_steps", False),
    ("source size 1", lambda f: ["fit", f.npz, *FAST, "--source-size", "1"], "source_size", False),
    ("optimizer lion", lambda f: ["fit", f.npz, *FAST, "--optimizer", "lion"], "optimizer", False),
    ("precision fp8", lambda f: ["fit", f.npz, *FAST, "--precision", "fp8"], "precision", False),
    ("device banana", lambda f: ["fit", f.npz, *FAST, "--device", "banana"], "device must be", False),
    ("unknown strategy", lambda f: ["fit", f.npz, *FAST, "--strategy", "nonsense"], "unknown strategy", False),
    ("strategy conflicts align", lambda f: ["fit", f.npz, *FAST, "--strategy", "orca", "--align", "mmd"],
     "conflicts", False),
    ("repeated candidates", lambda f: ["fit", f.npz, *FAST, "--strategy", "auto", "--candidates", "orca,orca"],
     "must not repeat", False),
    ("unknown candidate", lambda f: ["fit", f.npz, *FAST, "--strategy", "auto", "--candidates", "orca,bogus"],
     "unknown strategy", False),
    ("unknown mode", lambda f: ["fit", f.npz, *FAST, "--mode", "lora"], "unknown fine-tuning mode", False),
    ("unknown aligner", lambda f: ["fit", f.npz, *FAST, "--align", "bogus"], "unknown alignment", False),
    ("unknown otdd option", lambda f: ["fit", f.npz, *FAST, "--align", "otdd", "--align-option", "bogus=1"],
     r"unknown otdd option.*valid: \[", False),
    ("bad otdd option value", lambda f: ["fit", f.npz, *FAST, "--align", "otdd", "--align-option", "epsilon=-1"],
     "epsilon", False),
    ("mona option on otdd", lambda f: ["fit", f.npz, *FAST, "--align", "otdd", "--align-option", "lam=0.5"],
     "unknown otdd option", False),
    ("unknown mona option", lambda f: ["fit", f.npz, *FAST, "--strategy", "mona", "--align-option", "nope=1"],
     "unknown MoNA option", False),
    ("malformed align option", lambda f: ["fit", f.npz, *FAST, "--align-option", "novalue"], "--align-option",
     False),
    ("unknown task", lambda f: ["fit", f.npz, *FAST, "--task", "banana"], "task", False),
    ("spatial dims 4", lambda f: ["fit", f.npz, *FAST, "--spatial-dims", "4"], "spatial_dims", False),
    ("config missing", lambda f: ["fit", f.npz, *FAST, "--config", f.tmp / "nope.yaml"], "nope.yaml", False),
    ("config unknown key", lambda f: ["fit", f.npz, *FAST, "--config", _text(f, "c.yaml", "colour: red\n")],
     "unknown setting", False),
    ("config bad yaml", lambda f: ["fit", f.npz, *FAST, "--config", _text(f, "c.yaml", "lr: [1,\n")], "c.yaml",
     False),
    ("config wrong suffix", lambda f: ["fit", f.npz, *FAST, "--config", _text(f, "c.txt", "lr: 1\n")], "c.txt",
     False),
    ("config bad value", lambda f: ["fit", f.npz, *FAST, "--config", _text(f, "c.json", '{"epochs": 2.5}')],
     "epochs must be an integer", False),
    ("unknown command", lambda f: ["fitt", f.npz], "invalid choice", False),
    ("unknown option", lambda f: ["fit", f.npz, "--colour", "red"], "unrecognized arguments", False),
    ("out is a file", lambda f: ["fit", f.npz, *FAST, "--out", f.csv], "is a file", False),
    ("out under a file", lambda f: ["fit", f.npz, *FAST, "--out", f.csv / "run"], "cannot be written", False),
    ("out not writable", lambda f: ["fit", f.npz, *FAST, "--out", _read_only_dir(f)],
     "cannot be written|cannot write to", False),
    ("out in use", lambda f: ["fit", f.npz, *FAST, "--out", _locked(f)], r"in use by another run \(pid", False),
    ("test size 1.5", lambda f: ["fit", f.csv, *FAST, "--test-size", "1.5"], "test", False),
    # ---- data, refused after reading, before any weights
    ("missing npz", lambda f: ["fit", f.tmp / "missing.npz", *FAST], "not found", False),
    ("missing csv", lambda f: ["fit", f.tmp / "missing.csv", *FAST], "not found", False),
    ("unknown dataset", lambda f: ["fit", "no-such-dataset", *FAST], "unknown dataset", False),
    ("folder as data", lambda f: ["fit", f.tmp, *FAST], "cannot read", False),
    ("random bytes npz", lambda f: ["fit", _bytes(f, "r.npz", os.urandom(64).replace(b"\x80", b"\x00")), *FAST],
     r"not an \.npz archive|as an \.npz archive \(it starts", False),
    ("empty npz", lambda f: ["fit", _bytes(f, "e.npz", b""), *FAST], "it is empty", False),
    ("pickle named npz", lambda f: ["fit", _bytes(f, "p.npz", pickle.dumps({"X_train": [1]})), *FAST],
     "pickle", False),
    ("npz without y_train", lambda f: ["fit", _npz(f, X_train=X), *FAST], "no y_train", False),
    ("npz X_test without y_test", lambda f: ["fit", _npz(f, X_train=X, y_train=Y, X_test=X), *FAST],
     "but no y_test", False),
    ("NaN in X", lambda f: ["fit", _npz(f, X_train=np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X),
                                        y_train=Y), *FAST], "NaN/Inf", False),
    ("beyond float32", lambda f: ["fit", _npz(f, X_train=X.astype(np.float64) * 1e300, y_train=Y), *FAST],
     "beyond float32's range", False),
    ("object array", lambda f: ["fit", _npz(f, X_train=np.array([[1.0], [1.0, 2.0]], dtype=object),
                                            y_train=np.arange(2)), *FAST], "object array", False),
    ("one class", lambda f: ["fit", _npz(f, X_train=X, y_train=np.zeros(len(X), int)), *FAST, "--task",
                             "classification"], "class", False),
    ("length mismatch", lambda f: ["fit", _npz(f, X_train=X, y_train=Y[:-3]), *FAST], "samples", False),
    ("rank 6", lambda f: ["fit", _npz(f, X_train=np.zeros((4, 1, 2, 2, 2, 2), np.float32), y_train=np.arange(4) % 2),
                          *FAST], "rank", False),
    ("text X", lambda f: ["fit", _npz(f, X_train=np.array([["a", "b"]] * 4), y_train=np.arange(4) % 2), *FAST],
     "dtype", False),
    ("csv unknown target", lambda f: ["fit", f.csv, *FAST, "--target", "nope"], "nope", False),
    ("csv NaN cell", lambda f: ["fit", _text(f, "n.csv", "a,b\n1,0\nnan,1\n2,0\n3,1\n"), *FAST], "NaN", False),
    ("csv empty", lambda f: ["fit", _text(f, "z.csv", ""), *FAST], "empty|no rows|no header", False),
    ("body unknown", lambda f: ["fit", f.npz, *FAST, "--body", "no-such-body"], "unknown body", False),
    ("body folder without config", lambda f: ["fit", f.npz, *FAST, "--body", _body_folder(f, None)],
     "has no config.json", False),
    ("body folder invalid config", lambda f: ["fit", f.npz, *FAST, "--body", _body_folder(f, "{not json")],
     "invalid config.json", False),
    ("body folder unsupported type", lambda f: ["fit", f.npz, *FAST, "--body",
                                                _body_folder(f, '{"model_type": "gpt2"}')], "not supported", False),
    ("cuda without a GPU", lambda f: ["fit", f.npz, *FAST, "--device", "cuda"], "no usable CUDA GPU", False),
    ("cuda:7", lambda f: ["fit", f.npz, *FAST, "--device", "cuda:7"], "CUDA GPU|does not exist", False),
    ("compare unknown strategy", lambda f: ["compare", f.npz, "--strategies", "nosuch", *FAST[:2]],
     "unknown strategy", False),
    ("compare bad seeds", lambda f: ["compare", f.npz, "--seeds", "a,b"], "comma-separated integers", False),
    ("tune bad budget", lambda f: ["tune", f.npz, *FAST, "--budget", "banana"], "budget", False),
    ("tune missing space", lambda f: ["tune", f.npz, *FAST, "--space", f.tmp / "space.yaml"], "space.yaml", False),
    ("tune unknown pruner", lambda f: ["tune", f.npz, "--pruner", "median"], "invalid choice", False),
    ("bench unknown task", lambda f: ["bench", "--tasks", "nosuch", "--out", f.tmp / "b"], "nosuch", False),
    # ---- predict / evaluate
    ("predict no model", lambda f: ["predict", f.tmp / "none", f.npz], "no xmodal model", False),
    ("predict missing input", lambda f: ["predict", f.model, f.tmp / "x.npy"], "does not exist", True),
    ("predict random bytes npy", lambda f: ["predict", f.model, _bytes(f, "x.npy", b"\x01" * 64)],
     r"\.npz archive|\.npy", True),
    ("predict wrong layout", lambda f: ["predict", f.model, _npz(f, X=np.zeros((3, 2, 5), np.float32))],
     "shape|layout|channels", True),
    ("model damaged config", lambda f: ["predict", _copy_model(f, lambda d: (d / "config.json").write_text("{")),
                                         f.npz], "damaged", False),
    ("model NaN weights", lambda f: ["predict", _copy_model(f, _nan_weights), f.npz], "non-finite weights", True),
    ("model more classes than outputs", lambda f: ["predict", _copy_model(f, _edit_config(
        lambda c: c.update(classes=["a", "b", "c"]))), f.npz], "3 classes for 2 outputs", True),
    ("model outputs mismatch", lambda f: ["predict", _copy_model(f, _edit_config(
        lambda c: c.update(n_outputs=5))), f.npz], "inconsistent", True),
    ("model spec mismatch", lambda f: ["predict", _copy_model(f, _edit_config(
        lambda c: c["spec"].update(num_outputs=7))), f.npz], "inconsistent", True),
    ("model spec missing", lambda f: ["predict", _copy_model(f, _edit_config(lambda c: c.pop("spec"))), f.npz],
     "inconsistent", True),
    ("model bad params", lambda f: ["predict", _copy_model(f, _edit_config(
        lambda c: c["params"].update(colour="red"))), f.npz], "does not load|unknown", True),
    ("model weights missing", lambda f: ["predict", _copy_model(f, lambda d: (d / "model.safetensors").unlink()),
                                          f.npz], "damaged", True),
    ("predict device banana", lambda f: ["predict", f.model, f.npz, "--device", "banana"], "device", True),
    ("evaluate no model", lambda f: ["evaluate", f.tmp / "none", f.npz], "no xmodal model", False),
    ("evaluate unknown metric", lambda f: ["evaluate", f.model, f.npz, "--metrics", "banana"], "banana", True),
]


@pytest.fixture()
def weights_guard(monkeypatch):
    """Make loading a body or training fail the test (``pytest.fail`` is not caught by the CLI)."""
    state = {"allowed": False}

    def guard(real):
        def wrapper(*args, **kwargs):
            if not state["allowed"]:
                pytest.fail("weights were loaded: the input should have been refused first")
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(est_mod, "build_body", guard(est_mod.build_body))
    monkeypatch.setattr(est_mod, "load_file", guard(est_mod.load_file))
    monkeypatch.setattr(est_mod, "train_loop", guard(est_mod.train_loop))
    return state


def test_the_table_has_at_least_60_kinds():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("make_args,match,weights", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_with_one_line(files, capsys, weights_guard, make_args, match, weights):
    argv = [str(a) for a in make_args(files)]
    if any(a.startswith("cuda") for a in argv) and not NO_GPU:
        pytest.skip("this machine has a GPU")
    weights_guard["allowed"] = weights
    try:
        with pytest.raises(SystemExit) as exit_info:
            raise SystemExit(main(["--quiet", *argv]))
    finally:
        lock = files.__dict__.pop("lock", None)
        if lock is not None:
            lock.release()
        ro = files.tmp / "ro"
        if ro.exists():
            ro.chmod(0o700)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2, (out, err)
    assert not list(Path("runs").glob("*/run_config.yaml")), "a refused run left files behind"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(match, lines[0]), lines[0]
