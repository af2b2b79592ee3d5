"""Read user data from files into a validated :class:`~xmodal.data.dataset.Dataset`.

Two formats are supported, both without network access or optional dependencies:

* ``.npz`` archives (:func:`read_npz`, written by :func:`write_npz` or ``np.savez``) holding
  ``X_train`` ``(N, C, *S)`` / ``y_train`` and optionally ``X_test`` / ``y_test``;
* ``.csv`` tables (:func:`read_csv`): one sample per row, one column is the target, every other
  column a feature — numbers, or text categories that are one-hot encoded (:func:`encode_table`);
  the result is tabular, ``X`` of shape ``(N, 1, F)``.

Every problem a user can fix (missing or unreadable file, wrong extension, missing keys, object
arrays, non-numeric cells, NaN/Inf, bad targets) is raised as :class:`~xmodal.errors.XmodalError`
with a message that says what is wrong and how to fix it.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.data.dataset import Dataset
from xmodal.data.validation import check_X, check_Xy, target_array
from xmodal.errors import XmodalError
from xmodal.tasks import LABELS_KIND, get_task_kind, infer_task_kind

__all__ = ["is_pickle", "check_numpy_file", "read_npz",
           "read_csv", "read_csv_features", "encode_table", "write_npz", "dataset_from_arrays",
           "encode_labels"]

# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _may_hold_labels(task: str) -> bool:
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


def _existing_file(path: str | os.PathLike, suffixes: tuple[str, ...], what: str) -> Path:
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
    p = _existing_file(path, (".npz",), "an .npz archive")
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
    if arrays["y_train"].dtype.kind in "US" and arrays["y_train"].ndim == 1 and _may_hold_labels(task):
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


# --------------------------------------------------------------------------------------------
# .csv
# --------------------------------------------------------------------------------------------


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_rows(p: Path, delimiter: str | None) -> tuple[list[list[str]], str]:
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise XmodalError(f"{str(p)!r} is not UTF-8 text ({exc}); save the table as UTF-8 CSV") from exc
    except OSError as exc:
        raise XmodalError(f"cannot read {str(p)!r} ({exc})") from exc
    if "\x00" in text:
        raise XmodalError(f"{str(p)!r} contains binary data (NUL bytes); it is not a CSV text file")
    if delimiter is None:
        first = next((line for line in text.splitlines() if line.strip()), "")
        counts = {d: first.count(d) for d in (",", ";", "\t")}
        delimiter = max(counts, key=counts.get) if max(counts.values()) > 0 else ","
    try:
        rows = [
            [c.strip() for c in row]
            for row in csv.reader(text.splitlines(), delimiter=delimiter)
            if any(c.strip() for c in row)
        ]
    except csv.Error as exc:
        raise XmodalError(f"cannot parse {str(p)!r} as CSV ({exc})") from exc
    if not rows:
        raise XmodalError(f"{str(p)!r} is empty; a CSV needs one row per sample")
    return rows, delimiter


def _detect_header(rows: list[list[str]]) -> bool:
    """A first row is a header if it has a non-numeric cell in a column whose later cells are numeric."""
    first = rows[0]
    if all(_is_number(c) for c in first):
        return False
    if len(rows) == 1:
        return True
    rest = rows[1 : 1 + 50]
    for j, cell in enumerate(first):
        if _is_number(cell):
            continue
        column = [r[j] for r in rest if j < len(r) and r[j] != ""]
        if column and all(_is_number(c) for c in column):
            return True
    return False


def _parse_table(
    p: Path, target: str | int, header: bool | None, delimiter: str | None
) -> tuple[np.ndarray, list[str], list[str], str]:
    """Parse a CSV into ``(feature cells (N × F strings), raw target strings (N,), feature names, target name,
    the file line of the first data row)``."""
    rows, _ = _read_rows(p, delimiter)
    has_header = _detect_header(rows) if header is None else header
    names = rows[0] if has_header else [f"column {j}" for j in range(len(rows[0]))]
    body = rows[1:] if has_header else rows
    first_line = 2 if has_header else 1
    if not body:
        raise XmodalError(f"{str(p)!r} has a header but no data rows")
    width = len(names)
    for i, row in enumerate(body):
        if len(row) != width:
            raise XmodalError(
                f"{str(p)!r} row {i + 1} (line {first_line + i}) has {len(row)} cells but the "
                f"{'header' if has_header else 'first row'} has {width}; every row needs the same columns"
            )
    if width < 2:
        raise XmodalError(
            f"{str(p)!r} has {width} column(s); a CSV needs at least one feature and the target"
        )
    if isinstance(target, str):
        if not has_header:
            raise XmodalError(
                f"target={target!r} names a column but {str(p)!r} has no header row; "
                "give the column's index (e.g. target=-1) or add a header"
            )
        if target not in names:
            raise XmodalError(f"{str(p)!r} has no column {target!r}; its columns are {names}")
        t = names.index(target)
    else:
        if not -width <= int(target) < width:
            raise XmodalError(f"target index {target} is out of range for {width} columns")
        t = int(target) % width
    feat_idx = [j for j in range(width) if j != t]
    cells = [[row[j] for j in feat_idx] for row in body]
    y_raw = [row[t] for row in body]
    for i, cell in enumerate(y_raw):
        if cell == "":
            raise XmodalError(
                f"{str(p)!r} has an empty target cell in column {names[t]!r} at row {i + 1} "
                f"(line {first_line + i}); drop unlabelled rows"
            )
    return cells, y_raw, [names[j] for j in feat_idx], names[t], first_line


def encode_table(
    cells: Sequence[Sequence[str]],
    names: Sequence[str],
    source: str,
    encoding: dict | None = None,
    first_line: int = 1,
    impute: str = "none",
    fit_rows: Sequence[int] | None = None,
) -> tuple[np.ndarray, list[str], dict]:
    """Encode a table's feature cells (strings, ``N`` rows × ``F`` columns) as numbers.

    A column is *categorical* when any non-empty cell is not a number (in the file the encoding is
    learned from); it becomes one 0/1 column per category, ``name=value``, categories in sorted order,
    as the ARFF reader does for nominal attributes. An empty cell, or a category the encoding has not
    seen, is all zeros. Every other column is *numeric*: an empty, NaN or Inf cell there is an error
    unless ``impute="median"``, which fills it with the column's median over the file the encoding
    is learned from (stored in the encoding as ``fill``, so new tables get the training medians); text
    in a column the encoding says is numeric is always an error.

    Args:
        cells: the feature cells, row by row.
        names: the ``F`` column names.
        source: the file, for messages.
        encoding: a previous result's encoding (e.g. the training file's) to apply; ``None`` learns it.
        first_line: the file line of the first row, for messages.
        impute: ``"none"`` (default: missing numeric cells are an error) or ``"median"``; only used
            when the encoding is learned here (an applied encoding carries its own fill values).
        fit_rows: the rows whose values give the medians (default: all), e.g. the training rows of a
            file that is split afterwards.

    Returns:
        ``(X (N, F') float64, the F' encoded column names, encoding)`` where ``encoding`` is a
        JSON-serialisable ``{"columns": [{"name", "kind", "categories"?}, …]}``.
    """
    F = len(names)
    if impute not in ("none", "median"):
        raise XmodalError(f"impute must be 'none' or 'median', got {impute!r}")
    if encoding is None:
        columns = []
        for j, name in enumerate(names):
            values = {row[j] for row in cells if row[j] != ""}
            if any(not _is_number(v) for v in values):
                columns.append({"name": name, "kind": "categorical", "categories": sorted(values)})
                continue
            col: dict[str, Any] = {"name": name, "kind": "numeric"}
            if impute == "median":
                rows = cells if fit_rows is None else [cells[i] for i in fit_rows]
                numbers = np.array([float(row[j]) for row in rows if row[j] != ""], dtype=np.float64)
                numbers = numbers[np.isfinite(numbers)]
                if numbers.size == 0:
                    raise XmodalError(f"{source!r}: column {name!r} has no finite value to impute from; drop it")
                col["fill"] = float(np.median(numbers))
            columns.append(col)
        encoding = {"columns": columns}
    columns = encoding["columns"]
    if len(columns) != F:
        raise XmodalError(
            f"{source!r} has {F} feature columns but the table it is read against had {len(columns)} "
            f"({[c['name'] for c in columns]}); both need the same columns"
        )
    blocks: list[np.ndarray] = []
    out_names: list[str] = []
    for j, col in enumerate(columns):
        if col["kind"] == "categorical":
            index = {c: k for k, c in enumerate(col["categories"])}
            block = np.zeros((len(cells), len(index)), dtype=np.float64)
            for i, row in enumerate(cells):
                k = index.get(row[j])
                if k is not None:
                    block[i, k] = 1.0
            blocks.append(block)
            out_names.extend(f"{col['name']}={c}" for c in col["categories"])
            continue
        block = np.empty((len(cells), 1), dtype=np.float64)
        fill = col.get("fill")
        for i, row in enumerate(cells):
            cell = row[j]
            if fill is not None and (cell == "" or (_is_number(cell) and not math.isfinite(float(cell)))):
                block[i, 0] = fill
                continue
            try:
                value = float(cell)
            except ValueError:
                what = "an empty (missing) cell" if cell == "" else f"the non-numeric cell {cell!r}"
                raise XmodalError(
                    f"{source!r} has {what} in the numeric feature column {names[j]!r} at row {i + 1} "
                    f"(line {first_line + i}); impute missing values (impute='median', `--impute median`, or "
                    "sklearn.impute.SimpleImputer); text columns are one-hot encoded only when the "
                    "training table has text in them"
                ) from None
            if not math.isfinite(value):
                raise XmodalError(
                    f"{source!r} has {cell!r} (NaN/Inf) in feature column {names[j]!r} at row {i + 1} "
                    f"(line {first_line + i}); impute it (impute='median', `--impute median`) or drop the row"
                )
            block[i, 0] = value
        blocks.append(block)
        out_names.append(col["name"])
    X = np.concatenate(blocks, axis=1) if blocks else np.empty((len(cells), 0))
    if X.shape[1] == 0:
        raise XmodalError(f"{source!r} has no usable feature columns (every categorical column is empty)")
    return X, out_names, encoding


def _numeric_targets(y_raw: list[str], p: Path, target_name: str) -> np.ndarray:
    y = np.asarray([float(c) for c in y_raw])
    if not np.isfinite(y).all():
        i = int(np.nonzero(~np.isfinite(y))[0][0])
        raise XmodalError(
            f"{str(p)!r} has a NaN/Inf target in column {target_name!r} at row {i + 1}; "
            "drop or impute those rows"
        )
    if np.all(np.mod(y, 1) == 0) and np.all(np.abs(y) < 2**53):
        return y.astype(np.int64)
    return y


def read_csv(
    path: str | os.PathLike,
    target: str | int = -1,
    test_path: str | os.PathLike | None = None,
    task: str = "auto",
    test_size: float | None = None,
    seed: int = 0,
    *,
    header: bool | None = None,
    delimiter: str | None = None,
    encoding: dict | None = None,
    impute: str = "none",
) -> Dataset:
    """Read a tabular dataset from a CSV file: one sample per row, one target column.

    Args:
        path: the training ``.csv`` (``.tsv``/``.txt`` too). A first row with a non-numeric cell
            above numeric values is taken as the header.
        target: the target column, by name (needs a header) or index (default ``-1``: the last).
            Non-numeric targets are class names, encoded as ``0..K-1`` in sorted order of the
            training labels (``meta["classes"]``); whole-number targets are read as integers.
        test_path: an optional test CSV with the same columns.
        task: task kind (``"classification"``, ``"regression"``, …) or ``"auto"``.
        test_size: without ``test_path``, hold out this fraction (0 < ``test_size`` < 1) as the test
            split, stratified by class for classification.
        seed: random seed of that split.
        header: force (``True``) or forbid (``False``) a header row; ``None`` detects it.
        delimiter: the field separator; ``None`` picks ``,``, ``;`` or tab from the first line.
        encoding: a feature encoding to apply (``meta["encoding"]`` of an earlier read, e.g. of the
            training file when this one is scored); ``None`` learns it from this file. Text columns
            are one-hot encoded (see :func:`encode_table`).
        impute: ``"none"`` (missing numeric cells are an error) or ``"median"`` (filled with the training
            file's column medians, also in the test file); see :func:`encode_table`.

    Returns:
        A :class:`Dataset` named after the file stem with ``X`` of shape ``(N, 1, F)`` float32 (``F``
        encoded feature columns: one per numeric column, one per category of a text column) and
        targets canonical for the task kind (``(N,)`` int64 for classification, ``(N, 1)`` float32 for
        regression). ``meta`` holds ``source``, ``feature_names``, ``target``, ``encoding`` and, for
        class names, ``classes``.

    Raises:
        XmodalError: missing/unreadable file, wrong extension, ragged rows, unknown target column,
            empty / NaN / text cells in numeric feature columns (naming column and row), invalid targets.
    """
    p = _existing_file(path, (".csv", ".tsv", ".txt"), "a CSV file")
    if test_path is not None and test_size is not None:
        raise XmodalError("give either test_path or test_size, not both")
    if test_size is not None and not 0.0 < float(test_size) < 1.0:
        raise XmodalError(f"test_size must be a fraction between 0 and 1, got {test_size}")
    cells, y_raw, columns, target_name, line = _parse_table(p, target, header, delimiter)
    meta: dict[str, Any] = {"source": str(p), "target": target_name}

    te_cells = y_te_raw = None
    if test_path is not None:
        pt = _existing_file(test_path, (".csv", ".tsv", ".txt"), "a CSV file")
        # the test file is addressed by the training file's target column name when both have headers
        t_target = target_name if isinstance(target, str) else target
        te_cells, y_te_raw, te_columns, _, te_line = _parse_table(pt, t_target, header, delimiter)
        if len(te_columns) != len(columns):
            raise XmodalError(
                f"the test CSV {str(pt)!r} has {len(te_columns)} feature columns but the training CSV has "
                f"{len(columns)}; both need the same columns"
            )
        meta["test_source"] = str(pt)

    numeric = all(_is_number(c) for c in y_raw)
    if numeric and y_te_raw is not None and not all(_is_number(c) for c in y_te_raw):
        numeric = False
    if numeric:
        y = _numeric_targets(y_raw, p, target_name)
        y_te = None if y_te_raw is None else _numeric_targets(y_te_raw, pt, target_name)
    else:
        if not _may_hold_labels(task):
            raise XmodalError(
                f"the target column {target_name!r} holds non-numeric values (e.g. "
                f"{next(c for c in y_raw if not _is_number(c))!r}), which only task='classification' "
                f"accepts, not task={task!r}"
            )
        task = LABELS_KIND
        y, y_te, classes = encode_labels(y_raw, y_te_raw)
        meta["classes"] = classes

    # the held-out rows are chosen before the features are encoded, so that imputed medians come from
    # the training rows only
    split = None
    if test_size is not None:
        if task == "auto":
            task = infer_task_kind(y, (len(columns),))  # guessed on every row, once (a close call warns once)
        name = task
        split = _split(np.arange(len(y)), y, float(test_size), seed, stratify=get_task_kind(name).exclusive_classes)[:2]
    X, features, encoding = encode_table(cells, columns, str(p), encoding, line, impute,
                                         fit_rows=None if split is None else split[0])
    meta.update(feature_names=features, encoding=encoding)
    X_te = None if te_cells is None else encode_table(te_cells, te_columns, str(pt), encoding, te_line)[0]
    if split is not None:
        X, X_te, y, y_te = X[split[0]], X[split[1]], y[split[0]], y[split[1]]
    return dataset_from_arrays(
        p.stem, X, y, X_te, y_te, task=task,
        description=f"user table from {p.name}",
        meta=meta,
    )


def _split(X: np.ndarray, y: np.ndarray, test_size: float, seed: int, stratify: bool):
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(
            X, y, test_size=test_size, random_state=seed, stratify=y if stratify else None
        )
    except ValueError as exc:
        raise XmodalError(
            f"cannot hold out test_size={test_size} of {len(y)} samples"
            f"{' stratified by class' if stratify else ''} ({exc}); use a larger data set or another "
            "--test-size, give a separate test file (--test FILE; test_path= in Python)"
            f"{', or --task regression if the target is a quantity, not a class' if stratify else ''}"
        ) from exc


def read_csv_features(
    path: str | os.PathLike, drop: str | int | None = None, encoding: dict | None = None
) -> np.ndarray:
    """Read a CSV of feature columns only (for prediction): ``(N, F)`` float32.

    Args:
        path: the file; a header row is detected as in :func:`read_csv`.
        drop: a column (name or index) to leave out, e.g. a target column kept in the file.
        encoding: the training table's feature encoding (``meta["encoding"]`` of :func:`read_csv`;
            saved as ``table_encoding.json`` next to a model fitted by ``xmodal fit`` on a CSV), so that
            text columns get the training categories; ``None``: every column must be numeric.
    """
    p = _existing_file(path, (".csv", ".tsv", ".txt"), "CSV")
    rows, _ = _read_rows(p, None)
    has_header = _detect_header(rows)
    names = rows[0] if has_header else [f"column {j}" for j in range(len(rows[0]))]
    keep = list(range(len(names)))
    if drop is not None:
        if isinstance(drop, str) and not drop.lstrip("-").isdigit():
            if drop not in names:
                raise XmodalError(f"{str(p)!r} has no column {drop!r}; its columns are {names}")
            keep.remove(names.index(drop))
        else:
            keep.remove(int(drop) % len(names))
    data = rows[1:] if has_header else rows
    if not data:
        raise XmodalError(f"{str(p)!r} has no data rows")
    for i, row in enumerate(data):
        if len(row) != len(names):
            raise XmodalError(f"{str(p)!r} row {i + 1} has {len(row)} cells, expected {len(names)}")
    cells = [[row[j] for j in keep] for row in data]
    columns = [names[j] for j in keep]
    if encoding is not None and drop is None and len(columns) == len(encoding["columns"]) + 1:
        raise XmodalError(
            f"{str(p)!r} has {len(columns)} columns but the model's table had {len(encoding['columns'])} feature "
            "columns; if one column is the target, leave it out (--target NAME, or drop=NAME)"
        )
    if encoding is None:
        encoding = {"columns": [{"name": n, "kind": "numeric"} for n in columns]}
    X, _, _ = encode_table(cells, columns, str(p), encoding, 2 if has_header else 1)
    return X.astype(np.float32)
