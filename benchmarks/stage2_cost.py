"""What ORCA's stage 2 costs per epoch, with the per-epoch distance on the full target set or on the
capped curve subset (``align_curve_per_class``), next to the stage-3 time of the same run.

For each task and curve setting, fits ``strategy="orca"`` with the suite's settings
(:func:`xmodal.experiments.suite.settings_for`) for ``--align-epochs`` stage-2 epochs and prints a
Markdown table: curve samples, stage-2 seconds, seconds per stage-2 epoch (steps + curve value) and
the stage-3 seconds.

    python benchmarks/stage2_cost.py --tasks mnist-5k gunpoint --align-epochs 3 --curve 100 all
"""

from __future__ import annotations

import argparse
import statistics

from xmodal import CrossModalEstimator
from xmodal.data.builtin import load_dataset
from xmodal.experiments.suite import settings_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["mnist-5k", "gunpoint"])
    ap.add_argument("--align-epochs", type=int, default=3)
    ap.add_argument("--curve", nargs="+", default=["100", "all"], help="per-class caps; 'all' = full set")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print("| task | curve cap | curve samples | stage 2 s | s per stage-2 epoch | stage 3 s |")
    print("|---|---|---|---|---|---|")
    for task in args.tasks:
        name, settings = settings_for(task)
        ds = load_dataset(name)
        for cap in args.curve:
            per_class = None if cap == "all" else int(cap)
            est = CrossModalEstimator(strategy="orca", align_epochs=args.align_epochs, align_curve_per_class=per_class,
                                      seed=args.seed, verbose=False, task=ds.task, **settings)
            est.fit(ds.fit_inputs(ds.X_train), ds.y_train)
            rep = est.report_
            per_epoch = statistics.mean(h["seconds"] for h in rep.align["history"][1:])
            print(f"| {task} | {cap} | {rep.align['curve_samples']} | {rep.seconds['align']:.1f} | "
                  f"{per_epoch:.2f} | {rep.seconds['finetune']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
