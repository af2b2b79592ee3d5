"""Evaluation: metrics on raw model outputs (see :mod:`xmodal.evaluate.metrics`)."""

from xmodal.evaluate.metrics import METRICS, Metric, evaluate, get_metric, list_metrics, metrics_for

__all__ = ["Metric", "METRICS", "get_metric", "list_metrics", "metrics_for", "evaluate"]
