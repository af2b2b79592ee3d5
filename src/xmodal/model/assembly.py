"""Assembly of ``m = h ∘ g ∘ f`` with the input/target scaling that travels with the model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from xmodal.errors import XmodalError
from xmodal.model.bodies import Body
from xmodal.model.embedder import Embedder
from xmodal.model.predictors import DenseHead, PooledHead
from xmodal.tasks import get_task_kind

__all__ = ["ModelSpec", "CrossModalModel", "assemble"]


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild the architecture (saved as JSON next to the weights).

    Attributes:
        task: task kind name.
        num_outputs: ``K``.
        sample_shape: per-sample input shape ``(C, *S)``.
        max_tokens: token budget the embedder's patch size was chosen for.
        patch_size: the chosen ``k``.
        feature_scaling: ``"channel"`` (one mean/std per channel) or ``"position"`` (per feature:
            tabular rows).
    """

    task: str
    num_outputs: int
    sample_shape: tuple[int, ...]
    max_tokens: int
    patch_size: int
    feature_scaling: str = "channel"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        d = dict(d)
        d["sample_shape"] = tuple(d["sample_shape"])
        return cls(**d)


class CrossModalModel(nn.Module):
    """``(N, C, *S)`` raw inputs → raw task outputs (see :mod:`xmodal.tasks` for layouts).

    Inputs are standardised with the training statistics held in buffers, so a saved model
    predicts on raw data. For regression kinds the outputs are in standardised target units;
    :meth:`decode` maps them back.
    """

    def __init__(self, spec: ModelSpec, body: Body) -> None:
        super().__init__()
        self.spec = spec
        self.kind = get_task_kind(spec.task)
        c, *spatial = spec.sample_shape
        if self.kind.dense and not body.keeps_tokens:
            raise XmodalError(
                f"body family {body.family!r} merges tokens, so it cannot make dense predictions; "
                "use a language body (e.g. 'minilm-l6') or a ViT body for dense tasks"
            )
        max_tokens = min(spec.max_tokens, body.max_tokens)
        self.embedder = Embedder(c, spatial, body.in_width, max_tokens, patch_size=spec.patch_size or None)
        self.body = body
        if self.kind.dense:
            body.use_dense_features()
            self.head: nn.Module = DenseHead(body.out_width, spec.num_outputs, spatial, self.embedder.k)
        else:
            self.head = PooledHead(body.out_width, spec.num_outputs)
        stat_shape = (1, *spec.sample_shape) if spec.feature_scaling == "position" else (1, c) + (1,) * len(spatial)
        self.register_buffer("x_mean", torch.zeros(stat_shape))
        self.register_buffer("x_std", torch.ones(stat_shape))
        t_shape = (1, spec.num_outputs) + ((1,) * len(spatial) if self.kind.dense else ())
        self.register_buffer("y_mean", torch.zeros(t_shape))
        self.register_buffer("y_std", torch.ones(t_shape))

    @property
    def grid(self) -> tuple[int, ...]:
        return self.embedder.grid

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise and embed: ``(N, C, *S)`` → ``(N, T, D)`` tokens (the output of ``f``)."""
        return self.embedder((x - self.x_mean) / self.x_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(self.embed(x), self.grid)
        return self.head(features, self.grid)

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """Raw outputs → outputs in the user's target units (identity except for regression)."""
        if self.kind.standardise_targets:
            return out.float() * self.y_std + self.y_mean
        return out

    def encode_targets(self, y: torch.Tensor) -> torch.Tensor:
        """Targets in user units → training units (standardised for regression kinds)."""
        if self.kind.standardise_targets:
            return (y - self.y_mean) / self.y_std
        return y

    @torch.no_grad()
    def fit_scaling(self, X: torch.Tensor, y: torch.Tensor | None) -> None:
        """Set input (and, for regression, target) mean/std from training data ``X``: ``(N, C, *S)``."""
        dims = (0,) if self.spec.feature_scaling == "position" else (0, *range(2, X.ndim))
        self.x_mean.copy_(X.mean(dim=dims, keepdim=True))
        self.x_std.copy_(X.std(dim=dims, keepdim=True).clamp_min(1e-6))
        if y is not None and self.kind.standardise_targets:
            ydims = (0,) if not self.kind.dense else (0, *range(2, y.ndim))
            self.y_mean.copy_(y.mean(dim=ydims, keepdim=True).reshape(self.y_mean.shape))
            self.y_std.copy_(y.std(dim=ydims, keepdim=True).clamp_min(1e-6).reshape(self.y_std.shape))

    def parameter_groups(self) -> dict[str, Iterator[nn.Parameter]]:
        """Named parameter sets: ``embedder``, ``body``, ``body_layer_norms``, ``head``."""
        return {
            "embedder": self.embedder.parameters(),
            "body": self.body.parameters(),
            "body_layer_norms": self.body.layer_norm_parameters(),
            "head": self.head.parameters(),
        }


def assemble(
    body: Body,
    task: str,
    num_outputs: int,
    sample_shape: Sequence[int],
    max_tokens: int | None = None,
    feature_scaling: str = "channel",
    init_from_body: bool = True,
) -> CrossModalModel:
    """Build ``h ∘ g ∘ f`` for a task (stage 1).

    Args:
        body: the body ``g`` (from :func:`xmodal.model.bodies.build_body`).
        task: task kind name.
        num_outputs: ``K``.
        sample_shape: ``(C, *S)``.
        max_tokens: token budget; default and upper bound: the body's maximum positions.
        feature_scaling: ``"channel"`` or ``"position"`` (tabular).
        init_from_body: start the embedder's positional embedding and LayerNorm from the body's own.
    """
    budget = body.max_tokens if max_tokens is None else min(int(max_tokens), body.max_tokens)
    if budget < 1:
        raise XmodalError(f"max_tokens must be ≥ 1, got {max_tokens}")
    spec = ModelSpec(task, int(num_outputs), tuple(int(s) for s in sample_shape), budget, 0, feature_scaling)
    model = CrossModalModel(spec, body)
    model.spec = ModelSpec(task, spec.num_outputs, spec.sample_shape, budget, model.embedder.k, feature_scaling)
    if init_from_body:
        model.embedder.init_from_body(body.position_embeddings(model.grid), body.embedding_norm())
    return model
