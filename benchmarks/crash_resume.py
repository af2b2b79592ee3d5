"""Kill ``fit`` with SIGKILL at random optimiser steps of stages 2 and 3, resume it, and compare.

For each strategy, a reference process fits without interruption and records every optimiser step
and every checkpoint write. Then, for each kill point ``N`` (drawn at random, alternating between
stage-2 and stage-3 steps), a process fits into a fresh checkpoint folder and kills itself with
SIGKILL right after optimiser step ``N`` (a global optimiser hook: no change to xmodal's code); a
second process reruns the same fit into the same folder and resumes. The table reports, per kill:

* ``equal``: the resumed model's weights are bit-identical to the reference model's;
* ``repeated``: optimiser steps run twice (killed + resumed − reference);
* ``lost_bound``: the steps of the epoch the kill interrupted, i.e. the most that may be repeated
  if a kill loses at most the current epoch (``ok`` when ``repeated ≤ lost_bound``).

The fit runs the validation protocol (a validation run, then the refit), so the kills land in
either training run. ``--json`` writes the rows for tests.

    python benchmarks/crash_resume.py --points 12 --strategies orca,mona,warmup
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xmodal.files import atomic_write_text

SETTINGS = dict(body="vit-tiny-random", validation=0.25, max_tokens=8, batch_size=8, epochs=3, align_epochs=3,
                source_size=200, lr=1e-3, device="cpu", verbose=False)
#: ``--quick`` (the test suite's two kills): one training run, two epochs per stage
QUICK = dict(SETTINGS, validation=0.0, epochs=2, align_epochs=2)


def _data():
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    X = (rng.normal(size=(40, 1, 16)) + y[:, None, None]).astype(np.float32)
    return X, y


def child(strategy: str, folder: Path, kill_at: int, record: Path, settings: dict) -> None:
    """One fit into ``folder``; SIGKILL itself after optimiser step ``kill_at`` (0: never)."""
    import torch

    import xmodal.train.session as session
    from xmodal import CrossModalEstimator

    torch.set_num_threads(1)
    log: dict = {"steps": [], "checkpoints": []}

    def on_step(opt, args, kwargs):
        log["steps"].append(sum(p.numel() for g in opt.param_groups for p in g["params"]))
        if kill_at and len(log["steps"]) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    from torch.optim.optimizer import register_optimizer_step_post_hook

    register_optimizer_step_post_hook(on_step)
    for module in (session,):  # every stage's loop checkpoints through EpochRun
        real = module.save_checkpoint

        def wrapped(*a, _real=real, **k):
            _real(*a, **k)
            log["checkpoints"].append(len(log["steps"]))
        module.save_checkpoint = wrapped
    X, y = _data()
    est = CrossModalEstimator(strategy=strategy, **settings).fit(X, y, checkpoint_dir=folder / "checkpoints")
    est.save(folder / "model")
    atomic_write_text(record, json.dumps(log))


def _spawn(strategy: str, folder: Path, kill_at: int, record: Path, cache: Path, quick: bool) -> int:
    env = {**os.environ, "XMODAL_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", strategy, str(folder), str(kill_at), str(record),
           *(["--quick"] if quick else [])]
    return subprocess.run(cmd, env=env, capture_output=True, text=True).returncode


def _weights_equal(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)


def run(strategies: list[str], points: int, seed: int, work: Path, quick: bool = False) -> list[dict]:
    rows = []
    rng = random.Random(seed)
    cache = work / "cache"
    for strategy in strategies:
        ref = work / f"{strategy}-reference"
        if _spawn(strategy, ref, 0, ref / "record.json", cache, quick) != 0:
            raise SystemExit(f"the reference run of {strategy} failed")
        log = json.loads((ref / "record.json").read_text())
        steps, boundaries = log["steps"], [0, *log["checkpoints"]]
        full = max(steps)  # stage 3 trains every parameter; stage 2 a part of them
        stage_of = [3 if n == full else 2 for n in steps]
        by_stage = {s: [i + 1 for i, st in enumerate(stage_of) if st == s] for s in (2, 3)}
        for i in range(points):
            stage = (2, 3)[i % 2]
            kill_at = rng.choice(by_stage[stage])
            folder = work / f"{strategy}-kill{i}"
            t0 = time.perf_counter()
            code = _spawn(strategy, folder, kill_at, folder / "killed.json", cache, quick)
            if code != -signal.SIGKILL:
                raise SystemExit(f"the run to be killed at step {kill_at} ended with {code}, not SIGKILL")
            if _spawn(strategy, folder, 0, folder / "resumed.json", cache, quick) != 0:
                raise SystemExit(f"the resumed run of {strategy} (killed at step {kill_at}) failed")
            resumed = len(json.loads((folder / "resumed.json").read_text())["steps"])
            before = max(b for b in boundaries if b < kill_at) if kill_at > boundaries[0] else 0
            after = min((b for b in boundaries if b >= kill_at), default=len(steps))
            repeated = kill_at + resumed - len(steps)
            rows.append({"strategy": strategy, "kill_at_step": kill_at, "of_steps": len(steps), "stage": stage,
                         "equal": _weights_equal(ref / "model", folder / "model"), "repeated": repeated,
                         "lost_bound": after - before, "ok": 0 <= repeated <= after - before,
                         "seconds": round(time.perf_counter() - t0, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strategies", default="orca,mona,warmup")
    p.add_argument("--points", type=int, default=12, help="kill points per strategy (alternating stage 2 / 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--quick", action="store_true", help="one training run of two epochs per stage (the tests)")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        strategy, folder, kill_at, record = args.child
        child(strategy, Path(folder), int(kill_at), Path(record), QUICK if args.quick else SETTINGS)
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = run([s for s in args.strategies.split(",") if s], args.points, args.seed, Path(tmp), args.quick)
    print()
    print("| strategy | kill at step | of | stage | weights equal | steps repeated | epoch bound | ok |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['strategy']} | {r['kill_at_step']} | {r['of_steps']} | {r['stage']} | {r['equal']} | "
              f"{r['repeated']} | {r['lost_bound']} | {r['ok']} |")
    print(f"\n{sum(r['equal'] and r['ok'] for r in rows)}/{len(rows)} kills resumed to the reference weights "
          "with at most the current epoch repeated")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
