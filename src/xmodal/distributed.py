"""Data parallelism on PyTorch's own distributed package, launched by ``torchrun``.

xmodal starts no processes of its own. ``torchrun --nproc_per_node N -m xmodal fit …`` (or any Python
script that calls :meth:`~xmodal.CrossModalEstimator.fit` under ``torchrun``) starts N copies; each
reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``) and
:func:`setup` joins them in one process group, NCCL on CUDA and gloo on CPU. Without that environment
every function here is a no-op and the world has one process.

What each stage does with N processes (every process holds the whole training set in memory):

* **Stage 3** (:mod:`xmodal.train.finetune`): the model is wrapped in
  :class:`~torch.nn.parallel.DistributedDataParallel`. Every process draws the same shuffled order;
  each global batch of ``batch_size`` rows is cut into N contiguous parts (:func:`local_rows`), one per
  process, and each part's loss is weighted so that the averaged gradient is the gradient of the
  global batch's mean loss. ``batch_size`` is therefore the **global** batch per forward pass and
  ``batch_size × accumulate`` the global batch per optimiser step, whatever N is; a run with N
  processes follows the 1-process run's loss curve (up to floating-point summation order;
  ``tests/test_distributed.py`` checks 1e-5). Dropout masks and BatchNorm batch statistics are drawn
  per process, so models with either follow it only in distribution.
* **Stage 2** (:mod:`xmodal.train.align_distance`): the source-proxy features are replicated; each
  class-wise target subsample is cut the same way, each process embeds its part, the features are
  gathered (:func:`gather_rows`) so every process evaluates the same objective on the whole
  subsample, and the embedder's gradients are summed (:func:`sum_gradients`): the loss and the
  gradient are the single-process ones on the same samples. MoNA's stage 2 is refused under more
  than one process (:class:`~xmodal.errors.XmodalError` before any weights load).
* Checkpoints, the run folder, progress bars and messages are written by rank 0 only; every rank
  reads a checkpoint when resuming, so the run folder must be on a file system all processes see.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

__all__ = ["launched_size", "setup", "world_size", "rank", "is_main", "barrier", "main_first", "shard",
           "local_rows", "gather_rows", "sum_gradients", "all_reduce", "local_device", "broadcast", "gather_objects",
           "teardown"]


def launched_size() -> int:
    """The number of processes torchrun started (``WORLD_SIZE``; 1 without torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def local_device(device: torch.device) -> torch.device:
    """Under torchrun, a bare ``cuda`` becomes this process's GPU, ``cuda:LOCAL_RANK``; others are unchanged."""
    if device.type == "cuda" and device.index is None and launched_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def setup(device: torch.device, timeout_minutes: float = 30.0) -> None:
    """Join torchrun's process group (NCCL for CUDA devices, gloo otherwise), once per process.

    Does nothing without torchrun (``WORLD_SIZE`` unset or 1) or when a group already exists (a
    script that called :func:`torch.distributed.init_process_group` itself keeps its own).
    """
    if launched_size() <= 1 or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(local_device(device))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            timeout=datetime.timedelta(minutes=timeout_minutes))


def world_size() -> int:
    """Processes in the joined group (1 before :func:`setup` or without torchrun)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the joined group (0 without one)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes files and messages: rank 0 of the group, or the only process."""
    return rank() == 0 and int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    """Wait for every process of the group (no-op with one)."""
    if world_size() > 1:
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. filling a cache), the others after it has finished."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def shard(n: int, parts: int | None = None, index: int | None = None) -> slice:
    """Rows ``[start, stop)`` of this process's contiguous part of ``n`` rows (``torch.tensor_split`` sizes:
    the first ``n % parts`` parts have one row more)."""
    parts = world_size() if parts is None else parts
    index = rank() if index is None else index
    base, extra = divmod(n, parts)
    start = index * base + min(index, extra)
    return slice(start, start + base + (1 if index < extra else 0))


def local_rows(idx: torch.Tensor) -> tuple[torch.Tensor, float]:
    """This process's part of a global batch ``idx`` ``(B,)`` and the weight of its mean loss.

    With N processes each part's gradient is averaged by DDP, so a part of ``b`` rows gets weight
    ``N·b/B``: the average is then the gradient of the global mean. A process whose part is empty (a
    last batch smaller than N) takes the batch's first row with weight 0, so it still joins the
    gradient reduction. One process: ``(idx, 1.0)``.
    """
    world = world_size()
    if world == 1:
        return idx, 1.0
    part = idx[shard(len(idx), world)]
    if len(part) == 0:
        return idx[:1], 0.0
    return part, world * len(part) / len(idx)


class _GatherRows(torch.autograd.Function):
    """All-gather of row blocks of different lengths; the backward pass returns this process's block of
    the gradient unchanged (every process computes the same loss on the gathered rows)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:  # noqa: D102
        ctx.start = sum(sizes[: rank()])
        ctx.rows = x.shape[0]
        width = max(sizes)
        padded = x.new_zeros((width, *x.shape[1:]))
        padded[: x.shape[0]] = x
        blocks = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(blocks, padded.contiguous())
        return torch.cat([b[:s] for b, s in zip(blocks, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return grad[ctx.start: ctx.start + ctx.rows], None


def gather_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """Concatenate every process's part ``(b_r, …)`` of ``n`` rows cut by :func:`shard`, in rank order:
    ``(n, …)`` on every process, differentiable with respect to this process's part. One process: ``x``."""
    world = world_size()
    if world == 1:
        return x
    sizes = [shard(n, world, r).stop - shard(n, world, r).start for r in range(world)]
    return _GatherRows.apply(x, sizes)


def sum_gradients(params: list[torch.nn.Parameter]) -> None:
    """Sum the parameters' gradients over the processes, in one flat all-reduce (missing ones count as 0)."""
    if world_size() == 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    for p, part in zip(params, flat.split([g.numel() for g in grads]), strict=True):
        p.grad = part.view_as(p).clone()


def all_reduce(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``t`` reduced over the processes in place (``"sum"``, ``"min"`` or ``"max"``); returns ``t``."""
    if world_size() > 1:
        dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
    return t


def broadcast(obj: object) -> object:
    """Rank 0's ``obj`` on every process (any picklable value; sent through the process group, never a
    file); returns ``obj`` unchanged with one process."""
    if world_size() == 1:
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: object) -> list:
    """Every process's ``obj``, in rank order, on every process (``[obj]`` with one process)."""
    if world_size() == 1:
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def teardown() -> None:
    """Leave the process group :func:`setup` joined (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
