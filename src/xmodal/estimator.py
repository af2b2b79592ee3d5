"""The scikit-learn-style estimator: ``fit`` → ``predict`` / ``predict_proba`` / ``score`` → ``save`` / ``load``.

>>> from xmodal import CrossModalEstimator
>>> est = CrossModalEstimator(body="minilm-l6", epochs=10).fit(X_train, y_train)   # doctest: +SKIP
>>> est.score(X_test, y_test)                                                      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
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
from sklearn.base import BaseEstimator
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.utils.metaestimators import available_if
from tqdm.auto import tqdm

from xmodal.align import AlignConfig
from xmodal.config import PARAMS, RunConfig, default_of
from xmodal.data.fingerprint import fingerprint
from xmodal.data.split import validation_split
from xmodal.data.tasks import get_task_kind, infer_task_kind
from xmodal.data.validation import check_same_layout, check_X, check_Xy
from xmodal.defaults import resolve_settings
from xmodal.errors import XmodalError
from xmodal.evaluate import evaluate as evaluate_outputs
from xmodal.evaluate.metrics import Metric, get_metric
from xmodal.files import atomic_write_text, json_dumps, write_json
from xmodal.model.assembly import CrossModalModel, ModelSpec, assemble
from xmodal.model.bodies import FAMILIES, BodySource, body_from_config, build_body, resolve_body
from xmodal.model.embedder_init import init_projection_from_body
from xmodal.runlock import RunLock
from xmodal.runtime import atomic_save_tensors, resolve_device
from xmodal.strategies import AUTO, DEFAULT_MODE, Strategy, get_strategy, resolve_strategy
from xmodal.train.checkpoint import check_run_key
from xmodal.train.config import TrainConfig
from xmodal.train.loop import predict_raw, train_loop

__all__ = ["CrossModalEstimator", "FitReport", "load", "encode_class_labels", "NotLearnedWarning", "NotFitted"]

_FORMAT_VERSION = 1


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
class _Run:
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
    baseline: float | None = None


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
        if self.task in ("classification", "multilabel"):
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags(multi_class=True, multi_label=self.task == "multilabel")
        elif self.task == "regression":
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
        return chosen

    @staticmethod
    def _train_config(s: RunConfig) -> TrainConfig:
        return TrainConfig(
            epochs=s.epochs, batch_size=s.batch_size, accumulate=s.accumulate, lr=s.lr,
            weight_decay=s.weight_decay, optimizer=s.optimizer, warmup_ratio=s.warmup_ratio,
            clip_grad_norm=s.clip_grad_norm, seed=s.seed, device=s.device, precision=s.precision,
        )

    # ------------------------------------------------------------------ fitting
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
        X, y = _as_array(X), _as_array(y)  # lists and array-likes → arrays, once (check_Xy says what is wrong)
        tabular = cfg.spatial_dims is None and np.ndim(X) == 2
        if cfg.task == "classification":
            y = _column_to_1d(y)
        y, classes = encode_class_labels(y, cfg.task)
        Xc, yc, task, k = check_Xy(X, y, cfg.task if classes is None else "classification", cfg.spatial_dims)
        kind = get_task_kind(task)
        if kind.probabilistic and kind.name != "multilabel":
            missing = sorted(set(range(k)) - set(np.unique(yc).tolist()))
            if missing:
                raise XmodalError(
                    f"training labels must be 0..K-1 with every class present, but classes {missing[:10]} "
                    f"have no sample (labels seen: {np.unique(yc).tolist()[:10]}…); re-encode them, e.g. "
                    "y = sklearn.preprocessing.LabelEncoder().fit_transform(y)"
                )
        self.classes_ = classes if classes is not None else (np.arange(k) if task == "classification" else None)
        val_rows: tuple[np.ndarray, np.ndarray] | None = None
        explicit_val: tuple[np.ndarray, np.ndarray] | None = None
        if validation_data is not None:
            explicit_val = self._check_validation_data(validation_data, task, k, Xc.shape[1:], cfg.spatial_dims)
        elif cfg.validation > 0:
            val_rows = validation_split(yc, cfg.validation, cfg.seed, stratify=kind.name == "classification")
        if len(strategies) > 1 and explicit_val is None and val_rows is None:
            raise XmodalError("strategy='auto' chooses on validation data: set validation > 0 (e.g. 0.2) or pass "
                              "validation_data=(X_val, y_val)")
        resolve_device(cfg.device)  # an absent GPU stops here, before any weights load
        source = resolve_body(cfg.body)
        if kind.dense and not FAMILIES[source.family].keeps_tokens:
            raise XmodalError(
                f"body {source.name!r} ({source.family}) merges tokens, so it cannot make dense predictions; "
                "use a language body (e.g. 'minilm-l6') or a ViT body for dense tasks"
            )
        settings, auto = resolve_settings(cfg, len(Xc), tuple(Xc.shape[2:]))
        self.task_ = task
        self.n_outputs_ = k
        self.y_ndim_ = int(np.ndim(y))
        self.n_features_in_ = int(np.prod(Xc.shape[1:]))
        self.settings_ = settings
        self.body_source_ = source
        report = FitReport(settings={"auto": auto, "resolved": settings.to_dict()})
        report.seconds["build"] = time.perf_counter() - t_start
        ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
        job = _Job(settings, source, task, k, tabular, ckpt, on_epoch)
        job.plan_steps = _planned_steps(settings, len(Xc), val_rows, explicit_val is not None, len(strategies),
                                        cfg.refit)
        final_run = explicit_val is None and (val_rows is None or cfg.refit)
        aligned = [s.align != "none" for s in strategies]
        job.plan_aligned_runs = sum(aligned) + (1 if final_run and val_rows is not None and any(aligned) else 0)
        metric = get_metric(kind.default_metric)

        runs: list[_Run] = []
        # the checkpoint folder is held exclusively while this fit writes to it (released on exit or death)
        with RunLock(ckpt, "checkpoint folder") if ckpt is not None else contextlib.nullcontext():
            if explicit_val is not None:  # every run trains on all of (X, y) and is scored on the given set
                for s in strategies:
                    runs.append(job.run(_final_label(s, len(strategies)), s, Xc, yc, *explicit_val))
            elif val_rows is not None:
                tr, va = val_rows
                for s in strategies:
                    runs.append(job.run(f"validation-{s.name}", s, Xc[tr], yc[tr], Xc[va], yc[va]))
            best = _pick(runs, metric.higher_is_better) if runs else None
            if best is not None:
                report.validation = {
                    "metric": metric.name, "score": best.score, "rows": best.n_val,
                    "source": ("validation_data" if explicit_val is not None
                               else f"{cfg.validation:g} of the training data"),
                    "strategy_scores": {r.strategy.name: r.score for r in runs},
                }
            if best is not None and (explicit_val is not None or not cfg.refit):
                final = best
            else:
                chosen = best.strategy if best is not None else strategies[0]
                final = job.run("final", chosen, Xc, yc, None, None)
        for r in runs:
            if r is not final:
                r.model = None  # only the final model is kept
        every = [*runs, *([] if any(r is final for r in runs) else [final])]
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
        extra = [r for r in runs if r is not final]
        if extra:
            report.seconds["validation_runs"] = sum(r.seconds["align"] + r.seconds["finetune"] for r in extra)
        self.model_ = final.model
        self.strategy_ = final.strategy.name
        self.validation_score_ = best.score if best is not None else None
        self.strategy_scores_ = report.validation.get("strategy_scores", {}) if len(strategies) > 1 else {}
        self.report_ = report
        if best is not None:
            _warn_if_not_learned(self, best, metric)
        return self

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
        if kind.probabilistic and kind.name != "multilabel" and int(yv.max()) >= k:
            raise XmodalError(f"y_val has label {int(yv.max())} but the training data have {k} classes")
        return Xv, yv

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFitted("this estimator is not fitted yet; call fit(X, y) or xmodal.load(folder) first")

    def _raw(self, X: Any) -> torch.Tensor:
        self._check_fitted()
        X = _as_array(X)
        Xc = check_X(X, self.spatial_dims)
        check_same_layout(Xc, self.model_.spec.sample_shape, given_ndim=np.ndim(X), who=type(self).__name__)
        device = resolve_device(self.device)
        return predict_raw(self.model_, torch.from_numpy(Xc), 64, device, self.precision)

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
        return out.astype(np.float64) if self.model_.kind.name == "regression" else out

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
        X = _as_array(X)
        Xc, yc, _, _ = check_Xy(X, y, self.task_, self.spatial_dims, min_classes=1)
        check_same_layout(Xc, self.model_.spec.sample_shape, given_ndim=np.ndim(X), who=type(self).__name__)
        kind = self.model_.kind
        if kind.name == "multilabel":
            if yc.shape[1] != self.n_outputs_:
                raise XmodalError(f"y has {yc.shape[1]} label columns; the model was fitted on {self.n_outputs_}")
        elif kind.probabilistic and int(yc.max()) >= self.n_outputs_:
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
        """Write ``config.json``, ``body_config.json`` and ``model.safetensors`` to the folder ``path``.

        ``config.json`` holds the constructor arguments (``params``) and the resolved ``strategy``
        (``{"name", "align", "mode", "embedder_init"}``) next to the architecture.
        """
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        params = self.get_params()
        config = {
            "format_version": _FORMAT_VERSION,
            "params": params,
            "strategy": self._strategy_record(),
            "spec": self.model_.spec.to_dict(),
            "body_family": self.model_.body.family,
            "body_name": self.body_source_.name,
            "task": self.task_,
            "n_outputs": self.n_outputs_,
            "y_ndim": self.y_ndim_,
            "classes": None if getattr(self, "classes_", None) is None else self.classes_.tolist(),
        }
        state = self.model_.state_dict()
        bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise XmodalError(f"the model has non-finite weights ({bad[:3]}); it diverged and is not saved — "
                              "refit with a smaller lr")
        atomic_save_tensors(state, path / "model.safetensors")
        atomic_write_text(path / "body_config.json",
                          json.dumps(self.model_.body.config_dict(), indent=1, default=str))
        write_json(path / "config.json", config)
        if hasattr(self, "report_"):
            write_json(path / "fit_report.json", self.report_.to_dict())
        return path

    def _strategy_record(self) -> dict[str, str]:
        """The resolved strategy of the fitted model (from the fit report, else from the parameters)."""
        if hasattr(self, "report_") and self.report_.strategy:
            return {k: self.report_.strategy[k] for k in ("name", "align", "mode", "embedder_init")}
        return resolve_strategy(self.strategy, self.align, self.mode).to_dict()


class NotFitted(XmodalError, NotFittedError):
    """``predict``/``score``/``save`` before ``fit``: an :class:`XmodalError` that is also scikit-learn's
    :class:`~sklearn.exceptions.NotFittedError`."""


def _as_array(a: Any) -> Any:
    """``a`` as a NumPy array when it converts cleanly (lists, array-likes); else unchanged, so that
    :func:`~xmodal.data.validation.check_Xy` reports what is wrong with it (sparse, ragged, ``None``)."""
    if a is None or isinstance(a, np.ndarray) or hasattr(a, "tocsr"):
        return a
    try:
        return np.asarray(a)
    except (TypeError, ValueError):
        return a


def _column_to_1d(y: Any) -> Any:
    """A column vector ``(N, 1)`` of targets becomes ``(N,)`` with scikit-learn's DataConversionWarning
    (as its estimators do); every other ``y`` is returned as given."""
    shape = getattr(y, "shape", None)
    if shape is not None and len(shape) == 2 and shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected; y is read as y.ravel()",
                      DataConversionWarning, stacklevel=3)
        return np.asarray(y).ravel()
    return y


class NotLearnedWarning(UserWarning):
    """The fitted model scores no better on its validation rows than always predicting one value."""


@dataclass
class _Job:
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

    def _estimate(self, seconds: float) -> None:
        """One line, at the first stage-3 step of the fit: how long the rest of the fit will take, from that
        step's time × the stage-3 steps of every planned run, plus the first run's measured stage 2 for each
        later run that aligns."""
        if self.estimated or not self.settings.verbose or not self.plan_steps:
            return
        self.estimated = True
        stage2 = (self.first_align_seconds or 0.0) * max(0, self.plan_aligned_runs - 1)
        total = seconds * self.plan_steps + stage2
        shown = f"{total:.0f} s" if total < 120 else f"{total / 60:.1f} min"
        tqdm.write(f"time estimate: the rest of this fit ≈ {shown} ({self.plan_steps} stage-3 optimiser steps in all "
                   f"runs at {seconds:.2f} s, timed on the first one; {stage2:.0f} s of stage 2 in "
                   f"{max(0, self.plan_aligned_runs - 1)} later run(s))")

    def run(
        self, label: str, strategy: Strategy, X: np.ndarray, y: np.ndarray,
        X_val: np.ndarray | None, y_val: np.ndarray | None,
    ) -> _Run:
        """Stage 1, 2 and 3 of ``strategy`` on ``(X, y)``, scored per epoch on ``(X_val, y_val)`` when given."""
        s = self.settings
        t0 = time.perf_counter()
        aligner, mode = strategy.validate()
        kind = get_task_kind(self.task)
        torch.manual_seed(s.seed)
        body = build_body(self.source, pretrained=mode.pretrained_body)
        model = assemble(body, self.task, self.k, X.shape[1:], s.max_tokens,
                         feature_scaling="position" if self.tabular else "channel")
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
        init = init_projection_from_body(model.embedder, body) if strategy.embedder_init == "body" else None
        model.fit_scaling(X_t, y_t if kind.standardise_targets else None)
        y_train = model.encode_targets(y_t) if kind.standardise_targets else y_t
        device = resolve_device(s.device)
        seconds = {"build": time.perf_counter() - t0}

        ckpt_dir = None if self.ckpt is None else (self.ckpt if label == "final" else self.ckpt / label)
        stage3_ckpt = ckpt_dir / "finetune.ckpt.safetensors" if ckpt_dir else None
        align_file = ckpt_dir / "aligned.safetensors" if ckpt_dir else None
        if ckpt_dir:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
        run_key = s.run_key()
        # the resolved strategy, so strategy="orca" and align="otdd" resume each other's runs
        run_key.update(strategy=strategy.name, align=strategy.align, mode=strategy.mode,
                       embedder_init=strategy.embedder_init, run=label)
        # the data's fingerprint guards resumed checkpoints; without a checkpoint folder it is not needed (tuner trials)
        run_key.update(spec=model.spec.to_dict(), n_train=int(X.shape[0]),
                       data=fingerprint(X, y) if ckpt_dir is not None else None)
        run_key = json.loads(json.dumps(run_key))  # tuples → lists, as stored

        align_cfg = AlignConfig(
            epochs=s.align_epochs, lr=s.align_lr, batch_size=s.batch_size, steps_per_epoch=s.align_steps,
            proxy=s.proxy, source_size=s.source_size, precision=s.precision,
            options=dict(s.align_options or {}), curve_per_class=s.align_curve_per_class,
            body_key=body_fingerprint(self.source),
            checkpoint=ckpt_dir / "align.ckpt.safetensors" if ckpt_dir else None, run_key=run_key,
        )
        t0 = time.perf_counter()
        saved_align = _read_aligned(ckpt_dir, run_key) if ckpt_dir else None
        if saved_align is not None:
            align_report = saved_align
            if not (stage3_ckpt is not None and stage3_ckpt.exists()):
                try:
                    model.load_state_dict(load_file(str(align_file)))
                except Exception as exc:
                    raise XmodalError(f"{align_file} is damaged ({str(exc).splitlines()[0]}); delete it and "
                                      f"{align_file.with_suffix('.json').name} to redo stage 2") from exc
        else:
            align_report = aligner.run(model, X_t, y_train, align_cfg, device, s.seed, s.verbose)
            if align_file is not None and strategy.align != "none":  # no stage 2, nothing to keep
                atomic_save_tensors(model.state_dict(), align_file)
                atomic_write_text(ckpt_dir / "aligned.json",
                                  json_dumps({"run_key": run_key, "report": align_report}))
                align_cfg.checkpoint.unlink(missing_ok=True)  # superseded by aligned.*
        seconds["align"] = time.perf_counter() - t0
        if self.first_align_seconds is None and saved_align is None:
            self.first_align_seconds = seconds["align"]

        metric = kind.default_metric
        validate = None
        if X_val is not None:
            Xv_t, yv_t = torch.from_numpy(X_val), torch.from_numpy(y_val)

            def validate() -> dict[str, float]:
                out = model.decode(predict_raw(model, Xv_t, 64, device, s.precision))
                return evaluate_outputs(kind, out, yv_t, [metric])

        callback = None
        if self.on_epoch is not None:
            user = self.on_epoch

            def callback(record: dict) -> None:
                user({**record, "run": label})

        t0 = time.perf_counter()
        # stage 3 draws dropout from its own seed, so it runs the same whether stage 2 ran now or was resumed
        torch.manual_seed(s.seed + 1)
        params = mode.apply(model)
        where = "" if label == "final" else f", {label}"
        history = train_loop(
            model, params, X_t, y_train, kind.loss, CrossModalEstimator._train_config(s), device,
            desc=f"stage 3 (fine-tune {mode.name}{where})", checkpoint=stage3_ckpt, progress=s.verbose, run_key=run_key,
            validate=validate, on_epoch=callback, on_first_step=self._estimate,
        )
        seconds["finetune"] = time.perf_counter() - t0
        for p in model.parameters():
            p.requires_grad_(True)
        score = None
        if validate is not None:
            last = history[-1] if history else {}
            score = float(last[f"val_{metric}"]) if f"val_{metric}" in last else float(validate()[metric])
        baseline = None
        if X_val is not None and kind.name == "classification":  # always predicting the most frequent class
            baseline = float((y_val == np.bincount(y.astype(np.int64)).argmax()).mean())
        return _Run(label, strategy, model, align_report, history, seconds, int(X.shape[0]),
                    0 if X_val is None else int(X_val.shape[0]), score, init, baseline)


def _planned_steps(s: RunConfig, n: int, val_rows: tuple[np.ndarray, np.ndarray] | None, explicit: bool,
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


def _final_label(strategy: Strategy, n_candidates: int) -> str:
    """With a given validation set the runs train on all the data: one is the final run, or one per candidate."""
    return "final" if n_candidates == 1 else f"candidate-{strategy.name}"


def _pick(runs: list[_Run], higher_is_better: bool) -> _Run:
    """The run with the best validation score; ties go to the earlier candidate (the order given)."""
    best = runs[0]
    for r in runs[1:]:
        if (r.score > best.score) if higher_is_better else (r.score < best.score):
            best = r
    return best


def _warn_if_not_learned(est: CrossModalEstimator, run: _Run, metric: Metric) -> None:
    """Warn when single-label classification ends no better than the majority class on its validation rows."""
    if metric.name != "accuracy" or run.score is None or run.baseline is None:
        return
    majority = run.baseline
    if run.score <= majority + 1e-9:
        msg = (f"the model has not learned: validation accuracy {run.score:.3f} is no better than always predicting "
               f"the most frequent class ({majority:.3f}). Try strategy='auto' (or 'finetune'), a smaller or "
               "larger lr, more epochs, or tuning: `xmodal fit DATA --tune` / xmodal.tune(X, y)")
        est.report_.validation["warning"] = msg
        warnings.warn(msg, NotLearnedWarning, stacklevel=3)


def encode_class_labels(y: Any, task: str = "auto") -> tuple[Any, np.ndarray | None]:
    """Single-label classification targets ``(N,)`` in any label space → ``(indices 0..K-1, classes)``.

    Text labels (``"cat"``, ``"dog"``), and whole-number labels that are not exactly ``0..K-1``
    (``{1, 2}``, ``{-1, 1}``, ``{3, 7, 9}``), are mapped to indices in sorted order, as scikit-learn's
    classifiers do; ``classes`` (the estimator's ``classes_``) maps predictions back. Labels already
    ``0..K-1``, and every other kind of target, are returned unchanged with ``classes=None``. Only
    ``task`` ``"auto"`` (where the labels look like classes) and ``"classification"`` are encoded.
    """
    if task not in ("auto", "classification"):
        return y, None
    try:
        ya = np.asarray(y)
    except Exception:
        return y, None  # check_Xy reports unreadable targets
    if ya.ndim != 1 or ya.size == 0:
        return y, None
    if ya.dtype.kind in "US" or (ya.dtype.kind == "O" and all(isinstance(v, str) for v in ya)):
        classes, idx = np.unique(ya.astype(str), return_inverse=True)
        return idx.astype(np.int64), classes
    if ya.dtype.kind not in "iuf" or not np.isfinite(ya).all():
        return y, None
    if task == "auto":
        with warnings.catch_warnings():  # check_Xy makes the same guess and warns once
            warnings.simplefilter("ignore", UserWarning)
            guess = infer_task_kind(ya, ())
        if guess != "classification":
            return y, None
    if task == "classification" and not np.all(np.mod(ya, 1) == 0):
        return y, None  # check_Xy explains why fractional labels are refused
    classes, idx = np.unique(ya, return_inverse=True)
    if classes[0] == 0 and classes[-1] == len(classes) - 1:
        return y, None  # already 0..K-1
    return idx.astype(np.int64), classes


def body_fingerprint(source: BodySource) -> str:
    """Identifies a body's weights for caches: name, location, and size + mtime of its weight files."""
    parts = [source.name, str(source.location), json.dumps(source.config, sort_keys=True)]
    if source.location and Path(source.location).is_dir():
        for f in sorted(Path(source.location).glob("*.safetensors")) + sorted(Path(source.location).glob("*.bin")):
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{int(st.st_mtime)}")
    return "|".join(parts)


def load(path: str | Path, device: str | None = None) -> CrossModalEstimator:
    """Load a folder written by :meth:`CrossModalEstimator.save` (no pickle; no pretrained download)."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise XmodalError(f"{path} holds no xmodal model (config.json missing); pass the folder given to save()")
    try:
        config = json.loads(cfg_file.read_text())
        body_cfg = json.loads((path / "body_config.json").read_text())
        state = load_file(str(path / "model.safetensors"))
    except Exception as exc:
        raise XmodalError(f"model folder {path} is damaged ({exc}); save the model again") from exc
    if not isinstance(config, dict) or config.get("format_version") != _FORMAT_VERSION:
        found = config.get("format_version") if isinstance(config, dict) else None
        raise XmodalError(f"model folder {path} has format {found}, expected {_FORMAT_VERSION}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise XmodalError(f"model folder {path} holds non-finite weights (e.g. {bad[0]}): the run that saved it "
                          "diverged; refit it (a smaller lr)")
    try:
        est = CrossModalEstimator(**config["params"])
        if device is not None:
            est.device = device
        est.config()
        body = body_from_config(config["body_family"], body_cfg)
        spec = ModelSpec.from_dict(config["spec"])
        model = CrossModalModel(spec, body)
        model.load_state_dict(state)
        est.task_ = str(config["task"])
        est.n_outputs_ = int(config["n_outputs"])
        est.y_ndim_ = int(config["y_ndim"])
        classes = config.get("classes")
    except XmodalError as exc:
        raise XmodalError(f"model folder {path} does not load: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise XmodalError(f"model folder {path} is inconsistent: its config.json does not match its weights "
                          f"({type(exc).__name__}: {first[:300]}); save the model again") from None
    if spec.num_outputs != est.n_outputs_:
        raise XmodalError(f"model folder {path} is inconsistent: config.json says {est.n_outputs_} outputs but the "
                          f"head has {spec.num_outputs}; save the model again")
    if classes is not None and len(classes) != est.n_outputs_:
        raise XmodalError(f"model folder {path} is inconsistent: config.json lists {len(classes)} classes for "
                          f"{est.n_outputs_} outputs; save the model again")
    est.model_ = model
    if classes is not None:
        est.classes_ = np.asarray(classes)
    else:  # folders saved before labels were recorded: classification labels were 0..K-1
        est.classes_ = np.arange(est.n_outputs_) if est.task_ == "classification" else None
    est.body_source_ = BodySource(config["body_name"], config["body_family"])
    saved = config.get("strategy")  # absent in folders saved before strategies were recorded
    est.strategy_ = saved["name"] if isinstance(saved, dict) and "name" in saved else est._strategy_record()["name"]
    return est
