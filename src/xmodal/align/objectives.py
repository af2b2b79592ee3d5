"""Stage-2 objectives: distances between embedded target features and source-proxy features.

Every objective is built once per run from the source-proxy features and labels (so anything that
depends on the source alone — e.g. OTDD's source-to-source label distances — is computed once) and
then called on target features many times:

* ``loss(Xt, yt)`` — a differentiable scalar tensor to minimise w.r.t. ``Xt`` (may subsample, as
  ORCA's Algorithm 1 does);
* ``value(Xt, yt)`` — the full-set distance as a float, for logging once per epoch.

Shapes: ``Xs (n_s, D)``, ``ys (n_s,)`` int64 in ``0..K_s-1``; ``Xt (n_t, D)``, ``yt (n_t,)`` int64 in
``0..K_t-1``. Features are token-mean-pooled embedder outputs. Tensors may live on any device; an
objective keeps its precomputed state on the device of ``Xs``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from xmodal.errors import XmodalError
from xmodal.registry import Registry

__all__ = ["Objective", "SubsampledObjective", "OBJECTIVES", "register_objective", "get_objective", "check_features"]


def check_features(X: torch.Tensor, y: torch.Tensor | None, name: str) -> None:
    """Raise :class:`XmodalError` unless ``X`` is a finite, non-empty ``(n, D)`` tensor and ``y`` (if given)
    is an ``(n,)`` integer tensor of labels ≥ 0."""
    if not isinstance(X, torch.Tensor) or X.ndim != 2:
        raise XmodalError(f"{name} features must be a 2-D tensor (n, D), got {getattr(X, 'shape', type(X))}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise XmodalError(f"{name} features are empty (shape {tuple(X.shape)})")
    if not torch.isfinite(X).all():
        raise XmodalError(f"{name} features contain NaN/Inf; check the embedder's inputs")
    if y is not None:
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise XmodalError(f"{name} labels must have shape ({X.shape[0]},), got {tuple(y.shape)}")
        if y.dtype not in (torch.int64, torch.int32) or (y.numel() and int(y.min()) < 0):
            raise XmodalError(f"{name} labels must be non-negative integers")


class Objective:
    """Base class: a distance between target and source feature sets (lower = better aligned)."""

    name: ClassVar[str]
    #: Whether the objective uses labels (OTDD, TransRate) or only features (MMD, Euclidean).
    uses_labels: ClassVar[bool] = False
    #: integer attributes that advance with every call (e.g. a subsample counter), kept by :meth:`state_dict`
    counters: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def option_names(cls) -> list[str]:
        """The keyword options ``__init__`` takes (what ``align_options`` may set)."""
        import inspect

        return [p.name for p in inspect.signature(cls.__init__).parameters.values()
                if p.kind == inspect.Parameter.KEYWORD_ONLY]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The random state that advances with every call: each ``torch.Generator`` attribute and the
        :attr:`counters`, so a resumed stage 2 draws the same subsamples as an uninterrupted one."""
        out = {f"gen.{k}": v.get_state() for k, v in vars(self).items() if isinstance(v, torch.Generator)}
        out.update({f"count.{k}": torch.tensor(int(getattr(self, k))) for k in self.counters})
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""
        for k, v in state.items():
            kind, name = k.split(".", 1)
            if kind == "gen":
                getattr(self, name).set_state(v)
            elif kind == "count":
                setattr(self, name, int(v))

    def __init__(self, Xs: torch.Tensor, ys: torch.Tensor, **options: Any) -> None:
        check_features(Xs, ys, "source")
        self.Xs = Xs
        self.ys = ys
        self.options = options

    def _check_target(self, Xt: torch.Tensor, yt: torch.Tensor) -> None:
        check_features(Xt, yt, "target")
        if Xt.shape[1] != self.Xs.shape[1]:
            raise XmodalError(
                f"target features have width {Xt.shape[1]} but source features {self.Xs.shape[1]}; "
                "both must come from embedders of the same body"
            )

    def loss(self, Xt: torch.Tensor, yt: torch.Tensor) -> torch.Tensor:
        """Differentiable scalar to minimise (may be a subsampled estimate)."""
        raise NotImplementedError

    def value(self, Xt: torch.Tensor, yt: torch.Tensor) -> float:
        """The full-set distance (no gradient), for logging."""
        with torch.no_grad():
            return float(self.loss(Xt, yt))


class SubsampledObjective(Objective):
    """An objective whose :meth:`loss` estimates on at most ``max_samples`` random rows per side (drawn
    without replacement by ``self._gen``) and whose :meth:`value` uses every row; subclasses set
    ``max_samples`` and ``_gen`` and write :meth:`_estimate`."""

    max_samples: int | None
    _gen: torch.Generator

    def _subsample(self, X: torch.Tensor) -> torch.Tensor:
        if self.max_samples is None or X.shape[0] <= self.max_samples:
            return X
        idx = torch.randperm(X.shape[0], generator=self._gen)[: self.max_samples]
        return X[idx.to(X.device)]

    def _estimate(self, Xt: torch.Tensor, Xs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, Xt: torch.Tensor, yt: torch.Tensor | None = None) -> torch.Tensor:
        """The estimate on subsamples of both sides (differentiable w.r.t. ``Xt``); labels are ignored."""
        self._check_target(Xt, yt)
        return self._estimate(self._subsample(Xt), self._subsample(self.Xs))

    def value(self, Xt: torch.Tensor, yt: torch.Tensor | None = None) -> float:
        """The full-set value (no subsampling, no gradient)."""
        self._check_target(Xt, yt)
        with torch.no_grad():
            return float(self._estimate(Xt, self.Xs))


OBJECTIVES: Registry[type[Objective]] = Registry("alignment objective")


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Class decorator: add an objective to :data:`OBJECTIVES` under ``cls.name``."""
    OBJECTIVES.add(cls.name, cls)
    return cls


def get_objective(name: str) -> type[Objective]:
    """The registered objective class called ``name``."""
    return OBJECTIVES[name]


