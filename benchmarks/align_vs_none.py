"""Does stage 2 help? Test metric of vanilla fine-tuning vs align-then-refine on built-in tasks.

For each task and seed, fits the same model with ``align="none"`` and each requested alignment,
then prints a Markdown table: test metric (mean ± std over seeds), stage-2 and stage-3 seconds,
stage-2 time as a share of stage 3, and the distance before/after stage 2.

    python benchmarks/align_vs_none.py --datasets gunpoint italypowerdemand --align otdd --seeds 0 1
"""

from __future__ import annotations

import argparse
import statistics
import time

from xmodal import CrossModalEstimator
from xmodal.data.builtin import load_dataset

# per-task settings that keep a CPU run to minutes (tokens, epochs, batch size, lr)
SETTINGS = {
    "gunpoint": dict(max_tokens=64, epochs=30, batch_size=8, lr=1e-4),
    "italypowerdemand": dict(max_tokens=64, epochs=30, batch_size=8, lr=1e-4),
    "basicmotions": dict(max_tokens=64, epochs=30, batch_size=8, lr=1e-4),
    "acsf1": dict(max_tokens=64, epochs=30, batch_size=8, lr=1e-4),
    "breast-cancer": dict(max_tokens=64, epochs=15, batch_size=16, lr=1e-4),
    "wine": dict(max_tokens=64, epochs=30, batch_size=8, lr=1e-4),
    "darcy-16": dict(max_tokens=16, epochs=5, batch_size=32, lr=1e-3),
}


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["gunpoint", "italypowerdemand", "basicmotions"])
    ap.add_argument("--align", nargs="+", default=["otdd"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--body", default="minilm-l6")
    ap.add_argument("--align-epochs", type=int, default=None)
    ap.add_argument("--align-steps", type=int, default=4)
    ap.add_argument("--source-size", type=int, default=5000)
    args = ap.parse_args()
    t_all = time.perf_counter()
    print("| task | align | test metric | stage-2 s | stage-3 s | stage 2 / stage 3 | distance before → after |")
    print("|---|---|---|---|---|---|---|")
    for name in args.datasets:
        ds = load_dataset(name)
        kw = SETTINGS.get(name, dict(max_tokens=64, epochs=20, batch_size=16, lr=1e-4))
        for align in ["none", *args.align]:
            scores, s2, s3, dists = [], [], [], []
            for seed in args.seeds:
                est = CrossModalEstimator(
                    body=args.body, align=align, seed=seed, verbose=False, align_epochs=args.align_epochs,
                    align_steps=args.align_steps, source_size=args.source_size, **kw,
                ).fit(ds.fit_inputs(ds.X_train), ds.y_train)
                scores.append(est.score(ds.fit_inputs(ds.X_test), ds.y_test, metric=est.model_.kind.default_metric))
                s2.append(est.report_.seconds["align"])
                s3.append(est.report_.seconds["finetune"])
                rep = est.report_.align
                if "final_distance" in rep:
                    dists.append(f"{rep['initial_distance']:.3g} → {rep['final_distance']:.3g}")
            metric = est.model_.kind.default_metric
            share = statistics.mean(s2) / max(statistics.mean(s3), 1e-9)
            print(f"| {name} | {align} | {metric} {_fmt(scores)} | {statistics.mean(s2):.1f} | "
                  f"{statistics.mean(s3):.1f} | {100 * share:.1f} % | {'; '.join(dists) or '–'} |", flush=True)
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
