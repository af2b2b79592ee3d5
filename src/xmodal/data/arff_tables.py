"""Weka ARFF tables as classification datasets: numeric columns kept, nominal columns one-hot encoded.

An ARFF file declares each attribute as ``numeric`` (also ``real``/``integer``) or nominal
(``{v1, v2, …}``) and lists one row per instance (dense, or sparse ``{index value, …}``); ``?``
marks a missing value. :func:`read_arff` parses it with ``liac-arff`` (``.arff`` or ``.arff.gz``) and
encodes it:

* numeric attribute ``age`` → one column ``age`` (scaling is left to the model, which
  standardises tabular columns);
* nominal attribute ``housing {rent, own, 'for free'}`` → three 0/1 columns ``housing=rent``,
  ``housing=own``, ``housing=for free`` in declaration order; a missing value gets all zeros;
* the class attribute (by default the last one, Weka's convention) → integer labels indexing
  its declared values, which become ``classes``.

Rows of an ARFF table become samples of shape ``(1, F)`` (one channel, ``F`` features), like the
other tabular datasets.

``liac-arff`` rather than :func:`scipy.io.arff.loadarff`: scipy guesses the CSV quoting from the
first data row, so a file whose first row has no quoted value keeps the quotes of later ones
(``'light blue'``) and then refuses them as undeclared.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.data.dataset import Dataset
from xmodal.data.readers import dataset_from_arrays
from xmodal.errors import XmodalError

__all__ = ["ArffTable", "read_arff", "arff_dataset"]


@dataclass
class ArffTable:
    """An encoded ARFF table.

    Attributes:
        X: ``(N, F)`` float64 features; attributes keep their file order, each nominal one
            expanded in place into its one-hot block.
        y: ``(N,)`` int64 index into ``classes``.
        feature_names: the ``F`` column names (``attr`` or ``attr=value``).
        classes: the class attribute's declared values.
        relation: the ``@relation`` name.
        target: the class attribute's name.
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    classes: list[str]
    relation: str
    target: str
    meta: dict = field(default_factory=dict)


def read_arff(path: str | os.PathLike, target: str | None = None) -> ArffTable:
    """Read and encode an ARFF file (see the module docstring for the encoding).

    Args:
        path: an ``.arff`` file, optionally gzip-compressed (``.arff.gz``).
        target: the nominal class attribute; default the last attribute.

    Raises:
        XmodalError: missing/unreadable file, malformed ARFF, string or date attributes, an
            unknown or numeric target, missing class labels, or missing numeric values.
    """
    import arff  # liac-arff

    p = Path(path).expanduser()
    if not p.is_file():
        raise XmodalError(f"ARFF file {str(p)!r} does not exist; check the path")
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        parsed = arff.loads(raw.decode("utf-8", errors="replace"))
    except (OSError, EOFError, ValueError, arff.ArffException) as exc:
        raise XmodalError(
            f"cannot read {str(p)!r} as ARFF ({type(exc).__name__}: {exc}); check the @attribute declarations "
            "and that every data row has one value per attribute"
        ) from exc
    attributes = [(str(n), t) for n, t in parsed["attributes"]]
    names = [n for n, _ in attributes]
    rows = parsed["data"]
    if not names or not rows:
        raise XmodalError(f"{str(p)!r} has no attributes or no data rows")
    target = names[-1] if target is None else target
    if target not in names:
        raise XmodalError(f"{str(p)!r} has no attribute {target!r}; its attributes are {names}")
    kinds = dict(attributes)
    if not isinstance(kinds[target], list):
        raise XmodalError(
            f"the target {target!r} of {str(p)!r} is {str(kinds[target]).lower()}, not nominal; read_arff builds "
            "classification datasets: name a nominal class attribute with target=..."
        )
    table = np.asarray(rows, dtype=object)
    classes = [str(v) for v in kinds[target]]
    labels = table[:, names.index(target)]
    missing = sum(v is None for v in labels)
    if missing:
        raise XmodalError(
            f"{str(p)!r} has {missing} row(s) without a class ('?' in {target!r}); drop them before reading"
        )
    index = {c: i for i, c in enumerate(classes)}
    y = np.fromiter((index[str(v)] for v in labels), dtype=np.int64, count=len(labels))
    X, feature_names = _encode_attributes(p, table, attributes, target)
    return ArffTable(X, y, feature_names, classes, str(parsed["relation"]), target, {"source": str(p)})


def _encode_attributes(p: Path, table: np.ndarray, attributes: list[tuple[str, Any]],
                       target: str) -> tuple[np.ndarray, list[str]]:
    """The feature attributes as numbers: nominal ones one-hot over their declared values (a missing value
    all zeros), numeric ones as they are (a missing value refused); other types refused."""
    columns: list[np.ndarray] = []
    feature_names: list[str] = []
    for j, (name, kind) in enumerate(attributes):
        if name == target:
            continue
        cells = table[:, j]
        if isinstance(kind, list):
            declared = [str(v) for v in kind]
            values = np.asarray(["\0missing" if v is None else str(v) for v in cells], dtype=object)
            columns.append((values[:, None] == np.asarray(declared, dtype=object)[None, :]).astype(np.float64))
            feature_names.extend(f"{name}={v}" for v in declared)
        elif kind in ("NUMERIC", "REAL", "INTEGER"):
            bad = sum(v is None for v in cells)
            if bad:
                raise XmodalError(
                    f"{str(p)!r}: numeric attribute {name!r} has {bad} missing value(s) ('?'); impute them first"
                )
            columns.append(cells.astype(np.float64)[:, None])
            feature_names.append(name)
        else:
            raise XmodalError(
                f"{str(p)!r}: attribute {name!r} is of type {str(kind).lower()}, which has no numeric encoding; "
                "drop it or convert it to a nominal or numeric attribute"
            )
    if not columns:
        raise XmodalError(f"{str(p)!r} has no feature attributes besides the target {target!r}")
    return np.concatenate(columns, axis=1), feature_names


def arff_dataset(
    path: str | os.PathLike,
    name: str | None = None,
    *,
    target: str | None = None,
    test_size: float = 0.2,
    seed: int = 0,
    description: str = "",
) -> Dataset:
    """An ARFF table as a classification :class:`Dataset` with a stratified train/test split.

    Rows become samples ``(1, F)``; the split is ``train_test_split(test_size=test_size,
    stratify=y, random_state=seed)``. ``meta`` holds ``classes``, ``feature_names``, ``source``.
    """
    from sklearn.model_selection import train_test_split

    table = read_arff(path, target)
    counts = np.bincount(table.y, minlength=len(table.classes))
    if (counts[counts > 0] < 2).any():
        raise XmodalError(f"{str(path)!r}: a class has a single row; a stratified split needs two per class")
    X_tr, X_te, y_tr, y_te = train_test_split(
        table.X, table.y, test_size=test_size, stratify=table.y, random_state=seed
    )
    return dataset_from_arrays(
        name or Path(path).name.split(".")[0], X_tr, y_tr, X_te, y_te, task="classification", metric="accuracy",
        description=description or f"ARFF table {table.relation!r} from {Path(path).name}",
        meta={
            "source": f"{table.meta['source']} (split: train_test_split(test_size={test_size}, stratify=y, "
            f"random_state={seed}))",
            "classes": list(table.classes),
            "feature_names": list(table.feature_names),
            "relation": table.relation,
        },
    )
