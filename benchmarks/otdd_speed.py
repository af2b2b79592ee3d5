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

A second table checks the reason xmodal keeps its own entropic OT solver: the batched log-domain
Sinkhorn of :mod:`xmodal.align.sinkhorn` (what every OTDD call runs) beside POT's batched solver
(``ot.solve_batch``, log-domain Sinkhorn, torch backend) on the same batch of inner problems — ``B``
class-pair problems of ``n × n`` points in 384-d at the same absolute ε and tolerance — with the largest
relative difference of their transport costs ``<P, C>``. POT comes with the ``test`` extra.

    python benchmarks/otdd_speed.py [--shapes A B] [--devices cpu cuda] [--inner exact] [--solver-only]
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


def solver_table(batches: tuple[int, ...] = (16, 64), n: int = 256, d: int = 384, eps: float = 0.01,
                 tol: float = 1e-5) -> None:
    """Our batched Sinkhorn against POT's ``solve_batch`` on the same problems (CPU, float64)."""
    from xmodal.align.sinkhorn import sinkhorn_cost

    try:
        import ot
    except ImportError:
        print("POT is not installed (pip install '.[test]'): solver comparison skipped")
        return
    print()
    print(f"Batched entropic OT, {n} × {n} points in {d}-d per problem, absolute ε = {eps} (costs scaled to "
          f"mean 1), tolerance {tol}, float64, CPU:")
    print()
    print("| problems | xmodal sinkhorn_cost s | POT solve_batch s | POT / xmodal | max rel. diff of <P, C> |")
    print("|---|---|---|---|---|")
    for B in batches:
        g = torch.Generator().manual_seed(B)
        X = torch.randn(B, n, d, generator=g, dtype=torch.float64)
        Y = torch.randn(B, n, d, generator=g, dtype=torch.float64) + 0.3
        C = torch.cdist(X, Y).pow(2)
        C = C / C.mean(dim=(1, 2), keepdim=True)
        w = torch.full((B, n), 1.0 / n, dtype=torch.float64)
        ours, t_ours = _timed(lambda C=C, w=w: sinkhorn_cost(C, w, w, eps, scale=1.0, tol=tol, sharp=True,
                                                            max_iters=5000), "cpu")
        res, t_pot = _timed(lambda C=C: ot.solve_batch(C, reg=eps, method="log_sinkhorn", max_iter=5000, tol=tol,
                                                       grad="detach"), "cpu")
        theirs = torch.as_tensor(res.value_linear)
        rel = float(((ours - theirs).abs() / theirs.abs()).max())
        print(f"| {B} | {t_ours:.2f} | {t_pot:.2f} | {t_pot / t_ours:.1f}× | {rel:.1e} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["A", "B"], choices=sorted(SHAPES))
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    ap.add_argument("--inner", default="exact", choices=["exact", "gaussian"])
    ap.add_argument("--n-per-class", type=int, default=256)
    ap.add_argument("--solver-only", action="store_true", help="only the solver comparison with POT")
    args = ap.parse_args()
    if args.solver_only:
        solver_table()
        return
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
    solver_table()


if __name__ == "__main__":
    main()
