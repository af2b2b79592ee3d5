"""What every stage runs on: the device, the precision (autocast), atomic safetensors writes and the
error a stage raises when it diverges. Stage 2 (:mod:`xmodal.align`) and stage 3 (:mod:`xmodal.train`)
both import from here, so neither reaches sideways into the other for these."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from safetensors.torch import save_file

from xmodal.config import PRECISIONS
from xmodal.distributed import local_device
from xmodal.errors import TrainingDiverged, XmodalError

__all__ = ["resolve_device", "autocast", "amp_dtype", "grad_scaler", "PRECISIONS", "atomic_save_tensors",
           "diverged", "environment"]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` when present.

    Under ``torchrun`` a bare ``cuda`` (or ``auto`` on a GPU machine) is this process's GPU,
    ``cuda:LOCAL_RANK``. On CUDA, TF32 matrix products and convolutions are allowed (fp32 runs use the
    tensor cores at TF32 precision, as PyTorch recommends for training).

    Raises:
        XmodalError: an unknown device name, or one this machine does not have.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise XmodalError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise XmodalError(f"device {name!r} was asked for but this machine has no usable CUDA GPU "
                              f"(torch {torch.__version__}); use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise XmodalError(f"device {name!r} does not exist: this machine has {count} CUDA GPU(s), "
                              f"cuda:0 … cuda:{count - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise XmodalError("device 'mps' was asked for but Apple's MPS backend is not available here; use cpu")
    elif device.type not in ("cpu", "mps"):
        raise XmodalError(f"device {name!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return local_device(device)


def amp_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``; ``None``: full fp32.

    ``"auto"``: bf16 on a CUDA GPU that supports it (Ampere and later), fp16 on older GPUs, fp32 on
    CPU and MPS. ``"bf16"`` and ``"fp16"`` force that dtype (bf16 also runs on CPU); ``"fp32"``: none.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to :func:`amp_dtype` of ``precision``; a no-op for fp32."""
    dtype = amp_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only when the run computes in fp16 (whose gradients underflow
    without one); disabled, its ``scale``/``unscale_``/``step``/``update`` pass everything through."""
    enabled = amp_dtype(device, precision) == torch.float16
    return torch.amp.GradScaler(device.type if device.type in ("cuda", "cpu") else "cuda", enabled=enabled)


def diverged(stage: str, epoch: int, step: int, what: str, lr: float, checkpoint: Path | None) -> TrainingDiverged:
    """The error a stage raises when its ``what`` (loss, gradient norm, …) stops being finite at 1-based
    ``epoch`` and ``step``; ``checkpoint`` is the stage's checkpoint file, which keeps the epoch before."""
    kept = (f"the checkpoint {checkpoint} keeps epoch {epoch - 1}" if checkpoint is not None and epoch > 1
            else "no epoch of this stage had finished")
    return TrainingDiverged(
        f"{stage} diverged: the {what} became non-finite at epoch {epoch}, optimiser step {step} (lr {lr:.3g}); "
        f"{kept}. Try a smaller learning rate (e.g. a tenth), gradient clipping, or tuning (`xmodal tune`)"
    )


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` to ``path`` (safetensors) via a temporary file and an atomic rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file({k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def environment() -> dict[str, str | int]:
    """What a run's numbers depend on beyond its settings and seed: package versions, the CPU (model and the
    SIMD level torch's kernels use) and the thread count. A run is bit-for-bit repeatable in one environment,
    but another SIMD level or thread count sums in another order and, on a small task, moves the score by as
    much as another seed does (``python benchmarks/reproducibility.py``, ``results/RELIABILITY.md``); recording
    this with every result says which numbers were measured alike.
    """
    def _version(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):  # Linux: the model name; elsewhere platform's answer stands
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"torch": torch.__version__, "transformers": _version("transformers"), "numpy": _version("numpy"),
            "python": platform.python_version(), "cpu": cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}
