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

A bootstrap on rows that are all right (or all wrong) gives zero: every resample scores the same, which
would read as certainty where 10 held-out rows cannot give it. For a share of rows (accuracy, error) the
error is therefore at least the Agresti & Coull (1998) "plus-four" one, the binomial error of the share
after adding two right and two wrong rows:

.. math::

    \\tilde p = \\frac{pN + 2}{N + 4}, \\qquad
    \\mathrm{se}_{+4} = \\sqrt{\\tilde p\\,(1 - \\tilde p) / (N + 4)},

about 0.09 for 10 rows all right, and within a few per cent of the plain binomial error once ``N`` is in
the hundreds (where the bootstrap already gives that error).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from xmodal.evaluate.metrics import evaluate
from xmodal.tasks import TaskKind

__all__ = ["bootstrap_se", "proportion_se", "N_RESAMPLES", "PROPORTION_METRICS"]

#: resamples of the bootstrap (B): the standard error's own relative error is about 1/sqrt(2B), 5 % here
N_RESAMPLES = 200
#: metrics that are a share of the scored rows, whose error is floored by :func:`proportion_se`
PROPORTION_METRICS = frozenset({"accuracy", "error"})


def proportion_se(p: float, n: int) -> float:
    """The plus-four (Agresti–Coull) standard error of a share ``p`` ∈ [0, 1] measured on ``n`` ≥ 1 rows:
    never zero, unlike ``sqrt(p (1 − p) / n)`` at ``p`` = 0 or 1 (see the module docstring)."""
    if not 0.0 <= p <= 1.0 or n < 1:
        raise ValueError(f"a share needs 0 <= p <= 1 and n >= 1 rows, got p={p}, n={n}")
    tilde = (p * n + 2.0) / (n + 4.0)
    return math.sqrt(tilde * (1.0 - tilde) / (n + 4.0))


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
        The standard deviation of the metric over the resamples (in the metric's units), for a metric in
        :data:`PROPORTION_METRICS` at least :func:`proportion_se` of its value on the ``N`` rows; ``nan``
        when ``N < 2`` or the metric is undefined on the resamples (e.g. AUROC where a resample holds one
        class).
    """
    out, y = torch.as_tensor(out).detach().cpu(), torch.as_tensor(y).detach().cpu()
    if len(out) < 2:
        return math.nan
    rows = np.random.default_rng(seed).integers(0, len(out), size=(int(n_resamples), len(out)))
    values = [evaluate(kind, out[index], y[index], [metric])[metric] for index in torch.from_numpy(rows)]
    se = float(np.std(values, ddof=1))
    if not math.isfinite(se):
        return math.nan
    if metric in PROPORTION_METRICS:
        se = max(se, proportion_se(evaluate(kind, out, y, [metric])[metric], len(out)))
    return se
