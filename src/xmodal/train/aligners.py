"""Stage 2 strategies: the :class:`Aligner` interface, its registry, and the two simplest ones.

An aligner receives the assembled model and the (validated, training-unit) target data and trains
some of the model's parameters — usually only the embedder ``f`` — before stage 3. It returns a
JSON-serialisable report (history, seconds, final distance, …) saved with the run.

==================  ==========================================  ==========================================
aligner             trains                                      module
==================  ==========================================  ==========================================
``none``            nothing (vanilla fine-tuning)               here
``warmup``          ``f`` and ``h`` on the task loss, body       here (stage 3's loop, :mod:`.finetune`)
                    frozen
``otdd``, ``mmd``,  ``f`` alone, to a distance to the source     :mod:`.align_distance` (ORCA's loop)
``euclidean``,      proxy (:mod:`xmodal.align`'s objectives)
``transrate``
``mona``            ``f`` and ``h``, meta-learned (MoNA)         :mod:`.align_mona`
==================  ==========================================  ==========================================
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import torch

from xmodal.errors import XmodalError
from xmodal.model.assembly import CrossModalModel
from xmodal.registry import Registry
from xmodal.train.config import AlignConfig, TrainConfig
from xmodal.train.finetune import train_loop
from xmodal.train.session import train_only

__all__ = ["Aligner", "ALIGNERS", "register_aligner", "get_aligner", "NoAlignment", "EmbedderWarmup"]


class Aligner:
    """Base class of a stage-2 strategy; subclasses set :attr:`name` and :attr:`description`."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: whether the stage runs under several processes (``torchrun``); ``False`` is refused before weights load
    data_parallel: ClassVar[bool] = True

    def run(self, model: CrossModalModel, X: torch.Tensor, y: torch.Tensor, cfg: AlignConfig, device: torch.device,
            seed: int = 0, progress: bool = True) -> dict[str, Any]:
        """Align ``model`` on target inputs ``X`` ``(N, C, *S)`` and targets ``y`` (training units)."""
        raise NotImplementedError

    def check_options(self, options: dict) -> None:
        """Refuse bad ``AlignConfig.options`` before any weights load (strategies override this)."""

    def check_processes(self, processes: int) -> None:
        """Refuse to run under ``processes`` > 1 when the stage is not data-parallel.

        Raises:
            XmodalError: naming the stage and what to do instead.
        """
        if processes > 1 and not self.data_parallel:
            raise XmodalError(f"stage 2 {self.name!r} runs in one process only, but torchrun started {processes}; "
                              "run it without torchrun, or choose a data-parallel alignment (e.g. align='otdd')")


#: name → aligner instance; fill it with :func:`register_aligner`.
ALIGNERS: Registry[Aligner] = Registry("alignment")


def register_aligner(cls: type[Aligner]) -> type[Aligner]:
    """Class decorator adding an instance of ``cls`` to :data:`ALIGNERS` under ``cls.name``."""
    ALIGNERS.add(cls.name, cls())
    return cls


def get_aligner(name: str) -> Aligner:
    """The registered aligner called ``name``."""
    return ALIGNERS[name]


@register_aligner
class NoAlignment(Aligner):
    """Skip stage 2: fine-tune straight after building the model (vanilla fine-tuning)."""

    name = "none"
    description = "no alignment: stage 3 starts from the freshly built embedder"

    def run(self, model, X, y, cfg, device, seed=0, progress=True) -> dict[str, Any]:
        return {"seconds": 0.0, "history": []}


@register_aligner
class EmbedderWarmup(Aligner):
    """Train ``f`` and ``h`` on the task loss while the pretrained body ``g`` stays frozen.

    The body sees the new embedder's tokens before any of its own weights move, so stage 3 starts
    from an embedder that already speaks the body's language for this task. Defaults: 5 epochs, lr 1e-3.
    """

    name = "warmup"
    description = "embedder warm-up: task loss through the frozen body, training f and h"

    def run(self, model, X, y, cfg, device, seed=0, progress=True) -> dict[str, Any]:
        t0 = time.perf_counter()
        trainable = [*model.embedder.parameters(), *model.head.parameters()]
        tcfg = TrainConfig(epochs=5 if cfg.epochs is None else cfg.epochs, batch_size=cfg.batch_size,
                           lr=1e-3 if cfg.lr is None else cfg.lr, warmup_ratio=0.0, seed=seed + 7919,
                           precision=cfg.precision)
        with train_only(model, trainable):
            history = train_loop(model, trainable, X, y, model.kind.loss, tcfg, device, desc="stage 2 (warm-up)",
                                 progress=progress, checkpoint=cfg.checkpoint, run_key=cfg.run_key)
        return {"seconds": time.perf_counter() - t0, "history": history}
