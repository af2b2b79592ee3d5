"""One training run of a fit — stage 1 (build), stage 2 (align) and stage 3 (fine-tune) of one strategy
on one split — its cost plan, and whether a run learned: the score of a constant prediction and the
warning when a run is no better.

A fit makes one run (no validation), one per candidate scored on the validation rows, and a refit on
all the training data; :class:`Job` holds what those runs share. Which runs a fit makes and which it
keeps is :mod:`xmodal.estimator.protocol`'s.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from xmodal import distributed
from xmodal.config import RunConfig
from xmodal.data.fingerprint import fingerprint
from xmodal.errors import XmodalError
from xmodal.evaluate import evaluate as evaluate_outputs
from xmodal.evaluate.metrics import Metric
from xmodal.files import atomic_write_text, json_dumps
from xmodal.model.assembly import CrossModalModel, assemble
from xmodal.model.bodies import BodySource, body_fingerprint, build_body
from xmodal.model.embedder_init import init_projection_from_body
from xmodal.runtime import atomic_save_tensors, resolve_device
from xmodal.strategies import Strategy
from xmodal.tasks import TaskKind, get_task_kind
from xmodal.train import AlignConfig, predict_raw, train_loop
from xmodal.train.checkpoint import check_run_key
from xmodal.train.config import TrainConfig

__all__ = ["FitReport", "TrainingRun", "Job", "NotLearnedWarning", "PREDICT_BATCH", "beats_constant",
           "constant_score"]

#: samples per forward pass when predicting (validation scores, ``predict``); memory, not results, depends on it
PREDICT_BATCH = 64


@dataclass
class FitReport:
    """What ``fit`` did: the strategy, stage times in seconds and the per-epoch histories.

    ``strategy`` holds the resolved ``name``, ``align``, ``mode`` and ``embedder_init`` and, for
    ``embedder_init="body"``, ``init``: the report of
    :func:`~xmodal.model.embedder_init.init_projection_from_body` (method, source kernel shape, …).
    ``align`` and ``finetune`` describe the run that made the final model. ``settings`` holds the
    automatic settings as resolved for the data (:mod:`xmodal.defaults`); ``validation`` the
    validation protocol's outcome (metric, score, held-out rows, each candidate's score under
    ``strategy="auto"``); ``runs`` one line per training run (validation runs, then the refit).
    """

    strategy: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    align: dict[str, Any] = field(default_factory=dict)
    finetune: list[dict] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)
    #: the stage-3 history of each entry of ``runs`` (validation runs carry ``val_<metric>`` per epoch)
    histories: list[list[dict]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "seconds": self.seconds, "align": self.align, "finetune": self.finetune,
                "settings": self.settings, "validation": self.validation, "runs": self.runs,
                "histories": self.histories}


@dataclass(eq=False)
class TrainingRun:
    """One training run of ``fit``: the model, its stage reports and, with validation rows, its score."""

    label: str
    strategy: Strategy
    model: CrossModalModel | None
    align: dict[str, Any]
    finetune: list[dict]
    seconds: dict[str, float]
    n_train: int
    n_val: int = 0
    score: float | None = None
    init: dict[str, Any] | None = None
    #: the validation score of one constant learned from the training rows (:func:`constant_score`)
    baseline: float | None = None
    #: on the run ``fit`` keeps after a refit, what :func:`guard_refit` measured
    refit_check: dict[str, Any] | None = None


@dataclass
class Job:
    """What every training run of one ``fit`` shares: resolved settings, body, task and checkpoint folder."""

    settings: RunConfig
    source: BodySource
    task: str
    k: int
    tabular: bool
    ckpt: Path | None
    on_epoch: Callable[[dict], None] | None
    #: stage-3 optimiser steps of every training run this fit plans (for the time estimate)
    plan_steps: int = 0
    #: training runs of this fit that run a stage 2 (an upper bound under strategy="auto")
    plan_aligned_runs: int = 0
    #: the stage-2 seconds of the first run (measured before the estimate is made)
    first_align_seconds: float | None = None
    estimated: bool = False
    #: whether ``settings.lr`` was automatic (:mod:`xmodal.defaults`), so that the validation protocol may
    #: retry it lower when its runs learn nothing (:func:`xmodal.estimator.protocol.retry_lower_lr`)
    lr_automatic: bool = False
    #: what that retry did (``None`` when there was none), and the runs it set aside
    lr_retry: dict[str, Any] | None = None
    set_aside: list[TrainingRun] = field(default_factory=list)

    def _estimate(self, seconds: float) -> None:
        """One line, at the first stage-3 step of the fit: how long the rest of the fit will take, from that
        step's time × the stage-3 steps of every planned run, plus the first run's measured stage 2 for each
        later run that aligns."""
        if self.estimated or not self.settings.verbose or not self.plan_steps or not distributed.is_main():
            return
        self.estimated = True
        stage2 = (self.first_align_seconds or 0.0) * max(0, self.plan_aligned_runs - 1)
        total = seconds * self.plan_steps + stage2
        shown = f"{total:.0f} s" if total < 120 else f"{total / 60:.1f} min"
        tqdm.write(f"time estimate: the rest of this fit ≈ {shown} ({self.plan_steps} stage-3 optimiser steps in all "
                   f"runs at {seconds:.2f} s, timed on the first one; {stage2:.0f} s of stage 2 in "
                   f"{max(0, self.plan_aligned_runs - 1)} later run(s))")

    def run(self, label: str, strategy: Strategy, X: np.ndarray, y: np.ndarray,
            X_val: np.ndarray | None, y_val: np.ndarray | None) -> TrainingRun:
        """Stage 1, 2 and 3 of ``strategy`` on ``(X, y)``, scored per epoch on ``(X_val, y_val)`` when given."""
        t0 = time.perf_counter()
        aligner, mode = strategy.validate()
        kind = get_task_kind(self.task)
        torch.manual_seed(self.settings.seed)
        body = build_body(self.source, pretrained=mode.pretrained_body)
        model = assemble(body, self.task, self.k, X.shape[1:], self.settings.max_tokens,
                         feature_scaling="position" if self.tabular else "channel")
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
        init = init_projection_from_body(model.embedder, body) if strategy.embedder_init == "body" else None
        model.fit_scaling(X_t, y_t if kind.standardise_targets else None)
        y_train = model.encode_targets(y_t) if kind.standardise_targets else y_t
        seconds = {"build": time.perf_counter() - t0}
        ckpt_dir = None if self.ckpt is None else (self.ckpt if label == "final" else self.ckpt / label)
        if ckpt_dir:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
        run_key = self._run_key(label, strategy, model, X, y, ckpt_dir is not None)
        t0 = time.perf_counter()
        align_report = self._stage2(model, aligner, strategy, X_t, y_train, ckpt_dir, run_key)
        seconds["align"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        history, score = self._stage3(label, model, mode, X_t, y_train, X_val, y_val, ckpt_dir, run_key)
        seconds["finetune"] = time.perf_counter() - t0
        baseline = None if y_val is None else constant_score(kind, y, y_val)
        return TrainingRun(label, strategy, model, align_report, history, seconds, int(X.shape[0]),
                           0 if X_val is None else int(X_val.shape[0]), score, init, baseline)

    def _run_key(self, label: str, strategy: Strategy, model: CrossModalModel, X: np.ndarray, y: np.ndarray,
                 checkpointed: bool) -> dict[str, Any]:
        """What a checkpoint of this run must match to be resumed: the settings, the resolved strategy (so
        strategy="orca" and align="otdd" resume each other's runs), the model and, with checkpoints, the data."""
        run_key = self.settings.run_key()
        run_key.update(strategy=strategy.name, align=strategy.align, mode=strategy.mode,
                       embedder_init=strategy.embedder_init, run=label)
        # the data's fingerprint guards resumed checkpoints; without a checkpoint folder it is not needed (tuner trials)
        run_key.update(spec=model.spec.to_dict(), n_train=int(X.shape[0]),
                       data=fingerprint(X, y) if checkpointed else None)
        return json.loads(json.dumps(run_key))  # tuples → lists, as stored

    def _stage2(self, model: CrossModalModel, aligner: Any, strategy: Strategy, X_t: torch.Tensor,
                y_train: torch.Tensor, ckpt_dir: Path | None, run_key: dict[str, Any]) -> dict[str, Any]:
        """Align, or read back the stage 2 this run already finished (``aligned.safetensors`` + ``.json``)."""
        s = self.settings
        stage3_ckpt = ckpt_dir / "finetune.ckpt.safetensors" if ckpt_dir else None
        align_file = ckpt_dir / "aligned.safetensors" if ckpt_dir else None
        align_cfg = AlignConfig(
            epochs=s.align_epochs, lr=s.align_lr, batch_size=s.batch_size, steps_per_epoch=s.align_steps,
            proxy=s.proxy, source_size=s.source_size, precision=s.precision,
            options=dict(s.align_options or {}), curve_per_class=s.align_curve_per_class,
            body_key=body_fingerprint(self.source),
            checkpoint=ckpt_dir / "align.ckpt.safetensors" if ckpt_dir else None, run_key=run_key,
        )
        t0 = time.perf_counter()
        saved = _read_aligned(ckpt_dir, run_key) if ckpt_dir else None
        if saved is not None:
            if not (stage3_ckpt is not None and stage3_ckpt.exists()):  # stage 3's checkpoint holds newer weights
                try:
                    model.load_state_dict(load_file(str(align_file)))
                except Exception as exc:
                    raise XmodalError(f"{align_file} is damaged ({str(exc).splitlines()[0]}); delete it and "
                                      f"{align_file.with_suffix('.json').name} to redo stage 2") from exc
            return saved
        report = aligner.run(model, X_t, y_train, align_cfg, resolve_device(s.device), s.seed,
                             s.verbose and distributed.is_main())
        # no stage 2, nothing to keep; under torchrun rank 0 writes for every process
        if align_file is not None and strategy.align != "none" and distributed.is_main():
            atomic_save_tensors(model.state_dict(), align_file)
            atomic_write_text(ckpt_dir / "aligned.json", json_dumps({"run_key": run_key, "report": report}))
            align_cfg.checkpoint.unlink(missing_ok=True)  # superseded by aligned.*
        if self.first_align_seconds is None:
            self.first_align_seconds = time.perf_counter() - t0
        return report

    def _stage3(self, label: str, model: CrossModalModel, mode: Any, X_t: torch.Tensor, y_train: torch.Tensor,
                X_val: np.ndarray | None, y_val: np.ndarray | None, ckpt_dir: Path | None,
                run_key: dict[str, Any]) -> tuple[list[dict], float | None]:
        """Fine-tune in ``mode``; returns the history and, with validation rows, the last epoch's score."""
        s, kind = self.settings, get_task_kind(self.task)
        device = resolve_device(s.device)
        metric = kind.default_metric
        validate = None
        if X_val is not None:
            Xv_t, yv_t = torch.from_numpy(X_val), torch.from_numpy(y_val)

            def validate() -> dict[str, float]:
                out = model.decode(predict_raw(model, Xv_t, PREDICT_BATCH, device, s.precision))
                return evaluate_outputs(kind, out, yv_t, [metric])

        callback = None
        if self.on_epoch is not None:
            user = self.on_epoch

            def callback(record: dict) -> None:
                user({**record, "run": label})

        # stage 3 draws dropout from its own seed, so it runs the same whether stage 2 ran now or was resumed;
        # under torchrun each process draws its own masks (rank 0's stream is the one-process run's)
        torch.manual_seed(s.seed + 1 + 7919 * distributed.rank())
        params = mode.apply(model)
        where = "" if label == "final" else f", {label}"
        history = train_loop(
            model, params, X_t, y_train, kind.loss, train_config(s), device,
            desc=f"stage 3 (fine-tune {mode.name}{where})", progress=s.verbose, run_key=run_key,
            checkpoint=ckpt_dir / "finetune.ckpt.safetensors" if ckpt_dir else None,
            validate=validate, on_epoch=callback, on_first_step=self._estimate,
        )
        for p in model.parameters():
            p.requires_grad_(True)
        if validate is None:
            return history, None
        last = history[-1] if history else {}
        return history, float(last[f"val_{metric}"]) if f"val_{metric}" in last else float(validate()[metric])


def train_config(s: RunConfig) -> TrainConfig:
    """Stage 3's settings out of a run's (resolved) settings."""
    return TrainConfig(
        epochs=s.epochs, batch_size=s.batch_size, accumulate=s.accumulate, lr=s.lr,
        weight_decay=s.weight_decay, optimizer=s.optimizer, warmup_ratio=s.warmup_ratio,
        clip_grad_norm=s.clip_grad_norm, seed=s.seed, device=s.device, precision=s.precision,
    )


def planned_steps(s: RunConfig, n: int, val_rows: tuple[np.ndarray, np.ndarray] | None, explicit: bool,
                   n_candidates: int, refit: bool) -> int:
    """Stage-3 optimiser steps of every training run ``fit`` will make (validation runs and the refit)."""
    def steps(rows: int) -> int:
        return math.ceil(math.ceil(rows / s.batch_size) / s.accumulate) * s.epochs

    if explicit:
        return n_candidates * steps(n)
    if val_rows is None:
        return steps(n)
    return n_candidates * steps(len(val_rows[0])) + (steps(n) if refit else 0)


def _read_aligned(ckpt_dir: Path, run_key: dict) -> dict[str, Any] | None:
    """The saved stage-2 report of this run, or ``None`` when stage 2 has not been saved yet."""
    meta = ckpt_dir / "aligned.json"
    if not (meta.exists() and (ckpt_dir / "aligned.safetensors").exists()):
        return None
    try:
        saved = json.loads(meta.read_text())
        report = saved["report"]
        if not isinstance(report, dict):
            raise ValueError("no stage-2 report")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise XmodalError(f"{meta} is damaged ({exc}); delete it and aligned.safetensors to redo stage 2") from None
    check_run_key(ckpt_dir, saved.get("run_key"), run_key)
    return report


def constant_score(kind: TaskKind, y: np.ndarray, y_val: np.ndarray) -> float | None:
    """The validation score (``kind.default_metric``) of always predicting one value learned from the training
    targets ``y``: the most frequent class for class labels, the training mean for regression (for dense
    regression the mean field, position by position, ``(1, K, *S)``). ``None`` for other kinds."""
    if kind.class_labels:
        if kind.dense:
            return None
        return float((y_val == np.bincount(y.astype(np.int64)).argmax()).mean())
    if not kind.standardise_targets:
        return None
    mean = torch.from_numpy(np.asarray(y, np.float32).mean(axis=0, keepdims=True))
    y_v = torch.from_numpy(np.asarray(y_val, np.float32))
    return float(evaluate_outputs(kind, mean.expand_as(y_v).contiguous(), y_v, [kind.default_metric])
                 [kind.default_metric])


#: how much better than the constant prediction a score must be to count as better, relative to the
#: constant's size: scores are float32 means (0.1 is 0.10000000149 there), far coarser than 1e-9, and a
#: real gain is at least one validation row (1 / rows ≫ 1e-6)
CONSTANT_TOLERANCE = 1e-6


def beats_constant(score: float, constant: float, metric: Metric) -> bool:
    """Whether ``score`` is better than the constant prediction's ``constant`` in ``metric``'s direction, by
    more than :data:`CONSTANT_TOLERANCE` × max(1, |constant|)."""
    tol = CONSTANT_TOLERANCE * max(1.0, abs(constant))
    return score > constant + tol if metric.higher_is_better else score < constant - tol


class NotLearnedWarning(UserWarning):
    """The fitted model scores no better on its validation rows than always predicting one value."""


def warn_if_not_learned(est: Any, run: TrainingRun, metric: Metric) -> None:
    """Warn when a model ends no better on its validation rows than always predicting one value learned from
    the training rows (:func:`constant_score`: the majority class, or the mean target for regression)."""
    if run.score is None or run.baseline is None:
        return
    constant = run.baseline
    if not beats_constant(run.score, constant, metric):
        what = "the most frequent class" if get_task_kind(est.task_).class_labels else "the training mean"
        msg = (f"the model has not learned: validation {metric.name} {run.score:.4g} is no better than always "
               f"predicting {what} ({constant:.4g}). Try strategy='auto' (or 'finetune'), a smaller or "
               "larger lr, more epochs, another body (body='auto'), or tuning: `xmodal fit DATA --tune` / "
               "xmodal.tune(X, y)")
        est.report_.validation["warning"] = msg
        warnings.warn(msg, NotLearnedWarning, stacklevel=3)
