"""Stage 2's mathematics: what the embedder is aligned by, not the loops that do it.

Objectives (pure distances on ``(n, D)`` features, one family per module, registered in
:data:`OBJECTIVES`): :mod:`~xmodal.align.otdd` (on :mod:`~xmodal.align.sinkhorn`),
:mod:`~xmodal.align.mmd`, :mod:`~xmodal.align.euclidean`, :mod:`~xmodal.align.transrate`; MoNA's
bi-level loss: :mod:`~xmodal.align.mona`. The target side (labels, pseudo-labels, samples, features):
:mod:`~xmodal.align.targets`; the source side (cached proxy features): :mod:`~xmodal.align.source_cache`.

The stage-2 loops and the aligner registry are in :mod:`xmodal.train` (next to stage 3's loop).
"""

from xmodal.align import euclidean, mmd, otdd, transrate  # noqa: F401  (registration)
from xmodal.align.objectives import OBJECTIVES, Objective, get_objective

__all__ = ["OBJECTIVES", "Objective", "get_objective"]
