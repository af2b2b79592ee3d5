"""ORCA's Fig. 4 on our data: does a lower final OTDD after stage 2 go with a lower test error?

For each task and seed, stage 2 (OTDD) runs for 0, 5, 20 and 60 epochs (each with the paper's
schedule scaled to its length), then the same stage 3. Prints one row per run (final OTDD of the
full training set against the proxy, test error) and, per task, the Pearson and Spearman correlation
between final OTDD and test error over all runs of that task.

    python benchmarks/otdd_vs_error.py --tasks gunpoint --epochs 0 5 20 60 --seeds 0 1
"""

from __future__ import annotations

import argparse
import time

from scipy.stats import pearsonr, spearmanr

from xmodal import CrossModalEstimator
from xmodal.data.builtin import load_dataset
from xmodal.evaluate.metrics import get_metric
from xmodal.experiments.suite import settings_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["gunpoint"])
    ap.add_argument("--epochs", type=int, nargs="+", default=[0, 5, 20, 60])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--body", default="minilm-l6")
    args = ap.parse_args()
    t0 = time.perf_counter()
    print("| task | stage-2 epochs | seed | final OTDD | test error | stage-2 s |")
    print("|---|---|---|---|---|---|")
    summary = []
    for name in args.tasks:
        dataset, settings = settings_for(name)
        ds = load_dataset(dataset)
        dist, err = [], []
        for e in args.epochs:
            for seed in args.seeds:
                # 0 epochs: the OTDD objective still measures the untrained embedder (patience off)
                est = CrossModalEstimator(strategy="orca", body=args.body, seed=seed, verbose=False, align_epochs=e,
                                          **settings).fit(ds.fit_inputs(ds.X_train), ds.y_train)
                metric = est.model_.kind.default_metric
                value = est.score(ds.fit_inputs(ds.X_test), ds.y_test, metric=est.model_.kind.default_metric)
                error = 1.0 - value if get_metric(metric).higher_is_better else value
                d = est.report_.align["final_distance"]
                dist.append(d)
                err.append(error)
                print(f"| {name} | {e} | {seed} | {d:.4g} | {error:.4f} | {est.report_.seconds['align']:.1f} |",
                      flush=True)
        summary.append((name, pearsonr(dist, err)[0], spearmanr(dist, err)[0], len(dist)))
    print("\n| task | Pearson r (OTDD, error) | Spearman ρ | runs |\n|---|---|---|---|")
    for name, r, rho, n in summary:
        print(f"| {name} | {r:.3f} | {rho:.3f} | {n} |")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
