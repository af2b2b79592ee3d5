"""Derive the automatic settings (:data:`xmodal.defaults.RULE`) from tuning studies on the development tasks.

Phase 1 runs (or continues: the journals resume) ``xmodal.tune`` on each development task's training
data with the automatic settings as the base, ``--budget`` each, into ``OUT/<task>/``. Phase 2 reads
every study's three best finished trials and prints, per task, their settings expressed in the
rule's units (tokens, optimiser steps, learning rate) and the rule they give: the median token
budget (rounded to the space's choices), the median number of optimiser steps, and the geometric
mean of the Adam/AdamW learning rates. The held-out tasks are never tuned here; judge the rule on them
with ``benchmarks/default_settings.py``.

    python benchmarks/derive_defaults.py --budget 6m --out results/tuning
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from xmodal.config import RunConfig
from xmodal.data.builtin import load_dataset
from xmodal.data.split import validation_split
from xmodal.defaults import RULE, resolve_settings
from xmodal.experiments.suite import DEVELOPMENT


def run_studies(tasks: list[str], budget: str, out: Path, body: str) -> None:
    from xmodal.tuning import tune

    for name in tasks:
        if (out / name / "tune.json").exists():
            print(f"{name}: study already finished in {out / name}", flush=True)
            continue
        ds = load_dataset(name)
        res = tune(ds.fit_inputs(ds.X_train), ds.y_train, RunConfig(body=body, task=ds.task, verbose=False),
                   budget=budget, out=out / name, progress=False)
        print(f"{name}: {res.counts}, best validation {res.metric} {res.best_value:.4f}, {res.seconds:.0f} s, "
              f"pruning saved {100 * res.pruning['saved_share']:.0f}%", flush=True)


def steps_of(settings: dict, n_fit: int, batch: int) -> int:
    return int(settings["epochs"]) * math.ceil(math.ceil(n_fit / batch) / int(settings.get("accumulate", 1)))


def summarize(tasks: list[str], out: Path, top: int) -> None:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    tokens, steps, lrs = [], [], []
    print()
    print("| task | N fit | trials (done/pruned) | best validation | top trials: tokens / steps / optimizer / lr |")
    print("|---|---|---|---|---|")
    for name in tasks:
        summary = json.loads((out / name / "tune.json").read_text())
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(out / name / "study.journal")))
        study = optuna.load_study(study_name=summary["study"], storage=storage)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        done.sort(key=lambda t: t.value, reverse=summary["higher_is_better"])
        ds = load_dataset(name)
        n_fit = len(validation_split(ds.y_train, 0.2, 0, stratify=ds.task == "classification")[0])
        auto, _ = resolve_settings(RunConfig(task=ds.task), n_fit, tuple(ds.fit_inputs(ds.X_train).shape[2:]))
        cells = []
        for t in done[:top]:
            s = t.user_attrs["settings"]
            st = steps_of(s, n_fit, auto.batch_size)
            tok = int(s.get("max_tokens", auto.max_tokens))
            tokens.append(tok)
            steps.append(st)
            if s.get("optimizer", "adamw") in ("adam", "adamw"):
                lrs.append(float(s["lr"]))
            cells.append(f"{tok} / {st} / {s.get('optimizer', 'adamw')} / {float(s['lr']):.2g}")
        c = summary["counts"]
        print(f"| {name} | {n_fit} | {c['complete']}/{c['pruned']} | {summary['metric']} {summary['best_value']:.4f} | "
              + "; ".join(cells) + " |")
    choices = (8, 16, 32, 64)
    med_tokens = statistics.median(tokens)
    rule_tokens = min(choices, key=lambda c: abs(math.log(c) - math.log(med_tokens)))
    rule_steps = int(round(statistics.median(steps), -1))
    rule_lr = float(f"{math.exp(statistics.mean(math.log(v) for v in lrs)):.1g}") if lrs else RULE.lr
    print()
    print(f"current rule: tokens={RULE.tokens}, steps={RULE.steps}, lr={RULE.lr:g}")
    print(f"derived from the top {top} trials of {len(tasks)} development tasks: tokens={rule_tokens} "
          f"(median {med_tokens:g}), steps={rule_steps}, lr={rule_lr:g} (geometric mean of {len(lrs)} Adam/AdamW "
          "learning rates)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=list(DEVELOPMENT))
    ap.add_argument("--budget", default="6m", help="per task")
    ap.add_argument("--out", default="results/tuning")
    ap.add_argument("--body", default="minilm-l6")
    ap.add_argument("--top", type=int, default=3, help="best trials per task that enter the rule")
    ap.add_argument("--report", action="store_true", help="only phase 2, from the studies already in --out")
    args = ap.parse_args()
    out = Path(args.out)
    if not args.report:
        run_studies(args.tasks, args.budget, out, args.body)
    summarize(args.tasks, out, args.top)


if __name__ == "__main__":
    main()
