"""Stage 2 (alignment) strategies: the interface and the registry.

A strategy receives the assembled model and the (validated, training-unit) target data and
trains some of the model's parameters — usually only the embedder ``f`` — before stage 3. It
returns a JSON-serialisable report (history, seconds, final distance, …) saved with the run.
New objectives (OTDD, MMD, MoNA, …) register here with :func:`register_aligner`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from xmodal.errors import XmodalError
from xmodal.model.assembly import CrossModalModel

__all__ = ["AlignConfig", "Aligner", "ALIGNERS", "register_aligner", "get_aligner"]


@dataclass
class AlignConfig:
    """Stage-2 settings.

    Attributes:
        epochs: passes over the target data (ORCA's OTDD stage uses 60).
        lr: learning rate of the embedder optimiser.
        batch_size: target samples per step.
    """

    epochs: int = 5
    lr: float = 1e-3
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.lr <= 0 or self.batch_size < 1:
            raise XmodalError(
                f"alignment settings out of range (epochs={self.epochs} ≥ 0, lr={self.lr} > 0, "
                f"batch_size={self.batch_size} ≥ 1 required)"
            )

    def to_dict(self) -> dict:
        return asdict(self)


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
