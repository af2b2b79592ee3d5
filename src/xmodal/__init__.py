"""xmodal: cross-modal fine-tuning of pretrained transformers (ORCA / MoNA align-then-refine)."""

from xmodal.config import RunConfig
from xmodal.errors import XmodalError
from xmodal.estimator import CrossModalEstimator, load
from xmodal.tuning import tune

__version__ = "0.1.0"

__all__ = ["CrossModalEstimator", "RunConfig", "XmodalError", "load", "tune", "__version__"]
