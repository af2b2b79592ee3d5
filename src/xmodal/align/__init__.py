"""Stage 2: distances between feature sets and the strategies that minimise them."""

from xmodal.align import warmup  # noqa: F401  (registers 'none' and 'warmup')
from xmodal.align.base import ALIGNERS, AlignConfig, Aligner, get_aligner, register_aligner

__all__ = ["ALIGNERS", "AlignConfig", "Aligner", "get_aligner", "register_aligner"]
