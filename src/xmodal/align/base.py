"""Stage 2 (alignment) strategies: the interface and the registry.

A strategy receives the assembled model and the (validated, training-unit) target data and
trains some of the model's parameters — usually only the embedder ``f`` — before stage 3. It
returns a JSON-serialisable report (history, seconds, final distance, …) saved with the run.
New objectives (OTDD, MMD, MoNA, …) register here with :func:`register_aligner`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from xmodal.config import default_of
from xmodal.errors import XmodalError
from xmodal.model.assembly import CrossModalModel

__all__ = ["AlignConfig", "Aligner", "ALIGNERS", "register_aligner", "get_aligner", "train_only"]


@dataclass
class AlignConfig:
    """Stage-2 settings. ``None`` means "the strategy's own default" (see each :class:`Aligner`).

    Attributes:
        epochs: stage-2 epochs (warm-up: 5; distance objectives: 60, as in ORCA's appendix A.3.4).
        lr: learning rate of the embedder optimiser (warm-up: 1e-3; distance objectives: 1e-3).
        batch_size: target samples per step (warm-up) or per class-wise subsample (distances); the
            estimator passes the run's batch size.
        steps_per_epoch: optimiser steps per epoch for distance objectives (default 4: on GunPoint the
            OTDD fell 136 → 37.6 in 60 epochs with 4 steps vs 136 → 93.5 with the reference's 1, and test
            accuracy rose 0.647 → 0.800; `benchmarks/align_vs_none.py --align-steps 1|4`).
        proxy: source proxy name (default: the body's own, e.g. ``wnut16`` for language bodies).
        source_size: proxy samples embedded once and cached (ORCA: 5000).
        patience: stop when the logged distance has not improved by 1 % for this many epochs
            (``0`` disables early stopping).
        curve_per_class: the distance logged after every epoch (the curve and the early stop) is that of
            a fixed, seeded subset of the target set with at most this many samples per class (default
            100); every class at or under the cap is taken whole, so small tasks log the full-set value.
            ``None`` logs the full set. On MNIST-5k (4000 targets, 10 classes) a stage-2 epoch took 20.7 s
            with the full set and 0.56 s with the cap (``python benchmarks/stage2_cost.py``).
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"`` (as in stage 3).
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


class Aligner:
    """Base class of a stage-2 strategy."""

    name: ClassVar[str]
    description: ClassVar[str]

    def run(
        self,
        model: CrossModalModel,
        X: torch.Tensor,
        y: torch.Tensor,
        cfg: AlignConfig,
        device: torch.device,
        seed: int = 0,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Align ``model`` on target inputs ``X`` ``(N, C, *S)`` and targets ``y`` (training units)."""
        raise NotImplementedError

    def check_options(self, options: dict) -> None:
        """Refuse bad ``AlignConfig.options`` before any weights load (strategies override this)."""


@contextlib.contextmanager
def train_only(model: torch.nn.Module, params: list[torch.nn.Parameter]) -> Iterator[None]:
    """Inside the block only ``params`` require gradients; every flag is restored on exit."""
    saved = {id(p): p.requires_grad for p in model.parameters()}
    keep = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    try:
        yield
    finally:
        for p in model.parameters():
            p.requires_grad_(saved[id(p)])


ALIGNERS: dict[str, Aligner] = {}


def register_aligner(cls: type[Aligner]) -> type[Aligner]:
    """Class decorator adding a strategy to :data:`ALIGNERS` under ``cls.name``."""
    ALIGNERS[cls.name] = cls()
    return cls


def get_aligner(name: str) -> Aligner:
    """The registered strategy called ``name``."""
    try:
        return ALIGNERS[name]
    except KeyError:
        raise XmodalError(f"unknown alignment {name!r}; choose one of {sorted(ALIGNERS)}") from None
