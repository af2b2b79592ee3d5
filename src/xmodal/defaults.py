"""Automatic settings: what ``None`` ("auto") resolves to for a given training set.

A plain ``xmodal fit DATA`` sets none of ``max_tokens``, ``epochs``, ``batch_size``, ``lr``; they are
derived here from the training data's size and shape, so that any series, table, image or field
gets a model in bounded CPU time:

* ``max_tokens``: :attr:`AutoRule.tokens` tokens (never more than the input has positions; the
  model caps it at the body's maximum). Fewer, wider patches learn faster at short budgets.
* ``batch_size``: about ``N / batches_per_epoch`` samples, clipped to ``[min_batch, max_batch]``.
* ``epochs``: enough passes for :attr:`AutoRule.steps` optimiser steps, clipped to
  ``[min_epochs, max_epochs]``, and at most :attr:`AutoRule.max_samples` samples seen in all
  (``epochs × N``), which bounds the CPU time on large training sets.
* ``lr``: :attr:`AutoRule.lr` (stage 3) — full fine-tuning of a pretrained body. When no validation run
  at it beats a constant prediction, ``fit`` retries once a decade lower
  (:func:`xmodal.estimator.protocol.retry_lower_lr`).

A body family may override the token budget, the learning rate and the step target
(``Body.auto_tokens``, ``Body.auto_lr``, ``Body.auto_steps``): a convolutional body's tokens are the
pixels of a feature map that it downsamples 16-fold, so it needs a finer grid than a transformer (at
16 tokens its last map is one pixel), each of its tokens costs far less, its batch norms train at a
larger learning rate, and it trains from a freshly aligned stem for more steps than a transformer
needs (``python benchmarks/body_choice.py`` measures both families at these defaults; the
``max_samples`` cap holds for every family).

The constants of :data:`RULE` are checked against tuning studies on the *development* half of the
benchmark suite (``python benchmarks/derive_defaults.py``: each study's best trials in the rule's
units and the rule they give) and judged on the other half only (``python
benchmarks/default_settings.py``); ``results/TUNING.md`` holds both halves' results and the split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from xmodal.config import RunConfig

__all__ = ["AutoRule", "RULE", "AUTOMATIC", "resolve_settings"]

#: the settings :func:`resolve_settings` fills when they are ``None``
AUTOMATIC = ("max_tokens", "batch_size", "epochs", "lr")


@dataclass(frozen=True)
class AutoRule:
    """The constants of the automatic settings (see the module docstring)."""

    tokens: int = 16
    batches_per_epoch: int = 8
    min_batch: int = 8
    max_batch: int = 32
    steps: int = 300
    min_epochs: int = 3
    max_epochs: int = 40
    max_samples: int = 20_000
    lr: float = 2e-4


RULE = AutoRule()


def resolve_settings(
    cfg: RunConfig, n_train: int, spatial: tuple[int, ...], rule: AutoRule = RULE, body: Any = None
) -> tuple[RunConfig, dict[str, Any]]:
    """Fill the automatic (``None``) settings of ``cfg`` for a training set.

    Args:
        cfg: the run's settings; values that are set are kept.
        n_train: training samples the final model is fitted on ``N``.
        spatial: the input's spatial shape ``S`` (``(F,)`` for table rows).
        rule: the constants.
        body: the body's family class (its ``auto_tokens`` / ``auto_lr`` / ``auto_steps`` replace the
            rule's when set);
            ``None``: the rule's.

    Returns:
        ``(resolved config, {setting: resolved value})`` for the settings that were automatic.
    """
    chosen: dict[str, Any] = {}
    positions = math.prod(int(s) for s in spatial)
    if cfg.max_tokens is None:
        tokens = getattr(body, "auto_tokens", None) or rule.tokens
        chosen["max_tokens"] = int(max(1, min(tokens, positions)))  # the body's maximum caps it later
    batch = cfg.batch_size
    if batch is None:
        batch = int(min(rule.max_batch, max(rule.min_batch, n_train // rule.batches_per_epoch)))
        batch = max(1, min(batch, n_train))
        chosen["batch_size"] = batch
    if cfg.epochs is None:
        steps_per_epoch = max(1, math.ceil(math.ceil(n_train / batch) / cfg.accumulate))
        steps = getattr(body, "auto_steps", None) or rule.steps
        epochs = min(rule.max_epochs, max(rule.min_epochs, math.ceil(steps / steps_per_epoch)))
        chosen["epochs"] = int(max(1, min(epochs, rule.max_samples // max(1, n_train))))
    if cfg.lr is None:
        chosen["lr"] = getattr(body, "auto_lr", None) or rule.lr
    return cfg.replace(**chosen), chosen
