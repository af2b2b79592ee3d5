"""Stage 2 as ORCA runs it: train the embedder ``f`` alone to minimise a distance to the source proxy.

Each epoch takes ``steps_per_epoch`` optimiser steps. A step draws a class-wise subsample of the
target set (ORCA's Algorithm 1: up to ``batch_size`` samples per class), embeds it, mean-pools the
tokens into features ``(n, D)`` and minimises ``objective.loss`` against the cached source-proxy
features. After every epoch the distance of the target set is logged (``distance``; a fixed subset
of at most ``curve_per_class`` samples per class, which is the full set on small tasks), the
schedule decays the learning rate ×0.2 every third of the epochs (ORCA: every 20 of 60), and the
stage stops early once the logged distance has not improved by 1 % for ``patience`` epochs.

Targets that are not class labels (regression, dense, multi-label) get k-means pseudo-labels
(:func:`xmodal.align.targets.target_labels`, ORCA appendix A.3.4). The objectives themselves (OTDD,
MMD, …) live in :mod:`xmodal.align`; this module is the loop, next to stage 3's (:mod:`.finetune`).
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import torch

from xmodal import distributed
from xmodal.align.objectives import Objective, get_objective
from xmodal.align.targets import classwise_sample, curve_subset, embed_features, target_labels
from xmodal.errors import XmodalError
from xmodal.model.assembly import CrossModalModel
from xmodal.runtime import autocast, diverged
from xmodal.train.aligners import Aligner, register_aligner
from xmodal.train.config import AlignConfig
from xmodal.train.session import EpochRun, train_only

__all__ = ["DistanceAligner", "OTDDAligner", "MMDAligner", "EuclideanAligner", "TransRateAligner"]


class DistanceAligner(Aligner):
    """Embedder-only optimisation of a registered :class:`~xmodal.align.objectives.Objective`.

    Subclasses name the objective and its default options; defaults: 60 epochs, lr 1e-3 (ORCA).
    """

    objective: ClassVar[str]
    default_epochs: ClassVar[int] = 60
    default_lr: ClassVar[float] = 1e-3
    #: objective options used unless the run overrides them
    default_options: ClassVar[dict] = {}

    def check_options(self, options: dict) -> None:
        """Refuse unknown option names (listing the valid ones) and values the objective rejects, by
        building it on four random 2-d features (no weights load)."""
        cls = get_objective(self.objective)
        known = cls.option_names()
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise XmodalError(f"unknown {self.objective} option(s) {unknown}; valid: {known}")
        gen = torch.Generator().manual_seed(0)
        try:
            cls(torch.randn(4, 2, generator=gen), torch.tensor([0, 0, 1, 1]), **{**self.default_options, **options})
        except XmodalError:
            raise
        except (TypeError, ValueError) as exc:
            raise XmodalError(f"bad {self.objective} option value(s) {options}: {exc}") from None

    def run(self, model: CrossModalModel, X: torch.Tensor, y: torch.Tensor, cfg: AlignConfig, device: torch.device,
            seed: int = 0, progress: bool = True) -> dict[str, Any]:
        from xmodal.align.source_cache import source_features_cached

        t0 = time.perf_counter()
        proxy = cfg.proxy or model.body.default_proxy
        with distributed.main_first():  # rank 0 fills the cache; the other processes then read it
            Xs, ys, k_source = source_features_cached(model.body, cfg.body_key, proxy, cfg.source_size, seed,
                                                      progress=progress and distributed.is_main())
        t_source = time.perf_counter() - t0
        labels = target_labels(model, y, k_source, seed)
        objective = get_objective(self.objective)(Xs.to(device), ys.to(device), **{**self.default_options,
                                                                                   **cfg.options})
        curve = curve_subset(labels, cfg.curve_per_class, seed)
        setup = {"objective": self.objective, "proxy": proxy, "source_size": int(Xs.shape[0]),
                 "source_classes": int(k_source), "target_classes": int(labels.unique().numel()),
                 "curve_samples": int(curve.numel()), "source_seconds": t_source,
                 "setup_seconds": time.perf_counter() - t0}
        epochs = self.default_epochs if cfg.epochs is None else cfg.epochs
        lr = self.default_lr if cfg.lr is None else cfg.lr
        history = distance_loop(model, X, labels, curve, objective, cfg, epochs, lr, device, seed,
                                f"stage 2 ({self.name})", progress)
        return {**setup, "seconds": time.perf_counter() - t0, "initial_distance": history[0]["distance"],
                "final_distance": history[-1]["distance"], "stopped_early": len(history) - 1 < epochs,
                "history": history}


def distance_loop(model: CrossModalModel, X: torch.Tensor, labels: torch.Tensor, curve: torch.Tensor,
                  objective: Objective, cfg: AlignConfig, epochs: int, lr: float, device: torch.device, seed: int,
                  stage: str, progress: bool = True) -> list[dict]:
    """ORCA's stage-2 loop: AdamW on the embedder's parameters against ``objective``.

    ``X`` ``(N, C, *S)`` targets on CPU, ``labels`` ``(N,)`` their (pseudo-)labels, ``curve`` the rows
    whose distance is logged after every epoch. Returns the history: epoch 0 (the starting distance),
    then one record per epoch (``distance``, the last step's ``loss``, ``lr``, ``seconds``).
    """
    model.to(device)
    params = list(model.embedder.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.2)
    gen = torch.Generator().manual_seed(seed + 104729)
    labels_dev = labels.to(device)
    X_curve, labels_curve = X[curve], labels_dev[curve.to(device)]
    run = EpochRun(stage, epochs, model.embedder, opt, sched, cfg.checkpoint, cfg.run_key, progress)
    if run.resumed:
        best, stale = float(run.extra["best"]), int(run.extra["stale"])
        gen.set_state(run.state.pop("sampler"))
        objective.load_state_dict(run.state)
    else:
        first = _logged_distance(model, X_curve, labels_curve, objective, device, stage, 1, 0, lr, cfg)
        run.history, best, stale = [{"epoch": 0, "distance": first}], first, 0
    run.stopped = bool(cfg.patience and stale >= cfg.patience)  # a resumed run that had already stopped early
    model.embedder.train()
    with train_only(model, params):
        for epoch in run:
            te = time.perf_counter()
            bad_loss = torch.zeros((), dtype=torch.long, device=device)  # first non-finite step (1-based); 0: none
            for step in range(cfg.steps_per_epoch):
                idx = classwise_sample(labels, cfg.batch_size, gen)  # the same on every process
                feats = _embed_part(model, X, idx, device, cfg.precision)
                # the objective checks its input on the host anyway; checking here names the error for what it is
                if not bool(torch.isfinite(feats).all()):  # the embedder itself has diverged
                    raise diverged(stage, epoch + 1, step + 1, "embedded features", opt.param_groups[0]["lr"],
                                   cfg.checkpoint)
                loss = objective.loss(feats.float(), labels_dev[idx.to(device)])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                distributed.sum_gradients(params)
                loss = loss.detach()
                bad_loss = torch.where((bad_loss == 0) & ~torch.isfinite(loss), step + 1, bad_loss)
                opt.step()
            if int(bad_loss):  # checked once per epoch, before the epoch's checkpoint
                raise diverged(stage, epoch + 1, int(bad_loss), "loss", opt.param_groups[0]["lr"], cfg.checkpoint)
            sched.step()
            tc = time.perf_counter()
            value = _logged_distance(model, X_curve, labels_curve, objective, device, stage, epoch + 1,
                                     cfg.steps_per_epoch, opt.param_groups[0]["lr"], cfg)
            now = time.perf_counter()
            best, stale = (value, 0) if value < best - 0.01 * abs(best) else (best, stale + 1)  # 1 % resets
            run.end_epoch({"epoch": epoch + 1, "distance": value, "loss": float(loss.detach()),
                           "lr": opt.param_groups[0]["lr"], "seconds": now - te, "curve_seconds": now - tc},
                          {"best": best, "stale": stale}, {"sampler": gen.get_state(), **objective.state_dict()},
                          show="distance")
            if cfg.patience and stale >= cfg.patience:
                break
    return run.history


def _embed_part(model: CrossModalModel, X: torch.Tensor, idx: torch.Tensor, device: torch.device,
                precision: str) -> torch.Tensor:
    """Mean-pooled features ``(len(idx), D)`` of rows ``idx``; with several processes each embeds its part
    and the parts are gathered (:func:`xmodal.distributed.gather_rows`), so every process holds them all."""
    part = idx[distributed.shard(len(idx))]
    if len(part) == 0:  # fewer rows than processes: embed one row and keep none of it, to join the gather
        part, keep = idx[:1], 0
    else:
        keep = len(part)
    with autocast(device, precision):
        feats = model.embed(X[part].to(device)).mean(dim=1)[:keep]
    return distributed.gather_rows(feats, len(idx))


def _logged_features(model: CrossModalModel, X: torch.Tensor, device: torch.device) -> torch.Tensor:
    """:func:`~xmodal.align.targets.embed_features` of ``X``; with several processes each embeds its part."""
    if distributed.world_size() == 1:
        return embed_features(model, X, device)
    rows = distributed.shard(X.shape[0])
    part = X[rows] if rows.stop > rows.start else X[:1]
    return distributed.gather_rows(embed_features(model, part, device)[: rows.stop - rows.start], X.shape[0])


def _logged_distance(model: CrossModalModel, X: torch.Tensor, labels: torch.Tensor, objective: Objective,
                     device: torch.device, stage: str, epoch: int, step: int, lr: float, cfg: AlignConfig) -> float:
    """The objective's value on the logged rows, after checking the features and the value are finite."""
    feats = _logged_features(model, X, device)
    if not bool(torch.isfinite(feats).all()):
        raise diverged(stage, epoch, step, "embedded features", lr, cfg.checkpoint)
    value = objective.value(feats, labels)
    _check_finite(value, "distance", stage, epoch, step, lr, cfg)
    return value


def _check_finite(value: float, what: str, stage: str, epoch: int, step: int, lr: float, cfg: AlignConfig) -> None:
    if not math.isfinite(value):
        raise diverged(stage, epoch, step, what, lr, cfg.checkpoint)


@register_aligner
class OTDDAligner(DistanceAligner):
    """ORCA: minimise the OTDD between embedded target and source-proxy data.

    Label distances are Gaussian (Bures) approximations: far cheaper per step than exact inner OT
    (``python benchmarks/otdd_speed.py``); the exact mode is one option away,
    ``align_options={"inner": "exact"}``.
    """

    name = "otdd"
    objective = "otdd"
    description = "ORCA: minimise the OTDD between embedded target and source-proxy data"
    default_options = {"inner": "gaussian"}


@register_aligner
class MMDAligner(DistanceAligner):
    """Minimise the multi-bandwidth Gaussian MMD to the source-proxy features.

    Wide bandwidths too: a freshly built embedder sits far from the proxy, where narrow kernels give
    no gradient.
    """

    name = "mmd"
    objective = "mmd"
    description = "minimise the multi-bandwidth Gaussian MMD to the source-proxy features"
    default_options = {"scales": (0.25, 0.5, 1.0, 2.0, 4.0, 16.0, 64.0)}


@register_aligner
class EuclideanAligner(DistanceAligner):
    """Minimise the pairwise Euclidean distance to the source-proxy features."""

    name = "euclidean"
    objective = "euclidean"
    description = "minimise the pairwise Euclidean distance to the proxy features"


@register_aligner
class TransRateAligner(DistanceAligner):
    """Maximise TransRate of the embedded target features.

    TransRate grows without bound when features are scaled up; normalising rows makes it a usable loss.
    """

    name = "transrate"
    objective = "transrate"
    description = "maximise TransRate of the embedded target features"
    default_options = {"normalize": True}
