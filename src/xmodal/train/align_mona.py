"""Stage 2 as MoNA runs it: meta-learn the embedder ``f`` (and the head ``h``) so that fine-tuning
keeps the body's source-modality knowledge (Ma et al., ICML 2024, Alg. 1).

The loop is here, next to ORCA's (:mod:`.align_distance`) and stage 3's (:mod:`.finetune`); the
bi-level objective — inner update, source features through the updated body, alignment and
uniformity losses — is :mod:`xmodal.align.mona`. Defaults (MoNA appendix A.1): AdamW, lr 3e-5,
weight decay 0.1, 10 epochs of ``steps_per_epoch`` outer steps.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from xmodal import distributed
from xmodal.align.mona import (
    OPTIONS,
    alignment_loss,
    balanced_batch,
    inner_update,
    source_features_through,
    uniformity_loss,
)
from xmodal.errors import XmodalError
from xmodal.model.assembly import CrossModalModel
from xmodal.model.bodies.base import SourceTokens
from xmodal.runtime import autocast, diverged
from xmodal.train.aligners import Aligner, register_aligner
from xmodal.train.config import AlignConfig
from xmodal.train.session import EpochRun

__all__ = ["MonaAligner"]

_PARTS = ("target_loss", "source_align", "source_uniform", "loss")


@register_aligner
class MonaAligner(Aligner):
    """MoNA: bi-level (meta-learning) optimisation of the embedder (see :mod:`xmodal.align.mona`)."""

    name = "mona"
    description = "MoNA: meta-learn f so that fine-tuning keeps the body's source knowledge (align+uniformity)"
    default_epochs = 10
    default_lr = 3e-5
    weight_decay = 0.1
    #: the bi-level inner loop differentiates through per-process fine-tuning steps; not divided yet
    data_parallel = False

    def check_options(self, options: dict) -> None:
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise XmodalError(f"unknown MoNA options {sorted(unknown)}; known: {sorted(OPTIONS)}")
        o = {**OPTIONS, **options}
        if (o["lam"] < 0 or o["inner_lr"] <= 0 or int(o["inner_steps"]) < 1 or int(o["source_batch"]) < 2
                or int(o["source_pool"]) < 2 or int(o["source_length"]) < 2 or o["temperature"] <= 0):
            raise XmodalError(f"MoNA options out of range: {o} (lam ≥ 0, inner_lr > 0, inner_steps ≥ 1, "
                              "source_batch ≥ 2, source_pool ≥ 2, source_length ≥ 2, temperature > 0)")

    def run(self, model: CrossModalModel, X: torch.Tensor, y: torch.Tensor, cfg: AlignConfig, device: torch.device,
            seed: int = 0, progress: bool = True) -> dict[str, Any]:
        from xmodal.align.source_cache import subsample
        from xmodal.data.proxies import get_proxy

        self.check_options(cfg.options)
        self.check_processes(distributed.world_size())
        options = {**OPTIONS, **cfg.options}
        t0 = time.perf_counter()
        proxy_name = cfg.proxy or model.body.default_proxy
        proxy = get_proxy(proxy_name)
        part = proxy.subset(subsample(proxy.labels, int(options["source_pool"]), seed))
        model.to(device)
        src = model.body.source_tokens(part, max_length=int(options["source_length"])).to(device)
        ys = torch.as_tensor(np.unique(part.labels, return_inverse=True)[1].reshape(-1), dtype=torch.long)
        t_source = time.perf_counter() - t0
        epochs = self.default_epochs if cfg.epochs is None else cfg.epochs
        lr = self.default_lr if cfg.lr is None else cfg.lr
        history = self.loop(model, X, y, src, ys, options, cfg, epochs, lr, device, seed, progress)
        return {"objective": "mona", "proxy": proxy_name, "source_size": len(src),
                "source_classes": int(ys.unique().numel()), "options": options, "source_seconds": t_source,
                "seconds": time.perf_counter() - t0, "history": history}

    def loop(self, model: CrossModalModel, X: torch.Tensor, y: torch.Tensor, src: SourceTokens, ys: torch.Tensor,
             options: dict, cfg: AlignConfig, epochs: int, lr: float, device: torch.device, seed: int,
             progress: bool = True) -> list[dict]:
        """MoNA's outer loop: per step a target batch and a class-balanced source batch, one AdamW step on
        ``f`` and ``h``. Returns one record per epoch (the mean of each loss term, ``seconds``)."""
        outer = [*model.embedder.parameters(), *model.head.parameters()]
        saved = {id(p): p.requires_grad for p in model.parameters()}
        for p in model.parameters():  # the inner step differentiates through the body
            p.requires_grad_(True)
        opt = torch.optim.AdamW(outer, lr=lr, weight_decay=self.weight_decay)
        gen = torch.Generator().manual_seed(seed + 7907)
        trained = torch.nn.ModuleDict({"embedder": model.embedder, "head": model.head})  # what the checkpoint keeps
        run = EpochRun("stage 2 (mona)", epochs, trained, opt, None, cfg.checkpoint, cfg.run_key, progress)
        if run.resumed:
            gen.set_state(run.state["sampler"])  # the global RNG (dropout) is restored by the checkpoint
        model.train()
        try:
            for epoch in run:
                te = time.perf_counter()
                sums = torch.zeros(len(_PARTS), device=device)  # on the device: read once, at the epoch's end
                bad = torch.zeros((), dtype=torch.long, device=device)  # first non-finite step (1-based); 0: none
                for step in range(cfg.steps_per_epoch):
                    idx = torch.randperm(X.shape[0], generator=gen)[:min(cfg.batch_size, X.shape[0])]
                    sidx = balanced_batch(ys, int(options["source_batch"]), gen)
                    parts = _outer_loss(model, X[idx].to(device), y[idx].to(device), src.select(sidx),
                                        ys[sidx].to(device), options, device, cfg.precision)
                    bad = torch.where((bad == 0) & ~torch.isfinite(parts["loss"].detach()), step + 1, bad)
                    with sdpa_kernel([SDPBackend.MATH]):  # fused attention kernels have no double backward
                        grads = torch.autograd.grad(parts["loss"], outer, allow_unused=True)
                    for p, g in zip(outer, grads, strict=True):
                        p.grad = g
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    sums += torch.stack([parts[k].detach().float() for k in _PARTS])
                if int(bad):  # before the epoch's checkpoint, which keeps the last finite epoch
                    raise diverged("stage 2 (mona)", epoch + 1, int(bad), "loss", opt.param_groups[0]["lr"],
                                   cfg.checkpoint)
                means = (sums / cfg.steps_per_epoch).tolist()
                run.end_epoch({"epoch": epoch + 1, **dict(zip(_PARTS, means, strict=True)),
                               "seconds": time.perf_counter() - te}, state={"sampler": gen.get_state()})
        finally:
            for p in model.parameters():
                p.requires_grad_(saved[id(p)])
                p.grad = None
        return run.history


def _outer_loss(model: CrossModalModel, xb: torch.Tensor, yb: torch.Tensor, src: SourceTokens, ys: torch.Tensor,
                options: dict, device: torch.device, precision: str) -> dict[str, torch.Tensor]:
    """MoNA's Eq. (6) for one step: ``L_t + λ (L_align + L_uniform)`` of the source features through the
    inner-updated body, with its terms (``target_loss``, ``source_align``, ``source_uniform``, ``loss``)."""
    with autocast(device, precision):
        new_params, l_t = inner_update(model, xb, yb, float(options["inner_lr"]), int(options["inner_steps"]))
        z = source_features_through(model.body, new_params, src)
    l_a = alignment_loss(z, ys)
    l_u = uniformity_loss(z, float(options["temperature"]))
    return {"target_loss": l_t, "source_align": l_a, "source_uniform": l_u,
            "loss": l_t.float() + float(options["lam"]) * (l_a + l_u)}
