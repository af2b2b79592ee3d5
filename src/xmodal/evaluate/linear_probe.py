"""A linear probe: how well a model's frozen body features predict the task, with only its head refitted.

The head's linear map ``W`` (``PooledHead``: pooled features → ``K`` outputs; ``DenseHead``: each token →
its ``k^d·K`` patch values) is fitted in closed form by ridge regression on the body's features of the
fitting rows, everything before it frozen:

.. math::

    W = \\arg\\min_W \\sum_i \\lVert [z_i, 1] W - r_i \\rVert^2 + \\lambda \\lVert W_{:D} \\rVert^2
      = (Z^\\top Z + \\lambda I_D)^{-1} Z^\\top R,
    \\qquad \\lambda = \\alpha \\operatorname{tr}(Z_{:D}^\\top Z_{:D}) / D

with ``z_i`` what the linear map reads (pooled features or tokens, a constant 1 appended for the bias)
and ``r_i`` the targets in the map's output space: one-hot classes for softmax kinds (a least-squares
classifier), 0/1 labels for multi-label, standardised targets for regression, and for dense heads the
target field cut into each token's patch (the adjoint of un-patchify, zero in the padding). ``Zᵀ Z`` and
``Zᵀ R`` are summed batch by batch in float64, so memory is ``O(D²)`` whatever the number of tokens.
Dense heads fit on at most ``tokens_per_row`` tokens of each row (a seeded random subset, default 64):
neighbouring tokens are strongly correlated, and ``Zᵀ Z`` over every token costs ``N·T·D²`` — for a
1280-wide CNN on an 85 × 85 field most of ``select_body``'s time (``python benchmarks/select_cost.py``).
The head is then scored with the task's own metric on held-out rows through the model's forward.

Used by :func:`xmodal.select_body` (``rule="probe"``) to compare bodies of different families on the
same task: a forward pass per row, no backward, no optimiser.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["fit_linear_head", "RIDGE_ALPHA", "TOKENS_PER_ROW"]

#: the ridge penalty relative to the mean feature energy ``tr(ZᵀZ)/D``
RIDGE_ALPHA = 1e-2
#: tokens per row a dense head's probe is fitted on (module docstring)
TOKENS_PER_ROW = 64


def _targets(model: Any, y: torch.Tensor) -> torch.Tensor:
    """Targets ``y`` in the head's output units: one-hot ``(N, K, *S)`` for softmax kinds, else encoded."""
    kind = model.kind
    if kind.class_labels or kind.name == "dense-classification":
        k = model.spec.num_outputs
        return F.one_hot(y.long(), k).movedim(-1, 1).to(torch.float64)
    return model.encode_targets(y.to(torch.float32)).to(torch.float64)


@torch.no_grad()
def fit_linear_head(model: Any, X: np.ndarray, y: np.ndarray, batch_size: int = 64,
                    alpha: float = RIDGE_ALPHA, tokens_per_row: int | None = TOKENS_PER_ROW, seed: int = 0) -> None:
    """Refit ``model.head.linear`` in closed form on ``(X, y)`` (see the module docstring), in place.

    Args:
        model: an assembled model (``embed``, ``body``, ``head`` with ``linear_inputs`` / ``arrange``, ``grid``).
        X: ``(N, C, *S)`` float32 inputs, as the model takes them.
        y: targets in user units (class indices for softmax kinds), ``(N, …)``.
        batch_size: rows per forward pass (memory, not results, depends on it).
        alpha: the ridge penalty relative to the mean feature energy.
        tokens_per_row: dense heads: fit on at most this many tokens of each row (None: all of them).
        seed: seeds the token subsets.
    """
    model.eval()
    head, linear = model.head, model.head.linear
    width, outs = linear.in_features, linear.out_features
    zz = torch.zeros(width + 1, width + 1, dtype=torch.float64)
    zr = torch.zeros(width + 1, outs, dtype=torch.float64)
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    for i in range(0, len(X), batch_size):
        xb = torch.as_tensor(X[i : i + batch_size], device=device)
        z = head.linear_inputs(model.body(model.embed(xb), model.grid)).cpu()
        target = _targets(model, torch.as_tensor(y[i : i + batch_size]))
        with torch.enable_grad():  # the adjoint of `arrange` (a permutation and a crop) cuts targets into patches
            v = torch.zeros(*z.shape[:-1], outs, dtype=torch.float64, requires_grad=True)
            (head.arrange(v, model.grid) * target).sum().backward()
        r = v.grad
        if z.ndim == 3 and tokens_per_row is not None and z.shape[1] > tokens_per_row:
            keep = torch.rand(z.shape[:2], generator=gen).argsort(dim=1)[:, :tokens_per_row]  # (n, tokens_per_row)
            z = z.gather(1, keep.unsqueeze(-1).expand(-1, -1, width))
            r = r.gather(1, keep.unsqueeze(-1).expand(-1, -1, outs))
        r = r.reshape(-1, outs)
        z = torch.cat([z.reshape(-1, width).double(), torch.ones(r.shape[0], 1, dtype=torch.float64)], dim=1)
        zz += z.T @ z
        zr += z.T @ r
    lam = alpha * float(torch.diagonal(zz)[:width].mean())
    reg = torch.diag(torch.cat([torch.full((width,), lam, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)]))
    w = torch.linalg.solve(zz + reg, zr)
    linear.weight.copy_(w[:width].T.to(linear.weight.dtype))
    linear.bias.copy_(w[width].to(linear.bias.dtype))
