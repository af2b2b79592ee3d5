"""Issue 12's suite figures: tuned xmodal (strategy chosen on validation) against today's untuned cells,
against the expert peer, and tuned ``orca`` against tuned ``finetune``; the tuning cost per task.

Reads the cells that ``xmodal bench`` wrote in ``--cells`` (default ``results/full``), whatever their
key, so that the hand-set cells measured before the validation protocol existed (``orca``, ``mona``,
``finetune`` files without a ``validation`` field, the figures of ``results/RESULTS.md``) stand next to
the tuned ones (``tuned:orca``, ``tuned:finetune``, from ``xmodal bench --methods tuned:auto,peer``).
``--tuned`` reads the tuned cells and studies from another bench folder (e.g. one run with ``--tune-space
local``) and compares them with the tuned cells of ``--cells`` (ORCA's space).
``tuned:auto`` is, per task and seed, the tuned candidate with the better validation score
(:func:`xmodal.experiments.bench.validation_choices`); nothing here looks at a test score to choose.
Two diagnostics say what limits the counts: a choice pooled over the seeds' validation splits (a repeated
hold-out, judged on test like the one-split choice), and each gap against the test split's binomial error.

Comparisons are of means over the seeds each side has (the seeds are listed); "beats" is strictly better.
"Untuned best" is the best *test* mean among today's transfer strategies (orca, mona, finetune): an
optimistic reference chosen on the test split, shown because ``results/RESULTS.md`` counted it so.

    python benchmarks/tuned_suite.py                       # print the tables (Markdown)
    python benchmarks/tuned_suite.py --out results/TUNED_SUITE.md --figure results/tuned_suite_curves.png
    python benchmarks/tuned_suite.py --tuned results/full-local --space local --out results/TUNED_SUITE_LOCAL.md
    python benchmarks/tuned_suite.py --bodies results/bodies --out results/TUNED_SUITE.md   # and the body on validation
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path
from typing import Any

from xmodal.evaluate.metrics import beats as better  # float32 means: a gap under 1e-6 is a tie
from xmodal.experiments.bench import Tuning, validation_choices
from xmodal.experiments.suite import DEVELOPMENT, HELD_OUT, SUITE
from xmodal.files import atomic_write_text

UNTUNED = ("orca", "mona", "finetune")
HALVES = ("held-out", "development")


def half(task: str) -> str:
    """Which half of the suite a task is in (:data:`xmodal.experiments.suite.DEVELOPMENT` / ``HELD_OUT``)."""
    return "held-out" if task in HELD_OUT else "development"
TUNED = ("tuned:orca", "tuned:finetune")
#: the bodies besides the tuned MiniLM-L6 that ``--bodies`` may choose (cells by ``benchmarks/body_choice.py``)
BODIES = ("efficientnet-lite0", "mpnet-base")


def read_cells(root: Path) -> list[dict[str, Any]]:
    """Every finished cell under ``root/cells`` (rows as ``bench`` saved them)."""
    rows = []
    for path in sorted((root / "cells").glob("*/*.json")):
        rows.append(json.loads(path.read_text())["row"])
    return rows


def summary(rows: list[dict[str, Any]], task: str, method: str, seeds: set[int] | None = None) -> dict[str, Any] | None:
    """Mean, std and seeds of a (task, method)'s scored cells (only ``seeds`` when given); ``None`` if none."""
    got = [r for r in rows if r["task"] == task and r["method"] == method and r.get("value") is not None
           and (seeds is None or r["seed"] in seeds)]
    if not got:
        return None
    vals = [float(r["value"]) for r in got]
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "seeds": sorted(r["seed"] for r in got), "higher": bool(got[0]["higher_is_better"]),
            "metric": got[0]["metric"], "rows": got}


def fmt(s: dict[str, Any] | None) -> str:
    if s is None:
        return "—"
    return f"{s['mean']:.4f}" + (f" ± {s['std']:.4f}" if len(s["seeds"]) > 1 else "") + f" ({len(s['seeds'])})"


def tuning_row(studies: Path, task: str) -> dict[str, Any] | None:
    path = studies / task / "tune.json"
    if not path.exists():
        return None
    t = json.loads(path.read_text())
    return {"seconds": float(t["seconds"]), "counts": t["counts"], "saved": t["pruning"].get("saved_share"),
            "best": t["best_settings"], "best_value": t["best_value"], "best_trial": t["best_trial"]}


def trial_curve(studies: Path, task: str) -> list[dict[str, Any]]:
    """The study's trials in order (``trials.csv``): state, last validation value and cumulative seconds."""
    path = studies / task / "trials.csv"
    if not path.exists():
        return []
    trials, clock = [], 0.0
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            clock += float(r["seconds"] or 0.0)
            value = float(r["value"]) if r["value"] not in ("", "nan", "None") else None
            trials.append({"trial": int(r["trial"]), "state": r["state"], "value": value, "t": clock,
                           "origin": r.get("origin", "")})
    return trials


def plot_curves(studies: Path, tasks: list[str], path: Path) -> None:
    """One panel per task: every trial's last validation value against the study's cumulative trial seconds
    (filled: finished, hollow: pruned or stopped), the best finished value so far, and the defaults' value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows_n = max(1, -(-len(tasks) // cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3 * rows_n), squeeze=False)
    for ax, t in zip(axes.flat, tasks, strict=False):
        trials = trial_curve(studies, t)
        tr = tuning_row(studies, t)
        higher = json.loads((studies / t / "tune.json").read_text())["higher_is_better"] if tr else True
        done = [x for x in trials if x["state"] == "complete" and x["value"] is not None]
        cut = [x for x in trials if x["state"] != "complete" and x["value"] is not None]
        ax.scatter([x["t"] for x in cut], [x["value"] for x in cut], facecolors="none", edgecolors="grey", s=18,
                   label="pruned / stopped (last rung)")
        ax.scatter([x["t"] for x in done], [x["value"] for x in done], color="C0", s=22, label="finished")
        best, xs, ys = None, [], []
        for x in done:
            if best is None or better(x["value"], best, higher):
                best = x["value"]
            xs.append(x["t"])
            ys.append(best)
        if xs:
            ax.step(xs + [trials[-1]["t"]], ys + [ys[-1]], where="post", color="C3", label="best so far")
        d0 = next((x for x in done if x["origin"] == "defaults"), None)
        if d0 is not None:
            ax.axhline(d0["value"], color="k", ls=":", lw=1, label="defaults (trial 0)")
        metric = json.loads((studies / t / "tune.json").read_text())["metric"] if tr else ""
        ax.set_title(f"{t} ({metric} {'↑' if higher else '↓'})", fontsize=10)
        ax.set_xlabel("study seconds", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle("Tuning curves: validation score of each trial (one 5-minute study per task)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def sampled_trials_vs_defaults(studies: Path, tasks: list[str]) -> dict[tuple[str, str], list[int]]:
    """For every sampled trial (not the defaults) of every study: did it match the defaults (trial 0) at the
    same epoch? Keyed by (optimiser family, learning rate relative to the defaults' lr), values ``[n, matched]``.

    A trial is compared at its last reported epoch with trial 0's value at that epoch (or trial 0's last, if
    the trial ran longer), so a pruned trial is judged where ASHA judged it.
    """
    import optuna

    from xmodal.tuning.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: dict[tuple[str, str], list[int]] = {}
    for t in tasks:
        journal = studies / t / "study.journal"
        if not journal.exists():
            continue
        higher = json.loads((studies / t / "tune.json").read_text())["higher_is_better"]
        store, _ = open_storage(journal, journal.parent)
        trials = optuna.load_study(study_name="xmodal", storage=store).get_trials(deepcopy=False)
        d0 = next((tr for tr in trials if tr.user_attrs.get("origin") == "defaults"), None)
        if d0 is None or not d0.intermediate_values or "lr" not in d0.params:
            continue
        ref_curve, ref_lr = d0.intermediate_values, float(d0.params["lr"])
        for tr in trials:
            if tr.number == d0.number or not tr.intermediate_values or "lr" not in tr.params:
                continue
            epoch = max(tr.intermediate_values)
            ref = ref_curve.get(epoch, ref_curve[max(ref_curve)] if epoch > max(ref_curve) else None)
            if ref is None:
                continue
            value = tr.intermediate_values[epoch]
            ratio = float(tr.params["lr"]) / ref_lr
            band = "within 10×" if 0.1 <= ratio <= 10 else ("below /10" if ratio < 0.1 else "above ×10")
            opt = "sgd" if tr.params.get("optimizer") == "sgd" else "adam / adamw"
            cell = out.setdefault((opt, band), [0, 0])
            cell[0] += 1
            cell[1] += int(value >= ref if higher else value <= ref)
    return out


def choice_agreement(rows: list[dict[str, Any]], tasks: list[str]) -> list[str]:
    """After the fact, how often the validation choice between tuned orca and tuned finetune agreed with
    their test order, per task; and the mean an oracle that always took the better test score would have.
    A diagnostic of what limits ``tuned:auto`` (small validation splits are noisy); it chooses nothing."""
    out = ["", "## How often the validation choice agreed with test (after the fact; chooses nothing)", "",
           "Per task, over its seeds: where tuned orca and tuned finetune differ on test, how often the "
           "strategy with the better validation score was also better on test, and the mean absolute "
           "validation gap between them. The oracle column takes, per seed, whichever was better on test: "
           "the ceiling of any choice between the two, not a result.", "",
           "| task | seeds where test differs | validation picked the test winner | mean validation gap | "
           "tuned auto | oracle of the two |", "|---|---|---|---|---|---|"]
    agree_all = differ_all = 0
    oracle_wins = {"orca": 0, "peer": 0}
    for t in tasks:
        by_seed = {}
        for r in rows:
            if r["task"] == t and r["method"] in TUNED and r.get("value") is not None:
                by_seed.setdefault(r["seed"], {})[r["method"]] = r
        pairs = [(d["tuned:orca"], d["tuned:finetune"]) for d in by_seed.values() if len(d) == 2]
        if not pairs:
            continue
        higher = bool(pairs[0][0]["higher_is_better"])
        differ = agree = 0
        gaps, oracle = [], []
        for o, f in pairs:
            oracle.append((max if higher else min)(float(o["value"]), float(f["value"])))
            if o.get("validation") is None or f.get("validation") is None:
                continue
            gaps.append(abs(float(o["validation"]) - float(f["validation"])))
            if o["value"] == f["value"]:
                continue
            differ += 1
            test_ft = better(float(f["value"]), float(o["value"]), higher)
            val_ft = better(float(f["validation"]), float(o["validation"]), higher)  # ties keep orca
            agree += test_ft == val_ft
        agree_all += agree
        differ_all += differ
        auto = summary(rows, t, "tuned:auto")
        ref = {m: summary(rows, t, m, set(by_seed)) for m in ("orca", "peer")}
        for m, r in ref.items():
            oracle_wins[m] += bool(r and better(statistics.fmean(oracle), r["mean"], higher))
        gap = f"{statistics.fmean(gaps):.4f}" if gaps else "—"
        out.append(f"| {t} | {differ} | {agree} | {gap} | {auto['mean']:.4f} | {statistics.fmean(oracle):.4f} |")
    out += ["", f"Validation picked the test winner in {agree_all} of {differ_all} (task, seed) pairs where the "
            "two differ on test. Even the oracle choice would beat today's untuned orca on "
            f"{oracle_wins['orca']} of {len(tasks)} tasks and the expert peer on {oracle_wins['peer']} of "
            f"{len(tasks)}: a better choice between the two could lift the first count to the target; "
            "the second is limited by the tuned models themselves."]
    return out


def pooled_choice(rows: list[dict[str, Any]], tasks: list[str]) -> list[str]:
    """A lower-noise choice, measured from the same cells: one choice per task, by the mean validation score
    over the seeds' splits (each seed's cells score their own fifth of the training rows, so k seeds are a
    k-split repeated hold-out, at k times the validation fits of one choice); every seed then keeps that
    strategy's refit. Ties keep orca. It chooses on validation only; the test columns judge it."""
    out = ["", "## A choice pooled over the seeds' validation splits", "",
           "Per task, the strategy with the better mean validation score over all its seeds (a repeated "
           "hold-out over as many random fifths as there are seeds), kept for every seed. If the one-split "
           "choice above loses tasks to the noise of its small validation fifth, this should win them back.", "",
           "| task | mean validation, orca / finetune | pooled choice | test (pooled choice) | "
           "tuned auto (one split per seed) | untuned orca |", "|---|---|---|---|---|---|"]
    wins = {"orca": 0, "peer": 0, "split": 0}
    for t in tasks:
        by_seed: dict[int, dict[str, dict[str, Any]]] = {}
        for r in rows:
            if r["task"] == t and r["method"] in TUNED and r.get("validation") is not None:
                by_seed.setdefault(r["seed"], {})[r["method"]] = r
        pairs = [d for d in by_seed.values() if len(d) == 2]
        if not pairs:
            continue
        higher = bool(pairs[0]["tuned:orca"]["higher_is_better"])
        val = {m: statistics.fmean(float(d[m]["validation"]) for d in pairs) for m in TUNED}
        pick = "tuned:finetune" if better(val["tuned:finetune"], val["tuned:orca"], higher) else "tuned:orca"
        test = statistics.fmean(float(d[pick]["value"]) for d in pairs)
        seeds = {d[pick]["seed"] for d in pairs}
        ref = {m: summary(rows, t, m, seeds) for m in ("orca", "peer", "tuned:auto")}
        for m, key in (("orca", "orca"), ("peer", "peer"), ("tuned:auto", "split")):
            wins[key] += bool(ref[m] and better(test, ref[m]["mean"], higher))
        out.append(f"| {t} | {val['tuned:orca']:.4f} / {val['tuned:finetune']:.4f} ({len(pairs)}) | "
                   f"{pick.split(':')[1]} | {test:.4f} | {fmt(ref['tuned:auto'])} | {fmt(ref['orca'])} |")
    out += ["", f"The pooled choice beats today's untuned orca on {wins['orca']} of {len(tasks)} tasks and the "
            f"expert peer on {wins['peer']}; it is better on test than the one-split choice on {wins['split']}."]
    return out


def test_noise(rows: list[dict[str, Any]], tasks: list[str]) -> list[str]:
    """How large the gaps the issue counts are against the test split's own sampling noise: per
    classification task, the gap between tuned auto and untuned orca in test rows, and the binomial standard
    error of one accuracy on that many rows, ``sqrt(p (1 - p) / n)``. Every seed is scored on the same test
    rows, so averaging seeds does not shrink this error. Regression cells keep no per-row errors: "—"."""
    from xmodal.data.builtin import load_dataset

    out = ["", "## The counted gaps against the test split's sampling noise", "",
           "A test set of n rows measures an accuracy p only to within its binomial standard error "
           "sqrt(p (1 − p) / n); the seeds share one test set, so their mean has the same error. A gap "
           "smaller than that error is a coin flip of which rows the test set holds.", "",
           "| task | test rows | tuned auto | untuned orca | gap | gap × rows | test SE | gap / SE |",
           "|---|---|---|---|---|---|---|---|"]
    within = counted = 0
    for t in tasks:
        auto = summary(rows, t, "tuned:auto")
        orca = summary(rows, t, "orca", set(auto["seeds"]))
        if orca is None:
            continue
        gap = auto["mean"] - orca["mean"]
        if auto["metric"] != "accuracy":
            out.append(f"| {t} | — | {auto['mean']:.4f} | {orca['mean']:.4f} | {gap:+.4f} | — | — | — |")
            continue
        n = len(load_dataset(SUITE[t].dataset_name).y_test)
        se = (auto["mean"] * (1 - auto["mean"]) / n) ** 0.5
        counted += 1
        within += abs(gap) < se
        ratio = f"{gap / se:+.1f}" if se > 0 else "—"
        out.append(f"| {t} | {n} | {auto['mean']:.4f} | {orca['mean']:.4f} | {gap:+.4f} | {gap * n:+.1f} | "
                   f"{se:.4f} | {ratio} |")
    out += ["", f"On {within} of {counted} classification tasks the gap between tuned auto and untuned orca is "
            "smaller than one test-set standard error."]
    return out


def settings_source(task: str, body: str) -> str:
    """How a body's hand-set ``orca`` cell of ``task`` relates to a plain ``xmodal fit``: "= defaults" when the
    suite settings it ran with (:func:`xmodal.experiments.suite.settings_for_body`) are what the automatic
    settings resolve to on the task's training set, else "suite epochs/batch"."""
    from xmodal.config import RunConfig
    from xmodal.data.builtin import load_dataset
    from xmodal.defaults import resolve_settings
    from xmodal.experiments.suite import settings_for_body
    from xmodal.model.bodies import FAMILIES, resolve_body

    hand = settings_for_body(SUITE[task].settings, body)
    X = load_dataset(SUITE[task].dataset_name).X_train
    _, auto = resolve_settings(RunConfig(), len(X), tuple(X.shape[2:]), body=FAMILIES[resolve_body(body).family])
    return "= defaults" if all(auto.get(k) == v for k, v in hand.items()) else "suite epochs/batch"


def body_choice(rows: list[dict[str, Any]], tasks: list[str], bodies_root: Path, bodies: list[str]) -> list[str]:
    """The body chosen on validation as well as the strategy: per task and seed, among tuned auto (MiniLM-L6)
    and each other body's cells in ``bodies_root`` (``benchmarks/body_choice.py``'s ``orca`` cells, or, where
    they cover the seeds, the same strategy at the automatic settings, ``defaults:orca``), the one with the
    better validation score; ties keep tuned auto. A body enters a task only where it has a cell for every
    seed tuned auto has, so every seed chooses among the same candidates. The test columns judge the
    choice; nothing here chooses on them."""
    out = ["", "## Choosing the body on validation too", "",
           f"Per seed, the better validation score among tuned auto (MiniLM-L6) and the untuned cells of "
           f"{', '.join(bodies)} in `{bodies_root}`: `defaults:orca` (a plain `xmodal fit --body B`, "
           "`xmodal bench --methods defaults:orca`) where it covers the seeds, else `orca` from "
           "`benchmarks/body_choice.py` (the suite's epochs and batch size, the body's own automatic lr and "
           "token grid; '= defaults' where those are also what the automatic settings give); ties keep tuned "
           "auto. A body enters a task only with a cell for each of tuned auto's seeds. The two sides hold out "
           "different training rows (tuned cells a fifth outside the study's fifth, body cells 20 % of the "
           "training split): each score is still an estimate on rows its model did not fit, and no test score "
           "chooses.", "",
           "| task | half | bodies entered (cells) | chosen per seed | tuned auto | chosen (test) | untuned orca | "
           "peer |", "|---|---|---|---|---|---|---|---|"]
    counts = {h: {"orca": 0, "peer": 0, "n": 0} for h in HALVES}
    kept: list[dict[str, Any]] = []  # the cells whose test scores the counts below use
    for t in tasks:
        auto = summary(rows, t, "tuned:auto")
        seeds = auto["seeds"]
        cells, sources = {}, {}
        for b in bodies:
            mine = [r for r in read_cells(bodies_root / b) if r["task"] == t and r.get("validation") is not None]
            for method in ("defaults:orca", "orca"):
                got = {int(r["seed"]): r for r in mine if r["method"] == method}
                if all(s in got for s in seeds):
                    cells[b] = got
                    sources[b] = "defaults:orca" if method != "orca" else f"orca, {settings_source(t, b)}"
                    break
        higher, picks, values = auto["higher"], [], []
        for r in sorted(auto["rows"], key=lambda r: r["seed"]):
            best, label = r, "minilm"
            for b, got in cells.items():
                if better(float(got[r["seed"]]["validation"]), float(best["validation"]), higher):
                    best, label = got[r["seed"]], b
            picks.append(label)
            values.append(float(best["value"]))
            kept.append(best)  # a tuned auto row carries the fields of the cell it chose
        mean = statistics.fmean(values)
        ref = {m: summary(rows, t, m, set(seeds)) for m in ("orca", "peer")}
        c = counts[half(t)]
        c["n"] += 1
        for m in ("orca", "peer"):
            c[m] += bool(ref[m] and better(mean, ref[m]["mean"], higher))
        chosen = f"{mean:.4f}" + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")
        entered = ", ".join(f"{b} ({sources[b]})" for b in cells) or "—"
        out.append(f"| {t} | {half(t)} | {entered} | {'/'.join(picks)} | {fmt(auto)} | "
                   f"{chosen} | {fmt(ref['orca'])} | {fmt(ref['peer'])} |")

    def count(key: str) -> str:
        halves = "; ".join(f"{h} {c[key]} of {c['n']}" for h, c in counts.items() if c["n"])
        return f"**{sum(c[key] for c in counts.values())} of {len(tasks)}** ({halves})"

    out += ["", f"With the body chosen on validation too, xmodal beats today's untuned orca on {count('orca')} tasks "
            f"and the expert peer on {count('peer')}. A body's cells marked 'suite epochs/batch' ran at a budget "
            "a person set per task: there the count measures the lever, not a fully automatic run.",
            "", protocol_note(kept)]
    return out


def protocol_note(cells: list[dict[str, Any]]) -> str:
    """How many of the kept ``cells`` an older validation protocol made than today's
    (:func:`xmodal.experiments.bench_results.older_protocol`), and on which tasks."""
    from xmodal.estimator.protocol import PROTOCOL_VERSION
    from xmodal.experiments.bench_results import older_protocol

    cells = [{k: v for k, v in c.items() if k != "chosen"} for c in cells]  # each stands for the cell it kept
    old = [c for c in cells if older_protocol([c])]
    where = sorted({c["task"] for c in old})
    return (f"Of the {len(cells)} cells these counts keep, {len(old)} were made by a validation protocol older "
            f"than today's (version {PROTOCOL_VERSION}, `xmodal.estimator.protocol`: an automatic lr that learned "
            "nothing is retried a decade lower, a degraded refit is set aside)"
            + (f", on {', '.join(where)}" if where else "")
            + ". A cell records the protocol that made it; its key does not, so a rerun reuses it until its file "
            "is moved away.")


def space_comparison(base: list[dict[str, Any]], rows: list[dict[str, Any]], tasks: list[str],
                     space: str, base_studies: Path, studies: Path) -> list[str]:
    """Per task, tuned auto with this report's ``space`` against tuned auto with ORCA's space (the tuned cells of
    ``base``), both chosen on validation, over the seeds both have; test means, "better" strictly. Where both
    studies chose the same settings, the two sides differ only by where and when their cells ran."""
    orca_auto = validation_choices([r for r in base if r["method"] in TUNED], ["tuned:auto"])
    out = ["", f"## `{space}` against ORCA's space (tuned auto, test, same seeds)", "",
           f"| task | tuned auto, orca space | tuned auto, {space} space | better | same best settings |",
           "|---|---|---|---|---|"]
    wins = {"orca": 0, space: 0}
    same_n = 0
    for t in tasks:
        mine = summary(rows, t, "tuned:auto")
        theirs = summary(orca_auto, t, "tuned:auto", set(mine["seeds"]))
        if theirs is None:
            continue
        mine = summary(rows, t, "tuned:auto", set(theirs["seeds"]))
        higher = mine["higher"]
        won = (space if better(mine["mean"], theirs["mean"], higher) else
               "orca" if better(theirs["mean"], mine["mean"], higher) else "tie")
        if won in wins:
            wins[won] += 1
        a, b = tuning_row(base_studies, t), tuning_row(studies, t)
        same = a is not None and b is not None and a["best"] == b["best"]
        same_n += same
        out.append(f"| {t} | {fmt(theirs)} | {fmt(mine)} | {won} | {'yes' if same else 'no'} |")
    out += ["", f"`{space}` better on {wins[space]}, ORCA's space on {wins['orca']} of {len(tasks)} tasks. On "
            f"{same_n} of them both studies chose the same settings, so their cells differ only in the machine "
            "and session that ran them (the suite's earlier cells ran on other machines): that spread is "
            "run-to-run variation, not the search space."]
    return out


def report(root: Path, figure: Path | None = None, tuned: Path | None = None, space: str = "orca",
           bodies_root: Path | None = None, bodies: list[str] | None = None) -> str:
    """The Markdown report. Untuned and peer cells come from ``root``; the tuned cells and the studies (of
    the named ``space``, in the folder ``xmodal bench --tune-space`` keeps them in) from ``tuned`` (default:
    ``root``). When ``tuned`` differs from ``root``, the tuned cells of ``root`` (ORCA's space) are compared
    with them task by task. With ``bodies_root``, the body is chosen on validation too (:func:`body_choice`)."""
    tuned = tuned or root
    apart = tuned != root  # tuned cells from another bench folder than the untuned and peer cells
    studies = Tuning(space=space).folder(tuned)
    rows = [r for r in read_cells(root) if not (apart and r["method"] in TUNED)]
    tuned_rows = [r for r in read_cells(tuned) if r["method"] in TUNED] if apart else \
        [r for r in rows if r["method"] in TUNED]
    rows += tuned_rows if apart else []
    rows += validation_choices(tuned_rows, ["tuned:auto"])
    tasks = [t for t in SUITE if any(r["task"] == t and r["method"] == "tuned:auto" for r in rows)]
    command = f"python benchmarks/tuned_suite.py --cells {root}"
    command += f" --tuned {tuned} --space {space}" if apart else ""
    command += f" --bodies {bodies_root}" if bodies_root is not None else ""
    out = ["# Tuned xmodal on the suite (issue 12)" + (f": the `{space}` search space" if apart else ""), "",
           f"`{command}` — tuned cells from `xmodal bench --methods tuned:auto{'' if apart else ',peer'} "
           f"--tune-space {space} --out {tuned}` (MiniLM-L6, one 5-minute study per task on a fifth of its training "
           "data, seed 0; each cell fits at the study's best settings on the other four fifths to score validation, "
           "then refits on all training rows)" + (f"; untuned and peer cells from `{root}`" if apart else "")
           + ". Every column is the mean over the seeds the tuned cells have (their number in brackets), so that "
           "each side sees the same seeds.", "",
           "| task | half | metric | untuned orca | untuned best (by test) | tuned orca | tuned finetune | "
           "tuned auto (chosen) | peer |", "|---|---|---|---|---|---|---|---|---|"]
    counts = {h: dict.fromkeys(("vs_orca", "vs_best", "vs_peer", "orca_ge_ft", "n"), 0) for h in HALVES}
    for t in tasks:
        c = counts[half(t)]
        c["n"] += 1
        auto = summary(rows, t, "tuned:auto")
        s = {m: summary(rows, t, m, set(auto["seeds"])) for m in (*UNTUNED, *TUNED, "peer")}
        higher = auto["higher"]
        untuned = {m: s[m] for m in UNTUNED if s[m] is not None}
        best_m = (max if higher else min)(untuned, key=lambda m: untuned[m]["mean"]) if untuned else None
        chosen = [r.get("chosen") for r in auto["rows"]]
        c["vs_orca"] += bool(s["orca"] and better(auto["mean"], s["orca"]["mean"], higher))
        c["vs_best"] += bool(best_m and better(auto["mean"], untuned[best_m]["mean"], higher))
        c["vs_peer"] += bool(s["peer"] and better(auto["mean"], s["peer"]["mean"], higher))
        if s["tuned:orca"] and s["tuned:finetune"]:
            o, f = s["tuned:orca"]["mean"], s["tuned:finetune"]["mean"]
            c["orca_ge_ft"] += (o >= f) if higher else (o <= f)
        arrow = "↑" if higher else "↓"
        out.append(f"| {t} | {half(t)} | {auto['metric']} {arrow} | {fmt(s['orca'])} | "
                   f"{best_m} {fmt(untuned[best_m]) if best_m else '—'} | {fmt(s['tuned:orca'])} | "
                   f"{fmt(s['tuned:finetune'])} | {fmt(auto)} {'/'.join(str(c) for c in chosen)} | "
                   f"{fmt(s['peer'])} |")

    def count(key: str) -> str:
        total = sum(c[key] for c in counts.values())
        halves = "; ".join(f"{h} {c[key]} of {c['n']}" for h, c in counts.items() if c["n"])
        return f"**{total} of {len(tasks)}** ({halves})"

    out += ["", f"- tuned auto beats today's untuned orca (the default strategy) on {count('vs_orca')} tasks, and "
            f"today's best untuned strategy (chosen by test score) on {count('vs_best')} (issue: at least 9 of 12);",
            f"- it beats the expert peer on {count('vs_peer')} (issue: at least 4 of 12);",
            f"- after tuning, orca ≥ finetune on {count('orca_ge_ft')} (issue: at least 8 of 12).", "",
            f"The automatic settings and the default search space were chosen on the development half's validation "
            f"scores ({', '.join(DEVELOPMENT)}); the held-out half chose nothing.", "",
            "## Tuning cost (one study per task, the default budget)", "",
            "| task | study s | finished / pruned / failed | pruning saved | defaults' validation (trial 0) | "
            "best validation (trial) | best settings |", "|---|---|---|---|---|---|---|"]
    total = 0.0
    for t in tasks:
        tr = tuning_row(studies, t)
        if tr is None:
            continue
        total += tr["seconds"]
        c = tr["counts"]
        saved = "—" if tr["saved"] is None else f"{100 * tr['saved']:.0f} %"
        best = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in tr["best"].items())
        d0 = next((x for x in trial_curve(studies, t) if x["origin"] == "defaults"), None)
        d0_text = "—" if d0 is None or d0["value"] is None else f"{d0['value']:.4f}"
        out.append(f"| {t} | {tr['seconds']:.0f} | {c.get('complete', 0)} / {c.get('pruned', 0)} / "
                   f"{c.get('failed', 0)} | {saved} | {d0_text} | {tr['best_value']:.4f} ({tr['best_trial']}) | "
                   f"{best} |")
    out += ["", f"Tuning, all tasks: {total / 60:.0f} minutes on this machine."]
    out += choice_agreement(rows, tasks)
    out += pooled_choice(rows, tasks)
    out += test_noise(rows, tasks)
    if bodies_root is not None:
        out += body_choice(rows, tasks, bodies_root, bodies or list(BODIES))
    if apart:
        out += space_comparison(read_cells(root), rows, tasks, space, Tuning(space="orca").folder(root), studies)
    regions = sampled_trials_vs_defaults(studies, tasks)
    if regions:
        n_all = sum(n for n, _ in regions.values())
        ok_all = sum(ok for _, ok in regions.values())
        out += ["", "## Where the sampled trials landed", "",
                f"Of the {n_all} trials the sampler proposed in these studies (the defaults excluded), {ok_all} "
                "matched or beat the defaults (trial 0) at the epoch where they stopped, by region of the "
                "space (optimiser; learning rate against the defaults' lr):", "",
                "| optimiser | learning rate | trials | matched the defaults |", "|---|---|---|---|"]
        for (opt, band), (n, ok) in sorted(regions.items()):
            out.append(f"| {opt} | {band} | {n} | {ok} ({100 * ok / n:.0f} %) |")
    if figure is not None:
        plot_curves(studies, tasks, figure)
        out += ["", "## Tuning curves", "",
                f"![tuning curves]({Path(figure).name}) — each study's trials, their last validation score "
                "against the study's cumulative trial seconds (`--figure`); the per-study history and "
                f"importance plots and trial tables are in `{studies}/<task>/`."]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=Path, default=Path("results/full"), help="a bench output folder")
    ap.add_argument("--out", type=Path, default=None, help="also write the report here")
    ap.add_argument("--figure", type=Path, default=None, help="also draw every study's tuning curve here (PNG)")
    ap.add_argument("--tuned", type=Path, default=None,
                    help="a bench output folder holding the tuned cells and studies (default: --cells)")
    ap.add_argument("--space", default="orca", help="the search space of those studies, as given to xmodal bench "
                    "--tune-space (default: orca, the space of results/full)")
    ap.add_argument("--bodies", type=Path, default=None, help="also choose the body on validation among tuned "
                    "auto and the orca cells of this benchmarks/body_choice.py folder (e.g. results/bodies)")
    ap.add_argument("--body-candidates", default=",".join(BODIES),
                    help=f"the bodies of --bodies that may be chosen (default: {','.join(BODIES)})")
    args = ap.parse_args()
    text = report(args.cells, args.figure, args.tuned, args.space, args.bodies, args.body_candidates.split(","))
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
