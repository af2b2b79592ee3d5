"""Stage 3's parts on their own: the schedule, the optimisers, the checkpoint round trip and resume."""

from __future__ import annotations

import pytest
import torch

from xmodal.errors import XmodalError
from xmodal.train.checkpoint import load_checkpoint, save_checkpoint
from xmodal.train.config import TrainConfig
from xmodal.train.finetune import train_loop
from xmodal.train.optim import OPTIMIZERS, make_optimizer, warmup_linear_decay


def _lrs(total, warm, lr=1.0):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = warmup_linear_decay(opt, total, warm)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_the_schedule_warms_up_linearly_then_decays_to_zero():
    lrs = _lrs(10, 4)
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:], strict=False))  # strictly falling after the peak
    assert lrs[-1] == pytest.approx(1 / 6) and max(lrs) == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimiser_lowers_a_quadratic(name):
    w = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    opt = make_optimizer(name, [w], 0.05, 0.0, torch.device("cpu"))
    start = float((w.detach() ** 2).sum())
    for _ in range(50):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    assert float((w.detach() ** 2).sum()) < 0.5 * start


def test_a_checkpoint_round_trip_restores_model_optimiser_schedule_and_random_state(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = warmup_linear_decay(opt, 20, 5)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 4)).sum().backward()
        opt.step()
        sched.step()
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, model, opt, sched, 3, {"history": [1, 2, 3]}, {"extra": torch.arange(4)})
    expected_draw = torch.rand(5)

    fresh = torch.nn.Linear(4, 3)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    fresh_sched = warmup_linear_decay(fresh_opt, 20, 5)
    epoch, extra, state = load_checkpoint(path, fresh, fresh_opt, fresh_sched)
    assert epoch == 3 and extra["history"] == [1, 2, 3] and torch.equal(state["extra"], torch.arange(4))
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert fresh_sched.last_epoch == sched.last_epoch and fresh_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(torch.rand(5), expected_draw)  # the global generator continues where it was saved


def test_a_checkpoint_for_another_model_is_refused(tmp_path):
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters())
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, model, opt, None, 1)
    other = torch.nn.Linear(5, 3)
    with pytest.raises(XmodalError, match="does not fit this model"):
        load_checkpoint(path, other, torch.optim.AdamW(other.parameters()), None)


def test_the_loop_resumed_from_its_checkpoint_ends_where_an_uninterrupted_one_does(tmp_path):
    X, y = torch.randn(32, 4), torch.arange(32) % 3
    cfg = TrainConfig(epochs=4, batch_size=8, lr=1e-2, seed=1)

    def run(ckpt):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        hist = train_loop(model, list(model.parameters()), X, y, torch.nn.functional.cross_entropy, cfg,
                          torch.device("cpu"), checkpoint=ckpt, progress=False)
        return model, hist

    reference, ref_hist = run(None)
    ckpt = tmp_path / "loop.safetensors"
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    calls = {"n": 0}

    def stop_after_2(record):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_loop(model, list(model.parameters()), X, y, torch.nn.functional.cross_entropy, cfg,
                   torch.device("cpu"), checkpoint=ckpt, progress=False, on_epoch=stop_after_2)
    resumed, hist = run(ckpt)  # epochs 3 and 4 only, from the checkpoint of epoch 2
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert [h["loss"] for h in hist] == pytest.approx([h["loss"] for h in ref_hist], abs=0)
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
