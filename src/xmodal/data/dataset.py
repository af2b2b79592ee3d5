"""A labelled train/test split held in memory, as every loader and reader returns it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Dataset"]


@dataclass
class Dataset:
    """Arrays of one task with the split its source defines.

    Attributes:
        name: short identifier (``"gunpoint"``).
        task: task kind name (see :mod:`xmodal.tasks`).
        X_train: inputs, ``(N, C, *S)`` float32 (tabular rows are ``(N, 1, F)``).
        y_train: targets in the task kind's canonical layout.
        X_test: test inputs with the same per-sample shape, or ``None``.
        y_test: test targets, or ``None``.
        metric: the metric the source reports (``"accuracy"``, ``"rel_l2"``, …).
        description: one line on what the data are and where they come from.
        meta: free-form extras (class names, feature names, …), JSON-serialisable.
    """

    name: str
    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    metric: str | None = None
    description: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def tabular(self) -> bool:
        """Whether the samples are table rows (``meta`` names feature columns): scale per column."""
        return bool(self.meta.get("feature_names")) and self.X_train.shape[1] == 1

    def fit_inputs(self, X: np.ndarray) -> np.ndarray:
        """``X`` as the estimator should receive it: ``(N, F)`` for tabular rows, else unchanged."""
        return X[:, 0] if self.tabular else X

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Per-sample input shape ``(C, *S)``."""
        return tuple(self.X_train.shape[1:])

    def summary(self) -> str:
        """One line: name, task, sizes and shapes."""
        n_test = 0 if self.X_test is None else len(self.X_test)
        return (
            f"{self.name}: {self.task}, train {len(self.X_train)}, test {n_test}, "
            f"sample shape (C, *S) = {self.sample_shape}"
        )
