"""The scikit-learn-style estimator: ``fit`` → ``predict`` / ``predict_proba`` / ``score`` → ``save`` / ``load``.

>>> from xmodal import CrossModalEstimator
>>> est = CrossModalEstimator(body="minilm-l6", epochs=10).fit(X_train, y_train)   # doctest: +SKIP
>>> est.score(X_test, y_test)                                                      # doctest: +SKIP

``fit`` checks everything at the boundary, then runs the validation protocol with the training runs of
:mod:`.runs`; :mod:`.persistence` writes and reads model folders; :mod:`.inputs` reads targets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.metaestimators import available_if

from xmodal import distributed
from xmodal.config import PARAMS, RunConfig, default_of
from xmodal.data.split import validation_split
from xmodal.data.validation import check_same_layout, check_X, check_Xy
from xmodal.defaults import resolve_settings
from xmodal.errors import XmodalError
from xmodal.estimator.body_selection import body_for
from xmodal.estimator.inputs import as_array, column_to_1d, encode_class_labels
from xmodal.estimator.persistence import save_model
from xmodal.estimator.protocol import choice_margin, validation_protocol
from xmodal.estimator.runs import PREDICT_BATCH, FitReport, Job, TrainingRun, planned_steps, warn_if_not_learned
from xmodal.evaluate import evaluate as evaluate_outputs
from xmodal.evaluate.metrics import get_metric
from xmodal.model.bodies import FAMILIES
from xmodal.runlock import RunLock
from xmodal.runtime import resolve_device
from xmodal.strategies import AUTO, DEFAULT_MODE, Strategy, get_strategy, resolve_strategy
from xmodal.tasks import LABELS_KIND, TASK_KINDS, TaskKind, get_task_kind
from xmodal.train import predict_raw

__all__ = ["CrossModalEstimator", "FitReport", "NotFitted"]


def _has_probabilities(est: CrossModalEstimator) -> bool:
    """``predict_proba`` exists for classification and multi-label tasks (and ``task="auto"`` until fit)."""
    task = getattr(est, "task_", est.task)
    return task == "auto" or get_task_kind(task).probabilistic


def _signature() -> inspect.Signature:
    """``__init__``'s signature: ``self`` and every :class:`~xmodal.config.RunConfig` setting, keyword-only."""
    hints = {f.name: f.type for f in dataclasses.fields(RunConfig)}
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=default_of(n), annotation=hints[n])
               for n in PARAMS]
    return inspect.Signature(params)


class CrossModalEstimator(BaseEstimator):
    """Adapt a pretrained body to a task in another modality (ORCA's align-then-refine workflow).

    Inputs ``X``: ``(N, F)`` tabular rows, ``(N, C, L)`` series, ``(N, C, H, W)`` images or
    ``(N, C, D, H, W)`` volumes (``spatial_dims`` reads channel-less arrays, e.g. ``(N, H, W)``).
    Targets ``y`` per task: ``(N,)`` class indices, ``(N, K)`` 0/1 labels, ``(N,)``/``(N, K)`` real
    values, or dense ``(N, *S)`` / ``(N, K, *S)`` at the input's spatial shape ``S``.

    The parameters are the settings of :class:`xmodal.config.RunConfig` (its docstring describes
    each), all keyword-only, with scikit-learn's conventions: ``get_params``/``set_params``/``clone``
    work, and what ``fit`` learns ends in ``_``.

    The validation protocol: with ``validation=0.2`` (default) a stratified fifth of the training
    data is held out, the run is scored on it (``validation_score_``), and with ``refit=True`` the
    final model is fitted again on all the training data with the same settings. ``strategy="auto"``
    fits each of ``candidates`` on the same split and keeps the one with the better validation
    score. The test split is never used to choose.

    After ``fit`` (or :func:`load`), ``strategy_`` names the strategy that ran (``"custom"`` for an
    ``(align, mode)`` pair no registered strategy uses) and ``report_.strategy`` details it;
    ``settings_`` is the run's :class:`~xmodal.config.RunConfig` with every automatic setting resolved.
    """

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise XmodalError(f"unknown parameter(s) {unknown}; known: {list(PARAMS)}")
        for name in PARAMS:
            setattr(self, name, params[name] if name in params else default_of(name))

    __init__.__signature__ = _signature()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ configuration
    def set_params(self, **params: Any) -> CrossModalEstimator:
        """Change settings; unknown names raise :class:`XmodalError` (scikit-learn convention otherwise)."""
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise XmodalError(f"unknown parameter {unknown[0]!r}; known: {list(PARAMS)}")
        return super().set_params(**params)

    def config(self) -> RunConfig:
        """The settings as a validated :class:`~xmodal.config.RunConfig` (raises :class:`XmodalError`)."""
        return RunConfig.from_dict(self.get_params()).validate()

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags: a classifier or regressor when ``task`` says so (``"auto"``: neither, as the
        kind is known only from ``y``); deterministic on CPU; inputs may be 2-D tables or N-D arrays."""
        from sklearn.utils import ClassifierTags, RegressorTags

        tags = super().__sklearn_tags__()
        kind = TASK_KINDS.get(self.task)  # None for "auto" (or a name fit will refuse)
        if kind is not None and kind.estimator_type == "classifier":
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags(multi_class=True, multi_label=not kind.exclusive_classes)
        elif kind is not None and kind.estimator_type == "regressor":
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
            tags.target_tags.multi_output = True  # (N, K) targets
        tags.non_deterministic = False
        tags.input_tags.two_d_array = True
        tags.target_tags.required = True
        return tags

    def resolve_strategy(self) -> Strategy:
        """The :class:`~xmodal.strategies.Strategy` that ``fit`` runs for these ``strategy``/``align``/``mode``.

        With ``strategy=None`` it is the registered strategy matching ``(align, mode)`` (random
        embedder init), or one named ``"custom"``. With ``strategy="auto"`` it is the first of
        ``candidates`` (which one runs is chosen at fit time).

        Raises:
            XmodalError: unknown strategy, ``align``/``mode`` contradicting it, or an aligner or mode
                that is not registered.
        """
        return self._strategies(self.config())[0]

    @staticmethod
    def _strategies(cfg: RunConfig) -> list[Strategy]:
        """The strategy to run, or the candidates of ``strategy="auto"``; each checked with its options."""
        if cfg.strategy == AUTO:
            if cfg.align is not None or cfg.mode != DEFAULT_MODE:
                raise XmodalError("strategy='auto' chooses align and mode itself; leave align/mode unset")
            if len(set(cfg.candidates)) != len(cfg.candidates):
                raise XmodalError(f"candidates must not repeat, got {list(cfg.candidates)}")
            chosen = [get_strategy(name) for name in cfg.candidates]
        else:
            chosen = [resolve_strategy(cfg.strategy, cfg.align, cfg.mode)]
        for s in chosen:
            aligner, _ = s.validate()
            aligner.check_options(dict(cfg.align_options or {}))
            aligner.check_processes(distributed.launched_size())
        return chosen



    # ------------------------------------------------------------------ fitting
    # over 60 lines only through its docstring (every argument documented); the code is 48 lines
    def fit(
        self,
        X: Any,
        y: Any,
        *,
        validation_data: tuple[Any, Any] | None = None,
        checkpoint_dir: str | Path | None = None,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> CrossModalEstimator:
        """Build the model (stage 1), align (stage 2) and fine-tune (stage 3) on ``(X, y)``.

        Every input and setting is checked before any weights load.

        Args:
            X, y: training inputs and targets (see the class docstring for layouts).
            validation_data: ``(X_val, y_val)`` to score the run on instead of holding out
                ``validation`` of ``(X, y)``; the model is then trained on all of ``(X, y)`` once.
            checkpoint_dir: every stage-2 and stage-3 epoch is saved here (validation runs in
                ``validation-<strategy>/`` below it), and a rerun with the same arguments resumes where
                the last one stopped, losing at most the current epoch, to the weights an uninterrupted
                run would have. The folder is locked while the fit runs (a second fit into it is refused),
                and a rerun with other data or settings is refused, naming what differs.
            on_epoch: called with each fine-tuning epoch's record (``epoch``, ``loss``, ``lr``,
                ``seconds``, ``val_<metric>`` on validation runs, ``run``: the run's label); it may raise
                to stop the fit (a tuner pruning a trial does).

        Raises:
            XmodalError: bad data or settings, named with the fix.
            TrainingDiverged: a stage's loss, gradient norm or features stopped being finite (a subclass
                of :class:`XmodalError`; the checkpoint folder keeps the last finite epoch).
        """
        t_start = time.perf_counter()
        cfg = self.config()
        strategies = self._strategies(cfg)
        X, y = as_array(X), as_array(y)  # lists and array-likes → arrays, once (check_Xy says what is wrong)
        Xc, yc, kind = self._check_training_data(X, y, cfg)
        val_rows: tuple[np.ndarray, np.ndarray] | None = None
        explicit_val: tuple[np.ndarray, np.ndarray] | None = None
        if validation_data is not None:
            explicit_val = self._check_validation_data(validation_data, kind.name, self.n_outputs_, Xc.shape[1:],
                                                       cfg.spatial_dims)
        elif cfg.validation > 0:
            val_rows = validation_split(yc, cfg.validation, cfg.seed, stratify=kind.class_labels)
        if len(strategies) > 1 and explicit_val is None and val_rows is None:
            raise XmodalError("strategy='auto' chooses on validation data: set validation > 0 (e.g. 0.2) or pass "
                              "validation_data=(X_val, y_val)")
        # an absent GPU stops here, before any weights load; under torchrun the processes join their group
        distributed.setup(resolve_device(cfg.device))
        cfg, source, selection = body_for(cfg, Xc, yc, kind)
        settings, auto = resolve_settings(cfg, len(Xc), tuple(Xc.shape[2:]), body=FAMILIES[source.family])
        self.settings_, self.body_source_ = settings, source
        report = FitReport(settings={"auto": auto, "resolved": settings.to_dict()})
        if selection is not None:
            report.settings["body_selection"] = {"pick": selection.pick, "rule": selection.rule,
                                                 "rows": selection.rows, "seconds": selection.seconds}
        report.seconds["build"] = time.perf_counter() - t_start
        ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
        job = Job(settings, source, kind.name, self.n_outputs_, cfg.spatial_dims is None and np.ndim(X) == 2, ckpt,
                  on_epoch, lr_automatic="lr" in auto)
        job.plan_steps = planned_steps(settings, len(Xc), val_rows, explicit_val is not None, len(strategies),
                                       cfg.refit)
        final_run = explicit_val is None and (val_rows is None or cfg.refit)
        aligned = [s.align != "none" for s in strategies]
        job.plan_aligned_runs = sum(aligned) + (1 if final_run and val_rows is not None and any(aligned) else 0)
        # the checkpoint folder is held exclusively while this fit writes to it (released on exit or death)
        with RunLock(ckpt, "checkpoint folder") if ckpt is not None and distributed.is_main() \
                else contextlib.nullcontext():
            runs, best, final = validation_protocol(job, strategies, Xc, yc, val_rows, explicit_val, cfg.refit)
        if job.lr_retry is not None:  # the final model's settings are the ones the retry kept
            self.settings_ = job.settings
            report.settings["resolved"] = job.settings.to_dict()
        self._record(report, strategies, runs, best, final, kind, cfg, job)
        return self

    def _check_training_data(self, X: Any, y: Any, cfg: RunConfig) -> tuple[np.ndarray, np.ndarray, TaskKind]:
        """Validate ``(X, y)``, encode class labels, and set ``classes_``, ``task_``, ``n_outputs_``,
        ``y_ndim_`` and ``n_features_in_``; returns the canonical arrays and the task kind."""
        if cfg.task in TASK_KINDS and TASK_KINDS[cfg.task].class_labels:
            y = column_to_1d(y)
        y, classes = encode_class_labels(y, cfg.task)
        Xc, yc, task, k = check_Xy(X, y, cfg.task if classes is None else LABELS_KIND, cfg.spatial_dims)
        kind = get_task_kind(task)
        if kind.exclusive_classes:
            missing = sorted(set(range(k)) - set(np.unique(yc).tolist()))
            if missing:
                raise XmodalError(
                    f"training labels must be 0..K-1 with every class present, but classes {missing[:10]} "
                    f"have no sample (labels seen: {np.unique(yc).tolist()[:10]}…); re-encode them, e.g. "
                    "y = sklearn.preprocessing.LabelEncoder().fit_transform(y)"
                )
        self.classes_ = classes if classes is not None else (np.arange(k) if kind.class_labels else None)
        self.task_, self.n_outputs_, self.y_ndim_ = task, k, int(np.ndim(y))
        self.n_features_in_ = int(np.prod(Xc.shape[1:]))
        return Xc, yc, kind

    def _record(self, report: FitReport, strategies: list[Strategy], runs: list[TrainingRun],
                best: TrainingRun | None, final: TrainingRun, kind: TaskKind, cfg: RunConfig, job: Job) -> None:
        """Keep the final model, fill ``report_`` and the fitted attributes, and warn when it has not learned.
        ``runs`` are the scored runs chosen from; ``job.set_aside`` those an lr retry did not keep."""
        metric = get_metric(kind.default_metric)
        if best is not None:
            report.validation = {
                "metric": metric.name, "score": best.score, "rows": best.n_val,
                "source": f"{cfg.validation:g} of the training data" if best.label.startswith("validation-")
                else "validation_data",
                "strategy_scores": {r.strategy.name: r.score for r in runs},
                **({"choice": choice_margin(runs, best, metric)} if len(runs) > 1 else {}),
                **({"refit": final.refit_check} if final.refit_check else {}),
                **({"lr_retry": job.lr_retry} if job.lr_retry else {}),
            }
        for r in [*job.set_aside, *runs]:
            if r is not final:
                r.model = None  # only the final model is kept
        every = [*job.set_aside, *runs, *([] if any(r is final for r in runs) else [final])]
        report.histories = [r.finetune for r in every]
        report.runs = [{"label": r.label, "strategy": r.strategy.name, "train_rows": r.n_train, "val_rows": r.n_val,
                        "score": r.score, "seconds": r.seconds} for r in every]
        report.strategy = final.strategy.to_dict()
        if final.init is not None:
            report.strategy["init"] = final.init
        if len(strategies) > 1:
            report.strategy["chosen_from"] = [s.name for s in strategies]
        report.align, report.finetune = final.align, final.finetune
        report.seconds.update(align=final.seconds["align"], finetune=final.seconds["finetune"])
        extra = [r for r in [*job.set_aside, *runs] if r is not final]
        if extra:
            report.seconds["validation_runs"] = sum(r.seconds["align"] + r.seconds["finetune"] for r in extra)
        self.model_ = final.model
        self.strategy_ = final.strategy.name
        self.validation_score_ = best.score if best is not None else None
        self.strategy_scores_ = report.validation.get("strategy_scores", {}) if len(strategies) > 1 else {}
        self.report_ = report
        if best is not None:
            warn_if_not_learned(self, best, metric)

    def _check_validation_data(
        self, data: tuple[Any, Any], task: str, k: int, sample_shape: tuple[int, ...], spatial_dims: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        try:
            X_val, y_val = data
        except (TypeError, ValueError):
            raise XmodalError("validation_data must be a pair (X_val, y_val)") from None
        y_val = self._label_indices(y_val)
        Xv, yv, _, _ = check_Xy(X_val, y_val, task, spatial_dims, min_classes=1)
        check_same_layout(Xv, sample_shape)
        kind = get_task_kind(task)
        if kind.exclusive_classes and int(yv.max()) >= k:
            raise XmodalError(f"y_val has label {int(yv.max())} but the training data have {k} classes")
        return Xv, yv

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFitted("this estimator is not fitted yet; call fit(X, y) or xmodal.load(folder) first")

    def _raw(self, X: Any) -> torch.Tensor:
        self._check_fitted()
        X = as_array(X)
        Xc = check_X(X, self.spatial_dims)
        check_same_layout(Xc, self.model_.spec.sample_shape, given_ndim=np.ndim(X), who=type(self).__name__)
        device = resolve_device(self.device)
        return predict_raw(self.model_, torch.from_numpy(Xc), PREDICT_BATCH, device, self.precision)

    def _user_layout(self, values: np.ndarray) -> np.ndarray:
        kind = self.model_.kind
        # regression targets given as (N,) or dense (N, *S) were given an output axis of size 1
        if kind.standardise_targets and self.n_outputs_ == 1:
            expected = len(self.model_.spec.sample_shape) if kind.dense else 1  # (N, *S) or (N,)
            if self.y_ndim_ == expected:
                return values[:, 0]
        return values

    def predict(self, X: Any) -> np.ndarray:
        """Predictions in the layout ``y`` was given in: labels ``(N,)``, 0/1 ``(N, K)``, values (float64), or maps."""
        out = self._raw(X)
        pred = self.model_.kind.predict(self.model_.decode(out))
        if getattr(self, "classes_", None) is not None:
            return self.classes_[pred.numpy()]
        out = self._user_layout(pred.numpy())
        # per-sample regression values come back in float64, as scikit-learn's regressors return them
        return out.astype(np.float64) if self.model_.kind.estimator_type == "regressor" else out

    @available_if(_has_probabilities)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities: ``(N, K)`` (softmax or per-label sigmoid) or ``(N, K, *S)`` for dense."""
        self._check_fitted()
        if not self.model_.kind.probabilistic:
            raise XmodalError(f"predict_proba needs a classification task; this model does {self.task_}")
        return self.model_.kind.scores(self._raw(X)).numpy()

    def evaluate(self, X: Any, y: Any, metrics: list[str] | None = None) -> dict[str, float]:
        """Metrics (default: the task's) of the model on ``(X, y)``, targets in user units."""
        self._check_fitted()
        y = self._label_indices(y)
        X = as_array(X)
        Xc, yc, _, _ = check_Xy(X, y, self.task_, self.spatial_dims, min_classes=1)
        check_same_layout(Xc, self.model_.spec.sample_shape, given_ndim=np.ndim(X), who=type(self).__name__)
        kind = self.model_.kind
        if kind.probabilistic and not kind.exclusive_classes:  # one 0/1 column per label
            if yc.shape[1] != self.n_outputs_:
                raise XmodalError(f"y has {yc.shape[1]} label columns; the model was fitted on {self.n_outputs_}")
        elif kind.exclusive_classes and int(yc.max()) >= self.n_outputs_:
            raise XmodalError(
                f"y has label {int(yc.max())} but the model knows {self.n_outputs_} classes "
                f"(0..{self.n_outputs_ - 1}); encode the labels as at fit time"
            )
        out = self.model_.decode(self._raw(Xc))
        return evaluate_outputs(kind, out, torch.from_numpy(yc), metrics or [kind.default_metric])

    def _label_indices(self, y: Any) -> Any:
        """Labels in the fit's label space (``classes_``) → indices ``0..K-1``; other targets unchanged."""
        classes = getattr(self, "classes_", None)
        if classes is None or np.ndim(y) != 1:
            return y
        ya = np.asarray(y)
        if classes.dtype.kind in "US":
            ya = ya.astype(str)
        elif ya.dtype.kind in "USO":
            raise XmodalError(
                f"y holds text labels (e.g. {ya[0]!r}) but the model's classes are {classes[:20].tolist()}"
            )
        idx = np.clip(np.searchsorted(classes, ya), 0, len(classes) - 1)
        unknown = classes[idx] != ya
        if unknown.any():
            raise XmodalError(
                f"y has label(s) {np.unique(ya[unknown])[:5].tolist()} that the model was not fitted on; "
                f"it knows {len(classes)} classes: {classes[:20].tolist()}"
            )
        return idx

    def score(self, X: Any, y: Any, sample_weight: Any = None, metric: str | None = None) -> float:
        """scikit-learn's score, higher is better: accuracy for classification (pixel accuracy for dense),
        mAP for multi-label, R² for regression (over every position for dense regression).

        ``metric`` names another metric; :meth:`evaluate` gives the task's reported ones (MSE, relative L2, …).
        ``sample_weight`` is not supported (``None`` only).
        """
        self._check_fitted()
        if sample_weight is not None:
            raise XmodalError("score() does not support sample_weight; pass sample_weight=None")
        name = metric or self.model_.kind.score_metric
        return self.evaluate(X, y, [name])[name]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write ``config.json``, ``body_config.json`` and ``model.safetensors`` to the folder ``path``
        (:mod:`xmodal.estimator.persistence`; read back with :func:`xmodal.load`).

        ``config.json`` holds the constructor arguments (``params``) and the resolved ``strategy``
        (``{"name", "align", "mode", "embedder_init"}``) next to the architecture. Under ``torchrun``
        every process holds the same model and only rank 0 writes (the others return ``path``).
        """
        self._check_fitted()
        return save_model(self, path) if distributed.is_main() else Path(path)

    def _strategy_record(self) -> dict[str, str]:
        """The resolved strategy of the fitted model (from the fit report, else from the parameters)."""
        if hasattr(self, "report_") and self.report_.strategy:
            return {k: self.report_.strategy[k] for k in ("name", "align", "mode", "embedder_init")}
        return resolve_strategy(self.strategy, self.align, self.mode).to_dict()


class NotFitted(XmodalError, NotFittedError):
    """``predict``/``score``/``save`` before ``fit``: an :class:`XmodalError` that is also scikit-learn's
    :class:`~sklearn.exceptions.NotFittedError`."""
