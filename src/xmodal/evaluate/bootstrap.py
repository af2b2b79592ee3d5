"""The bootstrap standard error of a metric over the rows it is scored on.

A validation score computed on ``N`` held-out rows is itself an estimate. Its standard error is the
standard deviation of the metric over resamples of the ``N`` rows drawn with replacement (Efron &
Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 6):

.. math::

    \\widehat{\\mathrm{se}} = \\operatorname{std}_b\\, m\\big(\\text{out}[I_b], y[I_b]\\big), \\qquad
    I_b \\sim \\mathrm{Uniform}\\{1..N\\}^N, \\; b = 1..B.

It works for every metric of :mod:`xmodal.evaluate.metrics` (accuracy, AUROC, relative L2, …) because the
metric is recomputed on each resample (only the standard deviation is needed, not
:func:`scipy.stats.bootstrap`'s confidence intervals, which warn on the degenerate resamples a small
validation set gives).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from xmodal.evaluate.metrics import evaluate
from xmodal.tasks import TaskKind

__all__ = ["bootstrap_se", "N_RESAMPLES"]

#: resamples of the bootstrap (B): the standard error's own relative error is about 1/sqrt(2B), 5 % here
N_RESAMPLES = 200


def bootstrap_se(kind: TaskKind | str, out: torch.Tensor, y: torch.Tensor, metric: str, *,
                 n_resamples: int = N_RESAMPLES, seed: int = 0) -> float:
    """The bootstrap standard error of ``metric`` of raw outputs ``out`` against targets ``y``.

    Args:
        kind: the task kind (or its name), as for :func:`xmodal.evaluate.evaluate`.
        out: raw model outputs, ``(N, ...)``.
        y: canonical targets, ``(N, ...)``.
        metric: a metric name that applies to ``kind``.
        n_resamples: resamples of the ``N`` rows (default :data:`N_RESAMPLES`).
        seed: seed of the resampling.

    Returns:
        The standard deviation of the metric over the resamples (in the metric's units); ``nan`` when
        ``N < 2`` or the metric is undefined on the resamples (e.g. AUROC where a resample holds one class).
    """
    out, y = torch.as_tensor(out).detach().cpu(), torch.as_tensor(y).detach().cpu()
    if len(out) < 2:
        return math.nan
    rows = np.random.default_rng(seed).integers(0, len(out), size=(int(n_resamples), len(out)))
    values = [evaluate(kind, out[index], y[index], [metric])[metric] for index in torch.from_numpy(rows)]
    se = float(np.std(values, ddof=1))
    return se if math.isfinite(se) else math.nan
