"""Which search space should a short study use? ORCA's wide space (``orca``) against the automatic
settings' neighbourhood (``local``), judged on validation only, on the development half of the suite.

For every (space, task) it runs, or reuses, the one study that ``xmodal bench --methods tuned:…
--tune-space SPACE`` runs per task (same data, seed :data:`~xmodal.experiments.bench.TUNE_SEED`,
validation fifth, budget), in the bench folder given for that space, and prints per task: the study's
time and trial counts, the defaults' validation score (trial 0), the best trial's, and, where the bench
folder holds ``tuned:`` cells, their mean validation score (each cell refits on its own seed's split,
so it is a less biased estimate than the study's own maximum). The test split is never read.

    python benchmarks/space_choice.py --spaces orca,local --bench-dirs results/full,results/full-local
    python benchmarks/space_choice.py ... --out results/SPACE_CHOICE.md
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any

from xmodal.config import RunConfig
from xmodal.data.builtin import load_dataset
from xmodal.experiments.bench import TUNE_SEED, Tuning
from xmodal.experiments.suite import DEVELOPMENT, VALIDATION, get_task
from xmodal.files import atomic_write_text
from xmodal.tuning import DEFAULT_BUDGET, SPACES, tune


def run_study(task_name: str, space: str, bench_dir: Path, budget: str, body: str) -> Path:
    """The task's study for ``space`` in ``bench_dir`` (run once, as bench runs it); its folder."""
    folder = Tuning(budget, space).folder(bench_dir) / task_name
    if not (folder / "tune.json").exists():
        task = get_task(task_name)
        data = load_dataset(task.dataset_name)
        t0 = time.perf_counter()
        tune(data.fit_inputs(data.X_train), data.y_train,
             RunConfig(body=body, seed=TUNE_SEED, task=data.task, validation=VALIDATION, verbose=False),
             budget=budget, space=space, out=folder, progress=False)
        print(f"{task_name} / {space}: study {time.perf_counter() - t0:.0f} s", flush=True)
    return folder


def study_row(folder: Path, bench_dir: Path, task_name: str) -> dict[str, Any]:
    t = json.loads((folder / "tune.json").read_text())
    with (folder / "trials.csv").open(newline="") as f:
        trials = list(csv.DictReader(f))
    d0 = next((r for r in trials if r.get("origin") == "defaults" and r["state"] == "complete"), None)
    higher, best = bool(t["higher_is_better"]), float(t["best_value"])
    # a trial the time budget stopped while its last validation score beat the best finished trial's
    ahead = [r for r in trials if r["state"].startswith("stopped") and r["value"]
             and (float(r["value"]) > best if higher else float(r["value"]) < best)]
    cells = [json.loads(p.read_text())["row"]
             for p in sorted((bench_dir / "cells" / task_name).glob("tuned:finetune-seed*.json"))]
    vals = [float(r["validation"]) for r in cells if r.get("validation") is not None and r["seed"] != TUNE_SEED]
    return {"seconds": float(t["seconds"]), "counts": t["counts"], "higher": higher,
            "metric": t["metric"], "defaults": None if d0 is None else float(d0["value"]),
            "best": best, "best_trial": int(t["best_trial"]),
            "ahead": [f"{float(r['value']):.4f} at {r['epochs run']} ({r['trial']})" for r in ahead],
            "cells_val": statistics.fmean(vals) if vals else None, "n_cells": len(vals)}


def report(tasks: list[str], spaces: list[str], dirs: list[Path]) -> str:
    out = ["# Search space for short studies: " + " vs ".join(spaces), "",
           f"`python benchmarks/space_choice.py --spaces {','.join(spaces)} --bench-dirs "
           f"{','.join(str(d) for d in dirs)}` — one study per (task, space) as `xmodal bench` runs it; "
           "validation scores only.", "",
           "| task | space | study s | finished / pruned | defaults' validation | best validation (trial) | "
           "stopped by the budget while ahead: last score at epochs run (trial) | "
           "tuned finetune cells' validation, seeds ≠ 0 (n) |", "|---|---|---|---|---|---|---|---|"]
    wins: dict[str, int] = dict.fromkeys(spaces, 0)
    for t in tasks:
        rows = {}
        for space, d in zip(spaces, dirs, strict=True):
            folder = Tuning(DEFAULT_BUDGET, space).folder(d) / t
            if not (folder / "tune.json").exists():
                continue
            r = rows[space] = study_row(folder, d, t)
            c = r["counts"]
            d0 = "—" if r["defaults"] is None else f"{r['defaults']:.4f}"
            cv = "—" if r["cells_val"] is None else f"{r['cells_val']:.4f} ({r['n_cells']})"
            out.append(f"| {t} | {space} | {r['seconds']:.0f} | {c.get('complete', 0)} / {c.get('pruned', 0)} | "
                       f"{d0} | {r['metric']} {r['best']:.4f} ({r['best_trial']}) | {', '.join(r['ahead']) or '—'} | "
                       f"{cv} |")
        if len(rows) == len(spaces) > 1:
            higher = next(iter(rows.values()))["higher"]
            top = (max if higher else min)(rows, key=lambda s: rows[s]["best"])
            if sum(rows[s]["best"] == rows[top]["best"] for s in rows) == 1:
                wins[top] += 1
    if len(spaces) > 1:
        out += ["", "Best study validation strictly better: " + ", ".join(f"{s} {n}" for s, n in wins.items())
                + f" of {len(tasks)} tasks (ties count for neither)."]
    out += ["", "A trial the time budget stops is not a candidate for the best, even when its last validation "
            "score (after fewer epochs than it planned) beat the best finished trial's; such trials are listed."]
    out += ["", "A study's best is the maximum over its trials on the validation rows it chose on, so it favours "
            "the space with more finished trials. The last column is less biased: `tuned:finetune` cells of the "
            "other seeds fit the chosen settings on their own seed's training rows and score their own "
            "validation rows."]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(DEVELOPMENT), help="suite tasks (default: the development half)")
    ap.add_argument("--spaces", default="orca,local", help="named spaces (default: orca,local)")
    ap.add_argument("--bench-dirs", default="results/full,results/full-local",
                    help="the bench folder of each space, in the order of --spaces")
    ap.add_argument("--budget", default=DEFAULT_BUDGET, help=f"study budget (default: {DEFAULT_BUDGET})")
    ap.add_argument("--body", default="minilm-l6")
    ap.add_argument("--report", action="store_true", help="run nothing; report the studies that exist")
    ap.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = ap.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    spaces = [s for s in args.spaces.split(",") if s]
    dirs = [Path(d) for d in args.bench_dirs.split(",") if d]
    if len(dirs) != len(spaces):
        ap.error("give one --bench-dirs folder per space")
    for s in spaces:
        SPACES[s]
    for t in tasks:
        get_task(t)
    if not args.report:
        for t in tasks:
            for s, d in zip(spaces, dirs, strict=True):
                run_study(t, s, d, args.budget, args.body)
    text = report(tasks, spaces, dirs)
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
