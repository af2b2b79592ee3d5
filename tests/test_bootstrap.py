"""The bootstrap standard error of a validation metric (xmodal.evaluate.bootstrap)."""

from __future__ import annotations

import math

import pytest
import torch

from xmodal.evaluate.bootstrap import bootstrap_se, proportion_se


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


def test_a_perfect_share_keeps_the_plus_four_error_and_other_degenerate_inputs_give_nan():
    out, y = _coin(60, 1.0)  # every resample is all right: the bootstrap alone would say 0
    assert bootstrap_se("classification", out, y, "accuracy") == pytest.approx(math.sqrt(62 / 64 * 2 / 64 / 64))
    assert bootstrap_se("classification", out, y, "error") == pytest.approx(math.sqrt(62 / 64 * 2 / 64 / 64))
    ten = bootstrap_se("classification", *_coin(10, 1.0), "accuracy")
    assert 0.08 < ten < 0.1  # 10 held-out rows all right do not make a certainty
    assert ten > bootstrap_se("classification", *_coin(40, 1.0), "accuracy")
    assert math.isnan(bootstrap_se("classification", out[:1], y[:1], "accuracy"))
    one_class = torch.tensor([1, 0, 0])
    assert math.isnan(bootstrap_se("classification", torch.randn(3, 2), one_class, "auroc"))  # resamples of one class
    out, y = _coin(100, 0.6)
    assert bootstrap_se("classification", out, y, "accuracy", seed=3) == bootstrap_se(
        "classification", out, y, "accuracy", seed=3)


def test_the_plus_four_error_is_never_zero_and_meets_the_binomial_one_on_many_rows():
    assert proportion_se(0.0, 10) == pytest.approx(proportion_se(1.0, 10)) and proportion_se(1.0, 10) > 0
    assert proportion_se(0.5, 10) == pytest.approx(math.sqrt(0.25 / 14))
    for p in (0.1, 0.5, 0.9):
        assert proportion_se(p, 2000) == pytest.approx(math.sqrt(p * (1 - p) / 2000), rel=0.03)
    for p, n in [(1.5, 10), (0.5, 0)]:
        with pytest.raises(ValueError, match="share"):
            proportion_se(p, n)
