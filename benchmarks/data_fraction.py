"""ORCA's Fig. 5 on our data: the gain of align-then-refine over vanilla fine-tuning as the training
set shrinks.

For each task, fraction (a stratified, seeded subsample of the training split; the test split is
unchanged) and seed, fits ``finetune`` and ``orca`` with the suite's settings and prints the test
metric of both and the gain (orca − finetune, in the metric's better direction).

    python benchmarks/data_fraction.py --tasks gunpoint --fractions 0.1 0.3 1.0 --seeds 0 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from xmodal import CrossModalEstimator
from xmodal.data.builtin import load_dataset
from xmodal.evaluate.metrics import get_metric
from xmodal.experiments.suite import settings_for


def stratified_fraction(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of ``fraction`` of the rows, at least two per class (all rows when ``fraction >= 1``)."""
    if fraction >= 1.0:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        keep.append(rng.permutation(idx)[: max(2, round(fraction * len(idx)))])
    return np.sort(np.concatenate(keep))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["gunpoint"])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3, 1.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--body", default="minilm-l6")
    args = ap.parse_args()
    t0 = time.perf_counter()
    print("| task | fraction | train n | finetune | orca | gain (orca − finetune) |")
    print("|---|---|---|---|---|---|")
    for name in args.tasks:
        dataset, settings = settings_for(name)
        ds = load_dataset(dataset)
        for frac in args.fractions:
            scores: dict[str, list[float]] = {"finetune": [], "orca": []}
            n = 0
            for seed in args.seeds:
                idx = stratified_fraction(ds.y_train, frac, seed)
                n = len(idx)
                for strategy in scores:
                    est = CrossModalEstimator(strategy=strategy, body=args.body, seed=seed, verbose=False, **settings)
                    est.fit(ds.fit_inputs(ds.X_train[idx]), ds.y_train[idx])
                    metric = est.model_.kind.default_metric
                    scores[strategy].append(est.score(ds.fit_inputs(ds.X_test), ds.y_test, metric=metric))
            sign = 1.0 if get_metric(est.model_.kind.default_metric).higher_is_better else -1.0
            gains = [sign * (o - f) for o, f in zip(scores["orca"], scores["finetune"], strict=True)]

            def fmt(v: list[float]) -> str:
                return f"{statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.4f}"

            print(f"| {name} | {frac:g} | {n} | {fmt(scores['finetune'])} | {fmt(scores['orca'])} | {fmt(gains)} |",
                  flush=True)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
