"""Task kinds: what a target looks like, which loss trains it and which metric scores it.

Each kind is a small class in a registry (no string ``if/elif`` chains elsewhere). A kind knows

* how to validate and canonicalise targets ``y`` for inputs of spatial shape ``S``,
* whether its predictor is *pooled* (one output vector per sample) or *dense*
  (one output vector per input position),
* the training loss on raw model outputs, and how raw outputs become predictions.

Shapes used throughout (``N`` samples, ``K`` outputs, ``S`` the input's spatial shape):

==========================  =====================  ==========================  ==========
kind                        ``y`` (canonical)      raw model output            metric
==========================  =====================  ==========================  ==========
``classification``          ``(N,)`` int64         ``(N, K)`` logits           accuracy
``multilabel``              ``(N, K)`` float {0,1} ``(N, K)`` logits           map
``regression``              ``(N, K)`` float32     ``(N, K)``                  mse
``dense-classification``    ``(N, *S)`` int64      ``(N, K, *S)`` logits       accuracy
``dense-regression``        ``(N, K, *S)`` float32 ``(N, K, *S)``              rel_l2
==========================  =====================  ==========================  ==========
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:  # torch loads on first use of a loss or a prediction, so reading data stays light
    import torch

from xmodal.errors import XmodalError
from xmodal.registry import Registry

__all__ = ["TaskKind", "TASK_KINDS", "get_task_kind", "infer_task_kind", "LABELS_KIND"]


class TaskKind:
    """Base class of a task kind. Subclasses are registered in :data:`TASK_KINDS`."""

    name: ClassVar[str]
    dense: ClassVar[bool] = False
    default_metric: ClassVar[str]
    #: the metric of ``score`` (scikit-learn's convention: higher is better; accuracy for classifiers, R² for
    #: regressors); ``default_metric`` stays the task's reported metric (MSE, relative L2, …)
    score_metric: ClassVar[str]
    #: Whether outputs have a class axis the user reads as probabilities.
    probabilistic: ClassVar[bool] = False
    #: Whether that axis holds K mutually exclusive classes (softmax), so targets are labels ``0..K-1``.
    exclusive_classes: ClassVar[bool] = False
    #: Whether each sample has one class label: labels are stratified on, encoded from text, and used as
    #: they are by stage 2 (other kinds get k-means pseudo-labels).
    class_labels: ClassVar[bool] = False
    #: scikit-learn's estimator type for this kind (``"classifier"``, ``"regressor"``; ``None``: neither).
    estimator_type: ClassVar[str | None] = None
    #: Whether targets are standardised before training (regression kinds).
    standardise_targets: ClassVar[bool] = False

    def check_targets(self, y: np.ndarray, spatial: tuple[int, ...], min_classes: int = 2) -> tuple[np.ndarray, int]:
        """Validate ``y`` and return ``(canonical y, number of outputs K)``.

        ``min_classes`` is the number of distinct classes classification targets need: 2 to
        train on, 1 to score a test split.

        Raises :class:`XmodalError` naming the problem and its fix.
        """
        raise NotImplementedError

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean training loss of raw outputs ``out`` against canonical targets ``y``."""
        raise NotImplementedError

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        """Predictions (the same layout as canonical ``y``) from raw outputs."""
        return out

    def scores(self, out: torch.Tensor) -> torch.Tensor:
        """Class probabilities / scores from raw outputs (identity for regression)."""
        return out


TASK_KINDS: Registry[TaskKind] = Registry("task", hint=" (or 'auto' to infer it from y)")


def _register(cls: type[TaskKind]) -> type[TaskKind]:
    TASK_KINDS.add(cls.name, cls())
    return cls


def get_task_kind(name: str) -> TaskKind:
    """The registered task kind called ``name`` (see :data:`TASK_KINDS`)."""
    return TASK_KINDS[name]


def _up(out: torch.Tensor) -> torch.Tensor:
    """Half-precision outputs (autocast) in float32 for losses and scores; float32/float64 unchanged."""
    import torch

    return out.float() if out.dtype in (torch.float16, torch.bfloat16) else out


def _finite(y: np.ndarray) -> None:
    if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
        bad = int((~np.isfinite(y)).sum())
        raise XmodalError(
            f"y contains {bad} NaN/Inf value(s); drop those samples or impute the targets before fitting"
        )


def _integer_labels(y: np.ndarray, what: str) -> np.ndarray:
    if y.dtype == bool:
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        _finite(y)
        if np.all(np.equal(np.mod(y, 1), 0)):
            return y.astype(np.int64)
    raise XmodalError(
        f"Unknown label type: continuous. {what} must be integer class indices 0..K-1, got dtype {y.dtype} with "
        "non-integer values; encode labels with sklearn.preprocessing.LabelEncoder, or use task='regression'"
    )


def _check_class_range(y: np.ndarray, what: str, min_classes: int = 2) -> int:
    if y.min() < 0:
        raise XmodalError(
            f"{what} has negative label {int(y.min())}; labels must be 0..K-1 "
            "(encode them with sklearn.preprocessing.LabelEncoder)"
        )
    k = int(y.max()) + 1
    present = np.unique(y)
    if present.size < min_classes:
        raise XmodalError(
            f"{what} has one class ({int(present[0])}); a classifier needs at least two classes"
        )
    return k


class _Softmax(TaskKind):
    """Outputs with a class axis 1 of mutually exclusive classes: cross-entropy, argmax, softmax."""

    probabilistic = True
    exclusive_classes = True

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        return F.cross_entropy(_up(out), y)

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        return out.argmax(dim=1)

    def scores(self, out: torch.Tensor) -> torch.Tensor:
        return _up(out).softmax(dim=1)


class _MeanSquared(TaskKind):
    """Real-valued outputs trained with mean squared error on standardised targets."""

    standardise_targets = True

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        return F.mse_loss(_up(out), y)


@_register
class Classification(_Softmax):
    """Multi-class: one label in ``0..K-1`` per sample; softmax cross-entropy."""

    name = "classification"
    default_metric = "accuracy"
    score_metric = "accuracy"
    class_labels = True
    estimator_type = "classifier"

    def check_targets(self, y: np.ndarray, spatial: tuple[int, ...], min_classes: int = 2) -> tuple[np.ndarray, int]:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise XmodalError(
                f"classification targets must have shape (N,), got {y.shape}; "
                "for several labels per sample use task='multilabel'"
            )
        y = _integer_labels(y, "y")
        return y, _check_class_range(y, "y", min_classes)



@_register
class MultiLabel(TaskKind):
    """Multi-label: ``K`` independent binary labels per sample; sigmoid BCE."""

    name = "multilabel"
    default_metric = "map"
    score_metric = "map"
    probabilistic = True
    estimator_type = "classifier"

    def check_targets(self, y: np.ndarray, spatial: tuple[int, ...], min_classes: int = 2) -> tuple[np.ndarray, int]:
        y = np.asarray(y)
        if y.ndim != 2:
            raise XmodalError(f"multilabel targets must have shape (N, K) with 0/1 entries, got {y.shape}")
        _finite(y)
        if not np.isin(y, (0, 1)).all():
            raise XmodalError("multilabel targets must contain only 0 and 1; binarise them first")
        if y.shape[1] < 1:
            raise XmodalError("multilabel targets have zero label columns")
        return y.astype(np.float32), int(y.shape[1])

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        return F.binary_cross_entropy_with_logits(_up(out), y)

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        import torch

        return (out > 0).to(torch.float32)

    def scores(self, out: torch.Tensor) -> torch.Tensor:
        return _up(out).sigmoid()


@_register
class Regression(_MeanSquared):
    """Scalar or vector regression per sample; mean squared error on standardised targets."""

    name = "regression"
    default_metric = "mse"
    score_metric = "r2"
    estimator_type = "regressor"

    def check_targets(self, y: np.ndarray, spatial: tuple[int, ...], min_classes: int = 2) -> tuple[np.ndarray, int]:
        y = np.asarray(y)
        if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise XmodalError(f"regression targets must be numeric, got dtype {y.dtype}")
        y = y.astype(np.float32)
        _finite(y)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2:
            raise XmodalError(
                f"regression targets must have shape (N,) or (N, K), got {y.shape}; "
                "targets with the input's spatial shape are task='dense-regression'"
            )
        return y, int(y.shape[1])



def _spatial_mismatch(y_spatial: tuple[int, ...], spatial: tuple[int, ...]) -> XmodalError:
    return XmodalError(
        f"dense targets have spatial shape {y_spatial} but the inputs have {spatial}; "
        "dense prediction is made at the input's resolution, so resample the targets (or inputs) to match"
    )


@_register
class DenseClassification(_Softmax):
    """A class label at every input position (segmentation); per-position cross-entropy."""

    name = "dense-classification"
    dense = True
    default_metric = "accuracy"
    score_metric = "accuracy"

    def check_targets(self, y: np.ndarray, spatial: tuple[int, ...], min_classes: int = 2) -> tuple[np.ndarray, int]:
        y = np.asarray(y)
        if tuple(y.shape[1:]) != tuple(spatial):
            raise _spatial_mismatch(tuple(y.shape[1:]), spatial)
        y = _integer_labels(y, "dense targets")
        return y, _check_class_range(y, "dense targets", min_classes)



@_register
class DenseRegression(_MeanSquared):
    """Real values at every input position (e.g. a PDE solution field); MSE on standardised targets."""

    name = "dense-regression"
    dense = True
    default_metric = "rel_l2"
    score_metric = "r2"

    def check_targets(self, y: np.ndarray, spatial: tuple[int, ...], min_classes: int = 2) -> tuple[np.ndarray, int]:
        y = np.asarray(y)
        if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise XmodalError(f"dense regression targets must be numeric, got dtype {y.dtype}")
        y = y.astype(np.float32)
        _finite(y)
        if tuple(y.shape[1:]) == tuple(spatial):
            y = y[:, None]
        elif tuple(y.shape[2:]) != tuple(spatial):
            raise _spatial_mismatch(tuple(y.shape[1:]), spatial)
        return y, int(y.shape[1])



#: integer-valued targets with at most this many distinct values are taken as classes
MAX_GUESSED_CLASSES = 50
#: more guessed classes than this, or integer-valued targets taken as regression, come with a warning
CLOSE_CALL_CLASSES = 20


def infer_task_kind(y: np.ndarray, spatial: tuple[int, ...]) -> str:
    """Guess the task kind from targets ``y`` and the inputs' spatial shape ``S``.

    * ``y`` whose trailing axes equal ``S`` is dense (integer ``(N, *S)`` → dense-classification,
      otherwise dense-regression).
    * ``(N,)`` targets that are integer-valued (an integer dtype, or floats that are all whole
      numbers) are classification when they have ``K ≤ 50`` distinct values (:data:`MAX_GUESSED_CLASSES`),
      or when they are exactly the codes ``0..K-1`` of more classes with ``K ≤ N/2`` (two samples per
      class on average). Other integer-valued targets — counts, ages, scores with many distinct values,
      such as scikit-learn's diabetes target (214 values in 442 rows) — are regression. Either guess
      comes with a :class:`UserWarning` naming the other ``task=`` when it is a close call (more than
      :data:`CLOSE_CALL_CLASSES` classes, or integer-valued targets taken as regression).
    * A 0/1 ``(N, K)`` matrix is multilabel; anything else numeric is regression.

    Pass ``task=`` (``--task``) explicitly where this guess is wrong.
    """
    y = np.asarray(y)
    if y.size == 0:
        raise XmodalError("y is empty; provide at least two labelled samples")
    integer = y.dtype == bool or np.issubdtype(y.dtype, np.integer)
    nd = len(spatial)
    if nd > 0 and y.ndim > 1 and tuple(y.shape[y.ndim - nd :]) == tuple(spatial) and y.ndim <= nd + 2:
        return "dense-classification" if (integer and y.ndim == nd + 1) else "dense-regression"
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        if not integer and np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all():
            integer = bool(np.all(np.equal(np.mod(y, 1), 0)))
        if not integer:
            return "regression"
        import warnings

        values = np.unique(y)
        k, n = values.size, y.shape[0]
        codes = values[0] == 0 and values[-1] == k - 1
        if k <= MAX_GUESSED_CLASSES or (codes and k <= n // 2):
            if k > CLOSE_CALL_CLASSES:
                warnings.warn(
                    f"y holds {k} distinct whole numbers in {n} samples, taken as {k} classes; if they are "
                    "quantities (counts, scores), pass task='regression' (--task regression)", UserWarning,
                    stacklevel=3)
            return "classification"
        warnings.warn(
            f"y holds {k} distinct whole numbers in {n} samples ({values[0]:g} … {values[-1]:g}), taken as a "
            "regression target; if they are class labels, pass task='classification' (--task classification)",
            UserWarning, stacklevel=3)
        return "regression"
    if y.ndim == 2 and np.isin(y, (0, 1)).all():
        return "multilabel"
    return "regression"


#: the kind that one class label per sample (text labels, encoded labels) is read as
LABELS_KIND: str = Classification.name
