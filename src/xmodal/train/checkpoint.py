"""Atomic, pickle-free checkpoints: one safetensors file holding model, optimiser, schedule and RNG.

Tensors go in the safetensors payload; everything else (optimiser hyper-parameters, scheduler
counters, epoch, history) goes as JSON in the file's metadata. The file is written to a temporary
name and moved into place with :func:`os.replace`, so a crash leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open
from torch import nn

from xmodal import distributed
from xmodal.errors import XmodalError
from xmodal.runtime import atomic_save_tensors

__all__ = ["save_checkpoint", "load_checkpoint", "check_run_key"]


def check_run_key(where: Path, saved: dict | None, run_key: dict | None) -> None:
    """Refuse to resume from ``where`` when the run that wrote it had other settings (or other data).

    Raises:
        XmodalError: naming the settings that differ.
    """
    if run_key is None or saved == run_key:
        return
    old = saved or {}
    diff = sorted(k for k in set(old) | set(run_key) if old.get(k) != run_key.get(k))
    what = "other training data" if diff == ["data"] else f"other settings (differs in {diff})"
    raise XmodalError(
        f"{where} was written by a run with {what}; resume with the same data and settings, "
        "or use another run folder"
    )


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    epoch: int,
    extra: dict[str, Any] | None = None,
    state: dict[str, torch.Tensor] | None = None,
    rank_rng: list[torch.Tensor] | None = None,
) -> None:
    """Save the state after ``epoch`` completed epochs.

    ``model`` is whatever module the stage trains (the whole model in stage 3, the embedder in
    stage 2); ``state`` holds further tensors to restore exactly (a sampler's generator state, an
    objective's call counter), returned by :func:`load_checkpoint`. ``rank_rng`` holds each process's
    CPU generator state under torchrun (rank ``r``'s is restored by rank ``r``).
    """
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"state.{k}": v for k, v in (state or {}).items()})
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in opt["state"].items():
        for key, val in state.items():
            if torch.is_tensor(val):
                tensors[f"optim.{pid}.{key}"] = val
            else:
                scalars.setdefault(str(pid), {})[key] = val
    tensors["rng.cpu"] = torch.get_rng_state()
    for r, rng in enumerate(rank_rng or []):
        tensors[f"rng.cpu.rank{r}"] = rng
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda{i}"] = s
    sched = None if scheduler is None else scheduler.state_dict()  # LambdaLR: None for plain functions, JSON-safe
    meta = {
        "epoch": epoch,
        "param_groups": opt["param_groups"],
        "scalar_state": scalars,
        "scheduler": sched,
        "extra": extra or {},
    }
    atomic_save_tensors(tensors, path, metadata={"xmodal": json.dumps(meta)})


def load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
) -> tuple[int, dict[str, Any], dict[str, torch.Tensor]]:
    """Restore a checkpoint written by :func:`save_checkpoint`; returns ``(epoch, extra, state)``.

    Raises:
        XmodalError: the file is damaged (delete it to restart that stage) or written by another run.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["xmodal"])
        tensors = load_file(str(path))
        int(meta["epoch"]), meta["param_groups"], meta["scalar_state"], meta["extra"]  # noqa: B018
    except Exception as exc:
        raise XmodalError(
            f"checkpoint {path} is damaged ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
            "delete it to restart this stage from its beginning"
        ) from exc
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, key = k.split(".", 2)
            state.setdefault(int(pid), {})[key] = v
    for pid, vals in meta["scalar_state"].items():
        state.setdefault(int(pid), {}).update(vals)
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        if scheduler is not None:
            scheduler.load_state_dict(meta["scheduler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise XmodalError(
            f"checkpoint {path} does not fit this model ({str(exc).splitlines()[0]}); it was written by a run "
            "with other settings: use another checkpoint folder, or the same settings to resume"
        ) from exc
    torch.set_rng_state(tensors.get(f"rng.cpu.rank{distributed.rank()}", tensors["rng.cpu"]))
    if torch.cuda.is_available():
        cuda = [tensors[f"rng.cuda{i}"] for i in range(torch.cuda.device_count()) if f"rng.cuda{i}" in tensors]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    state_out = {k[6:]: v for k, v in tensors.items() if k.startswith("state.")}
    return int(meta["epoch"]), meta["extra"], state_out
