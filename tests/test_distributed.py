"""Data parallelism under torchrun (gloo, CPU): two processes follow one process's run, resume after a
kill, and the pieces they are made of (row parts, loss weights, the fp16 scaler path, the loader)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from xmodal import CrossModalEstimator, distributed
from xmodal.errors import XmodalError
from xmodal.runtime import amp_dtype, grad_scaler
from xmodal.train.batches import batch_loader
from xmodal.train.config import TrainConfig
from xmodal.train.finetune import train_loop

HELPER = Path(__file__).parent / "helpers" / "ddp_fit.py"


def _launch(out: Path, processes: int, *extra: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    if processes == 1:
        cmd = [sys.executable, str(HELPER), str(out), *extra]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               str(HELPER), str(out), *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process, two processes, and two processes killed after stage 3's first epoch then resumed."""
    root = tmp_path_factory.mktemp("ddp")
    _launch(root / "one", 1)
    _launch(root / "two", 2)
    _launch(root / "resumed", 2, "--stop-after", "1")
    assert not (root / "resumed" / "report.json").exists()  # stopped: nothing final was written
    _launch(root / "resumed", 2)
    return root


def _report(run: Path) -> dict:
    return json.loads((run / "report.json").read_text())


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tol: float) -> float:
    assert a.keys() == b.keys()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())
    assert worst <= tol, worst
    return worst


def test_two_gloo_processes_follow_the_one_process_loss_curve_and_weights(runs):
    one, two = _report(runs / "one"), _report(runs / "two")
    assert len(one["align"]) == len(two["align"]) == 3 and len(one["finetune"]) == len(two["finetune"]) == 3
    for a, b in zip(one["align"], two["align"], strict=True):  # stage 2: the logged OTDD
        assert b["distance"] == pytest.approx(a["distance"], rel=1e-5, abs=1e-5)
    for a, b in zip(one["finetune"], two["finetune"], strict=True):  # stage 3: the epoch's mean loss
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-5)
    assert one["finetune"][-1]["loss"] < one["finetune"][0]["loss"]  # it trained
    _close(load_file(str(runs / "one" / "weights-0.safetensors")),
           load_file(str(runs / "two" / "weights-0.safetensors")), 1e-5)
    # both processes end with the same model, and rank 0 alone saved it
    _close(load_file(str(runs / "two" / "weights-0.safetensors")),
           load_file(str(runs / "two" / "weights-1.safetensors")), 0.0)
    assert (runs / "two" / "model" / "model.safetensors").is_file()


def test_a_run_killed_under_torchrun_resumes_to_the_same_model(runs):
    assert [r["loss"] for r in _report(runs / "resumed")["finetune"]] == \
        pytest.approx([r["loss"] for r in _report(runs / "two")["finetune"]], rel=1e-6)
    _close(load_file(str(runs / "two" / "weights-0.safetensors")),
           load_file(str(runs / "resumed" / "weights-0.safetensors")), 1e-6)


# ------------------------------------------------------------------ the parts, in one process

def test_rows_are_divided_in_contiguous_parts_whose_weights_give_the_global_mean(monkeypatch):
    for n, parts in [(10, 2), (5, 2), (7, 3), (1, 2), (0, 4)]:
        slices = [distributed.shard(n, parts, r) for r in range(parts)]
        assert [s.start for s in slices] == [0] + [s.stop for s in slices[:-1]] and slices[-1].stop == n
        assert max(s.stop - s.start for s in slices) - min(s.stop - s.start for s in slices) <= 1
    idx = torch.arange(100, 105)
    assert distributed.local_rows(idx) == (idx, 1.0)  # one process: the batch itself
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    got = []
    for r in range(2):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        got.append(distributed.local_rows(idx))
    assert torch.equal(torch.cat([p for p, _ in got]), idx)
    # DDP averages what the processes back-propagate: (1/2)·Σ_r w_r·mean_r must be the batch's mean loss
    losses = torch.rand(200, generator=torch.Generator().manual_seed(1))
    averaged = sum(w * float(losses[p].mean()) for p, w in got) / 2
    assert averaged == pytest.approx(float(losses[idx].mean()), rel=1e-6)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    part, weight = distributed.local_rows(torch.tensor([7]))  # fewer rows than processes
    assert weight == 0.0 and part.tolist() == [7]


def test_without_torchrun_the_distributed_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    x = torch.randn(3, 2, requires_grad=True)
    assert distributed.world_size() == 1 and distributed.is_main() and distributed.launched_size() == 1
    assert distributed.gather_rows(x, 3) is x
    assert distributed.broadcast({"a": 1}) == {"a": 1}
    t = torch.ones(2)
    assert torch.equal(distributed.all_reduce(t), torch.ones(2))
    distributed.setup(torch.device("cpu"))  # no torchrun environment: joins nothing
    assert not torch.distributed.is_initialized()


def test_a_single_process_stage_is_refused_under_torchrun_before_weights_load(monkeypatch):
    import xmodal.estimator.runs as runs_mod

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(runs_mod, "build_body", lambda *a, **k: pytest.fail("weights loaded"))
    X = np.random.default_rng(0).normal(size=(12, 1, 16)).astype(np.float32)
    y = np.arange(12) % 2
    with pytest.raises(XmodalError, match="one process only.*torchrun"):
        CrossModalEstimator(body="vit-tiny-random", align="mona", validation=0, device="cpu").fit(X, y)


def test_tune_is_refused_under_torchrun(monkeypatch, tmp_path, capsys):
    from xmodal.cli.parser import main

    X = np.random.default_rng(0).normal(size=(12, 1, 16)).astype(np.float32)
    np.savez(tmp_path / "d.npz", X_train=X, y_train=np.arange(12) % 2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = main(["fit", str(tmp_path / "d.npz"), "--tune", "--body", "vit-tiny-random", "--out", str(tmp_path / "r")])
    assert code != 0 and "--tune runs its trials in one process" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_gpu_that_is_absent_is_refused_before_weights_load(monkeypatch):
    import xmodal.estimator.runs as runs_mod

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setattr(runs_mod, "build_body", lambda *a, **k: pytest.fail("weights loaded"))
    X = np.random.default_rng(0).normal(size=(12, 1, 16)).astype(np.float32)
    with pytest.raises(XmodalError, match="no usable CUDA GPU"):
        CrossModalEstimator(body="vit-tiny-random", validation=0, device="cuda").fit(X, np.arange(12) % 2)


def test_precision_maps_to_autocast_dtypes_and_only_fp16_scales_gradients():
    cpu = torch.device("cpu")
    assert amp_dtype(cpu, "auto") is None and amp_dtype(cpu, "fp32") is None
    assert amp_dtype(cpu, "bf16") == torch.bfloat16 and amp_dtype(cpu, "fp16") == torch.float16
    assert not grad_scaler(cpu, "auto").is_enabled() and not grad_scaler(cpu, "bf16").is_enabled()
    assert grad_scaler(cpu, "fp16").is_enabled()


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_the_stage_three_loop_trains_through_the_scaler_path(precision, tmp_path):
    """fp16 with a gradient scaler is what older GPUs get; on CPU the same code path runs for real."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(64, 8, generator=gen)
    y = (X[:, 0] > 0).long()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    cfg = TrainConfig(epochs=10, batch_size=16, lr=3e-2, precision=precision, warmup_ratio=0.0)
    ckpt = tmp_path / "ck.safetensors"
    hist = train_loop(model, list(model.parameters()), X, y, torch.nn.functional.cross_entropy, cfg,
                      torch.device("cpu"), checkpoint=ckpt, progress=False)
    assert hist[-1]["loss"] < 0.6 * hist[0]["loss"]
    from safetensors import safe_open

    with safe_open(str(ckpt), framework="pt") as f:
        extra = json.loads(f.metadata()["xmodal"])["extra"]
    assert ("scaler" in extra) == (precision == "fp16")  # the scale survives a resume
    if precision == "fp16":
        assert extra["scaler"]["scale"] > 0


def test_the_loader_yields_the_same_batches_with_worker_processes():
    X, y = torch.arange(40.0).reshape(20, 2), torch.arange(20)
    batches = list(torch.randperm(20, generator=torch.Generator().manual_seed(0)).split(6))
    plain = list(batch_loader(X, y, batches, torch.device("cpu")))
    workers = list(batch_loader(X, y, batches, torch.device("cpu"), workers=2))
    assert len(plain) == len(workers) == 4
    for (xa, ya), (xb, yb), idx in zip(plain, workers, batches, strict=True):
        assert torch.equal(xa, X[idx]) and torch.equal(xb, X[idx]) and torch.equal(ya, yb)


def test_commands_that_are_not_data_parallel_are_refused_under_torchrun(monkeypatch, capsys):
    from xmodal.cli.parser import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["compare", "gunpoint"]) == 2
    assert "runs in one process, but torchrun started 2" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert main(["strategies"]) == 0


def test_the_prepared_gpu_benchmark_runs_its_smoke_shapes_here():
    """benchmarks/gpu_throughput.py is run on a lent GPU with no second try to spare: its code paths run here."""
    script = Path(__file__).parents[1] / "benchmarks" / "gpu_throughput.py"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run([sys.executable, str(script), "--smoke", "--device", "cpu"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| xmodal stage 3 | tiny |" in done.stdout and "| loss + backward | 100 × 20 × 16 |" in done.stdout


def test_each_process_resumes_its_own_random_stream(tmp_path, monkeypatch):
    """Dropout masks differ between processes; a resumed process must continue its own stream, not rank 0's."""
    from xmodal.train.checkpoint import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    streams = [torch.Generator().manual_seed(s).get_state() for s in (11, 22)]
    save_checkpoint(tmp_path / "ck.safetensors", model, opt, None, 1, rank_rng=streams)
    for r in (0, 1):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        load_checkpoint(tmp_path / "ck.safetensors", model, opt, None)
        assert torch.equal(torch.rand(4), torch.rand(4, generator=torch.Generator().manual_seed((11, 22)[r])))
