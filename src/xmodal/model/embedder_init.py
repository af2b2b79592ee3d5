"""MoNA's *Finetuning++*: start the embedder's patch projection from the body's own input embedding.

MoNA (ICML 2024, §4.1) compares vanilla fine-tuning with "Finetuning++", which "initializes the
target embedder using source embedder weights under certain modifications to map the dimension".
The paper gives no formula; :func:`init_projection_from_body` implements one modification per body
kind, documented below with shapes. Notation: the embedder ``f`` projects a patch of ``C`` channels
and ``k`` samples along each of its ``d`` spatial axes with ``W_t``: ``(D, C, k[, k[, k]])`` plus a bias
``(D,)``, then applies a LayerNorm over ``D``. Inputs reach it standardised per channel (roughly unit
variance). Because of the LayerNorm, the overall scale of ``W_t x + b`` does not matter, but the
*ratio* of the patch response ``W_t x`` to the bias ``b`` does; every recipe below keeps that ratio as
it was in the source embedding.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from xmodal.errors import XmodalError

__all__ = ["init_projection_from_body", "adapt_patch_kernel", "word_embedding_projection"]

_LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _source_embedding(body: nn.Module) -> Any:
    held = getattr(body, "_source_embeddings", None)
    return held[0] if held else None


def _patch_conv(body: nn.Module) -> nn.Conv2d | None:
    """The body's pretrained patch convolution ``(D, C_s, p, p)`` (ViT, DeiT, DINOv2, Swin), if it has one."""
    emb = _source_embedding(body)
    conv = getattr(getattr(emb, "patch_embeddings", None), "projection", None)
    return conv if isinstance(conv, nn.Conv2d) else None


def _word_embeddings(body: nn.Module) -> torch.Tensor | None:
    """The body's pretrained word-embedding matrix ``E``: ``(V, D)`` (language encoders), if it has one."""
    emb = _source_embedding(body)
    words = getattr(emb, "word_embeddings", None)
    weight = getattr(words, "weight", None)
    return weight if isinstance(weight, torch.Tensor) and weight.ndim == 2 else None


@torch.no_grad()
def adapt_patch_kernel(source: torch.Tensor, in_channels: int, spatial_dims: int, k: int) -> tuple[torch.Tensor, float]:
    """Map a 2-D patch kernel ``(D, C_s, p, p)`` to a ``d``-D one ``(D, C, k, …, k)``.

    Steps (``W_s`` is the source kernel):

    1. **spatial axes** — ``d = 2``: unchanged; ``d = 1``: average over the kernel's rows,
       ``(D, C_s, p, p) → (D, C_s, p)`` (a 1-D signal is read as an image row); ``d = 3``: replicate
       the 2-D kernel along the new leading (depth) axis, ``→ (D, C_s, p, p, p)``.
    2. **patch size** — resample every spatial axis from ``p`` to ``k``: area averaging when ``k < p``
       (no aliasing), (bi/tri)linear interpolation when ``k > p``, nothing when ``k = p``.
    3. **scale** — multiply by one scalar ``g = ‖W_s‖_F / ‖W_2‖_F`` (``W_2``: the kernel after
       steps 1–2), so the kernel keeps the source's energy: for standardised, uncorrelated inputs
       the response ``W x`` has the same mean variance per output dimension as the source
       layer's, hence the same ratio to the copied bias. (1 when ``d = 2`` and ``k = p``.)
    4. **channels** — ``C = C_s``: unchanged. Otherwise as timm's ``adapt_input_conv``: the mean
       over source channels, repeated to ``C`` channels and multiplied by ``C_s / C``,
       ``(D, C_s, …) → (D, C, …)``, so an input whose channels are all equal gives the same
       response as the source layer on that gray input (``C = 1``: the sum over source channels).

    Args:
        source: ``(D, C_s, p, p)`` kernel.
        in_channels: ``C``.
        spatial_dims: ``d`` in 1..3.
        k: target patch size.

    Returns:
        ``(W_t, g)``: the ``(D, C, k, …, k)`` kernel and the step-3 gain.
    """
    if source.ndim != 4:
        raise XmodalError(f"a patch kernel must be (D, C, p, p); got shape {tuple(source.shape)}")
    w = source.detach().float()
    p = w.shape[-1]  # p_w; a non-square (p_h, p_w) kernel is resampled to (k, k) all the same
    if spatial_dims == 1:
        w = w.mean(dim=2)  # (D, C_s, p)
    elif spatial_dims == 3:
        w = w.unsqueeze(2).expand(-1, -1, p, -1, -1)  # (D, C_s, p, p, p)
    elif spatial_dims != 2:
        raise XmodalError(f"inputs need 1, 2 or 3 spatial axes, got {spatial_dims}")
    if tuple(w.shape[2:]) != (k,) * spatial_dims:
        d, cs = w.shape[:2]
        flat = w.reshape(d * cs, 1, *w.shape[2:])
        size = (k,) * spatial_dims
        if all(n >= k for n in w.shape[2:]):
            flat = F.interpolate(flat, size=size, mode="area")
        else:
            flat = F.interpolate(flat, size=size, mode=_LINEAR_MODE[spatial_dims], align_corners=False)
        w = flat.reshape(d, cs, *size)
    norm = float(w.norm())
    gain = float(source.detach().float().norm()) / norm if norm > 1e-12 else 1.0
    w = w * gain
    c_s = w.shape[1]
    if in_channels != c_s:
        w = w.mean(dim=1, keepdim=True).repeat(1, in_channels, *([1] * spatial_dims)) * (c_s / in_channels)
    return w.contiguous(), gain


def _eigh_one_thread(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh`` on one CPU thread: for a ``(D, D)`` matrix with ``D`` in the hundreds that
    is milliseconds, whereas MKL's threaded path was orders of magnitude slower on a 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(matrix)
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def word_embedding_projection(
    words: torch.Tensor, in_features: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """A projection ``(D, m)`` whose columns span the word embeddings' top principal directions.

    With the centred matrix ``E_c = E - μ`` (``E``: ``(V, D)``, ``μ``: the mean word embedding) and
    its covariance ``E_cᵀ E_c / V = Σ_j λ_j u_j u_jᵀ`` (``λ_1 ≥ λ_2 ≥ …``; ``λ_j = s_j² / V`` for the
    singular values ``s_j`` of ``E_c``), column ``i`` of the projection is ``u_j · sqrt(λ_j / n_j)``
    with ``j = i mod r`` (cycling when ``m`` exceeds the ``r = min(D, V)`` directions) and ``n_j`` the
    number of columns that share direction ``j`` (1 when ``m ≤ r``). The bias is ``μ``.

    A patch ``x`` of ``m`` standardised, uncorrelated values then becomes ``μ + Σ_i x_i column_i``:
    a token with the word embeddings' mean and, along each of the top ``min(m, r)`` principal
    directions, their variance ``λ_j`` — first and second moments as in the source, restricted to
    the directions the patch can fill. (The ``1/sqrt(n_j)`` keeps that variance when columns cycle.)

    Args:
        words: ``E``, ``(V, D)``.
        in_features: ``m = C · k^d``, the flattened patch length.

    Returns:
        ``(W, b, info)``: ``W`` ``(D, m)``, ``b`` ``(D,)``, and ``info`` with the directions used
        and the fraction of the word embeddings' variance they hold.
    """
    e = words.detach().double()
    v, d = e.shape
    mu = e.mean(dim=0)
    centred = e - mu
    cov = centred.T @ centred / v  # (D, D)
    lam, vecs = _eigh_one_thread(cov)  # ascending
    lam, vecs = lam.flip(0).clamp_min(0.0), vecs.flip(1)  # descending; columns u_j
    r = min(d, v)
    j = torch.arange(in_features) % r  # direction of each column
    counts = torch.bincount(j, minlength=r).double()
    cols = vecs[:, j] * torch.sqrt(lam[j] / counts[j])  # (D, m)
    used = min(in_features, r)
    total = float(lam.sum())
    info = {
        "directions": used,
        "cycled": in_features > r,
        "explained_variance": float(lam[:used].sum()) / total if total > 0 else 0.0,
    }
    return cols.to(words.dtype), mu.to(words.dtype), info


# over 60 lines only through its docstring (every argument documented); the code is 54 lines
@torch.no_grad()
def init_projection_from_body(embedder: nn.Module, body: nn.Module) -> dict[str, Any]:
    """Set ``embedder.projection`` (weight ``(D, C, k[, k[, k]])``, bias ``(D,)``) from ``body``'s input embedding.

    * **vision bodies** (ViT, DeiT, DINOv2, Swin — a pretrained patch convolution ``(D, C_s, p, p)``
      with bias): the kernel goes through :func:`adapt_patch_kernel` (spatial axes, patch size
      ``p → k``, energy-preserving gain, channels ``C_s → C``); the bias is copied.
    * **language bodies** (a word-embedding matrix ``E``: ``(V, D)``): the flattened kernel
      ``(D, C · k^d)`` is :func:`word_embedding_projection` — columns along the top principal
      directions of the centred ``E``, scaled by ``s_j / sqrt(V)``, cycling when ``C · k^d > D`` — and
      the bias is the mean word embedding, so embedded patches have the word embeddings' mean and
      variance along those directions.

    The rest of the embedder (LayerNorm, positions) is left as :func:`~xmodal.model.assembly.assemble`
    set it (from the body where it has them).

    Args:
        embedder: a :class:`~xmodal.model.embedder.Embedder`.
        body: a :class:`~xmodal.model.bodies.Body` built with its pretrained weights.

    Returns:
        A JSON-serialisable report: ``method`` (``"patch-conv"`` or ``"word-embeddings"``),
        ``source_shape``, ``target_shape`` and the method's details.

    Raises:
        XmodalError: the body has neither (e.g. a config-only body of another family), or its
            embedding width differs from the embedder's.
    """
    proj = embedder.projection
    weight = proj.weight  # (D, C, k, …)
    width, channels = int(weight.shape[0]), int(weight.shape[1])
    spatial_dims = weight.ndim - 2
    k = int(weight.shape[-1])
    family = getattr(body, "family", type(body).__name__)
    conv = _patch_conv(body)
    words = _word_embeddings(body) if conv is None else None
    if conv is not None:
        source = conv.weight
        if source.shape[0] != width:
            raise XmodalError(
                f"finetune++: the body's patch embedding has width {source.shape[0]} but the embedder {width}"
            )
        w, gain = adapt_patch_kernel(source, channels, spatial_dims, k)
        weight.copy_(w.to(weight.dtype))
        if proj.bias is not None:
            if conv.bias is not None:
                proj.bias.copy_(conv.bias.detach().to(proj.bias.dtype))
            else:
                proj.bias.zero_()
        c_s, p = int(source.shape[1]), int(source.shape[-1])
        return {
            "method": "patch-conv",
            "source_shape": list(source.shape),
            "target_shape": list(weight.shape),
            "spatial": f"{p}^2 -> {k}^{spatial_dims}",
            "channels": "kept" if channels == c_s else f"mean of {c_s}, repeated to {channels}, x {c_s}/{channels}",
            "gain": gain,
            "bias": "copied" if conv.bias is not None else "zero",
        }
    if words is not None:
        if words.shape[1] != width:
            raise XmodalError(
                f"finetune++: the body's word embeddings have width {words.shape[1]} but the embedder {width}"
            )
        m = math.prod(weight.shape[1:])
        cols, mu, info = word_embedding_projection(words, m)
        weight.copy_(cols.reshape(weight.shape).to(weight.dtype))
        if proj.bias is not None:
            proj.bias.copy_(mu.to(proj.bias.dtype))
        return {
            "method": "word-embeddings",
            "source_shape": list(words.shape),
            "target_shape": list(weight.shape),
            **info,
            "bias": "mean word embedding",
        }
    raise XmodalError(
        f"finetune++ is not available for body family {family!r}: it needs the body's pretrained input "
        "embedding (a ViT/Swin patch convolution or a language model's word embeddings); "
        "use strategy 'finetune' instead"
    )
