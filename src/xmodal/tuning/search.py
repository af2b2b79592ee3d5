"""``xmodal.tune``: ASHA hyper-parameter search on the validation split, as ORCA tunes every task before stage 2.

The loop, in one sitting:

1. Check the data and the settings once (nothing loads before that), split off the validation rows
   (:func:`xmodal.data.split.validation_split`, the same rows for every trial) and resolve the
   automatic settings for the rows a trial trains on.
2. Open or create the Optuna study (:mod:`xmodal.tuning.storage`: a journal file in ``out`` by
   default, PostgreSQL for many machines). The worker that creates it first enqueues the point
   nearest the automatic defaults, so tuning starts from the untuned score.
3. Each trial samples settings from the :class:`~xmodal.tuning.space.SearchSpace`, fine-tunes with
   ``tune_strategy`` (``finetune``: stage 3 only, the cheap proxy ORCA tunes with) on the training
   rows, and reports the validation metric after every epoch. Epochs are ASHA's resource: Optuna's
   :class:`~optuna.pruners.SuccessiveHalvingPruner` stops a trial that is not in the top
   ``1/reduction_factor`` of the trials that reached the same rung.
4. It stops at the time ``budget`` (a trial running at the deadline is stopped and marked pruned
   with ``stopped = budget``) or when the study holds ``n_trials`` trials, then writes the report
   (:mod:`xmodal.tuning.report`) and ``best_config.yaml``: the user's settings with the best trial's
   values, in :class:`~xmodal.config.RunConfig`'s file format.

``xmodal fit DATA --config best_config.yaml --strategy finetune --no-refit`` repeats the best trial
exactly (same rows, same seed, so bit-for-bit on CPU); without those two options it fits the user's
strategy on all the training data with the tuned settings.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.config import RunConfig
from xmodal.data.split import validation_split
from xmodal.data.validation import check_Xy
from xmodal.defaults import AUTOMATIC, resolve_settings
from xmodal.errors import XmodalError
from xmodal.estimator import CrossModalEstimator, NotLearnedWarning, encode_class_labels
from xmodal.estimator.body_selection import AUTO_BODY
from xmodal.evaluate.metrics import Metric, get_metric
from xmodal.model.bodies import FAMILIES, resolve_body
from xmodal.registry import Registry
from xmodal.tasks import LABELS_KIND, get_task_kind
from xmodal.tuning.space import DEFAULT_BUDGET, SearchSpace, resolve_space
from xmodal.tuning.storage import fail_orphaned_trials, open_storage, worker_id

__all__ = ["tune", "study_key", "TuneResult", "parse_duration", "PRUNERS", "DEFAULT_BUDGET"]


def _asha(min_resource: int, max_resource: int, eta: int) -> Any:
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource, reduction_factor=eta)


def _hyperband(min_resource: int, max_resource: int, eta: int) -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=max_resource, reduction_factor=eta)


def _no_pruning(min_resource: int, max_resource: int, eta: int) -> Any:
    import optuna

    return optuna.pruners.NopPruner()


#: pruner name → factory ``(min_resource, max_resource, reduction_factor)``; epochs are the resource
PRUNERS: Registry[Callable[[int, int, int], Any]] = Registry("pruner", sort=False)
PRUNERS.add("asha", _asha)
PRUNERS.add("hyperband", _hyperband)
PRUNERS.add("none", _no_pruning)


def parse_duration(text: str | float | int | None) -> float | None:
    """``"20m"``, ``"1h30m"``, ``"90s"``, ``"300"`` (seconds) or a number of seconds → seconds; ``None`` → ``None``.

    Raises:
        XmodalError: not a positive duration.
    """
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", s)
        if not s or parts is None:
            raise XmodalError(f"budget {text!r} is not a duration; write e.g. 20m, 1h30m, 90s or 300 (seconds)")
        h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
        seconds = 3600 * h + 60 * m + sec
    if not math.isfinite(seconds) or seconds <= 0:
        raise XmodalError(f"budget must be a positive duration, got {text!r}")
    return seconds


@dataclass
class TuneResult:
    """What :func:`tune` found: the best settings, its validation score and the study's account.

    Attributes:
        best_config: the base settings with the best trial's values (what ``best_config.yaml`` holds).
        best_value: the best trial's validation ``metric``.
        metric: the validation metric's name; ``higher_is_better`` its direction.
        counts: trials by state (``complete``, ``pruned``, ``failed``, ``running``) in the whole study.
        seconds: wall time of this call.
        pruning: ASHA's savings: ``spent_s`` (all trials' time), ``saved_s`` (the epochs the pruned
            trials would still have run, at their own seconds per epoch) and ``saved_share``
            ``= saved / (spent + saved)``.
        files: written files by role (``best_config``, ``trials_csv``, ``trials_md``, ``history``,
            ``importance``, ``summary``).
        study: the Optuna study (e.g. ``study.trials_dataframe()``).
    """

    best_config: RunConfig
    best_value: float
    metric: str
    higher_is_better: bool
    counts: dict[str, int]
    seconds: float
    pruning: dict[str, float]
    files: dict[str, str] = field(default_factory=dict)
    study: Any = None


def _data_fingerprint(X: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.sha1()
    for a in (X, y):
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


# over 60 lines only through its docstring (every argument documented); the code is 42 lines
def tune(
    X: Any,
    y: Any,
    config: RunConfig | Mapping[str, Any] | None = None,
    *,
    space: SearchSpace | Mapping[str, Any] | str | Path | None = None,
    budget: str | float | None = DEFAULT_BUDGET,
    n_trials: int | None = None,
    out: str | Path = "runs/tune",
    storage: str | Path | None = None,
    study_name: str | None = None,
    tune_strategy: str = "finetune",
    pruner: str = "asha",
    reduction_factor: int = 3,
    validation_data: tuple[Any, Any] | None = None,
    progress: bool = True,
) -> TuneResult:
    """Tune the settings of a run on ``(X, y)``'s validation split with ASHA; write the report to ``out``.

    Args:
        X, y: training inputs and targets, in the layouts of :class:`~xmodal.CrossModalEstimator`.
            The test split must not be passed: every choice here is made on validation rows.
        config: the base settings (a :class:`~xmodal.config.RunConfig` or a mapping of settings);
            the space's settings are overridden per trial, the rest (body, seed, ``validation`` …)
            hold for every trial. ``validation`` must be > 0 unless ``validation_data`` is given.
        space: the search space: a :class:`~xmodal.tuning.space.SearchSpace`, its file form as a mapping,
            a name in :data:`~xmodal.tuning.space.SPACES` (``"local"``, the default, or ``"orca"``) or a
            ``.yaml``/``.json`` space file.
        budget: stop after this wall time (``"20m"``, seconds, or ``None``); the trial running at the
            deadline is stopped there.
        n_trials: stop when the study holds this many trials (all workers together); ``None``: no limit.
            At least one of ``budget`` and ``n_trials`` must be given.
        out: folder of the report, the best configuration and (by default) the study's journal file.
        storage: ``None`` (journal file ``out/study.journal``), a journal file path, or a database URL
            (``postgresql://user@host/db``) that several workers share (see :mod:`xmodal.tuning.storage`).
        study_name: the study's name in ``storage`` (default ``"xmodal"``); workers of one study use the same.
        tune_strategy: the strategy a trial runs (default ``finetune``: stage 3 only).
        pruner: ``asha`` (default), ``hyperband`` or ``none`` (:data:`PRUNERS`).
        reduction_factor: ASHA's ``η``: the top ``1/η`` of the trials at a rung continue.
        validation_data: ``(X_val, y_val)`` to score trials on instead of holding out ``validation``.
        progress: show a progress bar (trials done / pruned / running, best so far).

    Returns:
        :class:`TuneResult`.

    Raises:
        XmodalError: bad data, settings, space or storage (before any trial runs); a study in
            ``storage`` that was started on other data or settings; no trial that finished.
    """
    problem = _Problem.prepare(X, y, config, space, budget, n_trials, pruner, reduction_factor, tune_strategy,
                               validation_data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store, where = open_storage(storage, out)
    name = study_name or "xmodal"
    study = _open_study(problem, store, where, name, pruner, reduction_factor)
    t_start = time.monotonic()
    _run_trials(problem, study, n_trials, progress, None if problem.seconds_budget is None
                else t_start + problem.seconds_budget)

    from xmodal.tuning.report import count_states, pruning_savings, write_report

    counts = count_states(study)
    if counts["complete"] == 0:
        raise XmodalError(f"no trial finished in {study_name or 'the study'} ({counts}); give a larger budget or "
                          "more trials (the first trial runs the automatic defaults to the end)")
    best = study.best_trial
    metric = problem.metric
    result = TuneResult(best_config=problem.base.replace(**best.user_attrs["settings"]), best_value=float(best.value),
                        metric=metric.name, higher_is_better=metric.higher_is_better, counts=counts,
                        seconds=time.monotonic() - t_start, pruning=pruning_savings(study), study=study)
    result.files = write_report(result, out, tune_strategy=tune_strategy, storage=where, study_name=name,
                                best_number=best.number, key=problem.key())
    return result


def study_key(
    X: Any,
    y: Any,
    config: RunConfig | Mapping[str, Any] | None = None,
    *,
    space: SearchSpace | Mapping[str, Any] | str | Path | None = None,
    tune_strategy: str = "finetune",
    validation_data: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """What a study that :func:`tune` starts with these arguments is keyed by (``tune.json``'s ``key``):
    the data's fingerprint, the base settings, the space, the metric, ``tune_strategy`` and the automatic
    settings the first trial runs. A study folder whose ``key`` differs was tuned on other data or under
    other automatic settings. Checks the arguments as :func:`tune` does; loads no weights, runs nothing."""
    return _Problem.prepare(X, y, config, space, None, 1, "asha", 3, tune_strategy, validation_data).key()


@dataclass
class _Problem:
    """What every trial of one :func:`tune` call shares, checked at the boundary before any weights load:
    the base settings, the validated data, the metric, the automatic settings of the fitting rows, and
    the epochs that are ASHA's resource."""

    base: RunConfig
    trial_base: RunConfig
    space: SearchSpace
    Xc: np.ndarray
    yc: np.ndarray
    metric: Metric
    n_fit: int
    auto: RunConfig
    max_epochs: int
    min_resource: int
    seconds_budget: float | None
    validation_data: tuple[Any, Any] | None
    tune_strategy: str
    family: Any = None  # the body's family class, whose automatic tokens / lr the trials scale

    @classmethod
    def prepare(cls, X: Any, y: Any, config: RunConfig | Mapping[str, Any] | None,
                space: SearchSpace | Mapping[str, Any] | str | Path | None, budget: str | float | None,
                n_trials: int | None,
                pruner: str, reduction_factor: int, tune_strategy: str,
                validation_data: tuple[Any, Any] | None) -> _Problem:
        base = (config if isinstance(config, RunConfig) else RunConfig.from_dict(dict(config or {}))).validate()
        space = resolve_space(space)
        seconds_budget = parse_duration(budget)
        if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1):
            raise XmodalError(f"n_trials must be a positive integer or None, got {n_trials!r}")
        if seconds_budget is None and n_trials is None:
            raise XmodalError("give a time budget (e.g. budget='20m') or a number of trials (n_trials=20), or both")
        PRUNERS[pruner]  # an unknown pruner: UnknownName listing the pruners
        if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, int) or reduction_factor < 2:
            raise XmodalError(f"reduction_factor must be an integer ≥ 2, got {reduction_factor!r}")
        trial_base = base.replace(strategy=tune_strategy, align=None, mode="full", refit=False, verbose=False)
        CrossModalEstimator._strategies(trial_base)  # unknown tune_strategy → XmodalError
        if validation_data is None and base.validation <= 0:
            raise XmodalError("tuning chooses on validation data: set validation > 0 (e.g. 0.2) or pass "
                              "validation_data")
        y_enc, classes = encode_class_labels(y, base.task)
        Xc, yc, task, _ = check_Xy(X, y_enc, base.task if classes is None else LABELS_KIND, base.spatial_dims)
        kind = get_task_kind(task)
        n_fit = (len(Xc) if validation_data is not None
                 else len(validation_split(yc, base.validation, base.seed, stratify=kind.class_labels)[0]))
        family = None if base.body == AUTO_BODY else FAMILIES[resolve_body(base.body).family]
        auto, _ = resolve_settings(base, n_fit, tuple(Xc.shape[2:]), body=family)
        max_epochs = max(1, int(math.ceil(auto.epochs * _max_scale(space, "epochs"))))
        return cls(base, trial_base, space, Xc, yc, get_metric(kind.default_metric), n_fit, auto, max_epochs,
                   max(1, max_epochs // reduction_factor**2), seconds_budget, validation_data, tune_strategy, family)

    def key(self) -> dict[str, Any]:
        """What a study must have been started on to be joined: the data, settings, space and metric, and
        the automatic settings its first trial runs and the space scales from (they change with
        :data:`xmodal.defaults.RULE` and the body family's own defaults)."""
        return _jsonable({"data": _data_fingerprint(self.Xc, self.yc), "base": self.trial_base.run_key(),
                          "space": self.space.to_spec(), "metric": self.metric.name,
                          "tune_strategy": self.tune_strategy,
                          "automatic": {k: getattr(self.auto, k) for k in AUTOMATIC}})


def _open_study(problem: _Problem, store: Any, where: str, name: str, pruner: str, reduction_factor: int) -> Any:
    """Create the study (seeded with the automatic defaults as its first trial) or join it, refusing one
    started on other data or settings; each joining worker samples with its own seed."""
    import optuna

    key = problem.key()
    direction = "maximize" if problem.metric.higher_is_better else "minimize"
    try:
        study = optuna.create_study(storage=store, study_name=name, direction=direction)
        created = True
        for k, v in key.items():
            study.set_user_attr(k, v)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=store)
        created = False
        saved = {k: study.user_attrs.get(k) for k in key}
        if saved != key:
            diff = sorted(k for k in key if saved.get(k) != key[k])
            raise XmodalError(f"study {name!r} in {where} was started on other data or settings (differs in {diff}); "
                              "use another --study name or --out folder") from None
    seed = problem.base.seed if created else (problem.base.seed + zlib.crc32(worker_id().encode())) % 2**32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # multivariate/constant_liar
        study.sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    study.pruner = PRUNERS[pruner](problem.min_resource, problem.max_epochs, reduction_factor)
    if created:
        start = problem.space.defaults(problem.auto)
        if start is not None:
            study.enqueue_trial(start, user_attrs={"origin": "defaults"})
    return study


def _objective(problem: _Problem, deadline: float | None) -> Callable[[Any], float]:
    """One trial: sample settings, fit with validation scored per epoch (the rung reports), prune."""
    import optuna

    me, val_key, metric = worker_id(), f"val_{problem.metric.name}", problem.metric

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker", me)
        settings = problem.space.sample(trial, problem.auto)
        cfg = problem.trial_base.replace(**settings)
        resolved, _ = resolve_settings(cfg, problem.n_fit, tuple(problem.Xc.shape[2:]), body=problem.family)
        trial.set_user_attr("settings", _jsonable(settings))
        trial.set_user_attr("epochs_planned", int(resolved.epochs))
        epoch_seconds: list[float] = []

        def on_epoch(record: dict) -> None:
            epoch_seconds.append(float(record["seconds"]))
            trial.set_user_attr("epochs_run", int(record["epoch"]))
            trial.set_user_attr("epoch_seconds", float(np.mean(epoch_seconds)))
            value = float(record[val_key])
            if not (math.isfinite(value) and math.isfinite(float(record["loss"]))):
                raise XmodalError(f"training loss {record['loss']}, validation {metric.name} {value} at epoch "
                                  f"{record['epoch']}: the run diverged")
            trial.report(value, int(record["epoch"]))
            if deadline is not None and time.monotonic() > deadline and record["epoch"] < resolved.epochs:
                trial.set_user_attr("stopped", "budget")
                raise optuna.TrialPruned("the time budget ran out")
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {record['epoch']}")

        # the lr set (the trial's, or the automatic one): a trial is scored as it runs, never retried lower
        est = CrossModalEstimator(**cfg.replace(lr=resolved.lr).to_dict())
        with warnings.catch_warnings():  # a trial that does not learn is scored, not announced
            warnings.simplefilter("ignore", NotLearnedWarning)
            est.fit(problem.Xc, problem.yc, validation_data=problem.validation_data, on_epoch=on_epoch)
        return float(est.validation_score_)

    return objective


def _run_trials(problem: _Problem, study: Any, n_trials: int | None, progress: bool, deadline: float | None) -> None:
    """Run trials until ``n_trials`` (the whole study's) or the deadline; failed trials (XmodalError) are
    recorded as such, trials orphaned by a killed worker are marked failed."""
    import optuna

    bar = _Progress(study, n_trials, problem.metric.name, progress)

    def after_trial(study: Any, trial: Any) -> None:
        fail_orphaned_trials(study)
        bar.update()
        if n_trials is not None and len(study.get_trials(deepcopy=False)) >= n_trials:
            study.stop()

    fail_orphaned_trials(study)
    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
    if not (n_trials is not None and len(study.get_trials(deepcopy=False)) >= n_trials) and remaining != 0.0:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study.optimize(_objective(problem, deadline), timeout=remaining, callbacks=[after_trial],
                       catch=(XmodalError,), gc_after_trial=True)
    fail_orphaned_trials(study)
    bar.close()


def _max_scale(space: SearchSpace, name: str) -> float:
    from xmodal.tuning.space import Scale

    d = space.entries.get(name)
    return max(d.factors) if isinstance(d, Scale) else 1.0


def _jsonable(v: Any) -> Any:
    import json

    return json.loads(json.dumps(v))


class _Progress:
    """A tqdm bar over trials: done / pruned / failed / running (all workers) and the best value so far."""

    def __init__(self, study: Any, total: int | None, metric: str, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.study, self.metric = study, metric
        self.bar = tqdm(total=total, desc="tune", unit="trial", disable=not enabled, initial=0)
        self.update(advance=False)

    def update(self, advance: bool = True) -> None:
        from xmodal.tuning.report import count_states

        c = count_states(self.study)
        if advance:
            self.bar.update(1)
        best = self.study.best_value if c["complete"] else float("nan")
        self.bar.set_postfix(done=c["complete"], pruned=c["pruned"], failed=c["failed"], running=c["running"],
                             best=f"{self.metric} {best:.4f}")

    def close(self) -> None:
        self.bar.close()
