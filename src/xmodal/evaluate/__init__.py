"""Evaluation: metrics on raw model outputs (:mod:`xmodal.evaluate.metrics`), their bootstrap standard
error (:mod:`xmodal.evaluate.bootstrap`), and the source-knowledge probe and modality discrepancy of MoNA
(:mod:`xmodal.evaluate.source_knowledge`)."""

from xmodal.evaluate.metrics import METRICS, Metric, evaluate, get_metric, list_metrics, metrics_for
from xmodal.evaluate.source_knowledge import modality_discrepancy, source_probe

__all__ = [
    "Metric", "METRICS", "get_metric", "list_metrics", "metrics_for", "evaluate",
    "modality_discrepancy", "source_probe",
]
