"""Stage 3's loop, fine-tuning (also run by stage 2's embedder warm-up on the task loss).

One screen: shuffle with a per-epoch seeded generator, accumulate gradients, clip, step the
optimiser and the warm-up/decay schedule; :class:`~xmodal.train.session.EpochRun` logs the epoch and
checkpoints atomically. Stage 2's loops are its neighbours: :mod:`~xmodal.train.align_distance`
(ORCA) and :mod:`~xmodal.train.align_mona` (MoNA).

Divergence: every optimiser step's loss and gradient norm are checked on the device (no host sync
per step); at the end of an epoch in which one was non-finite the loop raises
:class:`~xmodal.errors.TrainingDiverged` naming the first bad step, before that epoch's checkpoint is
written, so the checkpoint on disk is the last finite one.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from xmodal import distributed
from xmodal.runtime import autocast, diverged, grad_scaler
from xmodal.train.batches import batch_loader
from xmodal.train.config import TrainConfig
from xmodal.train.optim import make_optimizer, warmup_linear_decay
from xmodal.train.session import EpochRun

__all__ = ["train_loop", "predict_raw"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# over 60 lines only through its docstring (every argument documented); the code is 25 lines
def train_loop(
    model: nn.Module,
    params: list[nn.Parameter],
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    cfg: TrainConfig,
    device: torch.device,
    desc: str = "fine-tune",
    checkpoint: Path | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    progress: bool = True,
    run_key: dict | None = None,
    validate: Callable[[], dict[str, float]] | None = None,
    on_first_step: Callable[[float], None] | None = None,
) -> list[dict]:
    """Minimise ``loss_fn(model_output_fn(x), y)`` over ``params`` for ``cfg.epochs`` epochs.

    Under ``torchrun`` (after :func:`xmodal.distributed.setup`) the model trains data-parallel: each
    global batch of ``cfg.batch_size`` rows is divided between the processes and the loss curve is the
    1-process one (:mod:`xmodal.distributed`); only rank 0 writes the checkpoint and shows progress.

    Args:
        model: module whose ``forward`` maps a batch ``(B, C, *S)`` to raw outputs.
        params: the parameters to train (others should have ``requires_grad=False``).
        X: inputs ``(N, C, *S)`` on CPU; batches are moved to ``device``.
        y: training targets ``(N, …)`` in training units.
        loss_fn: ``(outputs, targets) → scalar``.
        checkpoint: file to save after every epoch and resume from when it exists.
        on_epoch: called with each epoch's record ``{epoch, loss, lr, seconds}`` (and the validation
            metrics); it may raise to stop training (e.g. a tuner pruning the trial).
        run_key: JSON-serialisable settings stored with the checkpoint; resuming from a checkpoint
            whose key differs raises :class:`XmodalError` instead of silently mixing two runs.
        validate: called after every epoch; its ``{metric: value}`` enter the record as
            ``val_<metric>``. It must leave the weights and the random streams untouched.
        on_first_step: called once with the seconds the first optimiser step of this call took
            (forward, backward and step of its batches), e.g. to estimate the run's time.

    Returns:
        One record per epoch run in this call (resumed epochs are not repeated).
    """
    n = X.shape[0]
    steps_per_epoch = math.ceil(math.ceil(n / cfg.batch_size) / cfg.accumulate)
    total = steps_per_epoch * cfg.epochs
    optimizer = make_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay, device)
    scheduler = warmup_linear_decay(optimizer, total, round(cfg.warmup_ratio * total))
    run = EpochRun(desc, cfg.epochs, model, optimizer, scheduler, checkpoint, run_key, progress)
    scaler = grad_scaler(device, cfg.precision)
    if "scaler" in run.extra:
        scaler.load_state_dict(run.extra["scaler"])
    model.to(device)
    net = _parallel(model, device)
    for epoch in run:
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        step = _Step(net, params, loss_fn, cfg, device, optimizer, scheduler, scaler, on_first_step)
        mean_loss, bad = step.epoch(X, y, order.split(cfg.batch_size))
        on_first_step = None
        if bad is not None:
            raise diverged(desc, epoch + 1, bad[1], bad[0], optimizer.param_groups[0]["lr"], checkpoint)
        record = {"epoch": epoch + 1, "loss": mean_loss, "lr": optimizer.param_groups[0]["lr"],
                  "seconds": time.perf_counter() - t0}
        if validate is not None:
            record.update({f"val_{k}": float(v) for k, v in validate().items()})
        if on_epoch is not None:
            on_epoch(record)  # it may raise (a pruned trial): then this epoch is not checkpointed
        run.end_epoch(record, {"scaler": scaler.state_dict()} if scaler.is_enabled() else None)
    return run.history


def _parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in DDP when this process is one of several, else ``model`` itself."""
    if distributed.world_size() == 1:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


class _Step:
    """One epoch's optimiser steps: forward/backward of each local part of a global batch, accumulation,
    clipping, the (fp16) gradient scaler, and the divergence flags, all kept on the device."""

    def __init__(self, net: nn.Module, params: list[nn.Parameter], loss_fn: LossFn, cfg: TrainConfig,
                 device: torch.device, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                 on_first_step: Callable[[float], None] | None) -> None:
        self.net, self.params, self.loss_fn, self.cfg, self.device = net, params, loss_fn, cfg, device
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler
        self.on_first_step = on_first_step

    def epoch(self, X: torch.Tensor, y: torch.Tensor,
              batches: tuple[torch.Tensor, ...]) -> tuple[float, tuple[str, int] | None]:
        """The epoch's mean loss over all processes, and ``(what, 1-based step)`` of the first non-finite loss
        or gradient norm (``None``: all finite). One host sync, at the end."""
        cfg, device, opt = self.cfg, self.device, self.optimizer
        self.net.train()
        parts = [distributed.local_rows(idx) for idx in batches]
        total = torch.zeros((), device=device)  # Σ loss·rows over this process's real rows
        seen = 0
        # the first optimiser step (1-based) whose loss or gradient norm was not finite; 0: none
        bad = torch.zeros(2, dtype=torch.long, device=device)
        step = 0
        opt.zero_grad(set_to_none=True)
        t_step = time.perf_counter()
        loader = batch_loader(X, y, [idx for idx, _ in parts], device)
        for i, (xb, yb) in enumerate(loader):
            weight = parts[i][1]
            last = (i + 1) % cfg.accumulate == 0 or i + 1 == len(parts)
            with _sync_gradients(self.net, last):
                with autocast(device, cfg.precision):
                    loss = self.loss_fn(self.net(xb.to(device, non_blocking=True)), yb.to(device, non_blocking=True))
                self.scaler.scale(loss * weight / cfg.accumulate).backward()  # weight: 1.0 with one process
            loss = loss.detach().float()
            rows = len(yb) if weight else 0
            total += loss * rows
            seen += rows
            bad[0] = torch.where((bad[0] == 0) & ~torch.isfinite(loss), step + 1, bad[0])
            if last:
                self.scaler.unscale_(opt)
                norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.clip_grad_norm or math.inf)
                if not self.scaler.is_enabled():  # with fp16, an overflow is a skipped step, not divergence
                    bad[1] = torch.where((bad[1] == 0) & ~torch.isfinite(norm), step + 1, bad[1])
                self.scaler.step(opt)
                self.scaler.update()
                self.scheduler.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                self._first_step(t_step)
        stats = distributed.all_reduce(torch.stack([total, torch.full((), float(seen), device=device)]))
        never = torch.iinfo(torch.long).max
        bad = distributed.all_reduce(torch.where(bad == 0, never, bad), "min")
        first_loss, first_grad = (0 if v == never else int(v) for v in bad.tolist())  # host syncs: end of epoch
        mean = float(stats[0]) / max(float(stats[1]), 1.0)
        if first_loss and (not first_grad or first_loss <= first_grad):
            return mean, ("loss", first_loss)
        return mean, (("gradient norm", first_grad) if first_grad else None)

    def _first_step(self, t_step: float) -> None:
        if self.on_first_step is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.on_first_step(time.perf_counter() - t_step)
            self.on_first_step = None


def _sync_gradients(net: nn.Module, sync: bool):
    """DDP's ``no_sync()`` for the micro-batches of an accumulation window but its last; else nothing."""
    if sync or not isinstance(net, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return net.no_sync()


@torch.inference_mode()
def predict_raw(
    model: nn.Module, X: torch.Tensor, batch_size: int, device: torch.device, precision: str = "auto"
) -> torch.Tensor:
    """Raw outputs for ``X`` ``(N, C, *S)``, computed in eval mode in batches; returned on CPU as float32."""
    model.eval()
    model.to(device)
    outs = []
    for xb in X.split(batch_size):
        with autocast(device, precision):
            outs.append(model(xb.to(device)).float().cpu())
    return torch.cat(outs)
