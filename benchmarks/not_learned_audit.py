"""Audit the ``not_learned`` flag of stored bench cells against the constant prediction, recomputed.

For every xmodal cell under the given folders (``<out>/cells/<task>/<method>-seed<S>.json``) whose
validation run held out :data:`xmodal.experiments.bench.VALIDATION` of the training rows with the cell's
seed (every method but ``peer`` and ``tuned:*``, whose validation rows lie outside their study's), this
splits the rows as the estimator does, scores the constant prediction (the majority class, or the training
mean) on them, and says whether the stored validation score beats it
(:func:`xmodal.estimator.runs.beats_constant`). A cell whose stored flag disagrees was written by an older
check: before the regression check existed (cells of 2026-12-05), or before its float32 tolerance
(scores of exactly the constant passed as learned). ``--write`` sets those flags to the recomputed ones
(the cell's key and result are unchanged: the flag is a function of its stored validation score).

    python benchmarks/not_learned_audit.py results/full results/bodies/mpnet-base [--write]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from xmodal.data.split import validation_split
from xmodal.estimator.runs import beats_constant, constant_score
from xmodal.evaluate.metrics import get_metric
from xmodal.experiments.bench import VALIDATION, _dataset
from xmodal.experiments.suite import PEER, TUNED, get_task
from xmodal.files import write_json
from xmodal.tasks import get_task_kind


def audit(folders: list[Path]) -> list[dict]:
    rows, data = [], {}
    for cell in sorted(c for f in folders for c in f.glob("cells/*/*-seed*.json")):
        row = json.loads(cell.read_text())["row"]
        method, seed = cell.stem.rsplit("-seed", 1)
        if method == PEER or method.startswith(TUNED) or row.get("validation") is None:
            continue
        task = get_task(cell.parent.name)
        if task.name not in data:
            data[task.name] = _dataset(task.dataset_name)
        d = data[task.name]
        kind = get_task_kind(d.task)
        if row["metric"] != kind.default_metric:
            continue
        y = np.asarray(d.y_train)
        fit, val = validation_split(y, VALIDATION, int(seed), stratify=kind.class_labels)
        constant = constant_score(kind, y[fit], y[val])
        if constant is None:
            continue
        learned = beats_constant(float(row["validation"]), constant, get_metric(row["metric"]))
        rows.append({"cell": str(cell), "validation": float(row["validation"]), "constant": constant,
                     "not_learned": not learned, "stored": bool(row.get("not_learned")),
                     "agrees": (not learned) == bool(row.get("not_learned"))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="bench output folders (holding cells/)")
    ap.add_argument("--write", action="store_true", help="set the stored flags that disagree to the recomputed ones")
    args = ap.parse_args()
    rows = audit(args.folders)
    print("| cell | validation | constant | not learned (recomputed) | stored flag |")
    print("|---|---|---|---|---|")
    for r in rows:
        if r["not_learned"] or not r["agrees"]:
            print(f"| {r['cell']} | {r['validation']:.6g} | {r['constant']:.6g} | {r['not_learned']} | {r['stored']} |")
    wrong = sum(not r["agrees"] for r in rows)
    print(f"\n{len(rows)} cells audited; {sum(r['not_learned'] for r in rows)} not learned; "
          f"{wrong} stored flags disagree with the recomputed check.")
    if args.write:
        for r in rows:
            if not r["agrees"]:
                saved = json.loads(Path(r["cell"]).read_text())
                saved["row"]["not_learned"] = r["not_learned"]
                write_json(r["cell"], saved)
        print(f"rewrote {wrong} flags")


if __name__ == "__main__":
    main()
