"""The papers' strategy comparison on built-in tasks: `xmodal compare` per task with the suite's settings.

For each task, runs every strategy with every seed (same data, seeds and hyper-parameters from
:mod:`xmodal.experiments.suite`) and prints the Markdown table of :func:`xmodal.experiments.compare`
(test metric mean ± std, stage-2 and stage-3 seconds, final OTDD, source-knowledge probe). Results
and finished cells go to ``--out/<task>/`` so an interrupted run resumes.

    python benchmarks/compare_strategies.py --tasks gunpoint italypowerdemand japanesevowels \\
        --strategies finetune finetune++ frozen warmup orca mona --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from xmodal.data.builtin import load_dataset
from xmodal.experiments.compare import compare
from xmodal.experiments.suite import settings_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["gunpoint", "italypowerdemand", "japanesevowels"])
    ap.add_argument("--strategies", nargs="+", default=["finetune", "finetune++", "frozen", "warmup", "orca", "mona"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--body", default="minilm-l6")
    ap.add_argument("--out", default="runs/compare-strategies")
    ap.add_argument("--no-probe", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    for name in args.tasks:
        dataset, settings = settings_for(name)
        ds = load_dataset(dataset)
        res = compare(ds, args.strategies, args.seeds, {"body": args.body, **settings}, Path(args.out) / name,
                      probe=not args.no_probe)
        print(Path(res.files["markdown"]).read_text(), flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
