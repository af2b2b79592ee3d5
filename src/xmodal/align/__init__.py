"""Stage 2: distances between feature sets and the strategies that minimise them.

Objectives (pure distances on ``(n, D)`` features): :mod:`~xmodal.align.otdd`, :mod:`~xmodal.align.mmd`,
:mod:`~xmodal.align.euclidean`, :mod:`~xmodal.align.transrate`. Strategies (what stage 2 trains):
:mod:`~xmodal.align.warmup` (``none``, ``warmup``), :mod:`~xmodal.align.distance` (one per objective)
and :mod:`~xmodal.align.mona` (MoNA's meta-learned embedder).
"""

from xmodal.align import distance, euclidean, mmd, mona, otdd, transrate, warmup  # noqa: F401  (registration)
from xmodal.align.base import ALIGNERS, AlignConfig, Aligner, get_aligner, register_aligner
from xmodal.align.objectives import OBJECTIVES, Objective, get_objective

__all__ = [
    "ALIGNERS", "AlignConfig", "Aligner", "get_aligner", "register_aligner", "OBJECTIVES", "Objective", "get_objective",
]
