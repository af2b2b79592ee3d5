"""CSV tables: one sample per row, one target column, every other column a feature.

Parsing is the standard library's :mod:`csv` (its :class:`csv.Sniffer` picks the delimiter among
``,``, ``;`` and tab when none is given); categories are one-hot encoded by scikit-learn's
:class:`~sklearn.preprocessing.OneHotEncoder`. What xmodal adds is the boundary: the header is
detected by column types, every problem is named with its row and file line, and the feature
*encoding* (which columns are categorical, their categories, imputed medians) is learned once, kept as
JSON (``meta["encoding"]``, ``table_encoding.json`` next to a fitted model) and applied to every later
table, so that a test or prediction file is encoded exactly as the training file was.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.data.dataset import Dataset
from xmodal.data.readers import dataset_from_arrays, encode_labels, existing_file, may_hold_labels
from xmodal.errors import XmodalError
from xmodal.tasks import LABELS_KIND, get_task_kind, infer_task_kind

__all__ = ["read_csv", "read_csv_features", "encode_table"]

_SUFFIXES = (".csv", ".tsv", ".txt")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_rows(p: Path, delimiter: str | None) -> list[list[str]]:
    """The non-empty rows of ``p``, cells stripped; the delimiter sniffed from the first line when ``None``."""
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
        try:
            delimiter = csv.Sniffer().sniff(first, delimiters=",;\t").delimiter
        except csv.Error:  # one column, or no separator the sniffer can tell: read it comma-separated
            delimiter = ","
    try:
        rows = [[c.strip() for c in row] for row in csv.reader(text.splitlines(), delimiter=delimiter)
                if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise XmodalError(f"cannot parse {str(p)!r} as CSV ({exc})") from exc
    if not rows:
        raise XmodalError(f"{str(p)!r} is empty; a CSV needs one row per sample")
    return rows


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


def _rows_and_names(p: Path, header: bool | None, delimiter: str | None) -> tuple[list[list[str]], list[str], int]:
    """The data rows, the column names (``column j`` without a header) and the file line of the first row;
    ragged rows are refused."""
    rows = _read_rows(p, delimiter)
    has_header = _detect_header(rows) if header is None else header
    names = rows[0] if has_header else [f"column {j}" for j in range(len(rows[0]))]
    body = rows[1:] if has_header else rows
    first_line = 2 if has_header else 1
    if not body:
        raise XmodalError(f"{str(p)!r} has a header but no data rows")
    for i, row in enumerate(body):
        if len(row) != len(names):
            raise XmodalError(
                f"{str(p)!r} row {i + 1} (line {first_line + i}) has {len(row)} cells but the "
                f"{'header' if has_header else 'first row'} has {len(names)}; every row needs the same columns"
            )
    return body, list(names), first_line


def _column_index(p: Path, names: list[str], column: str | int, has_header: bool) -> int:
    """The index of ``column`` (a name, which needs a header, or an index, negative from the end)."""
    if isinstance(column, str):
        if not has_header:
            raise XmodalError(f"target={column!r} names a column but {str(p)!r} has no header row; "
                              "give the column's index (e.g. target=-1) or add a header")
        if column not in names:
            raise XmodalError(f"{str(p)!r} has no column {column!r}; its columns are {names}")
        return names.index(column)
    if not -len(names) <= int(column) < len(names):
        raise XmodalError(f"target index {column} is out of range for {len(names)} columns")
    return int(column) % len(names)


def _parse_table(p: Path, target: str | int, header: bool | None,
                 delimiter: str | None) -> tuple[list[list[str]], list[str], list[str], str, int]:
    """Parse a CSV into ``(feature cells (N × F strings), raw target strings (N,), feature names, target name,
    the file line of the first data row)``."""
    body, names, first_line = _rows_and_names(p, header, delimiter)
    if len(names) < 2:
        raise XmodalError(f"{str(p)!r} has {len(names)} column(s); a CSV needs at least one feature and the target")
    t = _column_index(p, names, target, has_header=first_line == 2)
    feat_idx = [j for j in range(len(names)) if j != t]
    y_raw = [row[t] for row in body]
    for i, cell in enumerate(y_raw):
        if cell == "":
            raise XmodalError(f"{str(p)!r} has an empty target cell in column {names[t]!r} at row {i + 1} "
                              f"(line {first_line + i}); drop unlabelled rows")
    return [[row[j] for j in feat_idx] for row in body], y_raw, [names[j] for j in feat_idx], names[t], first_line


def _learn_encoding(cells: Sequence[Sequence[str]], names: Sequence[str], source: str, impute: str,
                    fit_rows: Sequence[int] | None) -> dict:
    """``{"columns": [...]}``: a column with any non-numeric cell is categorical (its sorted categories);
    the others numeric, with ``fill`` = the median over ``fit_rows`` when ``impute="median"``."""
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
    return {"columns": columns}


def _one_hot(values: list[str], categories: list[str]) -> np.ndarray:
    """``(N, len(categories))`` 0/1; an empty cell or an unseen category is all zeros."""
    from sklearn.preprocessing import OneHotEncoder

    if not categories:
        return np.zeros((len(values), 0))
    enc = OneHotEncoder(categories=[categories], handle_unknown="ignore", sparse_output=False, dtype=np.float64)
    enc.fit(np.asarray(categories, dtype=object).reshape(-1, 1))
    return enc.transform(np.asarray(values, dtype=object).reshape(-1, 1))


def _numeric(values: list[str], col: dict, source: str, first_line: int) -> np.ndarray:
    """``(N, 1)`` floats; missing / NaN / Inf cells filled with ``col["fill"]`` when it has one, else refused."""
    fill = col.get("fill")
    out = np.empty((len(values), 1), dtype=np.float64)
    for i, cell in enumerate(values):
        if fill is not None and (cell == "" or (_is_number(cell) and not math.isfinite(float(cell)))):
            out[i, 0] = fill
            continue
        try:
            value = float(cell)
        except ValueError:
            what = "an empty (missing) cell" if cell == "" else f"the non-numeric cell {cell!r}"
            raise XmodalError(
                f"{source!r} has {what} in the numeric feature column {col['name']!r} at row {i + 1} "
                f"(line {first_line + i}); impute missing values (impute='median', `--impute median`, or "
                "sklearn.impute.SimpleImputer); text columns are one-hot encoded only when the "
                "training table has text in them"
            ) from None
        if not math.isfinite(value):
            raise XmodalError(
                f"{source!r} has {cell!r} (NaN/Inf) in feature column {col['name']!r} at row {i + 1} "
                f"(line {first_line + i}); impute it (impute='median', `--impute median`) or drop the row"
            )
        out[i, 0] = value
    return out


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
        JSON-serialisable ``{"columns": [{"name", "kind", "categories"?, "fill"?}, …]}``.
    """
    if impute not in ("none", "median"):
        raise XmodalError(f"impute must be 'none' or 'median', got {impute!r}")
    if encoding is None:
        encoding = _learn_encoding(cells, names, source, impute, fit_rows)
    columns = encoding["columns"]
    if len(columns) != len(names):
        raise XmodalError(
            f"{source!r} has {len(names)} feature columns but the table it is read against had {len(columns)} "
            f"({[c['name'] for c in columns]}); both need the same columns"
        )
    blocks: list[np.ndarray] = []
    out_names: list[str] = []
    for j, col in enumerate(columns):
        values = [row[j] for row in cells]
        if col["kind"] == "categorical":
            blocks.append(_one_hot(values, col["categories"]))
            out_names.extend(f"{col['name']}={c}" for c in col["categories"])
        else:
            blocks.append(_numeric(values, {**col, "name": names[j]}, source, first_line))
            out_names.append(col["name"])
    X = np.concatenate(blocks, axis=1) if blocks else np.empty((len(cells), 0))
    if X.shape[1] == 0:
        raise XmodalError(f"{source!r} has no usable feature columns (every categorical column is empty)")
    return X, out_names, encoding


def _numeric_targets(y_raw: list[str], p: Path, target_name: str) -> np.ndarray:
    y = np.asarray([float(c) for c in y_raw])
    if not np.isfinite(y).all():
        i = int(np.nonzero(~np.isfinite(y))[0][0])
        raise XmodalError(f"{str(p)!r} has a NaN/Inf target in column {target_name!r} at row {i + 1}; "
                          "drop or impute those rows")
    if np.all(np.mod(y, 1) == 0) and np.all(np.abs(y) < 2**53):
        return y.astype(np.int64)
    return y


def _targets(y_raw: list[str], y_te_raw: list[str] | None, p: Path, pt: Path | None, target_name: str,
             task: str, meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Numeric targets as numbers (whole numbers as integers); text targets as class indices in sorted order
    of the training labels (``meta["classes"]``), which only classification accepts."""
    numeric = all(_is_number(c) for c in y_raw) and (y_te_raw is None or all(_is_number(c) for c in y_te_raw))
    if numeric:
        y_te = None if y_te_raw is None else _numeric_targets(y_te_raw, pt, target_name)
        return _numeric_targets(y_raw, p, target_name), y_te, task
    if not may_hold_labels(task):
        raise XmodalError(
            f"the target column {target_name!r} holds non-numeric values (e.g. "
            f"{next(c for c in y_raw if not _is_number(c))!r}), which only task='classification' "
            f"accepts, not task={task!r}"
        )
    y, y_te, meta["classes"] = encode_labels(y_raw, y_te_raw)
    return y, y_te, LABELS_KIND


# over 60 lines only through its docstring (every argument documented); the code is 46 lines
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
        delimiter: the field separator; ``None`` sniffs ``,``, ``;`` or tab from the first line.
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
    p = existing_file(path, _SUFFIXES, "a CSV file")
    if test_path is not None and test_size is not None:
        raise XmodalError("give either test_path or test_size, not both")
    if test_size is not None and not 0.0 < float(test_size) < 1.0:
        raise XmodalError(f"test_size must be a fraction between 0 and 1, got {test_size}")
    cells, y_raw, columns, target_name, line = _parse_table(p, target, header, delimiter)
    meta: dict[str, Any] = {"source": str(p), "target": target_name}
    te_cells = y_te_raw = pt = None
    if test_path is not None:
        pt = existing_file(test_path, _SUFFIXES, "a CSV file")
        # the test file is addressed by the training file's target column name when both have headers
        te_cells, y_te_raw, te_columns, _, te_line = _parse_table(
            pt, target_name if isinstance(target, str) else target, header, delimiter)
        if len(te_columns) != len(columns):
            raise XmodalError(f"the test CSV {str(pt)!r} has {len(te_columns)} feature columns but the training "
                              f"CSV has {len(columns)}; both need the same columns")
        meta["test_source"] = str(pt)
    y, y_te, task = _targets(y_raw, y_te_raw, p, pt, target_name, task, meta)
    # the held-out rows are chosen before the features are encoded, so that imputed medians come from
    # the training rows only
    split = None
    if test_size is not None:
        if task == "auto":
            task = infer_task_kind(y, (len(columns),))  # guessed on every row, once (a close call warns once)
        split = _split(np.arange(len(y)), y, float(test_size), seed, get_task_kind(task).exclusive_classes)[:2]
    X, features, encoding = encode_table(cells, columns, str(p), encoding, line, impute,
                                         fit_rows=None if split is None else split[0])
    meta.update(feature_names=features, encoding=encoding)
    X_te = None if te_cells is None else encode_table(te_cells, te_columns, str(pt), encoding, te_line)[0]
    if split is not None:
        X, X_te, y, y_te = X[split[0]], X[split[1]], y[split[0]], y[split[1]]
    return dataset_from_arrays(p.stem, X, y, X_te, y_te, task=task, description=f"user table from {p.name}",
                               meta=meta)


def _split(X: np.ndarray, y: np.ndarray, test_size: float, seed: int, stratify: bool) -> list[np.ndarray]:
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y if stratify else None)
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
    p = existing_file(path, _SUFFIXES, "CSV")
    data, names, first_line = _rows_and_names(p, None, None)
    keep = list(range(len(names)))
    if drop is not None:
        keep.remove(_column_index(p, names, int(drop) if str(drop).lstrip("-").isdigit() else drop, True))
    cells = [[row[j] for j in keep] for row in data]
    columns = [names[j] for j in keep]
    if encoding is not None and drop is None and len(columns) == len(encoding["columns"]) + 1:
        raise XmodalError(
            f"{str(p)!r} has {len(columns)} columns but the model's table had {len(encoding['columns'])} feature "
            "columns; if one column is the target, leave it out (--target NAME, or drop=NAME)"
        )
    if encoding is None:
        encoding = {"columns": [{"name": n, "kind": "numeric"} for n in columns]}
    X, _, _ = encode_table(cells, columns, str(p), encoding, first_line)
    return X.astype(np.float32)
