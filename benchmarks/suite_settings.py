"""Choose a suite task's settings on a validation split, never on the test set.

For one task, carves a stratified validation split out of the *training* set (``--val`` share,
default 0.2; random for regression), fits one strategy for each candidate setting and prints a
Markdown table: the candidate, the validation metric and the stage-2 / stage-3 seconds. The suite's
current settings (:data:`xmodal.experiments.suite.SUITE`) are the first row, so every candidate is
compared against them on the same split and seed. The test split is never read.

A candidate is a comma-separated list of ``key=value`` overrides of the suite's settings:

    python benchmarks/suite_settings.py --task splice --strategy finetune \\
        --try "max_tokens=15,epochs=6,lr=3e-4" "max_tokens=20,epochs=6,lr=1e-4"

Values are parsed as int, then float, else kept as strings. ``--base defaults`` starts every candidate
from the automatic settings (:mod:`xmodal.defaults`, as a plain ``xmodal fit`` and the ``defaults:``
cells of ``xmodal bench`` run) instead of the task's hand-set ones, to measure a change to the defaults on
a development task:

    python benchmarks/suite_settings.py --task darcy-16 --strategy orca --base defaults \\
        --try "body=efficientnet-lite0" "body=efficientnet-lite0,epochs=60"

Each candidate is fitted once on the training rows outside the validation split (no inner validation
run and refit: the split here is the validation). Automatic settings resolve on the rows fitted (a plain
fit resolves them on all its training rows, so the epochs of its validation run can be a little lower);
the table shows what they resolved to.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from xmodal import CrossModalEstimator
from xmodal.data.builtin import load_dataset
from xmodal.errors import XmodalError
from xmodal.experiments.suite import settings_for
from xmodal.tasks import get_task_kind


def parse_candidate(text: str) -> dict[str, Any]:
    """``"a=1,b=2e-4,c=x"`` → ``{"a": 1, "b": 0.0002, "c": "x"}``; empty text → ``{}``."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise XmodalError(f"candidate part {part!r} is not key=value")
        k, v = (s.strip() for s in part.split("=", 1))
        for cast in (int, float):
            try:
                out[k] = cast(v)
                break
            except ValueError:
                continue
        else:
            out[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", required=True, help="suite task name")
    ap.add_argument("--strategy", default="finetune")
    ap.add_argument("--try", dest="candidates", nargs="*", default=[], help="key=value,… overrides")
    ap.add_argument("--val", type=float, default=0.2, help="validation share of the training set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base", choices=("suite", "defaults"), default="suite",
                    help="start each candidate from the task's suite settings or from the automatic ones")
    args = ap.parse_args()

    name, base = settings_for(args.task)
    if args.base == "defaults":
        base = {}
    ds = load_dataset(name)
    kind = get_task_kind(ds.task)
    idx = np.arange(len(ds.X_train))
    strat = ds.y_train if kind.name == "classification" else None
    tr, va = train_test_split(idx, test_size=args.val, random_state=args.seed, stratify=strat)
    X, y = ds.fit_inputs(ds.X_train), ds.y_train
    print(f"{args.task}: {len(tr)} train / {len(va)} validation (of the training set), strategy {args.strategy}, "
          f"seed {args.seed}; {args.base} settings {base}\n")
    print(f"| candidate | validation {kind.default_metric} | stage 2 s | stage 3 s |")
    print("|---|---|---|---|")
    for text in ["", *args.candidates]:
        over = parse_candidate(text)
        settings = {**base, **over}
        est = CrossModalEstimator(strategy=args.strategy, seed=args.seed, verbose=False, task=ds.task,
                                  validation=0.0, **settings)
        est.fit(X[tr], y[tr])
        value = float(est.score(X[va], y[va], metric=est.model_.kind.default_metric))
        sec = est.report_.seconds
        auto = {k: v for k, v in est.report_.settings.get("auto", {}).items() if k not in over}
        shown = text or f"{args.base} settings"
        print(f"| {shown}{f' (auto: {auto})' if auto else ''} | {value:.4f} | {sec.get('align', 0.0):.1f} | "
              f"{sec.get('finetune', 0.0):.1f} |", flush=True)


if __name__ == "__main__":
    main()
