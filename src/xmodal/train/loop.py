"""The training loop shared by stage 2 (embedder warm-up) and stage 3 (fine-tuning).

One screen: shuffle with a per-epoch seeded generator, accumulate gradients, clip, step the
optimiser and the warm-up/decay schedule, log the epoch, checkpoint atomically.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from xmodal.errors import XmodalError
from xmodal.train.checkpoint import load_checkpoint, save_checkpoint
from xmodal.train.config import TrainConfig
from xmodal.train.optim import make_optimizer, warmup_linear_decay

__all__ = ["resolve_device", "autocast", "train_loop", "predict_raw"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; other names pass through."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA for ``"auto"``/``"bf16"``; a no-op otherwise."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
        start, extra = load_checkpoint(Path(checkpoint), model, optimizer, scheduler)
        if run_key is not None and extra.get("run_key") != run_key:
            old = extra.get("run_key") or {}
            diff = sorted(k for k in set(old) | set(run_key) if old.get(k) != run_key.get(k))
            raise XmodalError(
                f"checkpoint {checkpoint} was written by a run with other settings (differs in {diff}); "
                "resume with the same settings, or use another checkpoint folder"
            )
        history = list(extra.get("history", []))
    model.to(device)
    bar = tqdm(range(start, cfg.epochs), desc=desc, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        batches = order.split(cfg.batch_size)
        total_loss, seen = 0.0, 0
        optimizer.zero_grad(set_to_none=True)
        for i, idx in enumerate(batches):
            xb = X[idx].to(device, non_blocking=True)
            yb = y[idx].to(device, non_blocking=True)
            with autocast(device, cfg.precision):
                loss = loss_fn(model(xb), yb)
            (loss / cfg.accumulate).backward()
            total_loss += float(loss.detach()) * len(idx)
            seen += len(idx)
            if (i + 1) % cfg.accumulate == 0 or i + 1 == len(batches):
                if cfg.clip_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        record = {
            "epoch": epoch + 1,
            "loss": total_loss / max(seen, 1),
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
