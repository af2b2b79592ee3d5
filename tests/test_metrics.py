"""Metrics against scikit-learn (the oracle) and ``evaluate`` on every task kind."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from xmodal.errors import XmodalError
from xmodal.evaluate import METRICS, evaluate, get_metric, list_metrics, metrics_for
from xmodal.evaluate.metrics import beats
from xmodal.tasks import TASK_KINDS, get_task_kind

TOL = 1e-6


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _classification(k: int, n: int = 200, seed: int = 0, absent: int | None = None):
    g = _gen(seed)
    y = torch.randint(0, k, (n,), generator=g)
    if absent is not None:
        y[y == absent] = (absent + 1) % k
    # logits correlated with y so scores are informative, plus some noise
    logits = torch.randn(n, k, generator=g) + 1.5 * torch.nn.functional.one_hot(y, k)
    return y, logits


def _multilabel(k: int = 4, n: int = 200, seed: int = 1):
    g = _gen(seed)
    y = (torch.rand(n, k, generator=g) < 0.35).float()
    logits = torch.randn(n, k, generator=g) + 1.2 * (2 * y - 1)
    return y, logits


def _regression(shape=(150, 3), seed: int = 2):
    g = _gen(seed)
    y = torch.randn(*shape, generator=g) * 2 + 0.5
    out = y + 0.7 * torch.randn(*shape, generator=g)
    return y, out


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy() if t.is_floating_point() else t.cpu().numpy()


# ----------------------------------------------------------------------------------------------- registry


def test_registry_and_lookup():
    assert list_metrics() == list(METRICS)
    assert set(list_metrics()) == {
        "accuracy",
        "error",
        "macro_f1",
        "auroc",
        "map",
        "mse",
        "mae",
        "rel_l2",
        "r2",
    }
    for name, m in METRICS.items():
        assert m.name == name
        assert m.needs in ("predictions", "scores")
        assert isinstance(m.higher_is_better, bool)
        assert type(m).__doc__ and len(type(m).__doc__) > 20
        assert m.tasks <= set(TASK_KINDS)
    with pytest.raises(XmodalError, match="accuracy"):
        get_metric("acuracy")


def test_metrics_for_each_kind_contains_default():
    for name, kind in TASK_KINDS.items():
        ms = metrics_for(name)
        assert kind.default_metric in ms
    assert set(metrics_for("regression")) == {"mse", "mae", "rel_l2", "r2"}
    assert "auroc" in metrics_for("multilabel") and "accuracy" not in metrics_for("multilabel")
    with pytest.raises(XmodalError):
        metrics_for("segmentation")


# --------------------------------------------------------------------------------- classification vs sklearn


@pytest.mark.parametrize("k", [2, 5])
def test_classification_metrics_match_sklearn(k):
    y, logits = _classification(k)
    kind = get_task_kind("classification")
    pred, prob = kind.predict(logits), kind.scores(logits)
    yn, pn, sn = _np(y), _np(pred), _np(prob)

    assert get_metric("accuracy")(y, pred, k) == pytest.approx(skm.accuracy_score(yn, pn), abs=TOL)
    assert get_metric("error")(y, pred, k) == pytest.approx(1 - skm.accuracy_score(yn, pn), abs=TOL)
    assert get_metric("macro_f1")(y, pred, k) == pytest.approx(skm.f1_score(yn, pn, average="macro"), abs=TOL)
    if k == 2:
        want_auc = skm.roc_auc_score(yn, sn[:, 1])
    else:
        want_auc = skm.roc_auc_score(yn, sn, multi_class="ovr", average="macro")
    assert get_metric("auroc")(y, prob) == pytest.approx(want_auc, abs=TOL)
    Y = np.eye(k)[yn]
    want_ap = skm.average_precision_score(Y, sn, average="macro")
    assert get_metric("map")(y, prob) == pytest.approx(want_ap, abs=TOL)


def test_auroc_invariant_to_monotone_scores():
    # torchmetrics' multiclass_auroc silently softmaxes scores outside [0, 1]; ours must rank raw scores
    y, logits = _classification(5, seed=3)
    want = skm.roc_auc_score(label_binarize(_np(y), classes=range(5)), _np(logits), average="macro")
    assert get_metric("auroc")(y, logits) == pytest.approx(want, abs=TOL)


def test_absent_class_uses_present_classes():
    k, absent = 5, 3
    y, logits = _classification(k, seed=4, absent=absent)
    assert not (y == absent).any()
    kind = get_task_kind("classification")
    prob = kind.scores(logits)
    present = [c for c in range(k) if c != absent]
    Y = label_binarize(_np(y), classes=range(k))
    sn = _np(prob)
    assert get_metric("auroc")(y, prob) == pytest.approx(
        skm.roc_auc_score(Y[:, present], sn[:, present], average="macro"), abs=TOL
    )
    assert get_metric("map")(y, prob) == pytest.approx(
        skm.average_precision_score(Y[:, present], sn[:, present], average="macro"), abs=TOL
    )
    # evaluate takes K from the output's class axis and does not crash
    res = evaluate(kind, logits, y, ["accuracy", "macro_f1", "auroc", "map"])
    pred = _np(kind.predict(logits))
    assert res["accuracy"] == pytest.approx(skm.accuracy_score(_np(y), pred), abs=TOL)
    assert res["macro_f1"] == pytest.approx(skm.f1_score(_np(y), pred, average="macro"), abs=TOL)


def test_single_class_auroc_is_nan():
    y = torch.zeros(10, dtype=torch.long)
    prob = torch.rand(10, 3, generator=_gen(5)).softmax(1)
    assert math.isnan(get_metric("auroc")(y, prob))
    assert get_metric("map")(y, prob) == pytest.approx(1.0)


def test_multilabel_metrics_match_sklearn():
    y, logits = _multilabel(4)
    prob = get_task_kind("multilabel").scores(logits)
    yn, sn = _np(y).astype(int), _np(prob)
    assert get_metric("auroc")(y, prob) == pytest.approx(skm.roc_auc_score(yn, sn, average="macro"), abs=TOL)
    assert get_metric("map")(y, prob) == pytest.approx(
        skm.average_precision_score(yn, sn, average="macro"), abs=TOL
    )


def test_multilabel_label_without_positives_is_skipped():
    y, logits = _multilabel(4, seed=6)
    y[:, 2] = 0
    prob = get_task_kind("multilabel").scores(logits)
    yn, sn = _np(y).astype(int), _np(prob)
    keep = [0, 1, 3]
    assert get_metric("auroc")(y, prob) == pytest.approx(
        skm.roc_auc_score(yn[:, keep], sn[:, keep], average="macro"), abs=TOL
    )
    assert get_metric("map")(y, prob) == pytest.approx(
        skm.average_precision_score(yn[:, keep], sn[:, keep], average="macro"), abs=TOL
    )


def test_dense_classification_matches_sklearn_flattened():
    g = _gen(7)
    n, k, h, w = 6, 4, 9, 7
    y = torch.randint(0, k, (n, h, w), generator=g)
    onehot = torch.nn.functional.one_hot(y, k).permute(0, 3, 1, 2)
    logits = torch.randn(n, k, h, w, generator=g) + onehot
    kind = get_task_kind("dense-classification")
    pred = kind.predict(logits)
    assert pred.shape == y.shape
    yn, pn = _np(y).ravel(), _np(pred).ravel()
    res = evaluate(kind, logits, y, ["accuracy", "error", "macro_f1"])
    assert res["accuracy"] == pytest.approx(skm.accuracy_score(yn, pn), abs=TOL)
    assert res["error"] == pytest.approx(1 - skm.accuracy_score(yn, pn), abs=TOL)
    assert res["macro_f1"] == pytest.approx(skm.f1_score(yn, pn, average="macro"), abs=TOL)
    assert evaluate(kind, logits, y) == {"accuracy": res["accuracy"]}


# ------------------------------------------------------------------------------------- regression vs sklearn


def _rel_l2_np(y: np.ndarray, p: np.ndarray) -> float:
    y, p = y.reshape(len(y), -1), p.reshape(len(p), -1)
    return float(np.mean(np.linalg.norm(p - y, axis=1) / np.linalg.norm(y, axis=1)))


@pytest.mark.parametrize("shape", [(150, 1), (150, 3)])
def test_regression_metrics_match_sklearn(shape):
    y, out = _regression(shape)
    yn, pn = _np(y), _np(out)
    res = evaluate("regression", out, y, ["mse", "mae", "rel_l2", "r2"])
    assert res["mse"] == pytest.approx(skm.mean_squared_error(yn, pn), abs=TOL)
    assert res["mae"] == pytest.approx(skm.mean_absolute_error(yn, pn), abs=TOL)
    assert res["r2"] == pytest.approx(skm.r2_score(yn, pn), abs=TOL)
    assert res["rel_l2"] == pytest.approx(_rel_l2_np(yn, pn), abs=TOL)


def test_dense_regression_metrics():
    n, k, h, w = 8, 2, 6, 5
    y, out = _regression((n, k, h, w), seed=8)
    yn, pn = _np(y), _np(out)
    res = evaluate("dense-regression", out, y, ["mse", "mae", "rel_l2", "r2"])
    assert res["mse"] == pytest.approx(skm.mean_squared_error(yn.ravel(), pn.ravel()), abs=TOL)
    assert res["mae"] == pytest.approx(skm.mean_absolute_error(yn.ravel(), pn.ravel()), abs=TOL)
    assert res["rel_l2"] == pytest.approx(_rel_l2_np(yn, pn), abs=TOL)
    # r2: channel axis 1 is the output, samples and positions are rows
    y2, p2 = np.moveaxis(yn, 1, -1).reshape(-1, k), np.moveaxis(pn, 1, -1).reshape(-1, k)
    assert res["r2"] == pytest.approx(skm.r2_score(y2, p2), abs=TOL)
    assert evaluate("dense-regression", out, y) == {"rel_l2": res["rel_l2"]}


def test_rel_l2_per_sample_not_global():
    # two samples with very different norms: the per-sample mean differs from the global ratio
    y = torch.tensor([[1.0, 0.0], [100.0, 0.0]])
    p = torch.tensor([[1.5, 0.0], [101.0, 0.0]])
    assert get_metric("rel_l2")(y, p) == pytest.approx((0.5 / 1 + 1 / 100) / 2, abs=TOL)


def test_perfect_predictions():
    y, logits = _classification(5, seed=9)
    perfect = 10.0 * torch.nn.functional.one_hot(y, 5).float()
    res = evaluate("classification", perfect, y, ["accuracy", "error", "macro_f1", "auroc", "map"])
    assert res == pytest.approx({"accuracy": 1.0, "error": 0.0, "macro_f1": 1.0, "auroc": 1.0, "map": 1.0})
    yr, _ = _regression((20, 2, 4, 4))
    res = evaluate("dense-regression", yr, yr, ["mse", "mae", "rel_l2", "r2"])
    assert res == pytest.approx({"mse": 0.0, "mae": 0.0, "rel_l2": 0.0, "r2": 1.0})


# ------------------------------------------------------------------------------------------------ evaluate


@pytest.mark.parametrize("task", list(TASK_KINDS))
def test_evaluate_all_applicable_metrics(task):
    data = {
        "classification": _classification(3),
        "multilabel": _multilabel(4),
        "regression": _regression((40, 2)),
        "dense-classification": (
            torch.randint(0, 3, (4, 5, 6), generator=_gen(10)),
            torch.randn(4, 3, 5, 6, generator=_gen(11)),
        ),
        "dense-regression": _regression((4, 1, 5, 6)),
    }
    y, out = data[task]
    names = metrics_for(task)
    res = evaluate(task, out, y, names)
    assert list(res) == names
    assert all(isinstance(v, float) and math.isfinite(v) for v in res.values())
    kind = get_task_kind(task)
    assert evaluate(kind, out, y) == {kind.default_metric: res[kind.default_metric]}


@pytest.mark.parametrize(
    ("task", "metric"),
    [
        ("regression", "auroc"),
        ("regression", "accuracy"),
        ("classification", "mse"),
        ("multilabel", "accuracy"),
        ("dense-regression", "map"),
        ("dense-classification", "rel_l2"),
    ],
)
def test_mismatched_metric_and_task(task, metric):
    with pytest.raises(XmodalError, match=f"{metric}.*do not apply to task '{task}'") as e:
        evaluate(task, torch.zeros(4, 2), torch.zeros(4, 2), [metric])
    assert "metrics per task kind" in str(e.value)


def test_evaluate_bad_inputs():
    y, logits = _classification(3)
    with pytest.raises(XmodalError, match="unknown metric"):
        evaluate("classification", logits, y, ["acc"])
    with pytest.raises(XmodalError, match="not a string"):
        evaluate("classification", logits, y, "accuracy")
    with pytest.raises(XmodalError, match="samples"):
        evaluate("classification", logits[:-1], y, ["accuracy"])
    with pytest.raises(XmodalError, match="0..2"):
        evaluate("classification", logits, y + 1, ["accuracy"])
    with pytest.raises(XmodalError, match="0..2"):
        evaluate("classification", logits, y + 1, ["auroc"])
    with pytest.raises(XmodalError, match="shape"):
        get_metric("mse")(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(XmodalError, match="no samples"):
        get_metric("accuracy")(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))


def test_beats_counts_float32_noise_as_a_tie_in_either_direction():
    cells = np.array([0.9474, 0.9298, 0.9386], dtype=np.float32)
    peer = float(np.float32(0.9386))
    assert float(cells.mean(dtype=np.float64)) != peer  # the means differ in the last bits ...
    assert not beats(float(cells.mean(dtype=np.float64)), peer, True)  # ... which is a tie, not a win
    assert beats(0.95, 0.9386, True) and not beats(0.9386, 0.95, True)
    assert beats(0.05, 0.0535, False) and not beats(0.0535, 0.05, False)
    assert not beats(0.0535, 0.0535 + 5e-7, False)
