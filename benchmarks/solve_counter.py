"""Counts the Sinkhorn solves of a run, for the benchmarks that report them (``stage2_cost.py``,
``select_cost.py``): importing this module wraps :func:`xmodal.align.sinkhorn.sinkhorn_potentials`,
through which every OTDD problem is solved, so that each solve appends ``(iterations, marginal error,
tolerance asked for)`` to :data:`SOLVES`."""

from __future__ import annotations

import xmodal.align.sinkhorn as sinkhorn

#: every Sinkhorn solve since the last ``SOLVES.clear()``: (iterations, marginal error, tolerance asked for)
SOLVES: list[tuple[int, float, float]] = []
_solve = sinkhorn.sinkhorn_potentials


def _counted(*args, **kwargs):
    res = _solve(*args, **kwargs)
    SOLVES.append((res.iters, res.error, kwargs.get("tol", 1e-4)))
    return res


sinkhorn.sinkhorn_potentials = _counted  # OTDD's solvers call it through the module


def summary() -> tuple[int, int, int]:
    """``(solves, solves stopped at max_iters short of their tolerance, total iterations)``."""
    return len(SOLVES), sum(err >= tol for _, err, tol in SOLVES), sum(i for i, _, _ in SOLVES)
