"""Stage 3: the fine-tuning loop, its modes, schedules and checkpoints."""

from xmodal.train.config import TrainConfig
from xmodal.train.loop import predict_raw, resolve_device, train_loop
from xmodal.train.modes import MODES, get_mode

__all__ = ["TrainConfig", "predict_raw", "resolve_device", "train_loop", "MODES", "get_mode"]
