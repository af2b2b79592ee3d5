"""MoNA stage 2 (Ma et al., ICML 2024, §3.2 and Alg. 1): meta-learn the embedder so that fine-tuning
keeps the body's source-modality knowledge.

One outer step on a target batch ``(x, y)`` and a source-proxy batch ``(x_s, y_s)``:

1. target loss at the current weights, ``L_t = ℓ(h(g(f(x))), y)``;
2. inner loop: ``k`` differentiable SGD steps of the body on the target loss (default ``k = 1``),
   ``θ'_g = θ_g - α ∇_{θ_g} L_t`` (``create_graph=True``, so ``θ'_g`` is a function of the embedder
   weights ``φ`` — this is the only way the source term reaches ``φ``);
3. source features through the *inner-updated* body, ``z_s = normalize(pool(g_{θ'_g}(e_s(x_s))))``,
   where ``e_s`` is the body's own pretrained input embedding (:meth:`Body.source_tokens`), computed
   with :func:`torch.func.functional_call` (no hand-copied parameters);
4. outer loss ``L_t + λ (L_align(z_s, y_s) + L_uniform(z_s))`` (Wang & Isola, 2020; alignment over
   same-class pairs, uniformity over all pairs) — the single-step form reuses the inner loss ``L_t``,
   as the paper's Eq. (6) does;
5. AdamW step on the embedder ``f`` and the new head ``h`` (the head is new too and only sees the
   ``L_t`` term; the body is never updated in this stage).

Defaults (MoNA appendix A.1): AdamW, lr 3e-5, weight decay 0.1, 10 epochs. Each epoch takes
``steps_per_epoch`` outer steps (as ORCA's stage 2 does). Options (``align_options``):
``lam`` (λ, default 1.0), ``inner_lr`` (α, default 1e-3), ``inner_steps`` (k, default 1),
``source_batch`` (source samples per step, default 32, class-balanced), ``source_pool`` (proxy
samples embedded once per run, default 512), ``source_length`` (sub-word tokens per sentence for
text proxies, default 64), ``temperature`` (t of the uniformity loss, default 2).

Memory: the inner step keeps the graph of one body backward (roughly 3× a plain training step);
``source_batch`` and ``source_length`` bound the source half, the stage-3 ``batch_size`` the target half.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from xmodal.errors import XmodalError
from xmodal.model.assembly import CrossModalModel
from xmodal.model.bodies.base import Body, SourceTokens

__all__ = ["alignment_loss", "uniformity_loss", "inner_update", "source_features_through", "balanced_batch",
           "OPTIONS"]

#: MoNA's options (``align_options``) and their defaults (see the module docstring)
OPTIONS = {"lam": 1.0, "inner_lr": 1e-3, "inner_steps": 1, "source_batch": 32, "source_pool": 512,
            "source_length": 64, "temperature": 2.0}


def alignment_loss(z: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Mean ``‖z_i - z_j‖^α`` over same-class pairs ``i < j`` of unit-norm features ``z`` ``(n, D)``.

    0 when no class has two samples. Features are expected on the unit sphere (see
    :func:`source_features_through`); values lie in ``[0, 2^α]``.
    """
    if z.ndim != 2 or y.ndim != 1 or z.shape[0] != y.shape[0]:
        raise XmodalError(f"alignment_loss needs z (n, D) and y (n,), got {tuple(z.shape)} and {tuple(y.shape)}")
    i, j = torch.triu_indices(z.shape[0], z.shape[0], offset=1, device=z.device)
    same = y[i] == y[j]
    if not bool(same.any()):
        return z.sum() * 0.0
    d = (z[i[same]] - z[j[same]]).norm(dim=1)
    return d.pow(alpha).mean()


def uniformity_loss(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """``log mean_{i<j} exp(-t ‖z_i - z_j‖²)`` of unit-norm features ``z`` ``(n, D)``, ``n ≥ 2``.

    Lowest (``-t·4`` in the limit) when the points spread evenly over the sphere; 0 when they coincide.
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise XmodalError(f"uniformity_loss needs at least two features (n, D), got {tuple(z.shape)}")
    sq = torch.pdist(z).pow(2)
    return torch.logsumexp(-t * sq, dim=0) - np.log(sq.numel())


def source_features_through(body: Body, params: dict[str, torch.Tensor], src: SourceTokens) -> torch.Tensor:
    """Unit-norm pooled features ``(n, out_width)`` of source tokens through ``body`` run with ``params``
    (e.g. inner-updated weights) by :func:`torch.func.functional_call`."""
    with sdpa_kernel([SDPBackend.MATH]):
        out = functional_call(body, params, (src.tokens, src.grid, src.mask))
    pooled = body.pool(out, src.mask)
    if pooled.dtype in (torch.float16, torch.bfloat16):
        pooled = pooled.float()
    return F.normalize(pooled, dim=-1)


def inner_update(
    model: CrossModalModel, x: torch.Tensor, y: torch.Tensor, lr: float, steps: int = 1,
    loss_first: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``steps`` differentiable SGD steps of the body on the target loss.

    Returns the updated body parameters (functions of the embedder's and head's weights through the
    gradients, ``create_graph=True``) and the target loss at the starting weights. ``loss_first``
    reuses an already computed starting loss.
    """
    with sdpa_kernel([SDPBackend.MATH]):  # fused attention kernels have no double backward
        return _inner_update(model, x, y, lr, steps, loss_first)


def _inner_update(model, x, y, lr, steps, loss_first):
    names = [n for n, p in model.body.named_parameters() if p.requires_grad]
    if not names:
        raise XmodalError("MoNA's inner step needs trainable body parameters; none require gradients")
    params = dict(model.body.named_parameters())
    loss0 = loss_first if loss_first is not None else model.kind.loss(model(x), y)
    loss = loss0
    current = {n: params[n] for n in names}
    for step in range(steps):
        if step > 0:
            feats = functional_call(model.body, {**params, **current}, (model.embed(x), model.grid))
            loss = model.kind.loss(model.head(feats, model.grid), y)
        grads = torch.autograd.grad(loss, [current[n] for n in names], create_graph=True, allow_unused=True)
        current = {n: (w if g is None else w - lr * g) for (n, w), g in zip(current.items(), grads, strict=True)}
    return {**params, **current}, loss0


def balanced_batch(labels: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` indices spread evenly over the classes (as many per class as fit; the rest at random)."""
    classes = labels.unique()
    per = max(2, n // max(1, len(classes)))
    picks = []
    for c in classes[torch.randperm(len(classes), generator=gen)]:
        idx = (labels == c).nonzero().flatten()
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per]])
    out = torch.cat(picks)
    return out[torch.randperm(len(out), generator=gen)[:n]]
