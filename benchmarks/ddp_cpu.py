"""``xmodal fit`` in one process against ``torchrun`` with two gloo processes on this machine's CPUs.

Runs the same fit (MiniLM-L6, OTDD stage 2, stage 3) three ways on a synthetic series task written to a
temporary folder: one process with one thread, one process with two threads, and two processes with one
thread each (``torchrun --standalone --nproc_per_node 2 -m xmodal fit …``). Prints wall time, the
stages' times, the stage-3 loss curve's largest difference from the one-process run, and test accuracy:

    python benchmarks/ddp_cpu.py                      # a table on stdout
    python benchmarks/ddp_cpu.py --out results/DISTRIBUTED_CPU.md

The global batch (``--batch-size``) is the same in every row, so the rows train the same model; on a
2-core machine two processes cannot be faster than one process using both cores, and the table says by
how much data parallelism costs there (gradient all-reduce, duplicated stage-2 proxy work).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from xmodal.files import atomic_write_text

FIT = ["--body", "minilm-l6", "--epochs", "3", "--batch-size", "32", "--max-tokens", "16", "--align-epochs", "3",
       "--validation", "0"]


def _task(folder: Path, n: int, length: int, seed: int = 0) -> Path:
    """Two classes of noisy series that differ in the frequency of a sine; 1/4 held out as the test split."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    t = np.linspace(0, 1, length)
    X = np.sin(2 * np.pi * (3 + 2 * y[:, None]) * t + rng.uniform(0, 6.28, (n, 1))) + rng.normal(0, 0.8, (n, length))
    X = X[:, None, :].astype(np.float32)
    cut = 3 * n // 4
    path = folder / "waves.npz"
    np.savez(path, X_train=X[:cut], y_train=y[:cut], X_test=X[cut:], y_test=y[cut:])
    return path


def _run(data: Path, out: Path, processes: int, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    launch = [sys.executable, "-m", "xmodal"] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "xmodal"]
    t0 = time.perf_counter()
    subprocess.run([*launch, "fit", str(data), *FIT, "--out", str(out)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    metrics = json.loads((out / "metrics.json").read_text())
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()
              if json.loads(line)["stage"] == "finetune"]
    return {"processes": processes, "threads": threads, "wall": wall, "seconds": metrics["seconds"],
            "losses": losses, "accuracy": metrics["test"]["accuracy"]}


def equality() -> str:
    """Run ``tests/helpers/ddp_fit.py`` (tiny random ViT, no dropout) alone and under 2 gloo processes and return
    the largest differences of the stage-2 distance curve, the stage-3 loss curve and the final weights."""
    import torch
    from safetensors.torch import load_file

    helper = Path(__file__).parents[1] / "tests" / "helpers" / "ddp_fit.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        out = {}
        for processes in (1, 2):
            folder = Path(tmp) / str(processes)
            launch = [sys.executable] if processes == 1 else \
                [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
            subprocess.run([*launch, str(helper), str(folder)], env=env, check=True, capture_output=True)
            out[processes] = (json.loads((folder / "report.json").read_text()),
                              load_file(str(folder / "weights-0.safetensors")))
    (r1, w1), (r2, w2) = out[1], out[2]
    d_align = max(abs(a["distance"] - b["distance"]) for a, b in zip(r1["align"], r2["align"], strict=True))
    d_loss = max(abs(a["loss"] - b["loss"]) for a, b in zip(r1["finetune"], r2["finetune"], strict=True))
    d_w = max(float((w1[k].double() - w2[k].double()).abs().max()) for k in w1 if w1[k].numel())
    return (f"`python benchmarks/ddp_cpu.py --equality` (tests/helpers/ddp_fit.py: 1 process vs 2 gloo processes, same "
            f"global batch): max |Δ| stage-2 OTDD curve {d_align:.1e}, stage-3 loss curve {d_loss:.1e}, final weights "
            f"{d_w:.1e} (torch {torch.__version__})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=640, help="series in the task (3/4 train)")
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    ap.add_argument("--equality", action="store_true", help="only the 1- vs 2-process equality check (tiny model)")
    args = ap.parse_args()
    if args.equality:
        print(equality())
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = _task(Path(tmp), args.n, args.length)
        for processes, threads in [(1, 1), (1, 2), (2, 1)]:
            rows.append(_run(data, Path(tmp) / f"run-{processes}x{threads}", processes, threads))
    base = rows[0]["losses"]
    lines = [f"`python benchmarks/ddp_cpu.py --n {args.n} --length {args.length}` on {os.cpu_count()} CPU cores; "
             f"fit settings: `{' '.join(FIT)}` (global batch 32 in every row).", "",
             "| processes × threads | wall s | stage 2 s | stage 3 s | stage-3 losses | max abs. loss diff vs 1×1 "
             "| test accuracy |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = max(abs(a - b) for a, b in zip(r["losses"], base, strict=True))
        lines.append(f"| {r['processes']} × {r['threads']} | {r['wall']:.1f} | {r['seconds']['align']:.1f} | "
                     f"{r['seconds']['finetune']:.1f} | {', '.join(f'{v:.5f}' for v in r['losses'])} | {diff:.1e} | "
                     f"{r['accuracy']:.3f} |")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        atomic_write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
