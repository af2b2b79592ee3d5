"""Evaluation metrics: a registry of small metric objects, and :func:`evaluate` on raw model outputs.

Each metric is an instance of a :class:`Metric` subclass registered in :data:`METRICS` (no string
``if/elif`` chains). A metric knows

* ``name`` and whether ``higher_is_better``,
* what it ``needs``: hard ``"predictions"`` (``TaskKind.predict``, the layout of canonical ``y``) or
  ``"scores"`` (``TaskKind.scores``: class probabilities, or the raw values for regression),
* the task kinds it ``tasks`` applies to (see :func:`metrics_for`),

and is called as ``metric(y_true, values, num_classes=None) -> float``. The formula is in each
metric's docstring. Computation uses :mod:`torchmetrics.functional`; scikit-learn is only the test
oracle.

Shapes follow :mod:`xmodal.tasks` (``N`` samples, ``K`` outputs/classes, ``S`` spatial shape):
classification ``y`` is ``(N,)`` or ``(N, *S)`` integer labels with scores ``(N, K)`` /
``(N, K, *S)``; multilabel ``y`` and scores are ``(N, K)``; regression ``y`` and predictions are
``(N, K)`` or ``(N, K, *S)``.

Classes absent from ``y_true``
------------------------------
The number of classes ``K`` comes from the raw output's class axis (``out.shape[1]``), so a test
split that lacks a class still evaluates. Accuracy and macro-F1 handle that directly (macro-F1, like
scikit-learn's default, averages over the classes that occur in ``y_true`` or the predictions). For
the ranking metrics (``auroc``, ``map``) a class without positives (or, for AUROC, without negatives)
has no defined value; such classes are **left out of the macro average**: the average is over the
classes for which the one-vs-rest problem is defined. If no class qualifies the result is ``nan``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch

from xmodal.errors import XmodalError
from xmodal.registry import Registry
from xmodal.tasks import TASK_KINDS, TaskKind, get_task_kind

__all__ = ["Metric", "METRICS", "SCORE_TIE", "beats", "get_metric", "list_metrics", "metrics_for", "evaluate"]

#: Scores closer than this are a tie: they are stored as float32, so means of the same rows can differ in
#: the 8th digit (three cells 0.9474/0.9298/0.9386 average 2e-8 above a single 0.9386).
SCORE_TIE = 1e-6


def beats(a: float, b: float, higher_is_better: bool, tie: float = SCORE_TIE) -> bool:
    """Whether score ``a`` is better than ``b`` by more than ``tie`` in the metric's direction."""
    return bool(a > b + tie if higher_is_better else a < b - tie)

_CLASSIFICATION = frozenset({"classification", "dense-classification"})
_RANKING = frozenset({"classification", "multilabel"})
_REGRESSION = frozenset({"regression", "dense-regression"})


class Metric:
    """Base class of a metric. Subclasses are registered (as instances) in :data:`METRICS`."""

    name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    needs: ClassVar[Literal["predictions", "scores"]]
    #: Names of the task kinds (:data:`xmodal.tasks.TASK_KINDS`) the metric applies to.
    tasks: ClassVar[frozenset[str]]

    def __call__(self, y_true: torch.Tensor, values: torch.Tensor, num_classes: int | None = None) -> float:
        """The metric of ``values`` (predictions or scores, per :attr:`needs`) against ``y_true``.

        ``num_classes`` is used by the classification metrics that take hard predictions (which do
        not carry ``K``); when omitted it is ``max(label) + 1`` over ``y_true`` and ``values``.
        """
        y_true = torch.as_tensor(y_true).detach().cpu()
        values = torch.as_tensor(values).detach().cpu()
        if y_true.numel() == 0 or values.numel() == 0:
            raise XmodalError(
                f"{self.name}: got no samples (y_true {tuple(y_true.shape)}, values {tuple(values.shape)})"
            )
        with torch.no_grad():
            return float(self.compute(y_true, values, num_classes))

    def compute(self, y_true: torch.Tensor, values: torch.Tensor, num_classes: int | None) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        order = "higher" if self.higher_is_better else "lower"
        return f"<metric {self.name!r}: needs {self.needs}, {order} is better, tasks {sorted(self.tasks)}>"


METRICS: Registry[Metric] = Registry("metric", sort=False)


def _register(cls: type[Metric]) -> type[Metric]:
    METRICS.add(cls.name, cls())
    return cls


def get_metric(name: str) -> Metric:
    """The registered metric called ``name`` (see :data:`METRICS`)."""
    return METRICS[name]


def list_metrics() -> list[str]:
    """Names of all registered metrics, in registration order."""
    return list(METRICS)


def metrics_for(task_name: str) -> list[str]:
    """Names of the metrics that apply to the task kind ``task_name``."""
    get_task_kind(task_name)  # unknown task -> XmodalError listing the kinds
    return [name for name, m in METRICS.items() if task_name in m.tasks]


# --------------------------------------------------------------------------------------------------
# input canonicalisation


def _labels(t: torch.Tensor, what: str) -> torch.Tensor:
    if t.is_floating_point():
        if not bool(torch.all(t == t.round())):
            raise XmodalError(f"{what} must be integer class labels, got non-integer floats")
    elif t.dtype == torch.bool:
        pass
    elif t.is_complex():
        raise XmodalError(f"{what} must be integer class labels, got dtype {t.dtype}")
    return t.long()


def _label_pair(
    name: str, y_true: torch.Tensor, values: torch.Tensor, num_classes: int | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Flattened ``(y, pred, K)`` for metrics on hard class predictions of layout ``(N, *S)``."""
    if y_true.shape != values.shape:
        raise XmodalError(
            f"{name}: predictions have shape {tuple(values.shape)} but y_true has {tuple(y_true.shape)}; "
            "pass class predictions in the layout of y (TaskKind.predict), not logits"
        )
    y = _labels(y_true, f"{name}: y_true").reshape(-1)
    p = _labels(values, f"{name}: predictions").reshape(-1)
    lo = int(torch.minimum(y.min(), p.min()))
    hi = int(torch.maximum(y.max(), p.max()))
    if num_classes is None:
        num_classes = max(hi + 1, 2)
    if lo < 0 or hi >= num_classes:
        raise XmodalError(
            f"{name}: labels must lie in 0..{num_classes - 1} (the model has {num_classes} classes), "
            f"got range {lo}..{hi}"
        )
    return y, p, max(int(num_classes), 2)


def _one_vs_rest(
    name: str, y_true: torch.Tensor, scores: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(targets (M, K) in {0,1}, scores (M, K) float64, multiclass?)`` for ranking metrics.

    Multi-class: ``y (N, *S)`` labels with scores ``(N, K, *S)``; multilabel: both ``(N, K)`` (or
    ``(N, K, *S)``). The class axis 1 is moved last and all other axes are flattened.
    """
    if not scores.is_floating_point():
        raise XmodalError(f"{name}: needs float scores/probabilities, got dtype {scores.dtype}")
    if scores.ndim < 2:
        raise XmodalError(
            f"{name}: scores must have a class axis, shape (N, K, ...), got {tuple(scores.shape)}"
        )
    k = scores.shape[1]
    flat = scores.double().movedim(1, -1).reshape(-1, k)
    rest = scores.shape[:1] + scores.shape[2:]
    if y_true.shape == rest:
        y = _labels(y_true, f"{name}: y_true").reshape(-1)
        if int(y.min()) < 0 or int(y.max()) >= k:
            raise XmodalError(
                f"{name}: labels must lie in 0..{k - 1} (scores have {k} classes), "
                f"got range {int(y.min())}..{int(y.max())}"
            )
        return torch.nn.functional.one_hot(y, k), flat, True
    if y_true.shape == scores.shape:
        y = y_true.movedim(1, -1).reshape(-1, k)
        if not bool(torch.isin(y, torch.tensor([0, 1], dtype=y.dtype)).all()):
            raise XmodalError(f"{name}: multilabel y_true must contain only 0 and 1")
        return y.long(), flat, False
    raise XmodalError(
        f"{name}: scores of shape {tuple(scores.shape)} fit neither multi-class labels of shape "
        f"{tuple(rest)} nor multilabel targets of the same shape; got y_true {tuple(y_true.shape)}"
    )


def _real_pair(name: str, y_true: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if y_true.shape != values.shape:
        raise XmodalError(
            f"{name}: predictions have shape {tuple(values.shape)} but y_true has {tuple(y_true.shape)}"
        )
    return y_true.double(), values.double()


def _macro_binary(fn, targets: torch.Tensor, scores: torch.Tensor, need_negatives: bool) -> float:
    """Mean of ``fn(scores[:, c], targets[:, c])`` over the columns where it is defined."""
    values = []
    for c in range(targets.shape[1]):
        t = targets[:, c]
        pos = int(t.sum())
        if pos == 0 or (need_negatives and pos == t.numel()):
            continue
        values.append(float(fn(scores[:, c], t)))
    return sum(values) / len(values) if values else math.nan


# --------------------------------------------------------------------------------------------------
# metrics: one intermediate class per kind of input, then one small class per metric


class _LabelMetric(Metric):
    """Scores predicted class labels against true ones (classification, dense classification)."""

    needs = "predictions"
    tasks = _CLASSIFICATION


class _TorchmetricsLabels(_LabelMetric):
    """A label metric computed by ``torchmetrics.functional.classification.<function>`` with ``average``."""

    function: ClassVar[str]
    average: ClassVar[str]

    def compute(self, y_true, values, num_classes):
        y, p, k = _label_pair(self.name, y_true, values, num_classes)
        import torchmetrics.functional.classification as tmc  # lazy: torchmetrics is slow to import

        return getattr(tmc, self.function)(p, y, k, average=self.average).item()


class _RankingMetric(Metric):
    """Scores class scores / probabilities one-vs-rest (classification, multilabel)."""

    higher_is_better = True
    needs = "scores"
    tasks = _RANKING


class _RegressionMetric(Metric):
    """Scores real-valued predictions (regression, dense regression); lower is better unless set."""

    higher_is_better = False
    needs = "predictions"
    tasks = _REGRESSION


class _TorchmetricsError(_RegressionMetric):
    """An element-wise error computed by ``torchmetrics.functional.<function>(preds, target)``."""

    function: ClassVar[str]

    def compute(self, y_true, values, num_classes):
        y, p = _real_pair(self.name, y_true, values)
        import torchmetrics.functional

        return getattr(torchmetrics.functional, self.function)(p, y).item()


@_register
class Accuracy(_TorchmetricsLabels):
    """Fraction of correct class predictions, over all samples (and positions, for dense tasks).

    ``accuracy = (1/M) Σ_j [ŷ_j = y_j]`` with ``M = N·|S|`` after flattening ``(N, *S)``.
    """

    name = "accuracy"
    higher_is_better = True
    function = "multiclass_accuracy"
    average = "micro"  # torchmetrics' default, "macro", is per-class recall, not accuracy


@_register
class Error(_LabelMetric):
    """0-1 error: ``error = 1 − accuracy = (1/M) Σ_j [ŷ_j ≠ y_j]``."""

    name = "error"
    higher_is_better = False

    def compute(self, y_true, values, num_classes):
        return 1.0 - METRICS["accuracy"].compute(y_true, values, num_classes)


@_register
class MacroF1(_TorchmetricsLabels):
    """Unweighted mean over classes of ``F1_c = 2·TP_c / (2·TP_c + FP_c + FN_c)``.

    Classes that occur neither in ``y_true`` nor in the predictions are left out of the mean (as
    scikit-learn's ``f1_score(average="macro")`` does with its default ``labels``).
    """

    name = "macro_f1"
    higher_is_better = True
    function = "multiclass_f1_score"
    average = "macro"


@_register
class AUROC(_RankingMetric):
    """Area under the ROC curve, one-vs-rest, macro-averaged over classes (labels for multilabel).

    ``auroc = (1/|C|) Σ_{c∈C} AUC(s_{·c}, [y = c])`` where ``AUC`` is the trapezoidal area under the
    true-positive-rate vs false-positive-rate curve (ties handled as in scikit-learn) and ``C`` are
    the classes with both positives and negatives in ``y_true``. Binary classification (``K = 2``)
    uses the positive-class column: ``AUC(s_{·1}, y)``.
    """

    name = "auroc"

    def compute(self, y_true, values, num_classes):
        targets, scores, multiclass = _one_vs_rest(self.name, y_true, values)
        if multiclass and scores.shape[1] == 2:
            targets, scores = targets[:, 1:], scores[:, 1:]
        from torchmetrics.functional.classification import binary_auroc

        return _macro_binary(binary_auroc, targets, scores, need_negatives=True)


@_register
class MeanAveragePrecision(_RankingMetric):
    """Mean average precision: macro mean over labels (multilabel) or classes (one-vs-rest).

    ``AP_c = Σ_n (R_n − R_{n−1}) · P_n`` over the decreasing score thresholds of column ``c``
    (scikit-learn's ``average_precision_score``, no interpolation); ``map = (1/|C|) Σ_{c∈C} AP_c``
    over the classes ``C`` with at least one positive in ``y_true``. For multi-class this includes
    ``K = 2`` (both classes), unlike ``auroc``.
    """

    name = "map"

    def compute(self, y_true, values, num_classes):
        targets, scores, _ = _one_vs_rest(self.name, y_true, values)
        from torchmetrics.functional.classification import binary_average_precision

        return _macro_binary(binary_average_precision, targets, scores, need_negatives=False)


@_register
class MSE(_TorchmetricsError):
    """Mean squared error over all elements: ``mse = (1/|y|) Σ (ŷ − y)²``."""

    name = "mse"
    function = "mean_squared_error"


@_register
class MAE(_TorchmetricsError):
    """Mean absolute error over all elements: ``mae = (1/|y|) Σ |ŷ − y|``."""

    name = "mae"
    function = "mean_absolute_error"


@_register
class RelativeL2(_RegressionMetric):
    """Relative L2 error as FNO / PDEBench report it, averaged over samples.

    ``rel_l2 = (1/N) Σ_i ‖ŷ_i − y_i‖₂ / ‖y_i‖₂`` with each sample ``i`` flattened over all its
    channels and positions. No epsilon is added (as in FNO's ``LpLoss``): a sample whose target is
    identically zero gives ``inf`` (or ``nan`` if it is also predicted exactly).
    """

    name = "rel_l2"

    def compute(self, y_true, values, num_classes):
        y, p = _real_pair(self.name, y_true, values)
        n = y.shape[0] if y.ndim else 1
        y, p = y.reshape(n, -1), p.reshape(n, -1)
        return (torch.linalg.vector_norm(p - y, dim=1) / torch.linalg.vector_norm(y, dim=1)).mean().item()


@_register
class R2(_RegressionMetric):
    """Coefficient of determination, averaged uniformly over output channels.

    ``R²_k = 1 − Σ_j (ŷ_jk − y_jk)² / Σ_j (y_jk − ȳ_k)²`` and ``r2 = (1/K) Σ_k R²_k``, with ``j``
    running over samples (and positions, for dense regression: ``(N, K, *S)`` is read as
    ``(N·|S|, K)``). As in scikit-learn, a constant target channel scores 1 if predicted exactly,
    else 0.
    """

    name = "r2"
    higher_is_better = True

    def compute(self, y_true, values, num_classes):
        y, p = _real_pair(self.name, y_true, values)
        if y.ndim >= 2:
            k = y.shape[1]
            y, p = y.movedim(1, -1).reshape(-1, k), p.movedim(1, -1).reshape(-1, k)
            if k == 1:
                y, p = y[:, 0], p[:, 0]
        if y.shape[0] < 2:
            raise XmodalError("r2 needs at least two samples")
        from torchmetrics.functional import r2_score

        return r2_score(p, y, multioutput="uniform_average").item()


# --------------------------------------------------------------------------------------------------


def _applicability() -> str:
    return "; ".join(f"{t}: {metrics_for(t)}" for t in TASK_KINDS)


def evaluate(
    kind: TaskKind | str,
    out: torch.Tensor,
    y: torch.Tensor,
    metrics: Sequence[str] | None = None,
) -> dict[str, float]:
    """Score raw model outputs ``out`` against canonical targets ``y`` of task ``kind``.

    Each metric is given ``kind.predict(out)`` or ``kind.scores(out)`` according to its ``needs``.
    The number of classes is ``out.shape[1]``, so a split missing some class still evaluates.
    ``metrics`` defaults to ``[kind.default_metric]``. A metric that does not apply to ``kind``
    raises :class:`XmodalError` listing which metrics apply to which kinds.
    """
    if isinstance(kind, str):
        kind = get_task_kind(kind)
    if isinstance(metrics, str):
        raise XmodalError(f"metrics must be a list of names, e.g. [{metrics!r}], not a string")
    names = [kind.default_metric] if metrics is None else list(metrics)
    chosen = [get_metric(n) for n in names]
    bad = [m.name for m in chosen if kind.name not in m.tasks]
    if bad:
        raise XmodalError(
            f"metric(s) {bad} do not apply to task {kind.name!r}; use one of {metrics_for(kind.name)} "
            f"(metrics per task kind: {_applicability()})"
        )
    out = torch.as_tensor(out).detach().cpu()
    y = torch.as_tensor(y).detach().cpu()
    if out.shape[0] != y.shape[0]:
        raise XmodalError(f"outputs have {out.shape[0]} samples but y has {y.shape[0]}")
    num_classes = int(out.shape[1]) if out.ndim >= 2 else None
    cache: dict[str, torch.Tensor] = {}
    results: dict[str, float] = {}
    with torch.no_grad():
        for m in chosen:
            if m.needs not in cache:
                cache[m.needs] = kind.predict(out) if m.needs == "predictions" else kind.scores(out)
            results[m.name] = m(y, cache[m.needs], num_classes=num_classes)
    return results
