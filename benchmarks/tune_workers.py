"""Wall time of one tuning study run by 1 and by 2 worker processes sharing it through PostgreSQL.

Each worker is ``xmodal tune DATA --storage postgresql://… --study NAME`` with one CPU thread
(``OMP_NUM_THREADS=1``), as it would be on its own machine; the study stops at ``--trials`` trials
(all workers together). Pruning is off and the epochs fixed, so that every trial costs about the same
and the two runs do the same work. Prints a Markdown table: workers, wall seconds, trials finished,
trials per worker, speed-up against one worker and the ratio of the walls.

    python benchmarks/tune_workers.py --data gunpoint --trials 12 --epochs 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

SPACE = {"lr": {"log": [1e-5, 1e-3]}, "weight_decay": {"log": [1e-6, 1e-2]}, "optimizer": ["adamw", "adam"]}


def run_study(url: str, workers: int, args: argparse.Namespace, folder: Path) -> dict:
    import optuna

    space = folder / "space.json"
    space.write_text(json.dumps(SPACE))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    study = f"workers{workers}"
    cmd = [sys.executable, "-m", "xmodal.cli", "--quiet", "tune", args.data, "--body", args.body, "--epochs",
           str(args.epochs), "--max-tokens", str(args.max_tokens), "--space", str(space), "--pruner", "none",
           "--trials", str(args.trials), "--budget", "none", "--storage", url, "--study", study]
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*cmd, "--out", str(folder / f"{study}-{i}")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(workers)]
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a worker failed:\n{out[-2000:]}")
    wall = time.perf_counter() - t0
    storage = optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://"))
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    per_worker = Counter(t.user_attrs.get("worker", "?") for t in trials)
    states = Counter(t.state.name for t in trials)
    return {"workers": workers, "wall": wall, "trials": len(trials), "states": dict(states),
            "per_worker": sorted(per_worker.values(), reverse=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="gunpoint")
    ap.add_argument("--body", default="minilm-l6")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=8)
    args = ap.parse_args()
    from xmodal.tuning.pgserver import temporary_postgres

    rows = []
    with temporary_postgres() as url, tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            rows.append(run_study(url, workers, args, Path(tmp)))
    one = rows[0]["wall"]
    print(f"data {args.data}, body {args.body}, {args.epochs} epochs per trial, {args.max_tokens} tokens, "
          f"{args.trials} trials, 1 thread per worker, {os.cpu_count()} CPUs")
    print()
    print("| workers | wall s | trials | states | trials per worker | wall / 1 worker |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['wall']:.0f} | {r['trials']} | {r['states']} | {r['per_worker']} | "
              f"{r['wall'] / one:.2f} |")


if __name__ == "__main__":
    main()
