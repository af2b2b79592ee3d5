"""Experiments built on the estimator: the strategy comparison (:mod:`xmodal.experiments.compare`)."""

from xmodal.experiments.compare import CompareResult, compare

__all__ = ["CompareResult", "compare"]
