"""The loops of stages 2 and 3, side by side, and what they share.

* :mod:`~xmodal.train.finetune` — stage 3 (fine-tuning; also the embedder warm-up);
* :mod:`~xmodal.train.align_distance` — stage 2 as ORCA runs it (a distance to the source proxy);
* :mod:`~xmodal.train.align_mona` — stage 2 as MoNA runs it (meta-learned embedder);
* :mod:`~xmodal.train.aligners` — the stage-2 strategies' registry (:data:`ALIGNERS`);
* :mod:`~xmodal.train.session` — resume, progress, per-epoch checkpoint (every loop);
  :mod:`~xmodal.train.checkpoint`, :mod:`~xmodal.train.optim`, :mod:`~xmodal.train.modes`,
  :mod:`~xmodal.train.config`. Device and precision: :mod:`xmodal.runtime`.
"""

from xmodal.train import align_distance, align_mona  # noqa: F401  (register the aligners)
from xmodal.train.aligners import ALIGNERS, Aligner, get_aligner, register_aligner
from xmodal.train.config import AlignConfig, TrainConfig
from xmodal.train.finetune import predict_raw, train_loop
from xmodal.train.modes import MODES, get_mode

__all__ = ["ALIGNERS", "Aligner", "AlignConfig", "TrainConfig", "get_aligner", "register_aligner", "predict_raw",
           "train_loop", "MODES", "get_mode"]
