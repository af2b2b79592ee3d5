"""The scikit-learn-style estimator (:class:`CrossModalEstimator`) and model folders (:func:`load`).

* :mod:`.core` — the estimator: settings, ``fit`` (checks, then the validation protocol), prediction;
* :mod:`.runs` — one training run (stages 1–3 of one strategy) and what ``fit`` does with several;
* :mod:`.persistence` — model folders: ``save`` / :func:`load`, no pickle;
* :mod:`.inputs` — targets at the boundary (class labels in any label space, column vectors).
"""

from xmodal.estimator.core import CrossModalEstimator, FitReport, NotFitted
from xmodal.estimator.inputs import encode_class_labels
from xmodal.estimator.persistence import load
from xmodal.estimator.runs import NotLearnedWarning, RefitCollapsedWarning
from xmodal.model.bodies import body_fingerprint

__all__ = ["CrossModalEstimator", "FitReport", "load", "encode_class_labels", "NotLearnedWarning",
           "RefitCollapsedWarning", "NotFitted", "body_fingerprint"]
