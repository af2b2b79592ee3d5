"""The simplest stage-2 strategies: ``none`` and embedder warm-up through the frozen body."""

from __future__ import annotations

import time
from typing import Any

import torch

from xmodal.align.base import AlignConfig, Aligner, register_aligner, train_only
from xmodal.model.assembly import CrossModalModel
from xmodal.train.config import TrainConfig
from xmodal.train.loop import train_loop

__all__ = ["NoAlignment", "EmbedderWarmup"]


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
    from an embedder that already speaks the body's language for this task.
    """

    name = "warmup"
    description = "embedder warm-up: task loss through the frozen body, training f and h"

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
        t0 = time.perf_counter()
        trainable = [*model.embedder.parameters(), *model.head.parameters()]
        tcfg = TrainConfig(
            epochs=5 if cfg.epochs is None else cfg.epochs,
            batch_size=cfg.batch_size,
            lr=1e-3 if cfg.lr is None else cfg.lr,
            warmup_ratio=0.0,
            seed=seed + 7919,
            precision=cfg.precision,
        )
        with train_only(model, trainable):
            history = train_loop(
                model, trainable, X, y, model.kind.loss, tcfg, device, desc="stage 2 (warm-up)", progress=progress,
                checkpoint=cfg.checkpoint, run_key=cfg.run_key,
            )
        return {"seconds": time.perf_counter() - t0, "history": history}
