"""Fine-tuning hyper-parameters, validated once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from xmodal.errors import XmodalError

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Stage-3 settings (defaults suit small data on a CPU; ORCA's appendix A.3 uses 60 epochs).

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

    epochs: int = 20
    batch_size: int = 16
    accumulate: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    warmup_ratio: float = 0.1
    clip_grad_norm: float = 1.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
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
