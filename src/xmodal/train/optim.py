"""Optimisers and the learning-rate schedule (linear warm-up, then linear decay to 0)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from xmodal.registry import Registry

__all__ = ["OPTIMIZERS", "make_optimizer", "warmup_linear_decay"]


def _adamw(params: list[nn.Parameter], lr: float, wd: float, fused: bool) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd, fused=fused or None)


def _adam(params: list[nn.Parameter], lr: float, wd: float, fused: bool) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, weight_decay=wd, fused=fused or None)


def _sgd(params: list[nn.Parameter], lr: float, wd: float, fused: bool) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=0.9)


#: name → ``(params, lr, weight_decay, fused) -> optimizer``
OPTIMIZERS: Registry[Callable[[list[nn.Parameter], float, float, bool], torch.optim.Optimizer]] = Registry(
    "optimiser", sort=False)
OPTIMIZERS.add("adamw", _adamw)
OPTIMIZERS.add("adam", _adam)
OPTIMIZERS.add("sgd", _sgd)


def make_optimizer(
    name: str, params: Iterable[nn.Parameter], lr: float, weight_decay: float, device: torch.device
) -> torch.optim.Optimizer:
    """Build the named optimiser over ``params``; fused Adam(W) kernels on CUDA."""
    return OPTIMIZERS[name](list(params), lr, weight_decay, device.type == "cuda")


def warmup_linear_decay(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """LR factor rises linearly from ~0 to 1 over ``warmup_steps``, then falls linearly to 0 at ``total_steps``."""
    total = max(1, total_steps)
    warm = max(0, min(warmup_steps, total - 1))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (total - step) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
