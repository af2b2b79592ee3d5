"""Fine-tuning hyper-parameters, validated once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from xmodal.config import default_of
from xmodal.errors import XmodalError

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Stage-3 settings, resolved (:class:`xmodal.config.RunConfig` owns the defaults; ``epochs``,
    ``batch_size`` and ``lr`` have none here because a run derives them from its data when automatic).

    Attributes:
        epochs: passes over the training set.
        batch_size: samples per forward pass.
        accumulate: forward passes per optimiser step (effective batch = ``batch_size · accumulate``).
        lr: peak learning rate.
        weight_decay: decoupled (AdamW) or L2 (Adam, SGD) weight decay.
        optimizer: ``"adamw"``, ``"adam"`` or ``"sgd"`` (momentum 0.9).
        warmup_ratio: fraction of optimiser steps spent in linear warm-up; then linear decay to 0.
        clip_grad_norm: max global gradient norm; ``0`` disables clipping.
        seed: seeds weight initialisation, shuffling and dropout; CPU runs repeat exactly.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, …
        precision: ``"auto"`` (bf16 autocast on CUDA, fp32 on CPU), ``"fp32"`` or ``"bf16"``.
        eval_batch_size: samples per forward pass at prediction time.
    """

    epochs: int
    batch_size: int
    lr: float
    accumulate: int = default_of("accumulate")
    weight_decay: float = default_of("weight_decay")
    optimizer: str = default_of("optimizer")
    warmup_ratio: float = default_of("warmup_ratio")
    clip_grad_norm: float = default_of("clip_grad_norm")
    seed: int = default_of("seed")
    device: str = default_of("device")
    precision: str = default_of("precision")
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`XmodalError` for out-of-range settings."""
        checks = [
            (self.epochs >= 0, "epochs must be ≥ 0"),
            (self.batch_size >= 1, "batch_size must be ≥ 1"),
            (self.accumulate >= 1, "accumulate must be ≥ 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be ≥ 0"),
            (self.optimizer in ("adamw", "adam", "sgd"), "optimizer must be 'adamw', 'adam' or 'sgd'"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (self.clip_grad_norm >= 0, "clip_grad_norm must be ≥ 0 (0 disables clipping)"),
            (self.precision in ("auto", "fp32", "bf16"), "precision must be 'auto', 'fp32' or 'bf16'"),
            (self.eval_batch_size >= 1, "eval_batch_size must be ≥ 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise XmodalError(f"{msg}; check the training settings")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise XmodalError(f"unknown training setting(s) {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)
