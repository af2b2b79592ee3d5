"""The estimator's input boundary: array-likes to arrays, column-vector targets, and class labels in any
label space to indices ``0..K-1`` (scikit-learn's conventions)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import DataConversionWarning

from xmodal.tasks import get_task_kind, infer_task_kind

__all__ = ["as_array", "column_to_1d", "encode_class_labels"]


def as_array(a: Any) -> Any:
    """``a`` as a NumPy array when it converts cleanly (lists, array-likes); else unchanged, so that
    :func:`~xmodal.data.validation.check_Xy` reports what is wrong with it (sparse, ragged, ``None``)."""
    if a is None or isinstance(a, np.ndarray) or hasattr(a, "tocsr"):
        return a
    try:
        return np.asarray(a)
    except (TypeError, ValueError):
        return a


def column_to_1d(y: Any) -> Any:
    """A column vector ``(N, 1)`` of targets becomes ``(N,)`` with scikit-learn's DataConversionWarning
    (as its estimators do); every other ``y`` is returned as given."""
    shape = getattr(y, "shape", None)
    if shape is not None and len(shape) == 2 and shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected; y is read as y.ravel()",
                      DataConversionWarning, stacklevel=3)
        return np.asarray(y).ravel()
    return y


def encode_class_labels(y: Any, task: str = "auto") -> tuple[Any, np.ndarray | None]:
    """Single-label classification targets ``(N,)`` in any label space → ``(indices 0..K-1, classes)``.

    Text labels (``"cat"``, ``"dog"``), and whole-number labels that are not exactly ``0..K-1``
    (``{1, 2}``, ``{-1, 1}``, ``{3, 7, 9}``), are mapped to indices in sorted order, as scikit-learn's
    classifiers do; ``classes`` (the estimator's ``classes_``) maps predictions back. Labels already
    ``0..K-1``, and every other kind of target, are returned unchanged with ``classes=None``. Only
    ``task`` ``"auto"`` (where the labels look like classes) and ``"classification"`` are encoded.
    """
    if task != "auto" and not get_task_kind(task).class_labels:
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
        if not get_task_kind(guess).class_labels:
            return y, None
    if task != "auto" and not np.all(np.mod(ya, 1) == 0):
        return y, None  # check_Xy explains why fractional labels are refused
    classes, idx = np.unique(ya, return_inverse=True)
    if classes[0] == 0 and classes[-1] == len(classes) - 1:
        return y, None  # already 0..K-1
    return idx.astype(np.int64), classes
