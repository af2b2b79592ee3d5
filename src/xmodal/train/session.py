"""What every stage's loop shares: resuming from its checkpoint, the progress bar, the per-epoch record
and checkpoint, and which parameters train.

A loop reads, with :class:`EpochRun`::

    run = EpochRun("stage 3", epochs, model, optimizer, scheduler, checkpoint, run_key, progress)
    for epoch in run:                       # starts after the last epoch the checkpoint holds
        ...                                 # the stage's own steps
        run.end_epoch({"epoch": epoch + 1, "loss": ...})   # record, progress bar, atomic checkpoint

Device and precision are :mod:`xmodal.runtime`'s; checkpoints are :mod:`xmodal.train.checkpoint`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from xmodal import distributed
from xmodal.train.checkpoint import check_run_key, load_checkpoint, save_checkpoint

__all__ = ["EpochRun", "train_only"]


class EpochRun:
    """The epochs of one stage: resume, progress bar, history and per-epoch checkpoints.

    Args:
        desc: the stage's name in the progress bar and messages (``"stage 2 (otdd)"``).
        epochs: the stage's number of epochs.
        trained: the module the checkpoint keeps (the whole model in stage 3, the embedder in stage 2).
        optimizer, scheduler: restored from and saved with the checkpoint (``scheduler`` may be ``None``).
        checkpoint: file written after every epoch and resumed from when it exists; ``None``: none.
        run_key: the run's settings, stored with the checkpoint; a checkpoint with another key is refused.
        progress: show the progress bar and the resume message.

    After construction, :attr:`start` is the number of epochs already done, :attr:`history` their
    records, and :attr:`extra` / :attr:`state` the JSON and tensor state the stage saved with them.
    """

    def __init__(self, desc: str, epochs: int, trained: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None, checkpoint: Path | None,
                 run_key: dict | None, progress: bool = True) -> None:
        self.desc, self.epochs, self.trained = desc, epochs, trained
        self.optimizer, self.scheduler = optimizer, scheduler
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.run_key, self.progress = run_key, progress and distributed.is_main()
        self.start, self.history = 0, []
        self.extra: dict[str, Any] = {}
        self.state: dict[str, torch.Tensor] = {}
        self.stopped = False
        self._bar: Any = None
        #: whether the stage resumed from its checkpoint
        self.resumed = self.checkpoint is not None and self.checkpoint.exists()
        if self.resumed:
            self.start, self.extra, self.state = load_checkpoint(self.checkpoint, trained, optimizer, scheduler)
            check_run_key(self.checkpoint, self.extra.get("run_key"), run_key)
            self.history = list(self.extra.get("history", []))
            if self.progress and self.start < epochs:
                tqdm.write(f"{desc}: resuming at epoch {self.start + 1} of {epochs} ({self.checkpoint})")

    def __iter__(self) -> Iterator[int]:
        """The 0-based epochs still to run (none once :attr:`stopped` was set, e.g. by early stopping)."""
        end = self.start if self.stopped else self.epochs
        self._bar = tqdm(range(self.start, end), desc=self.desc, unit="epoch", disable=not self.progress,
                         leave=False)
        return iter(self._bar)

    def end_epoch(self, record: dict[str, Any], extra: dict[str, Any] | None = None,
                  state: dict[str, torch.Tensor] | None = None, show: str = "loss") -> None:
        """Append ``record`` (with its 1-based ``"epoch"``), show ``record[show]`` on the bar, and write
        the checkpoint with the history, the run key, ``extra`` (JSON) and ``state`` (tensors)."""
        self.history.append(record)
        if self._bar is not None and show in record:
            self._bar.set_postfix({show: f"{record[show]:.4g}"})
        if self.checkpoint is None:
            return
        rank_rng = distributed.gather_objects(torch.get_rng_state()) if distributed.world_size() > 1 else None
        if distributed.is_main():  # one writer; every process resumes from it (with its own random state)
            save_checkpoint(self.checkpoint, self.trained, self.optimizer, self.scheduler, int(record["epoch"]),
                            {"history": self.history, "run_key": self.run_key, **(extra or {})}, state, rank_rng)


@contextlib.contextmanager
def train_only(model: nn.Module, params: list[nn.Parameter]) -> Iterator[None]:
    """Inside the block only ``params`` require gradients; every flag is restored on exit."""
    saved = {id(p): p.requires_grad for p in model.parameters()}
    keep = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    try:
        yield
    finally:
        for p in model.parameters():
            p.requires_grad_(saved[id(p)])
