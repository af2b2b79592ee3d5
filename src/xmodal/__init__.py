"""xmodal: cross-modal fine-tuning of pretrained transformers (ORCA / MoNA align-then-refine)."""

from xmodal.errors import XmodalError
from xmodal.estimator import CrossModalEstimator, load

__version__ = "0.1.0"

__all__ = ["CrossModalEstimator", "XmodalError", "load", "__version__"]
