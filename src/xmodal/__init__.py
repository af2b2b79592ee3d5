"""xmodal: cross-modal fine-tuning of pretrained transformers (ORCA / MoNA align-then-refine).

Importing the package is cheap: the estimator (and with it torch and transformers) loads on first
use of ``xmodal.CrossModalEstimator``, ``xmodal.load`` or ``xmodal.tune``, so the command line can
answer ``--help``, list strategies and refuse bad options without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xmodal.config import RunConfig
from xmodal.errors import XmodalError

if TYPE_CHECKING:
    from xmodal.estimator import CrossModalEstimator, load
    from xmodal.tuning import tune

__version__ = "0.1.0"

__all__ = ["CrossModalEstimator", "RunConfig", "XmodalError", "load", "tune", "select_body", "__version__"]

#: public names that load a heavy module on first access: name → module
_LAZY = {"CrossModalEstimator": "xmodal.estimator", "load": "xmodal.estimator", "tune": "xmodal.tuning.search",
         "select_body": "xmodal.estimator.body_selection"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xmodal' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
