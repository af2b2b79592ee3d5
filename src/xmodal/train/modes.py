"""Fine-tuning modes: which parameters stage 3 trains, and whether the body starts pretrained."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from xmodal.registry import Registry

__all__ = ["FinetuneMode", "MODES", "get_mode"]


@dataclass(frozen=True)
class FinetuneMode:
    """A stage-3 mode: ``select(model)`` returns the parameters to train; the rest are frozen."""

    name: str
    description: str
    pretrained_body: bool
    select: Callable[[nn.Module], list[nn.Parameter]]

    def apply(self, model: nn.Module) -> list[nn.Parameter]:
        """Freeze every parameter of ``model`` but the selected ones, and return those."""
        chosen = self.select(model)
        ids = {id(p) for p in chosen}
        for p in model.parameters():
            p.requires_grad_(id(p) in ids)
        return chosen


def _everything(model: nn.Module) -> list[nn.Parameter]:
    return list(model.parameters())


def _frozen_body(model: nn.Module) -> list[nn.Parameter]:
    return [*model.embedder.parameters(), *model.head.parameters()]


def _fpt(model: nn.Module) -> list[nn.Parameter]:
    # FPT (Lu et al. 2022): input layer, output layer and the body's layer norms
    return [*_frozen_body(model), *model.body.layer_norm_parameters()]


MODES: Registry[FinetuneMode] = Registry("fine-tuning mode")
for _mode in (
    FinetuneMode("full", "fine-tune all weights of f, g and h (ORCA's default)", True, _everything),
    FinetuneMode("fpt", "train f, h and the body's layer norms only (FPT)", True, _fpt),
    FinetuneMode("frozen", "train f and h; the pretrained body stays frozen", True, _frozen_body),
    FinetuneMode("scratch", "same architecture, random body, all weights trained", False, _everything),
):
    MODES.add(_mode.name, _mode)


def get_mode(name: str) -> FinetuneMode:
    """The registered mode called ``name`` (``full``, ``fpt``, ``frozen``, ``scratch``)."""
    return MODES[name]
