"""The scikit-learn-style estimator (:class:`CrossModalEstimator`) and model folders (:func:`load`).

* :mod:`.core` — the estimator: settings, ``fit`` (checks, then the validation protocol), prediction;
* :mod:`.runs` — one training run (stages 1–3 of one strategy), its cost plan, and whether it learned;
* :mod:`.protocol` — the validation protocol: which runs ``fit`` makes (candidates, a lower-lr retry when an
  automatic lr learned nothing, the refit) and which model it keeps;
* :mod:`.body_selection` — ``body="auto"``: a short run per candidate body, the pick;
* :mod:`.persistence` — model folders: ``save`` / :func:`load`, no pickle;
* :mod:`.inputs` — targets at the boundary (class labels in any label space, column vectors).
"""

from xmodal.estimator.core import CrossModalEstimator, FitReport, NotFitted
from xmodal.estimator.inputs import encode_class_labels
from xmodal.estimator.persistence import load
from xmodal.estimator.protocol import RefitCollapsedWarning
from xmodal.estimator.runs import NotLearnedWarning
from xmodal.model.bodies import body_fingerprint

__all__ = ["CrossModalEstimator", "FitReport", "load", "encode_class_labels", "NotLearnedWarning",
           "RefitCollapsedWarning", "NotFitted", "body_fingerprint"]
