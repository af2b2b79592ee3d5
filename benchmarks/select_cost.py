"""Where ``select-body``'s time goes per candidate, and what two of its costs are worth.

Runs :func:`xmodal.select_body` on a suite task's *training* split (the suite's settings, as
``benchmarks/body_choice.py`` does) once per variant and prints, per variant and body: seconds, the
Sinkhorn solves of its short stage 2, those that stopped at ``max_iters`` short of the tolerance, their
total iterations, the final OTDD / source scale and the probe's validation score (held-out training rows),
next to the body's fine-tuning estimate. The variants:

* ``fixed ε, all tokens``: the outer OTDD ε fixed from the source scale (``adapt_epsilon=False``), the
  dense probe fitted on every token (``tokens_per_row=None``) — the behaviour before both were changed;
* ``adaptive ε, all tokens``;
* ``adaptive ε, 64 tokens / row``: the defaults.

A far target (EfficientNet on a PDE field: final OTDD ~130 source scales) is where the adaptive ε
matters; a dense head on a 1280-wide CNN is where the token subset of the probe matters.

    python benchmarks/select_cost.py --task darcy-85 --bodies efficientnet-lite0 minilm-l6
"""

from __future__ import annotations

import argparse
import functools

from solve_counter import SOLVES, summary

import xmodal.estimator.body_selection as body_selection
from xmodal.evaluate.linear_probe import TOKENS_PER_ROW, fit_linear_head

VARIANTS = {
    "fixed ε, all tokens": (False, None),
    "adaptive ε, all tokens": (True, None),
    f"adaptive ε, {TOKENS_PER_ROW} tokens / row": (True, TOKENS_PER_ROW),
}


def main() -> None:
    from xmodal.data.builtin import load_dataset
    from xmodal.experiments.suite import settings_for, settings_for_body

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="darcy-85")
    ap.add_argument("--bodies", nargs="+", default=["efficientnet-lite0", "minilm-l6"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    name, settings = settings_for(args.task)
    common = {k: v for k, v in settings.items() if all(k in settings_for_body(settings, b) for b in args.bodies)}
    options = common.pop("align_options", {})
    ds = load_dataset(name)
    print(f"{args.task}: select_body on {len(ds.y_train)} training rows (subsample and stage-2 epochs: its defaults)\n")
    print("| variant | body | seconds | Sinkhorn solves | not converged | iterations | OTDD / scale | probe validation "
          "| fine-tuning est. s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for variant, (adapt, per_row) in VARIANTS.items():
        body_selection.fit_linear_head = functools.partial(fit_linear_head, tokens_per_row=per_row)
        for body in args.bodies:
            SOLVES.clear()
            config = {**common, "seed": args.seed, "task": ds.task,
                      "align_options": {**options, "adapt_epsilon": adapt}}
            row = body_selection.select_body(ds.X_train, ds.y_train, [body], config, progress=False).rows[0]
            solves, unconverged, iterations = summary()
            print(f"| {variant} | {body} | {row['seconds']:.1f} | {solves} | {unconverged} | {iterations} | "
                  f"{row['score']:.4g} | {row['probe_score']:.4f} | {row['finetune_estimate_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
