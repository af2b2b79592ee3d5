"""The linear probe refits a head in closed form: targets that a linear head on the frozen features can
produce exactly are recovered (pooled and dense heads, the dense adjoint cutting fields into patches),
and on a separable task the least-squares classifier beats chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmodal.evaluate.linear_probe import fit_linear_head
from xmodal.model import assemble
from xmodal.model.bodies import build_body, resolve_body


def _model(task: str, k: int, shape: tuple[int, ...], tokens: int):
    torch.manual_seed(0)
    body = build_body(resolve_body("vit-tiny-random"), pretrained=False)
    model = assemble(body, task, k, shape, max_tokens=tokens).eval()
    return model


@pytest.mark.parametrize("task, k, shape, tokens, per_row", [
    ("regression", 2, (1, 8, 8), 16, None),
    ("dense-regression", 1, (1, 10, 10), 25, None),  # k = 2 patches: the field is cut into each token's 2 × 2 block
    ("dense-regression", 1, (1, 10, 10), 25, 4),  # fitted on 4 random tokens of each row: still exact
])
def test_targets_a_linear_head_can_make_are_recovered(task, k, shape, tokens, per_row):
    model = _model(task, k, shape, tokens)
    X = torch.randn(120, *shape)
    with torch.no_grad():
        model.head.linear.weight.normal_(0, 0.5)
        model.head.linear.bias.normal_(0, 0.5)
        y = model.decode(model(X))  # exactly a linear function of the frozen features
        model.head.linear.weight.zero_()
        model.head.linear.bias.zero_()
    fit_linear_head(model, X.numpy(), y.numpy(), batch_size=32, alpha=1e-10, tokens_per_row=per_row)
    with torch.no_grad():
        again = model.decode(model(X))
    assert float((again - y).abs().max()) < 1e-3 * float(y.abs().max())


def test_the_least_squares_classifier_beats_chance_on_a_separable_task():
    model = _model("classification", 3, (1, 8, 8), 16)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    X = (rng.normal(size=(300, 1, 8, 8)) + 2.0 * y[:, None, None, None]).astype(np.float32)
    fit_linear_head(model, X[:200], y[:200])
    with torch.no_grad():
        acc = float((model(torch.from_numpy(X[200:])).argmax(1).numpy() == y[200:]).mean())
    assert acc > 0.8  # chance is 1/3
