"""The bootstrap standard error of a validation metric (xmodal.evaluate.bootstrap)."""

from __future__ import annotations

import math

import pytest
import torch

from xmodal.evaluate.bootstrap import bootstrap_se


def _coin(n: int, p: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-class logits that are right on a share ``p`` of ``n`` rows."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    right = torch.rand(n, generator=g) < p
    pred = torch.where(right, y, 1 - y)
    return torch.nn.functional.one_hot(pred, 2).float(), y


@pytest.mark.parametrize("n,p", [(400, 0.5), (200, 0.9)])
def test_the_standard_error_of_accuracy_is_the_binomial_one(n, p):
    out, y = _coin(n, p)
    acc = float((out.argmax(1) == y).float().mean())
    se = bootstrap_se("classification", out, y, "accuracy", n_resamples=400)
    assert se == pytest.approx(math.sqrt(acc * (1 - acc) / n), rel=0.15)


def test_it_shrinks_with_more_rows_and_follows_the_metric():
    small = bootstrap_se("classification", *_coin(50, 0.7), "accuracy")
    large = bootstrap_se("classification", *_coin(800, 0.7), "accuracy")
    assert large < small / 2  # ~ 1/sqrt(N): 4x fewer rows, 2x the error
    g = torch.Generator().manual_seed(1)
    y = torch.randn(100, 1, 8, 8, generator=g)
    noisy = y + 0.3 * torch.randn(100, 1, 8, 8, generator=g)
    se = bootstrap_se("dense-regression", noisy, y, "rel_l2")
    assert 0 < se < 0.3 / 4  # rel L2 ≈ 0.3; its mean over 100 fields varies by far less


def test_degenerate_inputs_give_zero_or_nan_and_the_seed_fixes_it():
    out, y = _coin(60, 1.0)
    assert bootstrap_se("classification", out, y, "accuracy") == 0.0  # every resample is all right
    assert math.isnan(bootstrap_se("classification", out[:1], y[:1], "accuracy"))
    one_class = torch.tensor([1, 0, 0])
    assert math.isnan(bootstrap_se("classification", torch.randn(3, 2), one_class, "auroc"))  # resamples of one class
    out, y = _coin(100, 0.6)
    assert bootstrap_se("classification", out, y, "accuracy", seed=3) == bootstrap_se(
        "classification", out, y, "accuracy", seed=3)
