"""What ORCA's stage 2 costs per epoch, with the per-epoch distance on the full target set or on the
capped curve subset (``align_curve_per_class``), next to the stage-3 time of the same run.

For each task and curve setting, fits ``strategy="orca"`` with the suite's settings
(:func:`xmodal.experiments.suite.settings_for`) for ``--align-epochs`` stage-2 epochs and prints a
Markdown table: curve samples, stage-2 epochs run (early stopping), stage-2 seconds split into set-up
(source features + the objective's source precomputation), optimiser steps and the per-epoch curve
value, seconds per stage-2 epoch, the stage-3 seconds and stage 2's share of stage 3.
``--align-options`` passes objective options, e.g. ``'{"warm_start": false}'``. The last two columns
count the Sinkhorn solves of stage 2 and those that stopped at ``max_iters`` short of the tolerance: OTDD's
ε is relative to the *source* features' spread, so a body whose target features lie far from its source
proxy (a random body; EfficientNet on fields) solves nearly unregularised problems, slowly.

    python benchmarks/stage2_cost.py --tasks mnist-5k gunpoint --align-epochs 3 --curve 100 all
    python benchmarks/stage2_cost.py --tasks darcy-16 --body efficientnet-lite0 --align-epochs 1 --curve all
"""

from __future__ import annotations

import argparse
import json
import statistics

from solve_counter import SOLVES, summary

from xmodal import CrossModalEstimator
from xmodal.data.builtin import load_dataset
from xmodal.experiments.suite import settings_for, settings_for_body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["mnist-5k", "gunpoint"])
    ap.add_argument("--align-epochs", type=int, default=3)
    ap.add_argument("--curve", nargs="+", default=["100", "all"], help="per-class caps; 'all' = full set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--align-options", default="{}", help="JSON dict of objective options")
    ap.add_argument("--body", default="minilm-l6")
    args = ap.parse_args()
    options = json.loads(args.align_options)
    print("| task | curve cap | curve samples | epochs | stage 2 s | set-up s | steps s | curve s | s per epoch "
          "| stage 3 s | share | Sinkhorn solves | not converged |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for task in args.tasks:
        name, settings = settings_for(task)
        settings = settings_for_body(dict(settings), args.body)
        opts = {**settings.pop("align_options", {}), **options}
        ds = load_dataset(name)
        for cap in args.curve:
            per_class = None if cap == "all" else int(cap)
            est = CrossModalEstimator(strategy="orca", align_epochs=args.align_epochs, align_curve_per_class=per_class,
                                      align_options=opts, seed=args.seed, verbose=False, task=ds.task,
                                      body=args.body, **settings)
            SOLVES.clear()
            est.fit(ds.fit_inputs(ds.X_train), ds.y_train)
            rep = est.report_
            hist = rep.align["history"][1:]
            per_epoch = statistics.mean(h["seconds"] for h in hist)
            curve_s = sum(h["curve_seconds"] for h in hist)
            steps_s = sum(h["seconds"] for h in hist) - curve_s
            s2, s3 = rep.seconds["align"], rep.seconds["finetune"]
            solves, unconverged, _ = summary()
            print(f"| {task} | {cap} | {rep.align['curve_samples']} | {len(hist)} | {s2:.1f} | "
                  f"{rep.align['setup_seconds']:.1f} | {steps_s:.1f} | {curve_s:.1f} | {per_epoch:.2f} | {s3:.1f} | "
                  f"{100 * s2 / s3:.0f} % | {solves} | {unconverged} |", flush=True)


if __name__ == "__main__":
    main()
