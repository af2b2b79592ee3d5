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

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from xmodal.runtime import autocast, diverged
from xmodal.train.config import TrainConfig
from xmodal.train.optim import make_optimizer, warmup_linear_decay
from xmodal.train.session import EpochRun

__all__ = ["train_loop", "predict_raw"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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
    model.to(device)
    for epoch in run:
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        mean_loss, bad = _epoch(model, params, X, y, order.split(cfg.batch_size), loss_fn, cfg, device, optimizer,
                                scheduler, on_first_step)
        on_first_step = None
        if bad is not None:
            raise diverged(desc, epoch + 1, bad[1], bad[0], optimizer.param_groups[0]["lr"], checkpoint)
        record = {"epoch": epoch + 1, "loss": mean_loss, "lr": optimizer.param_groups[0]["lr"],
                  "seconds": time.perf_counter() - t0}
        if validate is not None:
            record.update({f"val_{k}": float(v) for k, v in validate().items()})
        if on_epoch is not None:
            on_epoch(record)  # it may raise (a pruned trial): then this epoch is not checkpointed
        run.end_epoch(record)
    return run.history


def _epoch(model: nn.Module, params: list[nn.Parameter], X: torch.Tensor, y: torch.Tensor,
           batches: tuple[torch.Tensor, ...], loss_fn: LossFn, cfg: TrainConfig, device: torch.device,
           optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
           on_first_step: Callable[[float], None] | None) -> tuple[float, tuple[str, int] | None]:
    """One epoch over ``batches`` (index tensors): the mean loss, and ``(what, 1-based step)`` of the first
    non-finite loss or gradient norm (``None``: all finite). Losses stay on the device: one sync at the end."""
    model.train()
    total_loss = torch.zeros((), device=device)
    seen, step = 0, 0
    # the first optimiser step (1-based) whose loss or gradient norm was not finite; 0: none
    bad_loss = torch.zeros((), dtype=torch.long, device=device)
    bad_grad = torch.zeros((), dtype=torch.long, device=device)
    optimizer.zero_grad(set_to_none=True)
    t_step = time.perf_counter()
    for i, idx in enumerate(batches):
        with autocast(device, cfg.precision):
            loss = loss_fn(model(X[idx].to(device, non_blocking=True)), y[idx].to(device, non_blocking=True))
        (loss / cfg.accumulate).backward()
        loss = loss.detach().float()
        total_loss += loss * len(idx)
        seen += len(idx)
        bad_loss = torch.where((bad_loss == 0) & ~torch.isfinite(loss), step + 1, bad_loss)
        if (i + 1) % cfg.accumulate == 0 or i + 1 == len(batches):
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm or math.inf)
            bad_grad = torch.where((bad_grad == 0) & ~torch.isfinite(norm), step + 1, bad_grad)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if on_first_step is not None:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                on_first_step(time.perf_counter() - t_step)
                on_first_step = None
    first_loss, first_grad = int(bad_loss), int(bad_grad)  # one host sync per epoch
    if first_loss and (not first_grad or first_loss <= first_grad):
        return float(total_loss) / max(seen, 1), ("loss", first_loss)
    return float(total_loss) / max(seen, 1), (("gradient norm", first_grad) if first_grad else None)


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
