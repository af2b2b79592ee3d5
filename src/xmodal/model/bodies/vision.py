"""Vision transformers: ViT (a token sequence) and Swin (a token grid with patch merging).

Both skip the model's own patch embedding: the embedder ``f`` plays that role. ViT's pretrained
positional embedding is resampled (bicubic) to the embedder's token grid; Swin uses relative
position biases, so only its patch-embedding LayerNorm seeds the embedder's.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from xmodal.errors import XmodalError
from xmodal.model.bodies.base import Body, SourceTokens, register_family


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


def _patch_grid(body: Body) -> tuple[int, int]:
    cfg = body.model.config
    size, patch = _pair(cfg.image_size), _pair(cfg.patch_size)
    return size[0] // patch[0], size[1] // patch[1]


def _image_token_batches(body: Body, proxy: Any, batch_size: int, prefix_tokens: bool) -> Iterator[torch.Tensor]:
    """Proxy images → the body's original patch embedding, ``batch_size`` images at a time: ``(b, T, D)``.

    Images are resized (bilinear) to the config's ``image_size``; gray images are repeated to the
    config's ``num_channels`` (colour images averaged when the model takes one channel). With
    ``prefix_tokens`` the tokens before the patch tokens (CLS, distillation, registers) are dropped.
    """
    if proxy.modality != "image":
        raise XmodalError(f"a vision body embeds image proxies; {proxy.name!r} is {proxy.modality}")
    cfg = body.model.config
    size = _pair(cfg.image_size)
    grid = _patch_grid(body)
    emb = body._source_embeddings[0]
    device = next(body.parameters()).device
    emb.to(device).eval()
    for i in range(0, len(proxy.inputs), batch_size):
        x = torch.as_tensor(np.asarray(proxy.inputs[i : i + batch_size]), dtype=torch.float32, device=device)
        if x.ndim != 4:
            raise XmodalError(f"image proxy {proxy.name!r} must be (N, C, H, W); got a batch of shape {tuple(x.shape)}")
        if tuple(x.shape[2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if x.shape[1] != cfg.num_channels:
            x = x.mean(1, keepdim=True).expand(-1, cfg.num_channels, -1, -1)
        h = emb(x)
        h = h[0] if isinstance(h, tuple) else h
        if prefix_tokens:
            h = h[:, max(h.shape[1] - grid[0] * grid[1], 0) :]
        yield h.float()


@torch.no_grad()
def _image_tokens(body: Body, proxy: Any, batch_size: int, prefix_tokens: bool) -> SourceTokens:
    """All proxy images as tokens ``(n, T, D)`` on the patch grid (see :func:`_image_token_batches`)."""
    out = list(_image_token_batches(body, proxy, batch_size, prefix_tokens))
    if not out:
        raise XmodalError(f"proxy {proxy.name!r} is empty")
    return SourceTokens(torch.cat(out), None, _patch_grid(body))


@torch.no_grad()
def _image_features(body: Body, proxy: Any, batch_size: int, prefix_tokens: bool) -> torch.Tensor:
    """Proxy images → mean over patch tokens: ``(n, D)``, one batch of tokens in memory at a time."""
    out = [h.mean(1).cpu() for h in _image_token_batches(body, proxy, batch_size, prefix_tokens)]
    if not out:
        return torch.zeros(0, body.in_width)
    return torch.cat(out)


def _square_grid(t: int) -> tuple[int, int]:
    side = math.isqrt(t)
    side += side * side < t
    return side, -(-t // side)


@register_family("vit", ("vit", "deit", "dinov2"))
class ViTBody(Body):
    """ViT encoder blocks + final LayerNorm; ``(N, T, D)`` → ``(N, T, D)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        cfg = model.config
        pos = model.embeddings.position_embeddings.detach()[0]
        n_patches = (cfg.image_size // cfg.patch_size) ** 2
        self._pretrained_position = pos[-n_patches:].clone()  # drop the CLS (and register) rows
        self._side = cfg.image_size // cfg.patch_size
        self._source_embeddings = [model.embeddings]  # a list keeps it out of the state dict
        model.embeddings = nn.Identity()
        if getattr(model, "pooler", None) is not None:
            model.pooler = None
        self.in_width = self.out_width = int(cfg.hidden_size)
        self.max_tokens = int(n_patches)

    default_proxy = "mnist"

    def source_features(self, proxy: Any, batch_size: int = 64) -> torch.Tensor:
        return _image_features(self, proxy, batch_size, prefix_tokens=True)  # patches + position, no CLS

    def source_tokens(self, proxy: Any, batch_size: int = 64, max_length: int | None = None) -> SourceTokens:
        return _image_tokens(self, proxy, batch_size, prefix_tokens=True)

    def _blocks(self) -> nn.ModuleList:
        layers = getattr(self.model, "layers", None)
        return layers if layers is not None else self.model.encoder.layer

    def forward(self, tokens: torch.Tensor, grid: tuple[int, ...], mask: torch.Tensor | None = None) -> torch.Tensor:
        h = tokens
        for block in self._blocks():
            out = block(h, None)
            h = out[0] if isinstance(out, tuple) else out
        return self.model.layernorm(h)

    def position_embeddings(self, grid: tuple[int, ...]) -> torch.Tensor | None:
        pos = self._pretrained_position
        if len(grid) != 2:
            return pos
        d = pos.shape[1]
        square = pos.reshape(1, self._side, self._side, d).permute(0, 3, 1, 2)
        resized = F.interpolate(square, size=grid, mode="bicubic", align_corners=False)
        return resized.permute(0, 2, 3, 1).reshape(-1, d)


@register_family("swin", ("swin", "swinv2"))
class SwinBody(Body):
    """Swin stages on a 2-D token grid; 1-D and 3-D token sets are laid out on a near-square grid.

    Patch merging shrinks the grid, so the output has fewer tokens than the input
    (``keeps_tokens = False``): Swin bodies serve pooled tasks (classification, regression).
    """

    keeps_tokens = False
    default_proxy = "mnist"

    def source_features(self, proxy: Any, batch_size: int = 64) -> torch.Tensor:
        return _image_features(self, proxy, batch_size, prefix_tokens=False)  # patch tokens (+ norm)

    def source_tokens(self, proxy: Any, batch_size: int = 64, max_length: int | None = None) -> SourceTokens:
        return _image_tokens(self, proxy, batch_size, prefix_tokens=False)

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        cfg = model.config
        self._pretrained_norm = [model.embeddings.norm] if hasattr(model.embeddings, "norm") else []
        self._source_embeddings = [model.embeddings]
        model.embeddings = nn.Identity()
        if getattr(model, "pooler", None) is not None:
            model.pooler = None
        self.in_width = int(cfg.embed_dim)
        self.out_width = int(model.num_features)
        self.max_tokens = int((cfg.image_size // cfg.patch_size) ** 2)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, ...], mask: torch.Tensor | None = None) -> torch.Tensor:
        n, t, d = tokens.shape
        if len(grid) == 2:
            h, w = grid
        else:
            h, w = _square_grid(t)
            tokens = F.pad(tokens, (0, 0, 0, h * w - t))
        # HF Swin shrinks a window that exceeds the grid but keeps its bias table for the full
        # window, so pad the grid to a multiple of window × 2^(stages-1) (zero tokens).
        cfg = self.model.config
        m = cfg.window_size * 2 ** (len(cfg.depths) - 1)
        hp, wp = -(-h // m) * m, -(-w // m) * m
        if (hp, wp) != (h, w):
            tokens = F.pad(tokens.reshape(n, h, w, d), (0, 0, 0, wp - w, 0, hp - h)).reshape(n, hp * wp, d)
        out = self.model.encoder(tokens, (hp, wp))
        return self.model.layernorm(out.last_hidden_state)

    def embedding_norm(self) -> nn.LayerNorm | None:
        return self._pretrained_norm[0] if self._pretrained_norm else None
