"""Validate inputs once, at the boundary (in the spirit of scikit-learn's ``check_array``).

Every public entry point (estimator ``fit``/``predict``, the CLI readers) passes user arrays
through :func:`check_X` / :func:`check_Xy`, so the rest of the code can assume canonical,
finite ``float32`` inputs of shape ``(N, C, *S)`` with 1 ≤ ``len(S)`` ≤ 3.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xmodal.errors import InputTypeError, XmodalError
from xmodal.tasks import get_task_kind, infer_task_kind

__all__ = ["check_X", "check_Xy", "check_same_layout"]

_LAYOUTS = "(N, F) tabular rows, (N, C, L) series, (N, C, H, W) images or (N, C, D, H, W) volumes"


def check_X(X: Any, spatial_dims: int | None = None, name: str = "X") -> np.ndarray:
    """Return ``X`` as a finite ``float32`` array of shape ``(N, C, *S)``.

    Args:
        X: array-like. Without ``spatial_dims``: ``(N, F)`` is read as tabular rows and becomes
            ``(N, 1, F)``; ``(N, C, L)``, ``(N, C, H, W)`` and ``(N, C, D, H, W)`` are kept.
        spatial_dims: number of spatial axes ``len(S)`` (1, 2 or 3). Give it when ``X`` has no
            channel axis, e.g. ``(N, H, W)`` images with ``spatial_dims=2`` become ``(N, 1, H, W)``.
        name: how to call the array in error messages.

    Raises:
        XmodalError: empty data, wrong rank, non-numeric values, NaN or Inf.
    """
    arr = _numeric_array(X, name)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise XmodalError(f"{name} is empty (shape {arr.shape}); provide at least one sample")
    arr = _to_layout(arr, spatial_dims, name)
    if any(s == 0 for s in arr.shape[1:]):
        raise XmodalError(f"{name} has an empty axis: 0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
                          "required; every axis needs length ≥ 1")
    return _finite_float32(arr, name)


def _numeric_array(X: Any, name: str) -> np.ndarray:
    """``X`` as a real numeric NumPy array (object arrays of numbers read as floats), or the error that says
    why it is not one."""
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise XmodalError(f"A sparse matrix was passed as {name}, but dense data is required; convert it with "
                          f"{name}.toarray() (xmodal's bodies take dense inputs)")
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise XmodalError(
            f"{name} cannot be read as a numeric array ({exc}); pass a rectangular array"
        ) from exc
    if np.iscomplexobj(arr):
        raise XmodalError(
            f"Complex data not supported: {name} has complex dtype {arr.dtype}; pass real values (e.g. stack "
            "real and imaginary parts as two channels)"
        )
    if arr.dtype == object:  # numbers held as Python objects (e.g. from pandas): read them as floats
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InputTypeError(f"{name} holds values that are not numbers ({exc}); encode categorical columns "
                                 "as numbers first") from None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise XmodalError(
            f"{name} has dtype {arr.dtype}; it must be numeric (encode categorical columns as numbers first)"
        )
    return arr


def _to_layout(arr: np.ndarray, spatial_dims: int | None, name: str) -> np.ndarray:
    """``(N, C, *S)``: a channel axis added to ``(N, *S)`` with ``spatial_dims``, or to ``(N, F)`` tables."""
    if spatial_dims is not None:
        if spatial_dims not in (1, 2, 3):
            raise XmodalError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
        if arr.ndim == spatial_dims + 1:
            arr = arr[:, None]
        elif arr.ndim != spatial_dims + 2:
            raise XmodalError(
                f"{name} has shape {arr.shape}, which does not fit spatial_dims={spatial_dims}: "
                f"expected (N, *S) or (N, C, *S) with {spatial_dims} spatial axes"
            )
    elif arr.ndim == 2:
        if arr.shape[1] == 0:
            raise XmodalError(f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required; "
                              "pass at least one feature column")
        arr = arr[:, None, :]
    elif arr.ndim == 1:
        raise XmodalError(f"{name} has rank 1 (shape {arr.shape}); expected {_LAYOUTS}. Reshape your data: "
                          f"{name}.reshape(-1, 1) for one feature, {name}.reshape(1, -1) for one sample")
    elif arr.ndim not in (3, 4, 5):
        raise XmodalError(f"{name} has rank {arr.ndim} (shape {arr.shape}); expected {_LAYOUTS}")
    return arr


def _finite_float32(arr: np.ndarray, name: str) -> np.ndarray:
    """A contiguous float32 copy, refusing values beyond float32's range and NaN/Inf (naming the samples)."""
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
        big = np.isfinite(arr) & (np.abs(arr) > np.finfo(np.float32).max)
        if big.any():
            rows = np.unique(np.nonzero(big.reshape(big.shape[0], -1))[0])
            raise XmodalError(
                f"{name} has {int(big.sum())} finite value(s) beyond float32's range (|x| > 3.4e38; largest "
                f"{float(np.abs(arr[big]).max()):.3g}, first in sample {int(rows[0])}); xmodal computes in float32: "
                "rescale the data (e.g. a log transform or sklearn.preprocessing.StandardScaler)"
            )
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = ~finite
        rows = np.unique(np.nonzero(bad.reshape(bad.shape[0], -1))[0])
        raise XmodalError(
            f"{name} contains {int(bad.sum())} NaN/Inf value(s) in {rows.size} sample(s) "
            f"(first: index {int(rows[0])}); impute them (e.g. sklearn.impute.SimpleImputer) "
            "or drop those samples"
        )
    return np.ascontiguousarray(arr)


def target_array(y: Any, what: str) -> np.ndarray:
    """``y`` as an array with one target per sample, or an error naming ``what`` ("y", "y_test")."""
    try:
        ya = np.asarray(y)
    except Exception as exc:
        raise XmodalError(f"{what} cannot be read as an array ({exc})") from exc
    if ya.ndim == 0 or ya.shape[0] == 0:
        raise XmodalError(f"{what} is empty (shape {ya.shape}); provide one target per sample")
    return ya


def check_Xy(
    X: Any, y: Any, task: str = "auto", spatial_dims: int | None = None, min_classes: int = 2
) -> tuple[np.ndarray, np.ndarray, str, int]:
    """Validate a labelled set.

    ``min_classes``: distinct classes classification targets need (2 to train, 1 to score).

    Returns:
        ``(X, y, task, K)``: ``X`` as in :func:`check_X`, ``y`` canonical for the task kind
        (see :mod:`xmodal.tasks`), the resolved task name and the number of outputs ``K``.
    """
    Xc = check_X(X, spatial_dims)
    if y is None:
        raise XmodalError("this estimator requires y to be passed, but the target y is None; supervised fitting "
                          "needs one target per sample")
    ya = target_array(y, "y")
    if min_classes >= 2 and Xc.shape[0] < 2:  # fitting (scoring passes min_classes=1)
        raise XmodalError(f"fitting needs at least 2 samples, got 1 sample (n_samples={Xc.shape[0]})")
    if ya.shape[0] != Xc.shape[0]:
        raise XmodalError(
            f"X has {Xc.shape[0]} samples but y has {ya.shape[0]}; they must have the same length"
        )
    if np.iscomplexobj(ya):
        raise XmodalError(f"y has complex dtype {ya.dtype}; split it into real and imaginary targets")
    if ya.dtype == object:  # numbers held as Python objects: read them as numbers
        try:
            ya = ya.astype(np.float64)
        except (TypeError, ValueError):
            pass  # refused just below, with the fix
    if ya.dtype == object or not (np.issubdtype(ya.dtype, np.number) or ya.dtype == bool):
        raise XmodalError(
            f"Unknown label type: y has dtype {ya.dtype}; encode labels as integers 0..K-1 "
            "(sklearn.preprocessing.LabelEncoder) or targets as numbers"
        )
    spatial = tuple(Xc.shape[2:])
    name = infer_task_kind(ya, spatial) if task == "auto" else task
    kind = get_task_kind(name)
    yc, k = kind.check_targets(ya, spatial, min_classes)
    return Xc, yc, name, k


def check_same_layout(X: np.ndarray, sample_shape: tuple[int, ...], name: str = "X", given_ndim: int | None = None,
                      who: str = "the model") -> None:
    """Raise unless ``X`` (canonical) has per-sample shape ``(C, *S)`` equal to ``sample_shape``.

    ``given_ndim=2`` (the user passed a table) words a mismatch in features, as scikit-learn does.
    """
    if given_ndim == 2 and len(sample_shape) == 2 and X.ndim == 3 and X.shape[2] != sample_shape[1]:
        raise XmodalError(f"{name} has {X.shape[2]} features, but {who} is expecting {sample_shape[1]} "
                          "features as input (the training table's columns)")
    if tuple(X.shape[1:]) != tuple(sample_shape):
        raise XmodalError(
            f"{name} has per-sample shape {tuple(X.shape[1:])} but the model was built for "
            f"{tuple(sample_shape)} (C, *S); resample or pad the data to the training layout"
        )
