"""The built-in dataset registry: :func:`register_dataset`, :func:`load_dataset`, :func:`list_datasets`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from xmodal.data.dataset import Dataset
from xmodal.errors import XmodalError
from xmodal.registry import LoaderEntry, Registry, Requirements

__all__ = ["register_dataset", "load_dataset", "list_datasets", "DATASETS", "stratified_split"]


#: The registry: dataset name → entry (its loader returns a :class:`Dataset`). Fill it with :func:`register_dataset`.
DATASETS: Registry[LoaderEntry] = Registry("dataset")


def register_dataset(
    name: str,
    *,
    description: str,
    requires: tuple[str, ...] = (),
    install: str = "",
    check: Callable[[], bool] | None = None,
) -> Callable[[Callable[[], Dataset]], Callable[[], Dataset]]:
    """Decorator registering ``loader() -> Dataset`` under ``name``.

    Args:
        name: the name :func:`load_dataset` accepts (lower case, ``-`` separated).
        description: one line on what the data are.
        requires: importable top-level modules the loader needs (looked up, not imported).
        install: the command that provides them, quoted in the error when they are missing.
        check: optional ``() -> bool`` that says whether the data files are actually present.
    """

    def deco(loader: Callable[[], Dataset]) -> Callable[[], Dataset]:
        DATASETS.add(name, LoaderEntry(name, loader, description, Requirements(tuple(requires), install, check)))
        return loader

    return deco


def files_present(files: tuple[Path, ...] | None) -> bool:
    """Whether a loader's data files were found (``None``: their package is absent) and all exist."""
    return files is not None and all(f.is_file() for f in files)


def _canonical_name(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    if key in DATASETS:
        return key
    squashed = {k.replace("-", ""): k for k in DATASETS}
    return squashed.get(key.replace("-", ""), key)


def list_datasets() -> list[tuple[str, str, bool]]:
    """All registered datasets as ``(name, description, available)``, sorted by name.

    ``available`` is whether the packages and files the loader reads are installed here.
    """
    return [(e.name, e.description, e.needs.available()) for e in sorted(DATASETS.values(), key=lambda e: e.name)]


def load_dataset(name: str) -> Dataset:
    """Load a built-in dataset by name (case-insensitive; ``_`` and ``-`` are interchangeable).

    Returns:
        A :class:`Dataset` with float32 ``X_train`` ``(N, C, *S)``, ``X_test`` ``(M, C, *S)``, targets
        canonical for the task kind (``(N,)`` int64 for classification, ``(N, K, *S)`` float32 for
        dense regression), the split the source defines and ``meta["source"]``.

    Raises:
        XmodalError: unknown name (the message lists the available ones), or a required package
            or data file is missing (the message says what to install).
    """
    entry = DATASETS.get(_canonical_name(name))
    if entry is None:
        raise DATASETS.unknown(name)
    missing = entry.needs.missing()
    if missing:
        raise XmodalError(
            f"dataset {entry.name!r} needs the package(s) {', '.join(missing)}, which are not installed; "
            f"install with: {entry.needs.install}"
        )
    return entry.loader()


def stratified_split(X: np.ndarray, y: np.ndarray, test_size: float | int | None, seed: int = 0,
                     train_size: int | None = None) -> list[np.ndarray]:
    """``train_test_split`` stratified on ``y``: ``[X_train, X_test, y_train, y_test]``."""
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=test_size, train_size=train_size, stratify=y, random_state=seed)
