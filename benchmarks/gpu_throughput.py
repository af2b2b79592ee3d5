"""Stage-3 and stage-2 speed on a GPU: xmodal's loop against a plain bf16 PyTorch loop.

Prepared to run on a lent device in under 5 minutes with only the repository carried (no weights: the
bodies are random-initialised transformers of MiniLM-L6's and BERT-base's shapes, and throughput does
not depend on the weights' values). From the repository root:

    PYTHONPATH=src python3 benchmarks/gpu_throughput.py --out $OUT/gpu_throughput.md
    PYTHONPATH=src python3 benchmarks/gpu_throughput.py --smoke       # tiny shapes, any device (CPU too)

Rows:

* **stage 3**: samples/s of :func:`xmodal.train.finetune.train_loop` (an epoch of its own loop: loader,
  autocast, accumulation, clipping, the device-side divergence flags) against a plain loop on the same
  model, batch and data already on the GPU (``torch.autocast(bf16)``, AdamW, no clipping), and the
  model-FLOPs utilisation, ``6 × parameters × tokens/s`` over the peak given by ``--peak-tflops``
  (default 989.4, the H100/H200 SXM dense bf16 figure of NVIDIA's datasheet);
* **stage 2**: milliseconds per optimiser step of the OTDD objective (Gaussian inner distances, ORCA's
  Algorithm 1) for ``--source`` source × ``--target`` target features of width 768 with 10 classes each,
  forward and backward on the features;
* peak GPU memory of each row; with two or more GPUs, the stage-3 row again under
  ``torchrun --nproc_per_node 2`` (DDP, the same global batch).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from xmodal import distributed
from xmodal.align.objectives import get_objective
from xmodal.files import atomic_write_text
from xmodal.model import assemble, build_body
from xmodal.model.bodies.base import BodySource
from xmodal.runtime import resolve_device
from xmodal.train.config import TrainConfig
from xmodal.train.finetune import train_loop

#: transformers configs of the bodies measured (random weights)
BODIES = {
    "minilm-l6-shape": {"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
                        "intermediate_size": 1536},
    "bert-base-shape": {"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                        "intermediate_size": 3072},
    "tiny": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model(body: str, tokens: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    source = BodySource(body, "language", config=dict(BODIES[body]))
    body_ = build_body(source, pretrained=False)
    return assemble(body_, "classification", 10, (1, tokens), max_tokens=tokens).to(device)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def plain_loop(body: str, tokens: int, batch: int, steps: int, device: torch.device) -> dict:
    """samples/s of the plainest bf16 loop: data on the device, autocast, AdamW, no clipping."""
    model = _model(body, tokens, device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, tokens, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(steps + 3):  # three warm-up steps
        if i == 3:
            _sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    return {"samples_s": batch * steps / (time.perf_counter() - t0), "params": _params(model),
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0}


def xmodal_loop(body: str, tokens: int, batch: int, steps: int, device: torch.device) -> dict:
    """samples/s of xmodal's stage-3 loop: two epochs of ``steps`` optimiser steps, the second one timed."""
    model = _model(body, tokens, device)
    X = torch.randn(batch * steps, 1, tokens)
    y = torch.randint(0, 10, (batch * steps,))
    cfg = TrainConfig(epochs=2, batch_size=batch, lr=1e-4, device=str(device), precision="auto")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    hist = train_loop(model, list(model.parameters()), X, y, torch.nn.functional.cross_entropy, cfg, device,
                      progress=False)
    return {"samples_s": batch * steps / hist[-1]["seconds"], "params": _params(model),
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0}


def stage2_step(source: int, target: int, width: int, steps: int, device: torch.device) -> dict:
    """Milliseconds per OTDD loss + backward at ``source`` × ``target`` features of ``width``."""
    gen = torch.Generator().manual_seed(0)
    Xs = torch.randn(source, width, generator=gen).to(device)
    ys = (torch.arange(source) % 10).to(device)
    obj = get_objective("otdd")(Xs, ys, inner="gaussian")
    Xt = torch.randn(target, width, generator=gen).to(device).requires_grad_(True)
    yt = (torch.arange(target) % 10).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(steps + 2):
        if i == 2:
            _sync(device)
            t0 = time.perf_counter()
        obj.loss(Xt, yt).backward()
        Xt.grad = None
    _sync(device)
    return {"ms": 1000 * (time.perf_counter() - t0) / steps,
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0}


def _ddp_child(args: argparse.Namespace) -> None:
    """Under torchrun: the stage-3 row data-parallel; rank 0 prints one JSON line."""
    device = resolve_device("cuda")
    distributed.setup(device)
    row = xmodal_loop(args.bodies[-1], args.tokens, args.batch, args.steps, device)
    if distributed.is_main():
        print("DDP " + json.dumps(row), flush=True)
    distributed.teardown()


def _ddp_row(args: argparse.Namespace) -> dict | None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
           "--ddp-child", "--tokens", str(args.tokens), "--batch", str(args.batch), "--steps", str(args.steps),
           "--bodies", args.bodies[-1]]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    for line in done.stdout.splitlines():
        if line.startswith("DDP "):
            return json.loads(line[4:])
    print(done.stderr[-2000:], file=sys.stderr)
    return None


def _table(args: argparse.Namespace, device: torch.device) -> list[str]:
    peak = args.peak_tflops * 1e12
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [f"device: {name}; torch {torch.__version__}; tokens {args.tokens}, batch {args.batch}, "
             f"{args.steps} timed steps; MFU = 6 × params × tokens/s ÷ {args.peak_tflops:g} TFLOP/s", "",
             "| row | body | params (M) | samples/s | xmodal ÷ plain | MFU | peak GiB |",
             "|---|---|---|---|---|---|---|"]
    for body in args.bodies:
        plain = plain_loop(body, args.tokens, args.batch, args.steps, device)
        ours = xmodal_loop(body, args.tokens, args.batch, args.steps, device)
        for label, r in (("plain bf16 loop", plain), ("xmodal stage 3", ours)):
            mfu = 6 * r["params"] * r["samples_s"] * args.tokens / peak
            ratio = f"{ours['samples_s'] / plain['samples_s']:.2f}" if label.startswith("xmodal") else ""
            lines.append(f"| {label} | {body} | {r['params'] / 1e6:.1f} | {r['samples_s']:.0f} | {ratio} | "
                         f"{mfu:.1%} | {r['peak_gib']:.2f} |")
        print("\n".join(lines[-2:]), flush=True)
    if device.type == "cuda" and torch.cuda.device_count() >= 2:
        r = _ddp_row(args)
        if r is not None:
            mfu = 6 * r["params"] * r["samples_s"] * args.tokens / (2 * peak)
            lines.append(f"| xmodal stage 3, 2 GPUs (DDP) | {args.bodies[-1]} | {r['params'] / 1e6:.1f} | "
                         f"{r['samples_s']:.0f} | | {mfu:.1%} of 2 | {r['peak_gib']:.2f} |")
    s2 = stage2_step(args.source, args.target, args.width, args.steps, device)
    lines += ["", "| stage 2 (OTDD, gaussian inner) | source × target × width | ms / step | peak GiB |",
              "|---|---|---|---|",
              f"| loss + backward | {args.source} × {args.target} × {args.width} | {s2['ms']:.1f} | "
              f"{s2['peak_gib']:.2f} |"]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bodies", nargs="+", default=["minilm-l6-shape", "bert-base-shape"], choices=sorted(BODIES))
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--source", type=int, default=5000)
    ap.add_argument("--target", type=int, default=256)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--peak-tflops", type=float, default=989.4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on any device, to check the script runs")
    ap.add_argument("--ddp-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help="also write the tables to this Markdown file")
    args = ap.parse_args()
    if args.ddp_child:
        _ddp_child(args)
        return
    if args.smoke:
        args.bodies, args.tokens, args.batch, args.steps = ["tiny"], 8, 4, 2
        args.source, args.target, args.width = 100, 20, 16
    device = resolve_device(args.device)
    lines = _table(args, device)
    print("\n".join(lines))
    if args.out is not None:
        atomic_write_text(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
