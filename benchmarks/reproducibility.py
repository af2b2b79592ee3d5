"""Does a fit give the same model on another machine? One fit per (seed, environment), each in a fresh process.

An environment is torch's SIMD level (``ATEN_CPU_CAPABILITY``, read when torch is imported: ``default`` is
what the CPU offers, e.g. AVX512; ``avx2`` forces the AVX2 kernels a CPU without AVX512 would run) and the
thread count. The first environment runs twice, to show a fit is bit-for-bit repeatable within one
environment. For each fit: a hash of the final weights, the last training loss, the validation and the test
score. The summary sets the spread across environments (same seed) against the spread across seeds (same
environment): if they are alike, a score moved by a new machine is as much noise as a new seed, and results
from different machines can only be compared within the seeds' spread.

    python benchmarks/reproducibility.py --task acsf1 --strategy finetune --seeds 0,1,2 \\
        --envs default:2,avx2:2,default:1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys


def child(task: str, strategy: str, seed: int, threads: int) -> None:
    """One fit at the automatic settings (validation 0.2, then a refit on all training rows); prints JSON."""
    import torch

    torch.set_num_threads(threads)
    from xmodal import CrossModalEstimator
    from xmodal.data.builtin import load_dataset
    from xmodal.runtime import environment

    ds = load_dataset(task)
    est = CrossModalEstimator(strategy=strategy, seed=seed, task=ds.task, validation=0.2, refit=True, verbose=False)
    est.fit(ds.fit_inputs(ds.X_train), ds.y_train)
    digest = hashlib.sha256()
    for name, tensor in sorted(est.model_.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    metric = est.model_.kind.default_metric
    print(json.dumps({
        "weights": digest.hexdigest()[:12],
        "loss": est.report_.finetune[-1]["loss"] if est.report_.finetune else None,
        "validation": est.validation_score_,
        "test": float(est.score(ds.fit_inputs(ds.X_test), ds.y_test, metric=metric)),
        "metric": metric,
        "env": environment(),
    }))


def run(task: str, strategy: str, seed: int, capability: str, threads: int) -> dict:
    env = dict(os.environ)
    env.pop("ATEN_CPU_CAPABILITY", None)
    if capability != "default":
        env["ATEN_CPU_CAPABILITY"] = capability
    out = subprocess.run([sys.executable, __file__, "--child", "--task", task, "--strategy", strategy,
                          "--seeds", str(seed), "--envs", f"{capability}:{threads}"],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="acsf1", help="a built-in dataset (xmodal datasets)")
    ap.add_argument("--strategy", default="finetune")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--envs", default="default:2,avx2:2,default:1",
                    help="comma-separated CAPABILITY:THREADS; CAPABILITY is default or an ATEN_CPU_CAPABILITY value")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    envs = [(c, int(t)) for c, t in (e.split(":") for e in args.envs.split(","))]
    if args.child:
        child(args.task, args.strategy, seeds[0], envs[0][1])
        return
    print(f"task {args.task}, strategy {args.strategy}, automatic settings; one process per fit\n")
    print("| seed | SIMD | threads | run | weights sha256 | last train loss | validation | test |")
    print("|---|---|---|---|---|---|---|---|")
    tests: dict[tuple[int, int], float] = {}
    repeat_equal = []
    for seed in seeds:
        for i, (cap, threads) in enumerate(envs):
            for rep in range(2 if i == 0 else 1):
                r = run(args.task, args.strategy, seed, cap, threads)
                if rep == 0:
                    tests[(seed, i)] = r["test"]
                    first = r["weights"]
                else:
                    repeat_equal.append(r["weights"] == first)
                print(f"| {seed} | {r['env']['cpu_capability']} | {r['env']['threads']} | {rep + 1} | {r['weights']} | "
                      f"{r['loss']:.6f} | {r['validation']:.4f} | {r['metric']} {r['test']:.4f} |", flush=True)
    across_envs = [max(tests[(s, i)] for i in range(len(envs))) - min(tests[(s, i)] for i in range(len(envs)))
                   for s in seeds]
    print(f"\nrepeats in the first environment bit-identical: {sum(repeat_equal)} of {len(repeat_equal)}")
    print("test spread across environments, same seed (max − min): "
          + ", ".join(f"seed {s} {d:.4f}" for s, d in zip(seeds, across_envs, strict=True)))
    if len(seeds) > 1:
        per_env = [statistics.stdev(tests[(s, i)] for s in seeds) for i in range(len(envs))]
        print("test std across seeds, same environment: "
              + ", ".join(f"{c}:{t} {d:.4f}" for (c, t), d in zip(envs, per_env, strict=True)))


if __name__ == "__main__":
    main()
