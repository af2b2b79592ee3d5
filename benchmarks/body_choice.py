"""Which body for which task (issue 15): ``select-body``'s picks against each body's suite score.

For every task: :func:`xmodal.select_body` ranks the candidate bodies on the task's *training* split
(a short OTDD stage 2 and a linear probe per body on a subsample, the probe scored on held-out
training rows; the test split is never read), and ``xmodal bench``
runs the ``orca`` strategy with each body at the suite's settings (``OUT/<body>/cells``; finished cells
are reused when rerun). EfficientNet runs at the suite's epochs and batch size with its own automatic
token grid and learning rate (:func:`xmodal.experiments.suite.settings_for_body`): the suite's 16 tokens
were chosen for transformers and leave a CNN's last feature map one pixel wide. The report gives, per
task, each body's normalised final OTDD, probe validation score and test score (mean ± std over the
seeds), and for each rule (probe, the default; OTDD; and with ``--rules probe,rung`` the short fine-tuning
rung, cached in ``OUT/select-rung/``) the pick, the Spearman correlation between the rule's ranking and
the test-score ranking and whether the pick is within one standard deviation of the best body, and the
cost of choosing against the estimated cost of one fine-tuning run per candidate:

    python benchmarks/body_choice.py --seeds 0,1,2 --out results/bodies       # all of it (hours on 2 cores)
    python benchmarks/body_choice.py --seeds 0 --rules probe,rung --out results/bodies   # and the rung rule
    python benchmarks/body_choice.py --seeds 0 --tasks darcy-16 --out results/bodies
    python benchmarks/body_choice.py --seeds 1,2 --tasks darcy-85 --bodies minilm-l6,efficientnet-lite0
    python benchmarks/body_choice.py --report --out results/bodies            # the tables from what is done
    python benchmarks/body_choice.py --plan --out results/bodies              # the cells still to run, estimated

Image and field tasks compare MiniLM-L6, MPNet-base and EfficientNet-Lite0; series, sequence and table
tasks (one spatial axis) MiniLM-L6 and MPNet-base (EfficientNet reads them as one-row images, which the
issue does not ask for). ``OUT/BODY_CHOICE.md`` is (re)written after every task.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from xmodal.evaluate.metrics import beats
from xmodal.files import atomic_write_text

IMAGE_TASKS = ("darcy-16", "mnist-5k", "darcy-85", "fashion-mnist-10k")
SERIES_TASKS = ("japanesevowels", "gunpoint", "breast-cancer", "splice")
IMAGE_BODIES = ("minilm-l6", "efficientnet-lite0", "mpnet-base")
SERIES_BODIES = ("minilm-l6", "mpnet-base")


def bodies_for(task: str) -> tuple[str, ...]:
    return IMAGE_BODIES if task in IMAGE_TASKS else SERIES_BODIES


def select_dir(out: Path, rule: str) -> Path:
    """Where selections by ``rule`` are cached: OUT/select/ for the default rule, OUT/select-<rule>/ else."""
    return out / ("select" if rule == "probe" else f"select-{rule}")


def select(task: str, seed: int, out: Path, subsample: int, align_epochs: int, rule: str = "probe") -> dict:
    """select_body by ``rule`` on the task's training split with the suite's settings, cached in
    :func:`select_dir`."""
    path = select_dir(out, rule) / f"{task}-seed{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    from xmodal import select_body
    from xmodal.data.builtin import load_dataset
    from xmodal.experiments.suite import settings_for, settings_for_body
    from xmodal.files import write_json

    name, settings = settings_for(task)
    # the settings every candidate runs with; one a family chooses for itself is left automatic for all
    common = {k: v for k, v in settings.items() if all(k in settings_for_body(settings, b) for b in bodies_for(task))}
    ds = load_dataset(name)
    sel = select_body(ds.X_train, ds.y_train, list(bodies_for(task)), {**common, "seed": seed, "task": ds.task},
                      subsample=subsample, align_epochs=align_epochs, rule=rule, progress=True)
    record = {"task": task, "seed": seed, "pick": sel.pick, "rule": sel.rule, "rows": sel.rows,
              "seconds": sel.seconds, "settings": sel.settings}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    return record


def score(task: str, body: str, seeds: list[int], out: Path) -> None:
    """The orca cells of ``body`` on ``task`` (``xmodal bench``; finished cells are skipped)."""
    cmd = [sys.executable, "-m", "xmodal", "bench", "--tasks", task, "--methods", "orca", "--seeds",
           ",".join(map(str, seeds)), "--body", body, "--out", str(out / body)]
    subprocess.run(cmd, check=True)


def cell_path(out: Path, body: str, task: str, seed: int) -> Path:
    """Where ``xmodal bench`` keeps the orca cell of ``body`` on ``task`` for ``seed``."""
    return out / body / "cells" / task / f"orca-seed{seed}.json"


def _cells(task: str, body: str, seeds: list[int], out: Path) -> list[dict]:
    rows = []
    for s in seeds:
        f = cell_path(out, body, task, s)
        if f.exists():
            rows.append(json.loads(f.read_text())["row"])
    return rows


def _pick(rows: list[dict], rule: str, higher: bool) -> str:
    """The body select-body's ``rule`` picks from one selection's rows (:meth:`SelectionRule.pick`)."""
    from xmodal.estimator.body_selection import RULES

    return RULES[rule].pick(rows, higher)


def constant_reference(task: str) -> float:
    """The test metric of predicting one constant learned from the training split: the majority class for
    class labels, the training mean (field) for regression (:func:`xmodal.estimator.runs.constant_score`).
    Reported beside the bodies, never used to choose."""
    from xmodal.data.builtin import load_dataset
    from xmodal.estimator.runs import constant_score
    from xmodal.experiments.suite import settings_for
    from xmodal.tasks import get_task_kind

    ds = load_dataset(settings_for(task)[0])
    return constant_score(get_task_kind(ds.task), np.asarray(ds.y_train), np.asarray(ds.y_test))


def _row(sel: dict, body: str) -> dict:
    return next(r for r in sel["rows"] if r["body"] == body)


def _mean(sels: list[dict], body: str, key: str) -> float:
    """The mean of ``key`` of ``body``'s rows over the selections (nan where no selection has it)."""
    values = [v for s in sels if (v := _row(s, body).get(key)) is not None]
    return float(np.mean(values)) if values else float("nan")


def _task_summary(task: str, seeds: list[int], out: Path) -> dict | None:
    """One task's selections and cells. Where some seed is scored for every body, only such seeds count
    (selections and scores alike), so that every body's mean and every pick cover the same seeds."""
    bodies = bodies_for(task)
    scored = [s for s in seeds if all(cell_path(out, b, task, s).exists() for b in bodies)]
    seeds = scored or seeds
    sels = [json.loads(p.read_text()) for s in seeds if (p := out / "select" / f"{task}-seed{s}.json").exists()]
    if not sels:
        return None
    cells = {b: _cells(task, b, seeds, out) for b in bodies}
    scores = {b: [c["value"] for c in cells[b]] for b in bodies}
    higher = next((c[0]["higher_is_better"] for c in cells.values() if c), True)
    metric = next((c[0]["metric"] for c in cells.values() if c), "")
    ratio = {b: float(np.nanmean([_row(s, b)["score"] for s in sels])) for b in bodies}
    probe = {b: _mean(sels, b, "probe_score") for b in bodies}
    probe_se = {b: _mean(sels, b, "validation_se") for b in bodies}
    summary = {"task": task, "metric": metric, "higher_is_better": higher, "ratio": ratio, "probe": probe,
               "probe_se": probe_se,
               "scores": scores, "picks": [_pick(s["rows"], "probe", higher) for s in sels],
               "otdd_picks": [_pick(s["rows"], "otdd", higher) for s in sels],
               "choose_s": float(np.mean([s["seconds"] for s in sels])),
               "finetune_est_s": {b: float(np.mean([_row(s, b)["finetune_estimate_s"] for s in sels])) for b in bodies},
               "cell_s": {b: float(np.mean([c["total_s"] for c in cells[b]])) if cells[b] else None for b in bodies}}
    rung_sels = [json.loads(p.read_text()) for s in seeds
                 if (p := select_dir(out, "rung") / f"{task}-seed{s}.json").exists()]
    if rung_sels:  # the rung rule, where it was run (--rules probe,rung)
        summary.update(rung={b: _mean(rung_sels, b, "rung_score") for b in bodies},
                       rung_picks=[_pick(s["rows"], "rung", higher) for s in rung_sels],
                       rung_choose_s=float(np.mean([s["seconds"] for s in rung_sels])))
    if all(scores[b] for b in bodies):
        mean = {b: float(np.mean(scores[b])) for b in bodies}
        best = max(mean, key=mean.get) if higher else min(mean, key=mean.get)
        std = float(np.std(scores[best], ddof=1)) if len(scores[best]) > 1 else 0.0
        sign = -1.0 if higher else 1.0  # rank 1 = best on every side
        score_rank = [sign * mean[b] for b in bodies]
        summary.update(mean=mean, best=best, best_std=std)
        rules = [("probe_rule", summary["picks"], [sign * probe[b] for b in bodies]),
                 ("otdd", summary["otdd_picks"], [ratio[b] for b in bodies])]
        if rung_sels:
            rules.append(("rung_rule", summary["rung_picks"], [sign * summary["rung"][b] for b in bodies]))
        for rule, picks, ranked in rules:
            pick = max(bodies, key=picks.count)  # the most frequent pick over the seeds; ties: candidate order
            hits = [abs(mean[p] - mean[best]) <= std + 1e-12 for p in picks]
            summary[rule] = {"pick": pick, "within": abs(mean[pick] - mean[best]) <= std + 1e-12,
                             "seeds_within": f"{sum(hits)}/{len(hits)}",
                             "spearman": float(spearmanr(ranked, score_rank).statistic)}
    return summary


def _count_seeds(summaries: list[dict], rule: str) -> str:
    """``"hits/selections"`` over every (task, seed) selection of ``rule`` in ``summaries``."""
    pairs = [tuple(map(int, s[rule]["seeds_within"].split("/"))) for s in summaries]
    return f"{sum(h for h, _ in pairs)}/{sum(n for _, n in pairs)}"


def report(tasks: list[str], seeds: list[int], out: Path) -> str:
    """OUT/BODY_CHOICE.md from the selections and cells finished so far."""
    lines = [f"# Body choice: select-body's pick against the suite score (seeds {','.join(map(str, seeds))})", "",
             "`python benchmarks/body_choice.py --seeds " + ",".join(map(str, seeds)) + f" --out {out}` — strategy "
             "orca at each task's suite settings (EfficientNet: its own token grid and lr, the suite's epochs and "
             "batch; on the darcy fields its dense head reads hypercolumns, `xmodal.model.bodies.cnn`); "
             "OTDD / scale: the final OTDD after select-body's short stage 2 divided by the body's source "
             "scale (lower = closer to the body's own modality); probe: select-body's default rule, the validation "
             "score (held-out *training* rows) of a linear probe (the head alone, fitted in closed form on the "
             "frozen features after the short stage 2), ± its bootstrap standard error over the held-out rows; the "
             "probe pick is the cheapest body to fine-tune (by the estimate) within one standard error of the best "
             "probe (the one-standard-error rule); score = test metric of the full orca run, mean ± std over "
             "the finished seeds.", "",
             "| task | metric | body | OTDD / scale | probe validation | test score | seeds done | cell s | "
             "fine-tuning est. s |", "|---|---|---|---|---|---|---|---|---|"]
    summaries = [s for t in tasks if (s := _task_summary(t, seeds, out)) is not None]
    for s in summaries:
        for b, r in s["ratio"].items():
            v = s["scores"][b]
            shown = f"{np.mean(v):.4f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.4f}" if v else "—"
            cell = f"{s['cell_s'][b]:.0f}" if s["cell_s"][b] is not None else "—"
            marks = [m for m, picks in (("probe pick", s["picks"]), ("OTDD pick", s["otdd_picks"])) if b in picks]
            mark = f" ({', '.join(marks)})" if marks else ""
            lines.append(f"| {s['task']} | {s['metric']} | {b}{mark} | {r:.4g} | {s['probe'][b]:.4g} ± "
                         f"{s['probe_se'][b]:.2g} | {shown} | "
                         f"{len(v)} | {cell} | {s['finetune_est_s'][b]:.0f} |")
    lines += ["", "The pick of a task is its most frequent pick over the seeds' selections; 'seeds' counts the "
              "seeds whose own pick is within one std of the best.", "",
              "| task | constant prediction (test) | best (test, mean) | probe pick | within 1 std (seeds) | "
              "Spearman probe vs test | OTDD pick | within 1 std (seeds) | Spearman OTDD vs test | "
              "choosing s (all candidates) | choosing ÷ (candidates × fine-tuning est.) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    complete = [s for s in summaries if "best" in s]
    for s in complete:
        share = s["choose_s"] / sum(s["finetune_est_s"].values())
        r, o = s["probe_rule"], s["otdd"]
        yes = {True: "yes", False: "no"}
        lines.append(f"| {s['task']} | {constant_reference(s['task']):.4f} | {s['best']} | {r['pick']} | "
                     f"{yes[r['within']]} ({r['seeds_within']}) | {r['spearman']:+.2f} | {o['pick']} | "
                     f"{yes[o['within']]} ({o['seeds_within']}) | "
                     f"{o['spearman']:+.2f} | {s['choose_s']:.0f} | {share:.0%} |")
    with_rung = [s for s in complete if "rung_rule" in s]
    if with_rung:
        lines += ["", "Rung rule (`--rules probe,rung`): after the same short stage 2, each body is fine-tuned "
                  "for a rung of 5 % of one full run's optimiser steps (at least one epoch of the subsample) and "
                  "scored on the same held-out training rows.", "",
                  "| task | rung validation per body | rung pick | within 1 std | Spearman rung vs test | "
                  "choosing s (all candidates) | choosing ÷ (candidates × fine-tuning est.) |",
                  "|---|---|---|---|---|---|---|"]
        for s in with_rung:
            g = s["rung_rule"]
            per_body = ", ".join(f"{b} {v:.4g}" for b, v in s["rung"].items())
            share = s["rung_choose_s"] / sum(s["finetune_est_s"].values())
            lines.append(f"| {s['task']} | {per_body} | {g['pick']} | {'yes' if g['within'] else 'no'} "
                         f"({g['seeds_within']}) | "
                         f"{g['spearman']:+.2f} | {s['rung_choose_s']:.0f} | {share:.0%} |")
        rho = np.nanmean([s["rung_rule"]["spearman"] for s in with_rung])
        lines += ["", f"Rung pick within one std of the best: {sum(s['rung_rule']['within'] for s in with_rung)}/"
                  f"{len(with_rung)} (mean Spearman {rho:+.2f})."]
    # the vision body against MiniLM over the seeds both are scored on (MPNet's missing seeds do not matter here)
    duel = ("efficientnet-lite0", "minilm-l6")
    pairs = []
    for s in summaries:
        both = [d for d in seeds if all(cell_path(out, b, s["task"], d).exists() for b in duel)]
        if s["task"] in IMAGE_TASKS and both:
            pairs.append((s, {b: [c["value"] for c in _cells(s["task"], b, both, out)] for b in duel}))
    won = [s["task"] for s, v in pairs if beats(np.mean(v[duel[0]]), np.mean(v[duel[1]]), s["higher_is_better"])]
    if complete:
        n = len(complete)
        lines += ["", f"Tasks with every body scored: {n} of {len(tasks)}. Probe pick within one std of the best: "
                  f"{sum(s['probe_rule']['within'] for s in complete)}/{n} (mean Spearman "
                  f"{np.nanmean([s['probe_rule']['spearman'] for s in complete]):+.2f}); OTDD pick: "
                  f"{sum(s['otdd']['within'] for s in complete)}/{n} (mean Spearman "
                  f"{np.nanmean([s['otdd']['spearman'] for s in complete]):+.2f}).",
                  "Per (task, seed) selection, the probe pick is within one std of the best in "
                  f"{_count_seeds(complete, 'probe_rule')}; the OTDD pick in {_count_seeds(complete, 'otdd')}."]
        from xmodal.experiments.suite import DEVELOPMENT, HELD_OUT

        halves = [(name, [s for s in complete if s["task"] in half]) for name, half in
                  (("development", DEVELOPMENT), ("held-out", HELD_OUT))]
        lines.append("By the suite's halves (`xmodal.experiments.suite`: select-body's rule was revised on the "
                     "development tasks only): probe pick within one std on " + "; ".join(
                         f"{sum(s['probe_rule']['within'] for s in half)}/{len(half)} {name} tasks"
                         for name, half in halves if half) + ".")
        done = {t: min(len(v) for v in s["scores"].values()) for s in complete for t in [s["task"]]}
        if min(done.values()) < len(seeds):
            lines.append("Seeds scored per task: " + ", ".join(f"{t} {n}" for t, n in done.items()) + ".")
        if min(done.values()) == 1:
            lines.append("With one seed the standard deviation is 0: 'within 1 std' means the pick is the best body.")
    if pairs:
        lines += ["", f"EfficientNet-Lite0 beats MiniLM-L6 on {len(won)}/{len(pairs)} image/field tasks where both "
                  f"are scored ({', '.join(won) or 'none'}), by the mean over the seeds both have:", "",
                  "| task | EfficientNet-Lite0 | MiniLM-L6 | seeds |", "|---|---|---|---|"]
        for s, v in pairs:
            shown = {b: f"{np.mean(x):.4f} ± {np.std(x, ddof=1) if len(x) > 1 else 0:.4f}" for b, x in v.items()}
            lines.append(f"| {s['task']} | {shown[duel[0]]} | {shown[duel[1]]} | {len(v[duel[0]])} |")
    return "\n".join(lines) + "\n"


def plan(tasks: list[str], seeds: list[int], out: Path) -> str:
    """The cells still to run, each estimated by the mean time of the same (task, body)'s finished cells."""
    lines = ["| task | body | seeds to run | estimate s |", "|---|---|---|---|"]
    total, unknown = 0.0, 0
    for task in tasks:
        for body in bodies_for(task):
            todo = [s for s in seeds if not cell_path(out, body, task, s).exists()]
            if not todo:
                continue
            # every finished seed of the pair, not only the requested ones, so ``--seeds 2`` still estimates
            finished = sorted(int(f.stem.removeprefix("orca-seed")) for f in
                              cell_path(out, body, task, 0).parent.glob("orca-seed*.json"))
            done = _cells(task, body, finished, out)
            est = len(todo) * float(np.mean([c["total_s"] for c in done])) if done else None
            total += est or 0.0
            unknown += est is None
            lines.append(f"| {task} | {body} | {','.join(map(str, todo))} | {'?' if est is None else f'{est:.0f}'} |")
    lines.append(f"\nAbout {total / 3600:.1f} h of cells" + (f", and {unknown} (task, body) pairs with no finished "
                                                               "cell to estimate from" if unknown else "") + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(IMAGE_TASKS + SERIES_TASKS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--subsample", type=int, default=500, help="training rows select-body aligns on and scores on")
    ap.add_argument("--align-epochs", type=int, default=5, help="select-body's stage-2 epochs per body")
    ap.add_argument("--out", type=Path, default=Path("results/bodies"))
    ap.add_argument("--rules", default="probe", help="select-body rules to run and report, comma-separated "
                    "(probe, the default rule, is always run; rung adds the short fine-tuning rung)")
    ap.add_argument("--report", action="store_true", help="run nothing; write the report from what is done")
    ap.add_argument("--plan", action="store_true", help="run nothing; list the cells still to run with estimates")
    ap.add_argument("--bodies", default=",".join(IMAGE_BODIES),
                    help="score only these bodies' cells now (selections always rank every candidate)")
    args = ap.parse_args()
    tasks = args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    rules = ["probe"] + [r for r in args.rules.split(",") if r and r != "probe"]
    unknown = set(args.bodies.split(",")) - set(IMAGE_BODIES)
    if unknown:
        ap.error(f"--bodies: unknown {sorted(unknown)}; the compared bodies are {', '.join(IMAGE_BODIES)}")
    if args.plan:
        print(plan(tasks, seeds, args.out))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        for task in tasks:  # every selection first: they are cheap and give the OTDD column
            for seed in seeds:
                t0 = time.perf_counter()
                for rule in rules:
                    sel = select(task, seed, args.out, args.subsample, args.align_epochs, rule)
                    print(f"{task} seed {seed}, rule {rule}: pick {sel['pick']} "
                          f"({time.perf_counter() - t0:.0f} s)", flush=True)
        run_bodies = args.bodies.split(",")
        for body in IMAGE_BODIES:  # cheapest body first, so that whole comparisons finish early
            for task in tasks:
                if body in bodies_for(task) and body in run_bodies:
                    score(task, body, seeds, args.out)
                    atomic_write_text(args.out / "BODY_CHOICE.md", report(tasks, seeds, args.out))
    text = report(tasks, seeds, args.out)
    atomic_write_text(args.out / "BODY_CHOICE.md", text)
    print(text)


if __name__ == "__main__":
    main()
