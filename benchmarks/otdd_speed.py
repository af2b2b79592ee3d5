"""OTDD wall-clock times at ORCA-like sizes, on CPU and (if available) CUDA.

Shapes (source proxy × target, feature width, source / target classes):

* A: 5000 × 1000, 384-d, 10 / 4 classes (a MiniLM-sized body)
* B: 5000 × 2000, 768-d, 10 / 4 classes (RoBERTa / Swin-sized)

Synthetic features: Gaussian class clusters (class means ~ N(0, 0.3²), within-class noise 0.2), the
target shifted by 0.05. For each shape and device it prints, each measured once:

* ``init``: building ``OTDD(Xs, ys)`` — the source precompute (per-class samples, source-to-source
  label distances, the source self-term of the outer problem);
* ``value``: one full-set OTDD with the precompute done (what every epoch's logging pays);
* ``init + value``: one full OTDD from scratch (what the reference recomputes at every call);
* ``loss+bwd``: one class-wise subsampled ``loss`` (ORCA Algorithm 1, ``--n-per-class`` target
  samples per class, the entire source) plus ``backward`` to the target features.

For comparison, the brief quotes microsoft/otdd (the code ORCA calls) at ~120 s (A) and ~42 s (B)
for one full OTDD on this project's CPU (not re-measured here).

    python benchmarks/otdd_speed.py [--shapes A B] [--devices cpu cuda] [--inner exact]
"""

from __future__ import annotations

import argparse
import time

import torch

from xmodal.align.otdd import OTDD

SHAPES = {"A": (5000, 1000, 384, 10, 4), "B": (5000, 2000, 768, 10, 4)}
REFERENCE_S = {"A": 120.0, "B": 42.0}


def _data(n: int, d: int, k: int, seed: int, shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(k, d, generator=g) * 0.3
    y = torch.randint(0, k, (n,), generator=g)
    return mu[y] + torch.randn(n, d, generator=g) * 0.2 + shift, y


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: str):
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


def run(shape: str, device: str, inner: str, n_per_class: int) -> dict:
    ns, nt, d, ks, kt = SHAPES[shape]
    Xs, ys = _data(ns, d, ks, 0)
    Xt, yt = _data(nt, d, kt, 1, shift=0.05)
    Xs, ys, Xt, yt = Xs.to(device), ys.to(device), Xt.to(device), yt.to(device)
    obj, t_init = _timed(lambda: OTDD(Xs, ys, inner=inner, n_per_class=n_per_class), device)
    value, t_value = _timed(lambda: obj.value(Xt, yt), device)
    Xg = Xt.clone().requires_grad_(True)

    def step():
        loss = obj.loss(Xg, yt)
        loss.backward()
        return float(loss.detach())

    loss, t_step = _timed(step, device)
    return dict(shape=shape, device=device, init=t_init, value=t_value, total=t_init + t_value, step=t_step,
                otdd=value, loss=loss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["A", "B"], choices=sorted(SHAPES))
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    ap.add_argument("--inner", default="exact", choices=["exact", "gaussian"])
    ap.add_argument("--n-per-class", type=int, default=256)
    args = ap.parse_args()
    devices = [d for d in args.devices if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    skipped = sorted(set(args.devices) - set(devices))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, inner={args.inner}, "
          f"n_per_class={args.n_per_class}" + (f"; skipped (unavailable): {', '.join(skipped)}" if skipped else ""))
    print()
    print("| shape | ns × nt × D | device | init (precompute) s | value s | init + value s | loss+bwd s "
          "| OTDD | microsoft/otdd s (quoted) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for shape in args.shapes:
        ns, nt, d, _, _ = SHAPES[shape]
        for device in devices:
            r = run(shape, device, args.inner, args.n_per_class)
            print(f"| {shape} | {ns} × {nt} × {d} | {device} | {r['init']:.2f} | {r['value']:.2f} | {r['total']:.2f} "
                  f"| {r['step']:.2f} | {r['otdd']:.4g} | ~{REFERENCE_S[shape]:.0f} (CPU) |", flush=True)


if __name__ == "__main__":
    main()
