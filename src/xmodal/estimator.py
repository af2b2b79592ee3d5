"""The scikit-learn-style estimator: ``fit`` → ``predict`` / ``predict_proba`` / ``score`` → ``save`` / ``load``.

>>> from xmodal import CrossModalEstimator
>>> est = CrossModalEstimator(body="minilm-l6", epochs=10).fit(X_train, y_train)   # doctest: +SKIP
>>> est.score(X_test, y_test)                                                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from xmodal.align import AlignConfig
from xmodal.data.tasks import get_task_kind, infer_task_kind
from xmodal.data.validation import check_same_layout, check_X, check_Xy
from xmodal.errors import XmodalError
from xmodal.evaluate import evaluate as evaluate_outputs
from xmodal.model.assembly import CrossModalModel, ModelSpec, assemble
from xmodal.model.bodies import FAMILIES, BodySource, body_from_config, build_body, resolve_body
from xmodal.model.embedder_init import init_projection_from_body
from xmodal.strategies import DEFAULT_MODE, Strategy, resolve_strategy
from xmodal.train.checkpoint import atomic_save_tensors
from xmodal.train.config import TrainConfig
from xmodal.train.loop import predict_raw, resolve_device, train_loop

__all__ = ["CrossModalEstimator", "load", "encode_class_labels"]

_FORMAT_VERSION = 1


@dataclass
class FitReport:
    """What ``fit`` did: the strategy, stage times in seconds and the per-epoch histories.

    ``strategy`` holds the resolved ``name``, ``align``, ``mode`` and ``embedder_init`` and, for
    ``embedder_init="body"``, ``init``: the report of
    :func:`~xmodal.model.embedder_init.init_projection_from_body` (method, source kernel shape, …).
    """

    strategy: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    align: dict[str, Any] = field(default_factory=dict)
    finetune: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "seconds": self.seconds, "align": self.align, "finetune": self.finetune}


class CrossModalEstimator:
    """Adapt a pretrained body to a task in another modality (ORCA's align-then-refine workflow).

    Inputs ``X``: ``(N, F)`` tabular rows, ``(N, C, L)`` series, ``(N, C, H, W)`` images or
    ``(N, C, D, H, W)`` volumes (``spatial_dims`` reads channel-less arrays, e.g. ``(N, H, W)``).
    Targets ``y`` per task: ``(N,)`` class indices, ``(N, K)`` 0/1 labels, ``(N,)``/``(N, K)`` real
    values, or dense ``(N, *S)`` / ``(N, K, *S)`` at the input's spatial shape ``S``.

    Args:
        task: ``"auto"`` (inferred from ``y``), ``"classification"``, ``"multilabel"``,
            ``"regression"``, ``"dense-classification"`` or ``"dense-regression"``.
        body: a named body (``xmodal bodies`` lists them), a local model folder or a hub id.
        strategy: a transfer strategy of the papers by name (``"finetune"``, ``"finetune++"``,
            ``"frozen"``, ``"fpt"``, ``"scratch"``, ``"warmup"``, ``"orca"``, ``"orca-mmd"``,
            ``"orca-euclidean"``, ``"orca-transrate"``, ``"mona"``; see :mod:`xmodal.strategies`). It
            sets the embedder's initialisation, ``align`` and ``mode``; leave those two at their
            defaults (or equal to the strategy's), else ``fit`` raises :class:`XmodalError`. ``None``:
            ``align`` and ``mode`` as given, with a randomly initialised embedder.
        align: stage-2 aligner (``"none"``, ``"warmup"``, ``"otdd"``, …; see :data:`xmodal.align.ALIGNERS`).
            ``None`` (default): ``"otdd"`` — ORCA's align-then-refine, which beat plain fine-tuning on
            most built-in tasks — or ``"none"`` with ``mode="scratch"``. ``align="none"`` (or
            ``strategy="finetune"``) skips stage 2.
        mode: stage-3 mode: ``"full"``, ``"fpt"``, ``"frozen"`` or ``"scratch"``.
        max_tokens: token budget of the embedder (default: the body's maximum positions); fewer
            tokens run faster at coarser patches.
        spatial_dims: number of spatial axes when ``X`` has no channel axis.
        epochs, batch_size, lr, weight_decay, optimizer, warmup_ratio, accumulate,
        clip_grad_norm, seed, device, precision: stage-3 settings (:class:`xmodal.train.TrainConfig`).
        align_epochs, align_lr: stage-2 epochs and learning rate (``None``: the strategy's default —
            warm-up 5 epochs at 1e-3, distance objectives 60 epochs at 1e-3).
        proxy: source proxy for distance objectives (default: the body's own, ``wnut16``/``mnist``).
        source_size: proxy samples embedded once and cached (default 5000, as in ORCA).
        align_steps: optimiser steps per stage-2 epoch for distance objectives.
        align_options: extra objective options, e.g. ``{"inner": "gaussian"}`` for OTDD.
        align_curve_per_class: the per-epoch stage-2 distance (curve, early stop) is taken on a fixed
            subset with at most this many target samples per class (default 100; ``None``: all).
        verbose: progress bars.

    After ``fit`` (or :func:`load`), ``strategy_`` names the strategy that ran (``"custom"`` for an
    ``(align, mode)`` pair no registered strategy uses) and ``report_.strategy`` details it.
    """

    def __init__(
        self,
        task: str = "auto",
        body: str = "minilm-l6",
        strategy: str | None = None,
        align: str | None = None,
        mode: str = DEFAULT_MODE,
        max_tokens: int | None = None,
        spatial_dims: int | None = None,
        epochs: int = 20,
        batch_size: int = 16,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        optimizer: str = "adamw",
        warmup_ratio: float = 0.1,
        accumulate: int = 1,
        clip_grad_norm: float = 1.0,
        align_epochs: int | None = None,
        align_lr: float | None = None,
        proxy: str | None = None,
        source_size: int = 5000,
        align_steps: int = 4,
        align_options: dict | None = None,
        align_curve_per_class: int | None = 100,
        seed: int = 0,
        device: str = "auto",
        precision: str = "auto",
        verbose: bool = True,
    ) -> None:
        self.task = task
        self.body = body
        self.strategy = strategy
        self.align = align
        self.mode = mode
        self.max_tokens = max_tokens
        self.spatial_dims = spatial_dims
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.warmup_ratio = warmup_ratio
        self.accumulate = accumulate
        self.clip_grad_norm = clip_grad_norm
        self.align_epochs = align_epochs
        self.align_lr = align_lr
        self.proxy = proxy
        self.source_size = source_size
        self.align_steps = align_steps
        self.align_options = align_options
        self.align_curve_per_class = align_curve_per_class
        self.seed = seed
        self.device = device
        self.precision = precision
        self.verbose = verbose

    # ------------------------------------------------------------------ configuration
    _PARAMS = (
        "task", "body", "strategy", "align", "mode", "max_tokens", "spatial_dims", "epochs", "batch_size", "lr",
        "weight_decay", "optimizer", "warmup_ratio", "accumulate", "clip_grad_norm", "align_epochs",
        "align_lr", "proxy", "source_size", "align_steps", "align_options", "align_curve_per_class", "seed",
        "device", "precision", "verbose",
    )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments (scikit-learn convention)."""
        return {k: getattr(self, k) for k in self._PARAMS}

    def set_params(self, **params: Any) -> CrossModalEstimator:
        """Change constructor arguments; unknown names raise :class:`XmodalError`."""
        for k, v in params.items():
            if k not in self._PARAMS:
                raise XmodalError(f"unknown parameter {k!r}; known: {list(self._PARAMS)}")
            setattr(self, k, v)
        return self

    def resolve_strategy(self) -> Strategy:
        """The :class:`~xmodal.strategies.Strategy` that ``fit`` runs for these ``strategy``/``align``/``mode``.

        With ``strategy=None`` it is the registered strategy matching ``(align, mode)`` (random
        embedder init), or one named ``"custom"``.

        Raises:
            XmodalError: unknown strategy, ``align``/``mode`` contradicting it, or an aligner or mode
                that is not registered.
        """
        strategy = resolve_strategy(self.strategy, self.align, self.mode)
        strategy.validate()
        return strategy

    def _train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, accumulate=self.accumulate, lr=self.lr,
            weight_decay=self.weight_decay, optimizer=self.optimizer, warmup_ratio=self.warmup_ratio,
            clip_grad_norm=self.clip_grad_norm, seed=self.seed, device=self.device, precision=self.precision,
        )

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any, checkpoint_dir: str | Path | None = None) -> CrossModalEstimator:
        """Build the model (stage 1), align (stage 2) and fine-tune (stage 3) on ``(X, y)``.

        Every input check happens before any weights are loaded. With ``checkpoint_dir`` the
        aligned embedder and every fine-tuning epoch are saved there, and a rerun with the same
        arguments resumes where the last one stopped (losing at most the current epoch).
        """
        t_start = time.perf_counter()
        cfg = self._train_config()
        align_cfg = AlignConfig(
            epochs=self.align_epochs, lr=self.align_lr, batch_size=self.batch_size, steps_per_epoch=self.align_steps,
            proxy=self.proxy, source_size=self.source_size, precision=self.precision,
            options=dict(self.align_options or {}), curve_per_class=self.align_curve_per_class,
        )
        strategy = resolve_strategy(self.strategy, self.align, self.mode)
        aligner, mode = strategy.validate()
        aligner.check_options(align_cfg.options)
        tabular = self.spatial_dims is None and np.ndim(X) == 2
        y, classes = encode_class_labels(y, self.task)
        Xc, yc, task, k = check_Xy(X, y, self.task if classes is None else "classification", self.spatial_dims)
        kind = get_task_kind(task)
        if kind.probabilistic and kind.name != "multilabel":
            missing = sorted(set(range(k)) - set(np.unique(yc).tolist()))
            if missing:
                raise XmodalError(
                    f"training labels must be 0..K-1 with every class present, but classes {missing[:10]} "
                    f"have no sample (labels seen: {np.unique(yc).tolist()[:10]}…); re-encode them, e.g. "
                    "y = sklearn.preprocessing.LabelEncoder().fit_transform(y)"
                )
        if self.max_tokens is not None and int(self.max_tokens) < 1:
            raise XmodalError(f"max_tokens must be ≥ 1, got {self.max_tokens}")
        source = resolve_body(self.body)
        align_cfg.body_key = body_fingerprint(source)
        if kind.dense and not FAMILIES[source.family].keeps_tokens:
            raise XmodalError(
                f"body {source.name!r} ({source.family}) merges tokens, so it cannot make dense predictions; "
                "use a language body (e.g. 'minilm-l6') or a ViT body for dense tasks"
            )
        self.task_ = task
        self.n_outputs_ = k
        self.y_ndim_ = int(np.ndim(y))
        self.classes_ = classes if classes is not None else (np.arange(k) if task == "classification" else None)
        device = resolve_device(cfg.device)
        report = FitReport(strategy=strategy.to_dict())
        self.strategy_ = strategy.name

        torch.manual_seed(self.seed)
        body = build_body(source, pretrained=mode.pretrained_body)
        model = assemble(
            body, task, k, Xc.shape[1:], self.max_tokens,
            feature_scaling="position" if tabular else "channel",
        )
        X_t = torch.from_numpy(Xc)
        y_t = torch.from_numpy(yc)
        if strategy.embedder_init == "body":  # after assembly, before stage 2
            report.strategy["init"] = init_projection_from_body(model.embedder, body)
        model.fit_scaling(X_t, y_t if kind.standardise_targets else None)
        y_train = model.encode_targets(y_t) if kind.standardise_targets else y_t
        self.model_ = model
        self.body_source_ = source
        report.seconds["build"] = time.perf_counter() - t_start

        ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        stage3_ckpt = ckpt_dir / "finetune.ckpt.safetensors" if ckpt_dir else None
        align_file = ckpt_dir / "aligned.safetensors" if ckpt_dir else None
        if ckpt_dir:
            ckpt_dir.mkdir(parents=True, exist_ok=True)

        run_key = {k: v for k, v in self.get_params().items() if k not in ("verbose", "device")}
        # the resolved strategy, so strategy="orca" and align="otdd" resume each other's runs
        run_key.update(
            strategy=strategy.name, align=strategy.align, mode=strategy.mode, embedder_init=strategy.embedder_init
        )
        run_key.update(spec=model.spec.to_dict(), n_train=int(Xc.shape[0]))
        run_key = json.loads(json.dumps(run_key))  # tuples → lists, as stored
        t0 = time.perf_counter()
        saved_align = self._read_aligned(ckpt_dir, run_key) if ckpt_dir else None
        if saved_align is not None:
            report.align = saved_align
            if not (stage3_ckpt is not None and stage3_ckpt.exists()):
                model.load_state_dict(load_file(str(align_file)))
        else:
            report.align = aligner.run(model, X_t, y_train, align_cfg, device, self.seed, self.verbose)
            if align_file is not None:
                atomic_save_tensors(model.state_dict(), align_file)
                (ckpt_dir / "aligned.json").write_text(json.dumps({"run_key": run_key, "report": report.align}))
        report.seconds["align"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        params = mode.apply(model)
        report.finetune = train_loop(
            model, params, X_t, y_train, kind.loss, cfg, device,
            desc=f"fine-tune ({mode.name})", checkpoint=stage3_ckpt, progress=self.verbose, run_key=run_key,
        )
        report.seconds["finetune"] = time.perf_counter() - t0
        for p in model.parameters():
            p.requires_grad_(True)
        self.report_ = report
        return self

    @staticmethod
    def _read_aligned(ckpt_dir: Path, run_key: dict) -> dict[str, Any] | None:
        """The saved stage-2 report of this run, or ``None`` when stage 2 has not been saved yet."""
        meta = ckpt_dir / "aligned.json"
        if not (meta.exists() and (ckpt_dir / "aligned.safetensors").exists()):
            return None
        saved = json.loads(meta.read_text())
        if saved.get("run_key") != run_key:
            old = saved.get("run_key") or {}
            diff = sorted(k for k in set(old) | set(run_key) if old.get(k) != run_key.get(k))
            raise XmodalError(
                f"checkpoint folder {ckpt_dir} holds a run with other settings (differs in {diff}); "
                "resume with the same settings, or use another checkpoint folder"
            )
        return saved["report"]

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise XmodalError("this estimator is not fitted yet; call fit(X, y) or xmodal.load(folder) first")

    def _raw(self, X: Any) -> torch.Tensor:
        self._check_fitted()
        Xc = check_X(X, self.spatial_dims)
        check_same_layout(Xc, self.model_.spec.sample_shape)
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
        """Predictions in the layout ``y`` was given in: labels ``(N,)``, 0/1 ``(N, K)``, values, or maps."""
        out = self._raw(X)
        pred = self.model_.kind.predict(self.model_.decode(out))
        if getattr(self, "classes_", None) is not None:
            return self.classes_[pred.numpy()]
        return self._user_layout(pred.numpy())

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
        Xc, yc, _, _ = check_Xy(X, y, self.task_, self.spatial_dims, min_classes=1)
        check_same_layout(Xc, self.model_.spec.sample_shape)
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

    def score(self, X: Any, y: Any, metric: str | None = None) -> float:
        """The task's metric (or ``metric``) on ``(X, y)``: accuracy, mAP, MSE or relative L2 by default."""
        self._check_fitted()
        name = metric or self.model_.kind.default_metric
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
        atomic_save_tensors(self.model_.state_dict(), path / "model.safetensors")
        (path / "body_config.json").write_text(json.dumps(self.model_.body.config_dict(), indent=1, default=str))
        (path / "config.json").write_text(json.dumps(config, indent=1))
        if hasattr(self, "report_"):
            (path / "fit_report.json").write_text(json.dumps(self.report_.to_dict(), indent=1))
        return path

    def _strategy_record(self) -> dict[str, str]:
        """The resolved strategy of the fitted model (from the fit report, else from the parameters)."""
        if hasattr(self, "report_") and self.report_.strategy:
            return {k: self.report_.strategy[k] for k in ("name", "align", "mode", "embedder_init")}
        return resolve_strategy(self.strategy, self.align, self.mode).to_dict()


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
    if task == "auto" and infer_task_kind(ya, ()) != "classification":
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
    if config.get("format_version") != _FORMAT_VERSION:
        raise XmodalError(f"model folder {path} has format {config.get('format_version')}, expected {_FORMAT_VERSION}")
    est = CrossModalEstimator(**config["params"])
    if device is not None:
        est.device = device
    body = body_from_config(config["body_family"], body_cfg)
    spec = ModelSpec.from_dict(config["spec"])
    model = CrossModalModel(spec, body)
    model.load_state_dict(state)
    est.model_ = model
    est.task_ = config["task"]
    est.n_outputs_ = int(config["n_outputs"])
    est.y_ndim_ = int(config["y_ndim"])
    if config.get("classes") is not None:
        est.classes_ = np.asarray(config["classes"])
    else:  # folders saved before labels were recorded: classification labels were 0..K-1
        est.classes_ = np.arange(est.n_outputs_) if est.task_ == "classification" else None
    est.body_source_ = BodySource(config["body_name"], config["body_family"])
    saved = config.get("strategy")  # absent in folders saved before strategies were recorded
    est.strategy_ = saved["name"] if isinstance(saved, dict) and "name" in saved else est._strategy_record()["name"]
    return est
