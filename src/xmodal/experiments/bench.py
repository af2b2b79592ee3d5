"""``xmodal bench``: the benchmark suite — tasks × methods × seeds — with resumable cells, a results
file, a CSV and a performance profile.

Methods are xmodal strategies (``orca``, ``mona``, ``finetune``, ``scratch``, or any name from
:mod:`xmodal.strategies`) and ``peer``, the task's expert baseline (:mod:`xmodal.experiments.peers`).
Every (task, method, seed) cell is written to ``out/cells/<task>/<method>-seed<k>.json`` when it
finishes, keyed by its settings; a rerun skips cells whose key matches, so an interrupted suite
resumes where it stopped and a changed setting reruns only what it affects.

Outputs in ``out/``: ``RESULTS.md`` (per task: mean ± std of the task metric per method, best in bold,
and mean stage times), ``results.csv`` (one line per cell) and ``performance_profile.png``
(Dolan & Moré, 2002, as in the papers' Fig. 2: for each method the fraction of tasks on which its
error is within a factor τ of the best method's, errors being 1 − accuracy or the lower-is-better
metric itself).
"""

from __future__ import annotations

import json
import multiprocessing
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from xmodal.defaults import RULE
from xmodal.errors import XmodalError
from xmodal.experiments.bench_results import head_to_head, performance_profile, plot_performance_profile, write_results
from xmodal.experiments.cells import cell_key, fit_cell, load_cell, save_cell, shown_value
from xmodal.experiments.suite import (
    CHOICES,
    DEFAULT_METHODS,
    DEFAULTS,
    PEER,
    TUNED,
    VALIDATION,
    SuiteTask,
    family_defaults,
    get_task,
    settings_for_body,
    strategy_name,
)
from xmodal.runtime import environment
from xmodal.tuning.search import DEFAULT_BUDGET
from xmodal.tuning.space import DEFAULT_SPACE_NAME

__all__ = ["BenchResult", "run_bench", "performance_profile", "plot_performance_profile", "head_to_head",
           "write_results", "DEFAULT_METHODS", "Tuning", "TUNE_SEED"]


@dataclass
class BenchResult:
    """All cells of a run and where the outputs went."""

    rows: list[dict[str, Any]]
    seconds: float
    files: dict[str, str]


@dataclass(frozen=True)
class Tuning:
    """How ``tuned:`` cells are tuned: one study per task with this time ``budget`` over the named search
    ``space`` (:data:`xmodal.tuning.space.SPACES`), kept in :meth:`folder`."""

    budget: str = DEFAULT_BUDGET
    space: str = DEFAULT_SPACE_NAME

    def key(self) -> dict[str, Any]:
        """The cell key's part for tuning. ``orca`` is written ``default``: it was the only space when the
        suite's stored ``orca`` cells were keyed, and this keeps their keys."""
        return {"budget": self.budget, "space": "default" if self.space == "orca" else self.space,
                "study": f"per task, seed {TUNE_SEED}"}

    def folder(self, out_dir: Path) -> Path:
        """Where the studies live: ``out/tune/`` for ``orca`` (as stored before named spaces existed),
        ``out/tune-<space>/`` for another space."""
        return out_dir / ("tune" if self.space == "orca" else f"tune-{self.space}")


def _key(task: SuiteTask, method: str, seed: int, body: str, n_train: int, tuning: Tuning = Tuning()) -> str:
    settings = {} if method.startswith(DEFAULTS) else settings_for_body(task.settings, body)
    spec = {"task": task.name, "dataset": task.dataset_name, "settings": settings,
            "peer": task.peer,
            "method": method, "seed": seed, "body": body, "n_train": n_train}
    if task.peer_options and method == PEER:  # only when set, so that the other cells keep their keys
        spec["peer_options"] = task.peer_options
    # a plain fit's settings, and a tuning study's first trial, resolve from the rule and the family's own
    if method.startswith((DEFAULTS, TUNED)):
        if own := family_defaults(body):
            spec["family_defaults"] = own
        spec["auto_rule"] = asdict(RULE)
    if method != PEER:  # xmodal cells: validation run on VALIDATION of the training data, then refit on all
        spec["protocol"] = {"validation": VALIDATION, "refit": True}
    if method.startswith(TUNED):
        spec["tuning"] = tuning.key()
    return cell_key(spec)


#: the seed of a task's tuning study (its validation split and trials). One study per (body, task), as
#: ORCA tunes every (body, task) pair once (appendix A.3.3); every seed's cells fit at its best settings.
TUNE_SEED = 0


def _tuned_settings(task: SuiteTask, data: Any, body: str, tune_dir: Path,
                    tuning: Tuning) -> tuple[dict[str, Any], float]:
    """The tuned settings of a task: the best configuration of one study (seed :data:`TUNE_SEED`) on the
    training data only, from the automatic defaults (not the task's hand-picked settings); written once to
    ``tune_dir/<task>/`` and reused by every seed and strategy. Returns (settings, the study's seconds).

    Raises:
        XmodalError: the folder's study was started on other data or settings (its ``tune.json`` key is not
            :func:`~xmodal.tuning.study_key`'s today, e.g. the automatic settings changed): it is not reused."""
    from xmodal.config import RunConfig
    from xmodal.tuning import study_key, tune

    folder = tune_dir / task.name
    summary = folder / "tune.json"
    X, y = data.fit_inputs(data.X_train), data.y_train
    config = RunConfig(body=body, seed=TUNE_SEED, task=data.task, validation=VALIDATION, verbose=False)
    if not summary.exists():
        tune(X, y, config, budget=tuning.budget, space=tuning.space, out=folder, progress=False)
    saved = json.loads(summary.read_text())
    key = study_key(X, y, config, space=tuning.space)
    if saved.get("key") != key:
        diff = sorted(k for k in key if (saved.get("key") or {}).get(k) != key[k])
        raise XmodalError(f"{folder} holds a study started on other data or settings than this task's today "
                          f"(differs in {diff}, e.g. after a change to the automatic settings); move that "
                          "folder away to tune the task again")
    return dict(saved["best_settings"]), float(saved["seconds"])


def _run_cell(task: SuiteTask, data: Any, method: str, seed: int, body: str, tune_dir: Path | None = None,
              tuning: Tuning = Tuning()) -> dict[str, Any]:
    from xmodal.estimator import CrossModalEstimator, NotLearnedWarning
    from xmodal.estimator.protocol import PROTOCOL_VERSION
    from xmodal.evaluate.metrics import get_metric
    from xmodal.experiments.peers import get_peer
    from xmodal.tasks import get_task_kind

    metric = get_task_kind(data.task).default_metric
    row: dict[str, Any] = {"task": task.name, "method": method, "seed": seed, "metric": metric,
                           "higher_is_better": get_metric(metric).higher_is_better}
    t0 = time.perf_counter()
    if method == PEER:
        value, _ = get_peer(task.peer).run(data, seed, **task.peer_options)
        row.update(value=value, peer=task.peer, align_s=0.0, finetune_s=0.0)
    else:
        settings: dict[str, Any] = {} if method.startswith(DEFAULTS) else settings_for_body(task.settings, body)
        name = strategy_name(method)
        if method.startswith(TUNED):
            tuned, tune_s = _tuned_settings(task, data, body, tune_dir or tuning.folder(Path("bench")), tuning)
            settings = tuned
            row["tune_s"] = tune_s
        est = CrossModalEstimator(strategy=name, body=body, seed=seed, verbose=False, task=data.task,
                                  validation=VALIDATION, refit=True, **settings)
        with warnings.catch_warnings(record=True) as caught:  # recorded in the row, not printed per cell
            warnings.simplefilter("always", NotLearnedWarning)
            if not fit_cell(lambda: est.fit(data.fit_inputs(data.X_train), data.y_train), row, t0):
                return row  # a failed cell, recorded as such; the suite goes on
        refit = est.report_.validation.get("refit", {})
        row.update(value=float(est.score(data.fit_inputs(data.X_test), data.y_test, metric=metric)),
                   validation=est.validation_score_, protocol=PROTOCOL_VERSION,
                   not_learned=any(issubclass(w.category, NotLearnedWarning) for w in caught),
                   # the refit was set aside (collapsed or degraded) and the validation run's model scored
                   refit_collapsed=refit.get("kept", "final") != "final",
                   # the refit's score on the validation rows it trained on (guard_refit's check), when checked
                   refit_on_validation_rows=refit.get("score_on_validation_rows"),
                   align_s=float(est.report_.seconds.get("align", 0.0)),
                   finetune_s=float(est.report_.seconds.get("finetune", 0.0)))
    row["total_s"] = time.perf_counter() - t0
    return row


# over 60 lines only through its docstring (every argument documented); the code is 44 lines
def run_bench(
    tasks: list[str],
    methods: list[str] | tuple[str, ...] = DEFAULT_METHODS,
    seeds: list[int] | tuple[int, ...] = (0, 1, 2),
    out: str | Path = "bench",
    body: str = "minilm-l6",
    progress: bool = True,
    report_only: bool = False,
    jobs: int = 1,
    tune_budget: str = DEFAULT_BUDGET,
    tune_space: str = DEFAULT_SPACE_NAME,
) -> BenchResult:
    """Run (or resume) the suite and write ``RESULTS.md``, ``results.csv`` and ``performance_profile.png``.

    Args:
        tasks: suite task names (:data:`xmodal.experiments.suite.SUITE`).
        methods: strategy names and/or ``"peer"``.
        seeds: seeds per cell.
        out: output folder.
        body: the body of every xmodal strategy.
        progress: one line per cell.
        report_only: run nothing; write the outputs from the cells already finished in ``out``
            (e.g. while a long run is still going, or after it was stopped).
        tune_budget: the tuning budget of each task for ``tuned:<strategy>`` methods: one study per task
            (seed :data:`TUNE_SEED`), kept with its best configuration in ``<study folder>/<task>/`` (see
            ``tune_space``) and shared by
            every seed's cells (each cell's ``tune_s`` is that one study's time).
        tune_space: the named search space of those studies (:data:`xmodal.tuning.space.SPACES`; default
            :data:`~xmodal.tuning.space.DEFAULT_SPACE_NAME`); ``orca`` keeps its studies in ``out/tune/``,
            another space in ``out/tune-<space>/``.
        jobs: cells run at once, each in its own process with ``1/jobs`` of torch's CPU threads.
            Each cell still writes its own times, measured while sharing the machine. Pays on many
            cores, little on 2 (compare the wall times of ``xmodal bench --tasks diabetes --methods
            finetune --seeds 0,1,2,3`` with ``--jobs 1`` and ``--jobs 2``).

    Raises:
        XmodalError: unknown task or method, or a task whose data are not available here.
    """
    from xmodal.strategies import get_strategy

    suite = [get_task(t) for t in tasks]
    methods = list(dict.fromkeys(methods))
    shown = list(dict.fromkeys(c for m in methods for c in (*CHOICES.get(m, ()), m)))  # candidates first
    run = [m for m in shown if m not in CHOICES]
    for m in run:
        if m != PEER:
            get_strategy(strategy_name(m))
    from xmodal.tuning import SPACES, parse_duration

    parse_duration(tune_budget)
    SPACES[tune_space]  # an unknown space: UnknownName listing the named spaces
    tuning = Tuning(tune_budget, tune_space)
    if not suite or not methods or not seeds:
        raise XmodalError("bench needs at least one task, one method and one seed")
    if int(jobs) < 1:
        raise XmodalError(f"jobs must be ≥ 1, got {jobs}")
    out_dir = Path(out)
    t_start = time.perf_counter()
    order, done, pending = _plan(suite, run, seeds, body, out_dir, tuning, report_only)
    n_cells = len(order)

    def finished(row: dict[str, Any]) -> None:
        done[(row["task"], row["method"], row["seed"])] = row
        if progress:
            print(f"[{len(done)}/{n_cells}] {row['task']} {row['method']} seed {row['seed']}: {row['metric']} "
                  f"{shown_value(row)} ({row['total_s']:.0f} s)", flush=True)

    _compute(pending, finished, int(jobs), body=body, tune_dir=tuning.folder(out_dir), tuning=tuning)
    rows = [done[c] for c in order if c in done]
    rows += validation_choices(rows, [m for m in shown if m in CHOICES])
    seconds = time.perf_counter() - t_start
    files = write_results(rows, out_dir, [t.name for t in suite], shown, None if report_only else seconds)
    return BenchResult(rows, seconds, files)


_Cell = tuple[SuiteTask, str, int, str, str]  # (task, method, seed, key, path)


def _plan(suite: list[SuiteTask], methods: list[str], seeds: Any, body: str, out_dir: Path, tuning: Tuning,
          report_only: bool) -> tuple[list[tuple[str, str, int]], dict[tuple[str, str, int], dict], list[_Cell]]:
    """Every (task, method, seed) in order, the cells already finished (read back by key), and those to run."""
    done: dict[tuple[str, str, int], dict[str, Any]] = {}
    pending: list[_Cell] = []
    order: list[tuple[str, str, int]] = []
    for task in suite:
        n_train = len(_dataset(task.dataset_name).X_train)
        cell_dir = out_dir / "cells" / task.name
        cell_dir.mkdir(parents=True, exist_ok=True)
        for method in methods:
            for seed in seeds:
                order.append((task.name, method, seed))
                key = _key(task, method, seed, body, n_train, tuning)
                path = cell_dir / f"{method}-seed{seed}.json"
                row = load_cell(path, key)
                if row is not None:
                    done[(task.name, method, seed)] = row
                elif not report_only:
                    pending.append((task, method, seed, key, str(path)))
    return order, done, pending


def _compute(pending: list[_Cell], finished: Any, jobs: int, **kwargs: Any) -> None:
    """Run the pending cells one after another, or ``jobs`` at once in worker processes."""
    if jobs == 1 or len(pending) <= 1:
        for cell in pending:
            finished(_compute_cell(*cell, **kwargs))
        return
    threads = max(1, torch.get_num_threads() // jobs)
    ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(_compute_cell, *cell, **kwargs) for cell in pending]
        for fut in as_completed(futures):
            finished(fut.result())


def _init_worker(threads: int) -> None:
    """A ``--jobs`` worker: its share of the CPU threads, so that the workers do not oversubscribe the cores."""
    torch.set_num_threads(threads)


_DATA_CACHE: dict[str, Any] = {}


def _dataset(name: str) -> Any:
    """A built-in dataset, loaded once per process (the suite's are a few MB each)."""
    from xmodal.data.builtin import load_dataset

    if name not in _DATA_CACHE:
        _DATA_CACHE[name] = load_dataset(name)
    return _DATA_CACHE[name]


def _compute_cell(task: SuiteTask, method: str, seed: int, key: str, path: str, body: str,
                  tune_dir: Path | None = None, tuning: Tuning = Tuning()) -> dict[str, Any]:
    """Run one cell and write it atomically to ``path`` (the unit of work of a sequential or parallel run)."""
    row = _run_cell(task, _dataset(task.dataset_name), method, seed, body, tune_dir, tuning)
    row["env"] = environment()  # which cells were measured alike (the same settings differ across machines)
    row["threads"] = row["env"]["threads"]
    save_cell(Path(path), key, row)
    return row


def validation_choices(rows: list[dict[str, Any]], derived: list[str]) -> list[dict[str, Any]]:
    """Rows of the derived methods (:data:`CHOICES`): per (task, seed), the candidate cell with the better
    validation score (ties: the first candidate), its test value reported; its cost is all candidates' cost."""
    out = []
    cells = {(r["task"], r["method"], r["seed"]): r for r in rows}
    for name in derived:
        cands = CHOICES[name]
        for task, seed in dict.fromkeys((r["task"], r["seed"]) for r in rows):
            got = [cells.get((task, c, seed)) for c in cands]
            if any(r is None or (r.get("validation") is None and not r.get("diverged")) for r in got):
                continue
            got = [r for r in got if not r.get("diverged")]  # a diverged candidate is never chosen
            if not got:
                out.append({**cells[(task, cands[0], seed)], "method": name, "chosen": None})
                continue
            higher = bool(got[0]["higher_is_better"])
            best = got[0]
            for r in got[1:]:
                if (r["validation"] > best["validation"]) if higher else (r["validation"] < best["validation"]):
                    best = r
            out.append({**best, "method": name, "chosen": best["method"],
                        **{k: sum(float(r.get(k, 0.0)) for r in got) for k in ("align_s", "finetune_s", "total_s")}})
    return out
