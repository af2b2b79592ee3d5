"""Exact-mode OTDD against an exact reference built from POT's network simplex (``ot.emd2``).

The reference solves every label-to-label W2² between class samples and then the outer problem with
cost ‖x - x'‖² + W2²(y, y') exactly (``ot.emd2``, ``numItermax=10⁷``). For each size n (points per
side; source 10 classes, target 4, Gaussian class clusters, target shifted) it prints the relative
error of:

* ε → 0: relative ε = 1e-3 for both problems, float64, ``sharp=True`` (transport cost of the entropic
  plan), non-debiased and debiased;
* the default ε (float32, all defaults: debiased entropic Sinkhorn divergence, relative ε = 0.002)
  and the same without outer debiasing;
* self-distance: the default OTDD of the target set with itself (should be ≈ 0), relative to the
  reference OTDD between the two sets.

    python benchmarks/otdd_correctness.py [--sizes 100 200 300] [--dim 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ot
import torch

from xmodal.align.otdd import DEFAULT_EPSILON, otdd_distance


def _data(n: int, d: int, k: int, seed: int, shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(k, d, generator=g, dtype=torch.float64) * 0.3
    y = torch.arange(n) % k
    return mu[y] + torch.randn(n, d, generator=g, dtype=torch.float64) * 0.2 + shift, y


def emd_otdd(Xa: torch.Tensor, ya: torch.Tensor, Xb: torch.Tensor, yb: torch.Tensor) -> float:
    A, B, ya, yb = Xa.numpy(), Xb.numpy(), ya.numpy(), yb.numpy()
    la, lb = np.unique(ya), np.unique(yb)

    def u(n: int) -> np.ndarray:
        return np.full(n, 1.0 / n)

    W = np.array([[ot.emd2(u((ya == k).sum()), u((yb == m).sum()), ot.dist(A[ya == k], B[yb == m]), numItermax=10**7)
                   for m in lb] for k in la])
    C = ot.dist(A, B) + W[np.searchsorted(la, ya)][:, np.searchsorted(lb, yb)]
    return float(ot.emd2(u(len(A)), u(len(B)), C, numItermax=10**7))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=[100, 200, 300])
    ap.add_argument("--dim", type=int, default=64)
    args = ap.parse_args()
    small = dict(epsilon=1e-3, inner_epsilon=1e-3, sharp=True, tol=1e-6, max_iters=5000)
    print(f"D = {args.dim}, source 10 classes, target 4 classes; default relative ε = {DEFAULT_EPSILON}")
    print()
    print("| n per side | exact OTDD (emd2) | emd2 s | ε→0 plain | ε→0 debiased | ε→0 s | default debiased "
          "| default plain | default s | self OTDD / exact |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        Xs, ys = _data(n, args.dim, 10, 0)
        Xt, yt = _data(n, args.dim, 4, 1, shift=0.05)
        t0 = time.perf_counter()
        ref = emd_otdd(Xt, yt, Xs, ys)
        t_ref = time.perf_counter() - t0

        def rel(v: float, ref: float = ref) -> str:
            return f"{100 * (v - ref) / ref:+.3f} %"

        t0 = time.perf_counter()
        plain0 = otdd_distance(Xt, yt, Xs, ys, debiased=False, **small).item()
        deb0 = otdd_distance(Xt, yt, Xs, ys, debiased=True, **small).item()
        t_small = time.perf_counter() - t0
        Xs32, Xt32 = Xs.float(), Xt.float()
        t0 = time.perf_counter()
        deb = otdd_distance(Xt32, yt, Xs32, ys).item()
        t_def = time.perf_counter() - t0
        plain = otdd_distance(Xt32, yt, Xs32, ys, debiased=False).item()
        self_d = otdd_distance(Xt32, yt, Xt32, yt).item()
        print(f"| {n} | {ref:.5g} | {t_ref:.2f} | {rel(plain0)} | {rel(deb0)} | {t_small:.2f} | {rel(deb)} "
              f"| {rel(plain)} | {t_def:.2f} | {self_d / ref:+.1e} |", flush=True)


if __name__ == "__main__":
    main()
