"""Stage 3: the fine-tuning loop, its modes, schedules and checkpoints (device and precision: :mod:`xmodal.runtime`)."""

from xmodal.train.config import TrainConfig
from xmodal.train.loop import predict_raw, train_loop
from xmodal.train.modes import MODES, get_mode

__all__ = ["TrainConfig", "predict_raw", "train_loop", "MODES", "get_mode"]
