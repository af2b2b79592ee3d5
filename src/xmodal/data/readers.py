"""Read user data from files into a validated :class:`~xmodal.data.dataset.Dataset`.

Two formats are supported, both without network access or optional dependencies:

* ``.npz`` archives (:func:`read_npz`, written by :func:`write_npz` or ``np.savez``) holding
  ``X_train`` ``(N, C, *S)`` / ``y_train`` and optionally ``X_test`` / ``y_test`` (this module);
* ``.csv`` tables (:func:`xmodal.data.csv_tables.read_csv`): one sample per row, one column is the
  target, every other column a feature — numbers, or text categories that are one-hot encoded; the
  result is tabular, ``X`` of shape ``(N, 1, F)``.

:func:`dataset_from_arrays` and :func:`encode_labels` are shared by every reader.

Every problem a user can fix (missing or unreadable file, wrong extension, missing keys, object
arrays, non-numeric cells, NaN/Inf, bad targets) is raised as :class:`~xmodal.errors.XmodalError`
with a message that says what is wrong and how to fix it.
"""

from __future__ import annotations

import gzip
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.data.dataset import Dataset
from xmodal.data.validation import check_X, check_Xy, target_array
from xmodal.errors import XmodalError
from xmodal.tasks import LABELS_KIND, get_task_kind

__all__ = ["is_pickle", "check_numpy_file", "read_npz", "write_npz", "dataset_from_arrays", "encode_labels",
           "may_hold_labels", "existing_file"]

# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def may_hold_labels(task: str) -> bool:
    """Whether targets of ``task`` (``"auto"`` or a kind name) may be text class labels."""
    return task == "auto" or get_task_kind(task).class_labels


def encode_labels(
    y_train: Sequence[Any] | np.ndarray, y_test: Sequence[Any] | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Encode class names as integer indices ``0..K-1`` using the sorted unique *training* labels.

    Labels that all parse as numbers are sorted numerically (``"2" < "10"``), others as strings.

    Args:
        y_train: ``(N,)`` class names (strings or anything ``str()`` turns into a name).
        y_test: ``(M,)`` class names, or ``None``.

    Returns:
        ``(y_train_idx, y_test_idx, classes)``: ``(N,)`` and ``(M,)`` int64 arrays (``None`` when
        ``y_test`` is ``None``) and the ``K`` class names, ``classes[i]`` being the name of index ``i``.

    Raises:
        XmodalError: ``y_test`` holds a class that never occurs in ``y_train``.
    """
    tr = np.asarray([str(v) for v in np.asarray(y_train).ravel()])
    names = sorted(set(tr.tolist()), key=_label_sort_key(set(tr.tolist())))
    index = {c: i for i, c in enumerate(names)}
    ytr = np.fromiter((index[v] for v in tr), dtype=np.int64, count=tr.size)
    if y_test is None:
        return ytr, None, names
    te = [str(v) for v in np.asarray(y_test).ravel()]
    unseen = sorted(set(te) - set(index))
    if unseen:
        raise XmodalError(
            f"the test labels include {len(unseen)} class(es) never seen in training "
            f"({', '.join(map(repr, unseen[:5]))}{', …' if len(unseen) > 5 else ''}); "
            f"training classes are {names[:10]}{' …' if len(names) > 10 else ''}"
        )
    yte = np.fromiter((index[v] for v in te), dtype=np.int64, count=len(te))
    return ytr, yte, names


def _label_sort_key(labels: set[str]):
    try:
        for v in labels:
            float(v)
    except ValueError:
        return str
    return lambda v: (float(v), v)


def dataset_from_arrays(
    name: str, X_train: Any, y_train: Any, X_test: Any = None, y_test: Any = None, *, task: str = "auto",
    spatial_dims: int | None = None, metric: str | None = None, description: str = "", meta: dict | None = None,
) -> Dataset:
    """Validate a train (and optional test) split and wrap it in a :class:`Dataset`.

    Args:
        name: the dataset's short name.
        X_train: ``(N, C, *S)`` inputs (or any layout :func:`~xmodal.data.validation.check_X` accepts:
            ``(N, F)`` rows become ``(N, 1, F)``; with ``spatial_dims``, ``(N, *S)`` becomes ``(N, 1, *S)``).
        y_train: ``N`` targets in a layout the task kind accepts (see :mod:`xmodal.tasks`).
        X_test: ``(M, C, *S)`` test inputs with the training per-sample shape, or ``None``.
        y_test: ``M`` test targets in the same layout as ``y_train``, or ``None`` (both or neither).
        task: task kind name, or ``"auto"`` to infer it from ``y_train``.
        spatial_dims: number of spatial axes ``len(S)`` when ``X`` has no channel axis.
        metric: the metric to report; default: the task kind's default metric.
        description: one line on what the data are.
        meta: free-form JSON-serialisable extras.

    Returns:
        A :class:`Dataset` with float32 ``X`` of shape ``(N, C, *S)`` / ``(M, C, *S)`` and targets
        canonical for the task kind (test targets validated against the training classes).

    Raises:
        XmodalError: anything :func:`~xmodal.data.validation.check_Xy` refuses, only one of
            ``X_test``/``y_test`` given, a test layout that differs from the training one, or test
            labels outside the training classes.
    """
    Xtr, ytr, task_name, k = check_Xy(X_train, y_train, task=task, spatial_dims=spatial_dims)
    Xte = yte = None
    if (X_test is None) != (y_test is None):
        missing = "y_test" if y_test is None else "X_test"
        present = "X_test" if y_test is None else "y_test"
        raise XmodalError(f"{present} is given but {missing} is missing; provide both test arrays or neither")
    if X_test is not None:
        Xte = check_X(X_test, spatial_dims, name="X_test")
        if Xte.shape[1:] != Xtr.shape[1:]:
            raise XmodalError(
                f"X_test has per-sample shape {tuple(Xte.shape[1:])} but X_train has {tuple(Xtr.shape[1:])} "
                "(C, *S); the test inputs must have the training layout"
            )
        yte = _check_test_targets(y_train, y_test, len(Xte), task_name, k, tuple(Xtr.shape[2:]))
    kind = get_task_kind(task_name)
    return Dataset(
        name=name,
        task=task_name,
        X_train=Xtr,
        y_train=ytr,
        X_test=Xte,
        y_test=yte,
        metric=metric or kind.default_metric,
        description=description,
        meta=dict(meta or {}),
    )


def _check_test_targets(
    y_train: Any, y_test: Any, n_test: int, task: str, k: int, spatial: tuple[int, ...]
) -> np.ndarray:
    """Canonical ``y_test``, checked by the training task kind against the training targets.

    The test targets are validated together with the training ones, so a single-class test set is
    fine while a test label outside the training classes ``0..K-1`` is refused.
    """
    ytr = np.asarray(y_train)
    yte = target_array(y_test, "y_test")
    if yte.shape[0] != n_test:
        raise XmodalError(
            f"X_test has {n_test} samples but y_test has {yte.shape[0]}; they must have the same length"
        )
    if (
        yte.dtype == object
        or np.iscomplexobj(yte)
        or not (np.issubdtype(yte.dtype, np.number) or yte.dtype == bool)
    ):
        raise XmodalError(
            f"y_test has dtype {yte.dtype}; encode labels as integers 0..K-1 or targets as numbers"
        )
    if yte.shape[1:] != ytr.shape[1:]:
        raise XmodalError(
            f"y_test has per-sample shape {tuple(yte.shape[1:])} but y_train has {tuple(ytr.shape[1:])}; "
            "test targets must have the training layout"
        )
    kind = get_task_kind(task)
    try:
        both, k_both = kind.check_targets(np.concatenate([ytr, yte]), spatial)
    except XmodalError as exc:
        raise XmodalError(f"y_test: {exc}") from None
    if kind.exclusive_classes and k_both != k:
        raise XmodalError(
            f"y_test has label {k_both - 1}, outside the training classes 0..{k - 1}; "
            "encode train and test labels with the same encoder (fitted on the training labels)"
        )
    return np.ascontiguousarray(both[len(ytr) :])


def existing_file(path: str | os.PathLike, suffixes: tuple[str, ...], what: str) -> Path:
    p = Path(path).expanduser()
    if p.suffix.lower() not in suffixes:
        raise XmodalError(
            f"{str(p)!r} does not look like {what} (extension {p.suffix or 'none'!r}, expected "
            f"{' or '.join(suffixes)}); convert it or use the matching reader"
        )
    if not p.exists():
        raise XmodalError(f"file not found: {str(p)!r}; check the path (working directory: {os.getcwd()})")
    if not p.is_file():
        raise XmodalError(f"{str(p)!r} is not a regular file")
    if not os.access(p, os.R_OK):
        raise XmodalError(f"{str(p)!r} is not readable; check its permissions")
    return p


# --------------------------------------------------------------------------------------------
# .npz
# --------------------------------------------------------------------------------------------


# over 60 lines only through its docstring (every argument documented); the code is 54 lines
def read_npz(path: str | os.PathLike, spatial_dims: int | None = None, task: str = "auto") -> Dataset:
    """Read a labelled dataset from an ``.npz`` archive.

    The archive holds ``X_train`` ``(N, C, *S)`` and ``y_train`` (``N`` targets), and optionally
    ``X_test`` ``(M, C, *S)`` with ``y_test`` (both or neither); text labels (``(N,)`` strings) are class
    names, encoded as in :func:`read_csv`. Optional string entries ``task``
    (0-d) and ``classes`` ``(K,)``, as :func:`write_npz` writes them, are read back too. Arrays are
    loaded with ``allow_pickle=False``: object arrays are refused, never unpickled.

    Args:
        path: the ``.npz`` file.
        spatial_dims: number of spatial axes ``len(S)`` when ``X`` has no channel axis, e.g. ``2``
            for ``(N, H, W)`` images (see :func:`~xmodal.data.validation.check_X`).
        task: task kind, or ``"auto"`` (the archive's ``task`` entry if present, else inferred).

    Returns:
        A :class:`Dataset` named after the file stem: float32 ``X`` of shape ``(N, C, *S)``, targets
        canonical for the task kind; ``meta["source"]`` is the file's path.

    Raises:
        XmodalError: missing/unreadable file, not an ``.npz``, missing keys, object arrays, or
            arrays the validation refuses.
    """
    p = existing_file(path, (".npz",), "an .npz archive")
    check_numpy_file(p)
    try:
        archive = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise XmodalError(
            f"cannot read {str(p)!r} as an .npz archive ({type(exc).__name__}: {exc}); "
            "write it with numpy.savez(path, X_train=..., y_train=...) or xmodal.data.readers.write_npz"
        ) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise XmodalError(
            f"{str(p)!r} holds a single .npy array, not an .npz archive; "
            "save it with numpy.savez(path, X_train=..., y_train=...)"
        )
    with archive:
        keys = set(archive.files)
        missing = [k for k in ("X_train", "y_train") if k not in keys]
        if missing:
            raise XmodalError(
                f"{str(p)!r} has no {' or '.join(missing)} (it holds {sorted(keys) or 'nothing'}); "
                "an xmodal .npz needs X_train and y_train, optionally X_test and y_test"
            )
        if ("X_test" in keys) != ("y_test" in keys):
            have, lack = ("X_test", "y_test") if "X_test" in keys else ("y_test", "X_test")
            raise XmodalError(f"{str(p)!r} has {have} but no {lack}; store both test arrays or neither")
        arrays = {
            k: _npz_array(archive, k, p)
            for k in ("X_train", "y_train", "X_test", "y_test", "task", "classes")
            if k in keys
        }
    meta: dict[str, Any] = {"source": str(p)}
    if "classes" in arrays:
        meta["classes"] = [str(c) for c in arrays["classes"].ravel()]
    if task == "auto" and "task" in arrays and arrays["task"].dtype.kind == "U":
        task = str(arrays["task"].reshape(()))
    if arrays["y_train"].dtype.kind in "US" and arrays["y_train"].ndim == 1 and may_hold_labels(task):
        # class names, as in a CSV: indices 0..K-1 in sorted order, the names in meta["classes"]
        y_te = arrays.get("y_test")
        arrays["y_train"], y_te_idx, meta["classes"] = encode_labels(arrays["y_train"], y_te)
        if y_te is not None:
            arrays["y_test"] = y_te_idx
        task = LABELS_KIND
    return dataset_from_arrays(
        p.stem,
        arrays["X_train"],
        arrays["y_train"],
        arrays.get("X_test"),
        arrays.get("y_test"),
        task=task,
        spatial_dims=spatial_dims,
        description=f"user data from {p.name}",
        meta=meta,
    )


def is_pickle(path: str | os.PathLike) -> bool:
    """Whether ``path`` (or its gzip content) starts like a Python pickle (protocol 2 or later)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            if head == b"\x1f\x8b":
                fh.seek(0)
                with gzip.open(fh) as gz:
                    head = gz.read(2)
    except (OSError, EOFError):
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def check_numpy_file(p: Path) -> None:
    """Refuse a file that is neither a zip (.npz) nor a .npy array by its first bytes, naming what it is."""
    with open(p, "rb") as f:
        head = f.read(8)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        return
    if is_pickle(p):
        raise XmodalError(f"{str(p)!r} is a Python pickle, not an .npz archive; xmodal never unpickles files. "
                          "Save the arrays with numpy.savez(path, X_train=..., y_train=...)")
    what = "it is empty" if not head else f"it starts with the bytes {head.hex(' ')}"
    raise XmodalError(f"cannot read {str(p)!r} as an .npz archive ({what}; an .npz is a zip file, starting 'PK'): "
                      "it is damaged or in another format; write it with numpy.savez(path, X_train=..., y_train=...)")


def _npz_array(archive: Any, key: str, p: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise XmodalError(
                f"{key} in {str(p)!r} is an object array (ragged lists, mixed types or Python objects), "
                "which xmodal does not unpickle; save a rectangular numeric array, "
                "e.g. np.asarray(x, dtype=np.float32)"
            ) from None
        raise XmodalError(f"cannot read {key} from {str(p)!r} ({exc}); the archive may be damaged") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise XmodalError(f"cannot read {key} from {str(p)!r} ({exc}); the archive may be damaged") from exc


def write_npz(path: str | os.PathLike, dataset: Dataset) -> Path:
    """Write ``dataset`` to an ``.npz`` archive that :func:`read_npz` reads back.

    Stores ``X_train`` ``(N, C, *S)``, ``y_train``, ``X_test``/``y_test`` when present, the task
    name as a 0-d string ``task`` and, if ``dataset.meta`` has them, ``classes`` ``(K,)`` as strings.

    Args:
        path: target file; must end in ``.npz``. Parent folders are created.
        dataset: the dataset to save.

    Returns:
        The path written.
    """
    p = Path(path).expanduser()
    if p.suffix.lower() != ".npz":
        raise XmodalError(f"write_npz needs a path ending in .npz, got {str(p)!r}")
    arrays: dict[str, np.ndarray] = {
        "X_train": np.asarray(dataset.X_train),
        "y_train": np.asarray(dataset.y_train),
        "task": np.asarray(str(dataset.task)),
    }
    if dataset.X_test is not None and dataset.y_test is not None:
        arrays["X_test"] = np.asarray(dataset.X_test)
        arrays["y_test"] = np.asarray(dataset.y_test)
    if dataset.meta.get("classes") is not None:
        arrays["classes"] = np.asarray([str(c) for c in dataset.meta["classes"]])
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        np.savez(p, **arrays)
    except OSError as exc:
        raise XmodalError(f"cannot write {str(p)!r} ({exc})") from exc
    return p
