"""The training loop shared by stage 2 (embedder warm-up) and stage 3 (fine-tuning).

One screen: shuffle with a per-epoch seeded generator, accumulate gradients, clip, step the
optimiser and the warm-up/decay schedule, log the epoch, checkpoint atomically.

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
from tqdm.auto import tqdm

from xmodal.runtime import autocast, diverged
from xmodal.train.checkpoint import check_run_key, load_checkpoint, save_checkpoint
from xmodal.train.config import TrainConfig
from xmodal.train.optim import make_optimizer, warmup_linear_decay

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
    start = 0
    history: list[dict] = []
    if checkpoint is not None and Path(checkpoint).exists():
        start, extra, _ = load_checkpoint(Path(checkpoint), model, optimizer, scheduler)
        check_run_key(Path(checkpoint), extra.get("run_key"), run_key)
        history = list(extra.get("history", []))
        if progress and start < cfg.epochs:
            tqdm.write(f"{desc}: resuming at epoch {start + 1} of {cfg.epochs} ({checkpoint})")
    model.to(device)
    bar = tqdm(range(start, cfg.epochs), desc=desc, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        batches = order.split(cfg.batch_size)
        total_loss = torch.zeros((), device=device)
        seen, step = 0, 0
        # the first optimiser step (1-based) whose loss or gradient norm was not finite; 0: none
        bad_loss = torch.zeros((), dtype=torch.long, device=device)
        bad_grad = torch.zeros((), dtype=torch.long, device=device)
        optimizer.zero_grad(set_to_none=True)
        t_step = time.perf_counter()
        for i, idx in enumerate(batches):
            xb = X[idx].to(device, non_blocking=True)
            yb = y[idx].to(device, non_blocking=True)
            with autocast(device, cfg.precision):
                loss = loss_fn(model(xb), yb)
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
        if first_loss or first_grad:
            what, at = (("loss", first_loss) if first_loss and (not first_grad or first_loss <= first_grad)
                        else ("gradient norm", first_grad))
            raise diverged(desc, epoch + 1, at, what, optimizer.param_groups[0]["lr"], checkpoint)
        record = {
            "epoch": epoch + 1,
            "loss": float(total_loss) / max(seen, 1),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t0,
        }
        if validate is not None:
            record.update({f"val_{k}": float(v) for k, v in validate().items()})
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        if on_epoch is not None:
            on_epoch(record)
        if checkpoint is not None:
            save_checkpoint(
                Path(checkpoint), model, optimizer, scheduler, epoch + 1, {"history": history, "run_key": run_key}
            )
    return history


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
