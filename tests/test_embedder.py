"""The embedder f and the dense predictor's geometry: patch-size rule, padding, token grid, un-patchify.

Every check is against a conv-free reference written here with plain reshapes, so a change in
token order, padding side or crop shows up as a mismatch rather than as a shape that happens to fit.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from xmodal.errors import XmodalError
from xmodal.model.embedder import Embedder, choose_patch_size, token_grid
from xmodal.model.predictors import DenseHead, unpatchify


def brute_k(spatial, budget):
    """The smallest k whose token count prod(ceil(s / k)) fits the budget, by trying k = 1, 2, ..."""
    for k in itertools.count(1):
        if math.prod(math.ceil(s / k) for s in spatial) <= budget:
            return k


def patchify(x: torch.Tensor, k: int) -> torch.Tensor:
    """Reference patchify by reshapes: (N, C, g1*k, ..., gd*k) -> (N, prod(g), C*k^d), row-major tokens."""
    n, c, *sizes = x.shape
    d = len(sizes)
    grid = [s // k for s in sizes]
    assert all(g * k == s for g, s in zip(grid, sizes, strict=True))
    split = x.reshape(n, c, *itertools.chain.from_iterable((g, k) for g in grid))
    # (N, C, g1, k1, ..., gd, kd) -> (N, g1..gd, C, k1..kd)
    order = [0, *(2 + 2 * i for i in range(d)), 1, *(3 + 2 * i for i in range(d))]
    return split.permute(*order).reshape(n, math.prod(grid), c * k**d)


def pad_right(x: torch.Tensor, grid, k) -> torch.Tensor:
    """Zero-pad every spatial axis on the right up to grid * k (the reference padding)."""
    out = torch.zeros(*x.shape[:2], *(g * k for g in grid), dtype=x.dtype)
    out[(slice(None), slice(None), *(slice(0, s) for s in x.shape[2:]))] = x
    return out


# ------------------------------------------------------------------ the patch-size rule

LENGTHS = [*range(1, 140), 150, 255, 256, 257, 509, 511, 512, 513, 521, 997, 1009, 1024, 1031, 1460, 4099]


@pytest.mark.parametrize("budget", [1, 2, 3, 7, 16, 100, 256, 512])
def test_1d_patch_size_matches_brute_force(budget):
    for length in LENGTHS:
        k = choose_patch_size((length,), budget)
        assert k == brute_k((length,), budget), length
        (tokens,) = token_grid((length,), k)
        assert tokens == math.ceil(length / k) <= budget
        if length <= budget:
            assert (k, tokens) == (1, length)  # no patching needed: one token per position
        elif budget >= 2:
            assert tokens >= 2, f"length {length} collapsed to a single token"
            assert tokens > budget // 2  # the smallest k uses more than half the budget in 1-D


@pytest.mark.parametrize(
    "length,budget,k,tokens", [(521, 512, 2, 261), (997, 512, 2, 499), (1009, 512, 2, 505), (1031, 512, 3, 344)]
)
def test_prime_lengths_over_the_budget_are_padded_not_collapsed(length, budget, k, tokens):
    # a prime length has no divisor but 1 and itself: the rule pads instead of collapsing to k = length
    assert choose_patch_size((length,), budget) == k
    assert token_grid((length,), k) == (tokens,)


def test_documented_examples():
    assert choose_patch_size((150,), 512) == 1
    assert choose_patch_size((521,), 512) == 2
    assert choose_patch_size((85, 85), 512) == 4
    assert token_grid((85, 85), 4) == (22, 22)


def test_2d_and_3d_patch_size_matches_brute_force():
    rng = np.random.default_rng(0)
    shapes = [(85, 85), (16, 16), (64, 64), (3, 1000), (1, 1), (1, 97), (97, 1), (5, 6, 7), (13, 17, 19), (1, 1, 1)]
    shapes += [tuple(int(v) for v in rng.integers(1, 70, size=d)) for d in (2, 3) for _ in range(60)]
    for shape in shapes:
        for budget in (1, 2, 5, 16, 64, 196, 512):
            k = choose_patch_size(shape, budget)
            assert k == brute_k(shape, budget), (shape, budget)
            assert math.prod(token_grid(shape, k)) <= budget
            if k > 1:  # minimal: one step finer no longer fits
                assert math.prod(token_grid(shape, k - 1)) > budget


@pytest.mark.parametrize("spatial,budget", [((8,), 0), ((8,), -3), ((), 16), ((0, 4), 16), ((4, -1), 16)])
def test_patch_rule_refuses_bad_arguments(spatial, budget):
    with pytest.raises(XmodalError):
        choose_patch_size(spatial, budget)


# ------------------------------------------------------------------ the embedder


@pytest.mark.parametrize(
    "spatial,budget",
    [
        ((521,), 512), ((521,), 64), ((23,), 8), ((1,), 8),
        ((7, 10), 16), ((85, 85), 512), ((5, 6, 7), 16), ((9, 4, 3), 8),
    ],
)
def test_embedder_token_count_and_padding_match_a_conv_free_reference(spatial, budget):
    torch.manual_seed(0)
    n, c, width = 2, 3, 8
    emb = Embedder(c, spatial, width, budget)
    k = choose_patch_size(spatial, budget)
    grid = tuple(math.ceil(s / k) for s in spatial)
    assert emb.k == k and emb.grid == grid and emb.num_tokens == math.prod(grid)
    assert tuple(emb.position.shape) == (math.prod(grid), width)

    x = torch.randn(n, c, *spatial)
    tokens = emb(x)
    assert tuple(tokens.shape) == (n, math.prod(grid), width)

    # the same tokens by hand: zero-pad on the right, cut into k^d patches, one linear map, LayerNorm, + position
    patches = patchify(pad_right(x, grid, k), k)
    w = emb.projection.weight.reshape(width, -1)
    projected = patches @ w.T + emb.projection.bias
    expected = F.layer_norm(projected, (width,), emb.norm.weight, emb.norm.bias, emb.norm.eps) + emb.position
    torch.testing.assert_close(tokens, expected, rtol=1e-4, atol=1e-5)


def test_embedder_forced_patch_size():
    emb = Embedder(1, (10,), 4, max_tokens=512, patch_size=4)
    assert emb.k == 4 and emb.grid == (3,)
    assert tuple(emb(torch.randn(1, 1, 10)).shape) == (1, 3, 4)


def test_embedder_refuses_four_spatial_axes():
    with pytest.raises(XmodalError, match="spatial axes"):
        Embedder(1, (2, 2, 2, 2), 4, 16)


def test_init_from_body_copies_position_rows_and_norm():
    emb = Embedder(1, (20,), 6, max_tokens=8)  # k = 3, 7 tokens
    pos = torch.arange(10 * 6, dtype=torch.float32).reshape(10, 6)
    norm = torch.nn.LayerNorm(6)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    emb.init_from_body(pos, norm)
    torch.testing.assert_close(emb.position.data, pos[:7], rtol=0, atol=0)
    torch.testing.assert_close(emb.norm.weight.data, norm.weight.data, rtol=0, atol=0)
    torch.testing.assert_close(emb.norm.bias.data, norm.bias.data, rtol=0, atol=0)
    # fewer body rows than tokens: the rows present are copied, the rest keep their initialisation
    before = emb.position.data.clone()
    emb.init_from_body(pos[:3] + 100, None)
    torch.testing.assert_close(emb.position.data[:3], pos[:3] + 100, rtol=0, atol=0)
    torch.testing.assert_close(emb.position.data[3:], before[3:], rtol=0, atol=0)


# ------------------------------------------------------------------ un-patchify and the dense head


@pytest.mark.parametrize(
    "grid,k,channels", [((5,), 3, 2), ((1,), 4, 1), ((3, 4), 2, 3), ((2, 1), 5, 1), ((2, 3, 2), 2, 2)]
)
def test_unpatchify_inverts_patchify(grid, k, channels):
    n = 2
    x = torch.randn(n, channels, *(g * k for g in grid))
    values = patchify(x, k)
    assert tuple(values.shape) == (n, math.prod(grid), channels * k ** len(grid))
    torch.testing.assert_close(unpatchify(values, grid, k, channels), x, rtol=0, atol=0)


def test_unpatchify_2d_is_pixel_shuffle():
    n, channels, k, grid = 2, 3, 2, (3, 4)
    values = torch.randn(n, math.prod(grid), channels * k * k)
    as_image = values.transpose(1, 2).reshape(n, channels * k * k, *grid)
    torch.testing.assert_close(unpatchify(values, grid, k, channels), F.pixel_shuffle(as_image, k), rtol=0, atol=0)


@pytest.mark.parametrize("spatial,k", [((10,), 3), ((7, 10), 3), ((5, 6, 7), 2), ((4, 4), 2), ((1,), 4)])
def test_dense_head_is_cropped_to_the_input_shape(spatial, k):
    torch.manual_seed(0)
    n, width, outputs = 2, 8, 3
    grid = token_grid(spatial, k)
    head = DenseHead(width, outputs, spatial, k)
    features = torch.randn(n, math.prod(grid), width)
    out = head(features, grid)
    assert tuple(out.shape) == (n, outputs, *spatial)
    full = unpatchify(head.linear(features), grid, k, outputs)
    torch.testing.assert_close(out, full[(slice(None), slice(None), *(slice(0, s) for s in spatial))])


def test_dense_head_needs_the_grid():
    with pytest.raises(ValueError):
        DenseHead(4, 1, (8,), 2)(torch.randn(1, 4, 4))


@pytest.mark.parametrize("spatial,budget", [((11,), 4), ((7, 10), 12), ((5, 6, 7), 12)])
def test_embedder_token_and_dense_output_block_refer_to_the_same_place(spatial, budget):
    """Token t of the embedder reads the input block that the dense head writes from token t."""
    width = 4
    emb = Embedder(1, spatial, width, budget)
    k, grid = emb.k, emb.grid
    head = DenseHead(width, 1, spatial, k)
    torch.nn.init.ones_(head.linear.weight)
    torch.nn.init.zeros_(head.linear.bias)
    torch.nn.init.ones_(emb.projection.weight)
    torch.nn.init.zeros_(emb.projection.bias)
    for t in range(math.prod(grid)):
        block = np.unravel_index(t, grid)
        region = tuple(slice(b * k, min((b + 1) * k, s)) for b, s in zip(block, spatial, strict=True))
        x = torch.zeros(1, 1, *spatial)
        x[(0, 0, *region)] = 1.0
        pre_norm = emb.projection(pad_right(x, grid, k)).flatten(2)[0, 0]  # (T,)
        assert pre_norm.nonzero().flatten().tolist() == [t]
        features = torch.zeros(1, math.prod(grid), width)
        features[0, t] = 1.0
        out = head(features, grid)[0, 0]
        torch.testing.assert_close(out.ne(0).float(), x[0, 0])
