"""The validation protocol of ``fit``: score each candidate strategy on held-out rows, retry at a lower
learning rate when an automatic one learned nothing, keep the best, refit it on all training rows and check
that the refit learned.

The training runs themselves are :class:`~xmodal.estimator.runs.Job`'s; this module decides which runs
to make and which model to keep.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from xmodal.estimator.runs import PREDICT_BATCH, Job, TrainingRun, beats_constant
from xmodal.evaluate import evaluate as evaluate_outputs
from xmodal.evaluate.bootstrap import PROPORTION_METRICS, bootstrap_se, proportion_se
from xmodal.evaluate.metrics import Metric, get_metric
from xmodal.runtime import resolve_device
from xmodal.strategies import Strategy
from xmodal.tasks import get_task_kind
from xmodal.train import predict_raw

__all__ = ["validation_protocol", "retry_lower_lr", "RefitCollapsedWarning", "LR_RETRY_FACTOR", "choice_margin",
           "PROTOCOL_VERSION"]

#: the version of this protocol, recorded with every ``xmodal bench`` cell so that a report can tell which
#: cells an older protocol produced (a cell's key holds its settings, not this, so a rerun reuses old cells):
#: 1 — validation run, then refit on all rows; 2 — a refit no better than the constant is set aside;
#: 3 — an automatic lr that learned nothing is retried a decade lower, and a degraded refit is set aside too
PROTOCOL_VERSION = 3

#: an automatic stage-3 lr whose validation runs learned nothing is retried once at this multiple of it: one
#: decade, the step of the papers' lr grid (ORCA appendix A.3.3: 1e-2 … 1e-6)
LR_RETRY_FACTOR = 0.1


def final_label(strategy: Strategy, n_candidates: int) -> str:
    """With a given validation set the runs train on all the data: one is the final run, or one per candidate."""
    return "final" if n_candidates == 1 else f"candidate-{strategy.name}"


def pick(runs: list[TrainingRun], higher_is_better: bool) -> TrainingRun:
    """The run with the best validation score; ties go to the earlier candidate (the order given)."""
    best = runs[0]
    for r in runs[1:]:
        if (r.score > best.score) if higher_is_better else (r.score < best.score):
            best = r
    return best


def validation_protocol(job: Job, strategies: list[Strategy], Xc: np.ndarray, yc: np.ndarray,
                        val_rows: tuple[np.ndarray, np.ndarray] | None,
                        explicit_val: tuple[np.ndarray, np.ndarray] | None,
                        refit: bool) -> tuple[list[TrainingRun], TrainingRun | None, TrainingRun]:
    """The validation protocol: the runs scored on validation data (retried once at a lower lr by
    :func:`retry_lower_lr` when an automatic lr learned nothing), the best of them, and the run ``fit``
    keeps (the best itself, or a refit of its strategy on all of ``(Xc, yc)``, checked by :func:`guard_refit`)."""

    def scored(suffix: str = "") -> list[TrainingRun]:
        if explicit_val is not None:  # every run trains on all of (X, y) and is scored on the given set
            return [job.run(final_label(s, len(strategies)) + suffix, s, Xc, yc, *explicit_val) for s in strategies]
        tr, va = val_rows
        return [job.run(f"validation-{s.name}{suffix}", s, Xc[tr], yc[tr], Xc[va], yc[va]) for s in strategies]

    metric = get_metric(get_task_kind(job.task).default_metric)
    runs = retry_lower_lr(job, scored(), scored, metric) if explicit_val is not None or val_rows is not None else []
    best = pick(runs, metric.higher_is_better) if runs else None
    if best is not None and (explicit_val is not None or not refit):
        return runs, best, best
    final = job.run("final", best.strategy if best is not None else strategies[0], Xc, yc, None, None)
    if best is None or val_rows is None:
        return runs, best, final
    return runs, best, guard_refit(job, best, final, Xc[val_rows[1]], yc[val_rows[1]], metric)


def retry_lower_lr(job: Job, runs: list[TrainingRun], rescore: Callable[[str], list[TrainingRun]],
                   metric: Metric) -> list[TrainingRun]:
    """The scored runs to choose from: ``runs``, or their retry at ``LR_RETRY_FACTOR`` × the lr.

    When the lr was automatic (``job.lr_automatic``: the user set none) and no run beat the constant
    prediction on its validation rows (:func:`~xmodal.estimator.runs.beats_constant`), the automatic lr
    is the first suspect: a large body collapses to one class at a small body's rate (MPNet-base on
    gunpoint at 2e-4, every seed: ``python benchmarks/lr_retry.py``). Every candidate is then trained again at
    ``lr × LR_RETRY_FACTOR`` (``rescore(suffix)``: the same runs, labelled and checkpointed with ``suffix``).
    If the best of those learned, they replace ``runs`` and ``job.settings`` keeps the lower lr for the
    refit; otherwise the first runs and lr stay. Either way ``job.lr_retry`` records both lrs, the scores at
    each and which was kept, and ``job.set_aside`` holds the runs not kept (their time is reported). A user's
    own lr is never changed. One retry only: it costs one more validation run per candidate, and only when
    the first learned nothing.
    """
    best = pick(runs, metric.higher_is_better)
    if (not job.lr_automatic or best.score is None or best.baseline is None
            or beats_constant(best.score, best.baseline, metric)):
        return runs
    first = job.settings.lr
    lower = first * LR_RETRY_FACTOR
    job.settings = job.settings.replace(lr=lower)
    if job.settings.verbose:
        tqdm.write(f"the automatic lr {first:g} learned nothing on the validation rows ({metric.name} "
                   f"{best.score:.4g}, constant prediction {best.baseline:.4g}); retrying at lr {lower:g}")
    retried = rescore(f"-lr{lower:g}")
    again = pick(retried, metric.higher_is_better)
    learned = again.score is not None and beats_constant(again.score, again.baseline, metric)
    job.lr_retry = {"automatic_lr": first, "retried_lr": lower, "learned": learned,
                    "kept_lr": lower if learned else first, "constant": best.baseline,
                    "scores": {str(first): {r.strategy.name: r.score for r in runs},
                               str(lower): {r.strategy.name: r.score for r in retried}}}
    if learned:
        job.set_aside = runs
        return retried
    job.settings = job.settings.replace(lr=first)
    job.set_aside = retried
    return runs


class RefitCollapsedWarning(UserWarning):
    """The refit on all training rows learned nothing, or far less than the validation run, on rows it trained
    on: the validation run's model is kept instead."""


#: a refit whose score on the validation rows (which it trained on) is worse than the held-out run's score on
#: them by more than this many of its bootstrap standard errors is taken as degraded
REFIT_TOLERANCE_SE = 2.0


def guard_refit(job: Job, best: TrainingRun, final: TrainingRun, X_val: np.ndarray, y_val: np.ndarray,
                metric: Metric) -> TrainingRun:
    """The run to keep after refitting ``best``'s strategy on all training rows: ``final``, unless it collapsed
    or degraded.

    The refit trained on the validation rows ``(X_val, y_val)``, so its score ``s_r`` there is a training score
    and should be at least the held-out score ``s_b`` of ``best``, which never saw them. Two failures are
    caught, both only when ``best`` beat the constant prediction (``best.baseline``: the majority class, or the
    training mean):

    * collapsed: ``s_r`` is no better than that constant (seen with a large body at a small body's learning
      rate: a validation run at 0.90 accuracy, its refit at the majority share);
    * degraded: ``s_r`` is worse than ``s_b`` by more than :data:`REFIT_TOLERANCE_SE` × the bootstrap standard
      error of ``s_r`` on those rows (:func:`~xmodal.evaluate.bootstrap.bootstrap_se`) — MPNet-base on
      fashion-mnist-10k, seed 2: validation run 0.789, its refit 0.19 on test, above the 0.1 share.

    Then ``best`` (trained on the other rows) is kept and a :class:`RefitCollapsedWarning` says so. The kept
    run's ``refit_check`` records ``s_r``, its standard error, the constant, both verdicts and which run was
    kept (``fit``'s ``report_.validation["refit"]``).
    """
    if best.score is None or best.baseline is None or best.model is None:
        return final
    if not beats_constant(best.score, best.baseline, metric):  # nothing better to keep (and fit warns)
        return final
    device, kind = resolve_device(job.settings.device), get_task_kind(job.task)
    out = final.model.decode(predict_raw(final.model, torch.from_numpy(X_val), PREDICT_BATCH, device,
                                         job.settings.precision))
    y_t = torch.from_numpy(y_val)
    seen = float(evaluate_outputs(kind, out, y_t, [metric.name])[metric.name])
    se = bootstrap_se(kind, out, y_t, metric.name, seed=job.settings.seed)
    collapsed = not beats_constant(seen, best.baseline, metric)
    shortfall = (best.score - seen) if metric.higher_is_better else (seen - best.score)
    degraded = not collapsed and math.isfinite(se) and shortfall > REFIT_TOLERANCE_SE * se
    check = {"score_on_validation_rows": seen, "standard_error": se, "constant": best.baseline,
             "collapsed": collapsed, "degraded": degraded,
             "kept": best.label if collapsed or degraded else final.label,
             "refit_seconds": sum(final.seconds.values())}
    if not (collapsed or degraded):
        final.refit_check = check
        return final
    what = (f"no better than the constant prediction ({best.baseline:.4g})" if collapsed else
            f"{shortfall:.4g} worse, over {REFIT_TOLERANCE_SE:g} standard errors ({se:.2g})")
    warnings.warn(f"the refit on all training rows has {'not learned' if collapsed else 'degraded'}: its "
                  f"{metric.name} on the validation rows, which it trained on, is {seen:.4g}, {what}, while the run "
                  f"that held them out scored {best.score:.4g}. Keeping that run's model ({best.label}, trained "
                  f"on {best.n_train} rows). A lower lr or another body (body='auto') may let the refit learn; "
                  "refit=False always keeps the validation run.", RefitCollapsedWarning, stacklevel=4)
    best.refit_check = check
    return best


def choice_margin(runs: list[TrainingRun], best: TrainingRun, metric: Metric) -> dict[str, Any] | None:
    """How clearly the validation rows separated the chosen strategy from the runner-up.

    Returns ``runner_up`` (its strategy), ``margin`` (the chosen score minus the runner-up's, in the metric's
    better direction: ≥ 0, 0 on a tie, which keeps the earlier candidate), and for accuracy
    ``standard_error``, the binomial error of the chosen score p on n validation rows (plus-four,
    :func:`xmodal.evaluate.bootstrap.proportion_se`, so never zero at p = 1), and ``clear`` = margin > 0 and
    margin ≥ that error. A choice that is not clear could as well have gone
    the other way on another draw of validation rows (how often validation and test disagreed on the
    suite: ``python benchmarks/tuned_suite.py``). Other metrics keep no per-row errors here:
    ``standard_error`` and ``clear`` are ``None``. ``None`` with fewer than two scored candidates.
    """
    scored = [r for r in runs if r.score is not None]
    if best.score is None or len(scored) < 2:
        return None
    others = [r for r in scored if r is not best]
    runner = pick(others, metric.higher_is_better)
    margin = (best.score - runner.score) if metric.higher_is_better else (runner.score - best.score)
    se = proportion_se(best.score, best.n_val) if metric.name in PROPORTION_METRICS and best.n_val else None
    return {"runner_up": runner.strategy.name, "margin": margin, "standard_error": se,
            "clear": None if se is None else bool(margin > 0 and margin >= se)}
