"""Fine-tuning throughput of an assembled model: samples/s of forward + backward + AdamW step.

Prints a table per (body, tokens, batch). Run on whatever device is present:

    python benchmarks/finetune_throughput.py --body minilm-l6 --tokens 16 64 150 --batch 16 --steps 5
"""

from __future__ import annotations

import argparse
import time

import torch

from xmodal.model import assemble, build_body, resolve_body
from xmodal.runtime import autocast, resolve_device


def measure(body_name: str, tokens: int, batch: int, steps: int, device: torch.device, precision: str) -> float:
    torch.manual_seed(0)
    body = build_body(resolve_body(body_name))
    model = assemble(body, "classification", 2, (1, tokens), max_tokens=tokens).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, tokens, device=device)
    y = torch.randint(0, 2, (batch,), device=device)
    model.train()
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with autocast(device, precision):
            loss = model.kind.loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--body", nargs="+", default=["minilm-l6"])
    ap.add_argument("--tokens", type=int, nargs="+", default=[16, 64, 150])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    print(f"device {device}, precision {args.precision}, threads {torch.get_num_threads()}")
    print("| body | tokens | batch | samples/s |\n|---|---|---|---|")
    for body in args.body:
        for t in args.tokens:
            sps = measure(body, t, args.batch, args.steps, device, args.precision)
            print(f"| {body} | {t} | {args.batch} | {sps:.1f} |", flush=True)


if __name__ == "__main__":
    main()
