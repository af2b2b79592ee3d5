"""select_body / `xmodal select-body`: a short stage 2 per candidate, ranked by OTDD / source scale."""

from __future__ import annotations

import numpy as np
import pytest

from xmodal.cli import main
from xmodal.errors import XmodalError
from xmodal.estimator.body_selection import select_body
from xmodal.evaluate.bootstrap import proportion_se


def _images(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 1, 12, 12)).astype(np.float32) + y[:, None, None, None] * 0.8
    return X, y


def test_two_bodies_are_ranked_by_their_normalised_final_otdd():
    X, y = _images()
    sel = select_body(X, y, ["vit-tiny-random", "swin-tiny-random"], {"max_tokens": 16, "source_size": 60},
                      subsample=24, align_epochs=2, rule="otdd", progress=False)
    assert [r["body"] for r in sel.rows] == ["vit-tiny-random", "swin-tiny-random"]
    for r in sel.rows:
        assert r["source_scale"] > 0 and r["score"] == pytest.approx(r["final_distance"] / r["source_scale"])
        assert r["seconds"] > 0 and r["finetune_estimate_s"] > 0
    assert sel.pick == min(sel.rows, key=lambda r: r["score"])["body"]
    assert sel.settings["subsample"] == 24 and "(pick)" in sel.to_markdown()
    assert all(r["rung_score"] is None for r in sel.rows)  # the OTDD rule fine-tunes nothing


def test_the_rung_rule_picks_the_best_validation_score_of_a_short_rung():
    """Each candidate: the short stage 2, then a rung of fine-tuning scored on held-out *training* rows; the
    pick is the best score, and the rung's epochs are the asked share of a full run's steps (≥ 1 epoch)."""
    X, y = _images(60)
    cfg = {"max_tokens": 16, "source_size": 60, "epochs": 10, "batch_size": 8, "lr": 1e-3, "validation": 0.25}
    sel = select_body(X, y, ["vit-tiny-random", "swin-tiny-random"], cfg, subsample=40, align_epochs=2,
                      rule="rung", rung=0.2, progress=False)
    assert sel.settings["rule"] == "rung" and sel.settings["validation_rows"] == 16  # 25 % of 60, stratified
    assert sel.settings["subsample"] == 40  # 44 fitting rows, at most 40 of them
    for r in sel.rows:
        assert 0.0 <= r["rung_score"] <= 1.0 and not r["diverged"]
        assert r["rung_epochs"] == 4  # 20 % of a full run's 10 × 8 steps = 16 steps → 4 epochs of 5 steps
    best = max(sel.rows, key=lambda r: r["rung_score"])
    for r in sel.rows:  # a bootstrap over the 16 held-out rows, never under the plus-four error (0.09 at 16/16)
        assert r["validation_se"] >= proportion_se(r["rung_score"], 16) * 0.999 > 0
    picked = next(r for r in sel.rows if r["body"] == sel.pick)  # the one-standard-error rule
    assert best["rung_score"] - picked["rung_score"] <= best["validation_se"]
    assert "rung validation score" in sel.to_markdown() and " ± " in sel.to_markdown()


def test_the_default_rule_picks_the_best_linear_probe_on_held_out_training_rows():
    """No fine-tuning: the short stage 2, then each body's head fitted in closed form and scored on the
    held-out rows; a separable task is learned by the probe (above chance) and the pick is the best."""
    X, y = _images(60)
    sel = select_body(X, y, ["vit-tiny-random", "swin-tiny-random"], {"max_tokens": 16, "source_size": 60},
                      subsample=40, align_epochs=1, progress=False)
    assert sel.settings["rule"] == "probe" and sel.settings["validation_rows"] == 12  # 20 % of 60
    for r in sel.rows:
        assert r["rung_epochs"] == 0 and r["rung_score"] is None and 0.0 <= r["probe_score"] <= 1.0
    assert max(r["probe_score"] for r in sel.rows) > 0.6  # two classes, shifted by 0.8 per pixel
    best = max(sel.rows, key=lambda r: r["probe_score"])
    within = [r for r in sel.rows if best["probe_score"] - r["probe_score"] <= best["validation_se"]]
    assert sel.pick == min(within, key=lambda r: r["finetune_estimate_s"])["body"]


def _row(body, probe, se, cost, **extra):
    return {"body": body, "probe_score": probe, "validation_se": se, "finetune_estimate_s": cost, "score": 1.0,
            **extra}


def test_the_one_standard_error_rule_prefers_the_cheaper_body_within_the_noise():
    """Breiman's rule: a costlier body is picked only when its validation score beats the cheaper one's by
    more than the best score's bootstrap standard error; the metric's direction is respected."""
    from xmodal.estimator.body_selection import RULES

    probe = RULES["probe"]
    near = [_row("cheap", 0.539, 0.02, 85.0), _row("costly", 0.555, 0.022, 539.0)]
    assert probe.pick(near, higher_is_better=True) == "cheap"  # 0.016 apart, within 0.022
    far = [_row("cheap", 0.50, 0.02, 85.0), _row("costly", 0.555, 0.022, 539.0)]
    assert probe.pick(far, higher_is_better=True) == "costly"
    errors = [_row("cheap", 0.532, 0.01, 35.0), _row("costly", 0.476, 0.01, 248.0)]  # relative L2: lower wins
    assert probe.pick(errors, higher_is_better=False) == "costly"
    assert probe.pick([_row("cheap", 0.48, 0.01, 35.0), *errors[1:]], higher_is_better=False) == "cheap"
    unknown = [_row("cheap", 0.539, None, 85.0), _row("costly", 0.555, None, 539.0)]
    assert probe.pick(unknown, higher_is_better=True) == "costly"  # no standard error: the best score
    broken = [_row("cheap", None, None, 1.0, diverged=True), _row("costly", 0.555, 0.05, 539.0)]
    assert probe.pick(broken, higher_is_better=True) == "costly"  # a diverged candidate is never near
    assert RULES["otdd"].pick([{**near[0], "score": 2.0}, {**near[1], "score": 1.0}], True) == "costly"


def test_a_candidate_that_diverges_is_ranked_last_and_all_diverging_is_an_error(monkeypatch):
    from xmodal import CrossModalEstimator
    from xmodal.errors import TrainingDiverged

    fit = CrossModalEstimator.fit

    def diverging(self, *a, **k):
        if self.body == "vit-tiny-random" or monkeypatch.all_diverge:
            raise TrainingDiverged("stage 3 loss is nan")
        return fit(self, *a, **k)

    monkeypatch.all_diverge = False
    monkeypatch.setattr(CrossModalEstimator, "fit", diverging)
    X, y = _images()
    cfg = {"max_tokens": 16, "source_size": 60, "epochs": 2, "batch_size": 8}
    sel = select_body(X, y, ["vit-tiny-random", "swin-tiny-random"], cfg, subsample=24, align_epochs=1,
                      progress=False)
    assert sel.pick == "swin-tiny-random" and sel.rows[0]["diverged"] and "diverged" in sel.to_markdown()
    monkeypatch.all_diverge = True
    with pytest.raises(TrainingDiverged, match="every candidate"):
        select_body(X, y, ["vit-tiny-random", "swin-tiny-random"], cfg, subsample=24, align_epochs=1,
                    progress=False)


def test_bad_candidates_are_refused_before_any_stage_2():
    X, y = _images()
    with pytest.raises(XmodalError, match="unknown body"):
        select_body(X, y, ["vit-tiny-random", "nope"], progress=False)
    with pytest.raises(XmodalError, match="distinct"):
        select_body(X, y, ["vit-tiny-random", "vit-tiny-random"], progress=False)


def test_the_cli_prints_the_table_and_the_pick(tmp_path, capsys):
    X, y = _images()
    path = tmp_path / "toy.npz"
    np.savez(path, X_train=X, y_train=y)
    code = main(["--quiet", "select-body", str(path), "--bodies", "vit-tiny-random,swin-tiny-random",
                 "--subsample", "24", "--align-epochs", "2", "--max-tokens", "16", "--source-size", "60"])
    out = capsys.readouterr().out
    assert code == 0 and "OTDD / scale" in out and "pick: " in out


def test_fit_with_body_auto_fits_the_pick_and_reports_the_choice(monkeypatch):
    import xmodal.estimator.body_selection as body_selection
    from xmodal import CrossModalEstimator

    monkeypatch.setattr(body_selection, "DEFAULT_CANDIDATES", ("vit-tiny-random", "swin-tiny-random"))
    X, y = _images()
    est = CrossModalEstimator(body="auto", max_tokens=16, source_size=60, epochs=1, batch_size=8, validation=0,
                              align_epochs=2, verbose=False).fit(X, y)
    chosen = est.report_.settings["body_selection"]
    assert est.body_source_.name == chosen["pick"] == est.settings_.body
    assert {r["body"] for r in chosen["rows"]} == {"vit-tiny-random", "swin-tiny-random"}
    assert est.get_params()["body"] == "auto"  # the parameter stays as given (scikit-learn's convention)
