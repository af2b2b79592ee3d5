"""The settings of stage 2 (:class:`AlignConfig`) and stage 3 (:class:`TrainConfig`), validated once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from xmodal.config import PRECISIONS, default_of
from xmodal.errors import XmodalError
from xmodal.train.optim import OPTIMIZERS

__all__ = ["AlignConfig", "TrainConfig"]


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
        precision: ``"auto"`` (bf16 autocast on CUDA, fp16 with a gradient scaler on GPUs without bf16,
            fp32 on CPU), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (:func:`xmodal.runtime.amp_dtype`).
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
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS.choices()}"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (self.clip_grad_norm >= 0, "clip_grad_norm must be ≥ 0 (0 disables clipping)"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise XmodalError(f"{msg}; check the training settings")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AlignConfig:
    """Stage-2 settings. ``None`` means "the strategy's own default" (see each :class:`Aligner`).

    Attributes:
        epochs: stage-2 epochs (warm-up: 5; distance objectives: 60, as in ORCA's appendix A.3.4).
        lr: learning rate of the embedder optimiser (warm-up: 1e-3; distance objectives: 1e-3).
        batch_size: target samples per step (warm-up) or per class-wise subsample (distances); the
            estimator passes the run's batch size.
        steps_per_epoch: optimiser steps per epoch for distance objectives (default 4 rather than the
            reference's 1: the distance falls further in the same epochs; compare with
            ``python benchmarks/align_vs_none.py --align-steps 1`` and ``--align-steps 4``).
        proxy: source proxy name (default: the body's own, e.g. ``wnut16`` for language bodies).
        source_size: proxy samples embedded once and cached (ORCA: 5000).
        patience: stop when the logged distance has not improved by 1 % for this many epochs
            (``0`` disables early stopping).
        curve_per_class: the distance logged after every epoch (the curve and the early stop) is that of
            a fixed, seeded subset of the target set with at most this many samples per class (default
            100); every class at or under the cap is taken whole, so small tasks log the full-set value.
            ``None`` logs the full set (on large tasks far slower per epoch: ``python benchmarks/stage2_cost.py``).
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (as in stage 3).
        body_key: identifies the body's weights in the source-feature cache (set by the estimator).
        options: extra keyword options for the objective (e.g. ``{"inner": "gaussian"}`` for OTDD).
        checkpoint: file the stage saves after every epoch (what it trains, optimiser, schedule, random
            state, history) and resumes from when it exists, so a killed stage 2 loses at most the
            current epoch; ``None``: no checkpoint.
        run_key: the run's settings, stored with the checkpoint; resuming from one written with another
            key raises :class:`XmodalError`.
    """

    epochs: int | None = None
    lr: float | None = None
    batch_size: int = 16
    steps_per_epoch: int = default_of("align_steps")
    proxy: str | None = None
    source_size: int = default_of("source_size")
    patience: int = 10
    curve_per_class: int | None = default_of("align_curve_per_class")
    precision: str = default_of("precision")
    body_key: str = ""
    options: dict = field(default_factory=dict)
    checkpoint: Path | None = None
    run_key: dict | None = None

    def __post_init__(self) -> None:
        bad = (
            (self.epochs is not None and self.epochs < 0)
            or (self.lr is not None and self.lr <= 0)
            or self.batch_size < 1
            or self.steps_per_epoch < 1
            or self.source_size < 2
            or self.patience < 0
            or (self.curve_per_class is not None and self.curve_per_class < 2)
        )
        if bad:
            raise XmodalError(
                f"alignment settings out of range (epochs={self.epochs} ≥ 0, lr={self.lr} > 0, "
                f"batch_size={self.batch_size} ≥ 1, steps_per_epoch={self.steps_per_epoch} ≥ 1, "
                f"source_size={self.source_size} ≥ 2, patience={self.patience} ≥ 0, "
                f"curve_per_class={self.curve_per_class} ≥ 2 or None required)"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["checkpoint"] = None if self.checkpoint is None else str(self.checkpoint)
        return d
