"""Does the lower-lr retry rescue a plain fit that learned nothing? (:func:`xmodal.estimator.protocol.retry_lower_lr`)

For each (task, body, seed): a plain ``fit`` (the automatic settings, strategy orca, a fifth of the
training data held out) with ``refit=False``, so that only validation runs are made and the model kept
is the one those rows scored. The table gives the validation score at the automatic lr, whether the
retry ran, its lr and validation score, the constant prediction's score on the same rows, the lr kept,
and, after the fact, the kept model's test score (it chooses nothing). Each cell is kept as JSON under
``--out`` and not rerun; ``--report`` prints the table from the stored cells only.

    python benchmarks/lr_retry.py --tasks mnist-5k --body mpnet-base --seeds 0 --out results/lr_retry
    python benchmarks/lr_retry.py --report --out results/lr_retry
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from xmodal import CrossModalEstimator
from xmodal.data.builtin import load_dataset
from xmodal.files import atomic_write_text, json_dumps


def cell_path(out: Path, task: str, body: str, seed: int) -> Path:
    return out / f"{task}-{body}-seed{seed}.json"


def run_cell(task: str, body: str, seed: int) -> dict:
    """One plain fit without a refit; what its validation protocol did and the kept model's test score."""
    ds = load_dataset(task)
    est = CrossModalEstimator(body=body, seed=seed, task=ds.task, refit=False, verbose=False)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(ds.fit_inputs(ds.X_train), ds.y_train)
    seconds = time.perf_counter() - t0
    val = est.report_.validation
    auto = est.report_.settings["auto"]
    return {"task": task, "body": body, "seed": seed, "metric": val["metric"],
            "automatic": {k: auto[k] for k in sorted(auto)}, "validation": val["score"],
            "lr_retry": val.get("lr_retry"), "kept_lr": est.settings_.lr,
            "test": float(est.score(ds.fit_inputs(ds.X_test), np.asarray(ds.y_test))),
            "warnings": sorted({w.category.__name__ for w in caught}), "fit_s": seconds,
            "runs": [{"label": r["label"], "score": r["score"], "seconds": r["seconds"]} for r in est.report_.runs]}


def table(out: Path) -> str:
    lines = ["| task | body | seed | automatic lr | validation | retried at | validation | constant | kept lr | "
             "test (kept model) | fit s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in sorted(out.glob("*.json")):
        c = json.loads(f.read_text())
        r = c["lr_retry"]
        if r is None:
            first, again, lr2, const = c["validation"], "—", "no retry", "—"
        else:
            first = r["scores"][str(r["automatic_lr"])]["orca"]
            lr2, again, const = f"{r['retried_lr']:g}", f"{r['scores'][str(r['retried_lr'])]['orca']:.4f}", \
                f"{r['constant']:.4f}"
        first = f"{first:.4f}"
        lines.append(f"| {c['task']} | {c['body']} | {c['seed']} | {c['automatic']['lr']:g} | {first} | {lr2} | "
                     f"{again} | {const} | {c['kept_lr']:g} | {c['test']:.4f} | {c['fit_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=[])
    ap.add_argument("--body", default="mpnet-base")
    ap.add_argument("--seeds", default="0", help="comma-separated")
    ap.add_argument("--out", type=Path, default=Path("results/lr_retry"))
    ap.add_argument("--report", action="store_true", help="print the table of the stored cells; run nothing")
    args = ap.parse_args()
    if not args.report:
        for task in args.tasks:
            for seed in (int(s) for s in args.seeds.split(",")):
                f = cell_path(args.out, task, args.body, seed)
                if f.exists():
                    continue
                cell = run_cell(task, args.body, seed)
                f.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(f, json_dumps(cell))
                print(f"{task} {args.body} seed {seed}: validation {cell['validation']:.4f}, kept lr "
                      f"{cell['kept_lr']:g}, test {cell['test']:.4f} ({cell['fit_s']:.0f} s)", flush=True)
    print(table(args.out), end="")


if __name__ == "__main__":
    main()
