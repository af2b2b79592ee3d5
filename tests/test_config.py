"""The run configuration as the one source of the settings, the validation protocol, strategy="auto",
and scikit-learn's conventions (clone, cross_val_score) on the estimator."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

import xmodal.estimator.runs as est_mod  # where the training runs build bodies
from xmodal import CrossModalEstimator, XmodalError
from xmodal.cli import build_parser, main
from xmodal.cli.fit import choice_note
from xmodal.config import PARAMS, SHARED, RunConfig, add_cli_options, config_from_cli
from xmodal.data.split import validation_split
from xmodal.estimator import RefitCollapsedWarning
from xmodal.evaluate.bootstrap import proportion_se
from xmodal.experiments.compare import SHARED_PARAMS

TINY = dict(body="vit-tiny-random", max_tokens=8, batch_size=8, device="cpu", verbose=False)


def sign_of_mean(n=48, length=16, seed=0):
    rng = np.random.default_rng(seed)
    shift = rng.uniform(0.3, 1.0, n) * rng.choice([-1.0, 1.0], n)
    X = (rng.normal(size=(n, 1, length)) + shift[:, None, None]).astype(np.float32)
    return X, (X.mean(axis=(1, 2)) > 0).astype(np.int64)


# ------------------------------------------------------------------ one definition


def test_estimator_parameters_cli_options_and_shared_settings_derive_from_run_config():
    names = [f.name for f in dataclasses.fields(RunConfig)]
    assert list(PARAMS) == names
    sig = inspect.signature(CrossModalEstimator.__init__)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    assert [p.name for p in params] == names and all(p.kind is p.KEYWORD_ONLY for p in params)
    assert CrossModalEstimator().get_params() == {n: getattr(RunConfig(), n) for n in names}
    parser = argparse.ArgumentParser()
    add_cli_options(parser)
    dests = {a.dest for a in parser._actions}
    assert set(names) - {"verbose"} <= dests
    assert SHARED_PARAMS == SHARED and not {"strategy", "seed", "align", "mode"} & set(SHARED)


def test_run_config_round_trips_through_yaml_and_json(tmp_path):
    cfg = RunConfig(lr=3e-4, epochs=7, candidates=("orca", "mona"), align_options={"inner": "exact"}, seed=5)
    for name in ("run.yaml", "run.json"):
        back = RunConfig.load(cfg.save(tmp_path / name))
        assert back == cfg
    (tmp_path / "partial.yaml").write_text("lr: 0.001\nepochs: 3\n")
    assert RunConfig.load(tmp_path / "partial.yaml").changed() == {"lr": 0.001, "epochs": 3}
    (tmp_path / "bad.yaml").write_text("learning_rate: 0.1\n")
    with pytest.raises(XmodalError, match="unknown setting"):
        RunConfig.load(tmp_path / "bad.yaml")
    (tmp_path / "nan.json").write_text(json.dumps({"lr": float("nan")}))
    with pytest.raises(XmodalError, match="lr must be finite"):
        RunConfig.load(tmp_path / "nan.json")


def test_command_line_overrides_the_config_file_which_overrides_the_defaults(tmp_path):
    RunConfig(lr=1e-3, epochs=4, seed=2).save(tmp_path / "run.yaml")
    args = build_parser().parse_args(["fit", "gunpoint", "--config", str(tmp_path / "run.yaml"), "--epochs", "9",
                                      "--no-refit", "--max-tokens", "auto"])
    cfg = config_from_cli(args)
    assert (cfg.lr, cfg.epochs, cfg.seed, cfg.refit, cfg.max_tokens, cfg.body) == (1e-3, 9, 2, False, None, "minilm-l6")


def test_unknown_parameters_are_refused():
    with pytest.raises(XmodalError, match="unknown parameter"):
        CrossModalEstimator(learning_rate=1e-3)
    with pytest.raises(XmodalError, match="unknown parameter"):
        CrossModalEstimator().set_params(learning_rate=1e-3)


# ------------------------------------------------------------------ validation protocol


def test_validation_split_is_seeded_stratified_and_disjoint():
    y = np.array([0] * 30 + [1] * 10 + [2] * 2)
    tr, va = validation_split(y, 0.2, seed=3)
    assert set(tr).isdisjoint(va) and len(tr) + len(va) == len(y)
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(len(y)))
    assert np.bincount(y[va], minlength=3)[:2].tolist() == [6, 2]
    assert (np.bincount(y[tr], minlength=3) >= 1).all()
    assert all(np.array_equal(a, b) for a, b in zip(validation_split(y, 0.2, seed=3), (tr, va), strict=True))
    assert not np.array_equal(validation_split(y, 0.2, seed=4)[1], va)


def test_the_validation_rows_never_include_a_test_row(tmp_path, monkeypatch, capsys):
    X, y = sign_of_mean(n=40)
    Xt, yt = sign_of_mean(n=20, seed=9)
    Xt += 100.0  # test rows are recognisable
    np.savez(tmp_path / "d.npz", X_train=X, y_train=y, X_test=Xt, y_test=(Xt.mean(axis=(1, 2)) > 100).astype(int))
    seen = []
    real = est_mod.Job.run

    def spy(self, label, strategy, X_fit, y_fit, X_val, y_val):
        seen.append((label, X_fit, X_val))
        return real(self, label, strategy, X_fit, y_fit, X_val, y_val)

    monkeypatch.setattr(est_mod.Job, "run", spy)
    code = main(["--quiet", "fit", str(tmp_path / "d.npz"), "--body", "vit-tiny-random", "--epochs", "1",
                 "--max-tokens", "8", "--device", "cpu", "--strategy", "finetune", "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    labels = [s[0] for s in seen]
    assert labels == ["validation-finetune", "final"]
    _, X_fit, X_val = seen[0]
    assert len(X_val) == 8 and len(X_fit) == 32
    assert X_val.max() < 50 and X_fit.max() < 50  # no test row
    assert {tuple(r.ravel()) for r in X_val} <= {tuple(r.ravel()) for r in X}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["validation"]["rows"] == 8 and 0 <= metrics["validation"]["score"] <= 1
    assert "accuracy" in metrics["test"]


def test_refit_and_explicit_validation_data():
    X, y = sign_of_mean(n=40)
    est = CrossModalEstimator(strategy="finetune", epochs=2, lr=1e-3, **TINY).fit(X, y)
    assert [r["label"] for r in est.report_.runs] == ["validation-finetune", "final"]
    assert est.report_.runs[1]["train_rows"] == 40 and est.validation_score_ is not None
    kept = CrossModalEstimator(strategy="finetune", epochs=2, lr=1e-3, refit=False, **TINY).fit(X, y)
    assert [r["label"] for r in kept.report_.runs] == ["validation-finetune"]
    assert kept.validation_score_ == est.validation_score_  # the same run, not refit
    Xv, yv = sign_of_mean(n=16, seed=5)
    given = CrossModalEstimator(strategy="finetune", epochs=2, lr=1e-3, **TINY).fit(X, y, validation_data=(Xv, yv))
    assert [r["label"] for r in given.report_.runs] == ["final"]
    assert given.validation_score_ == pytest.approx(given.score(Xv, yv))


def test_a_refit_that_collapses_is_replaced_by_the_validation_run(monkeypatch):
    """A constructed case: the refit on all rows is made to predict one class everywhere (its head zeroed),
    while the validation run held its rows out and beat the majority share. fit must warn and keep the
    validation run's model; a healthy refit is kept, with its check in the report."""
    import warnings

    import torch

    X, y = sign_of_mean(n=40)
    healthy = CrossModalEstimator(strategy="finetune", epochs=2, lr=1e-3, **TINY).fit(X, y)
    check = healthy.report_.validation["refit"]
    assert check["kept"] == "final" and not check["collapsed"] and check["refit_seconds"] > 0
    real = est_mod.Job.run

    def run(self, label, strategy, *args):
        out = real(self, label, strategy, *args)
        if label == "final":
            with torch.no_grad():
                for p in out.model.head.parameters():
                    p.zero_()  # equal logits: argmax is class 0 on every row, at most the majority share
        else:
            out.score = 0.9  # the validation run beat the constant
        return out

    monkeypatch.setattr(est_mod.Job, "run", run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = CrossModalEstimator(strategy="finetune", epochs=2, lr=1e-3, **TINY).fit(X, y)
    assert any(issubclass(w.category, RefitCollapsedWarning) for w in caught)
    check = est.report_.validation["refit"]
    assert check["collapsed"] and check["kept"] == "validation-finetune"
    assert check["score_on_validation_rows"] <= check["constant"]
    assert est.report_.runs[-1]["label"] == "validation-finetune" and est.report_.runs[-1]["train_rows"] == 32
    assert len(set(est.predict(X).tolist())) == 2  # the kept model is not the constant refit
    monkeypatch.setattr(est_mod.Job, "run", real)  # refit=False never refits, so nothing to guard
    kept = CrossModalEstimator(strategy="finetune", epochs=2, lr=1e-3, refit=False, **TINY).fit(X, y)
    assert "refit" not in kept.report_.validation


@pytest.mark.parametrize("right, kept", [(40, "final"), (37, "final"), (28, "validation"), (20, "validation")])
def test_a_refit_far_below_its_validation_run_on_rows_it_trained_on_is_set_aside(monkeypatch, right, kept):
    """A constructed case on 40 balanced validation rows: the held-out run scored 0.95; the refit, which
    trained on those rows, is made to get ``right`` of them. 40 and 37 (0.925, within two standard errors)
    keep the refit; 28 (0.70: degraded, above the 0.5 share) and 20 (0.5: collapsed) keep the validation run."""
    import warnings
    from types import SimpleNamespace

    import torch

    import xmodal.estimator.protocol as protocol
    from xmodal.config import RunConfig
    from xmodal.estimator.runs import TrainingRun
    from xmodal.evaluate.metrics import get_metric

    y_val = np.arange(40) % 2
    logits = torch.zeros(40, 2)
    logits[torch.arange(40), torch.from_numpy((y_val + (np.arange(40) >= right)) % 2)] = 1.0  # first `right` rows right
    monkeypatch.setattr(protocol, "predict_raw", lambda *a: logits)
    model = SimpleNamespace(decode=lambda out: out)
    best = TrainingRun("validation-orca", None, model, {}, [], {}, 160, 40, 0.95, None, 0.5)
    final = TrainingRun("final", None, model, {}, [], {"align": 1.0, "finetune": 2.0}, 200)
    job = SimpleNamespace(settings=RunConfig(device="cpu", seed=0), task="classification")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = protocol.guard_refit(job, best, final, np.zeros((40, 1, 4), np.float32), y_val, get_metric("accuracy"))
    assert (out is final) == (kept == "final")
    assert any(issubclass(w.category, protocol.RefitCollapsedWarning) for w in caught) == (kept != "final")
    check = out.refit_check
    assert check["score_on_validation_rows"] == pytest.approx(right / 40)
    assert check["collapsed"] == (right == 20) and check["degraded"] == (right == 28)
    assert 0.0 < check["standard_error"] < 0.1


@pytest.mark.parametrize("retry_learns", [True, False])
def test_an_automatic_lr_that_learned_nothing_is_retried_a_decade_lower(monkeypatch, retry_learns):
    """A constructed case: validation runs at the automatic lr are made to score the constant prediction
    (the majority share); fit must train them once more at a tenth of the lr and refit at it when that run
    learned, or keep the first lr and warn when it did not. A user's own lr is never retried."""
    import warnings

    from xmodal.estimator import NotLearnedWarning
    from xmodal.estimator.protocol import LR_RETRY_FACTOR

    X, y = sign_of_mean(n=40)
    real = est_mod.Job.run
    made: list[tuple[str, float]] = []

    def run(self, label, strategy, *args):
        out = real(self, label, strategy, *args)
        made.append((label, self.settings.lr))
        if label != "final" and (self.settings.lr == made[0][1] or not retry_learns):
            out.score = out.baseline  # learned nothing
        else:
            out.score = 0.9 if label != "final" else out.score
        return out

    monkeypatch.setattr(est_mod.Job, "run", run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = CrossModalEstimator(strategy="finetune", epochs=1, **TINY).fit(X, y)
    first = made[0][1]
    lower = first * LR_RETRY_FACTOR
    kept = lower if retry_learns else first
    assert [m[0] for m in made] == ["validation-finetune", f"validation-finetune-lr{lower:g}", "final"]
    assert made[-1][1] == pytest.approx(kept)  # the refit runs at the lr that was kept
    retry = est.report_.validation["lr_retry"]
    assert retry["automatic_lr"] == first and retry["retried_lr"] == pytest.approx(lower)
    assert retry["learned"] is retry_learns and retry["kept_lr"] == pytest.approx(kept)
    assert est.settings_.lr == pytest.approx(kept) and est.report_.settings["resolved"]["lr"] == pytest.approx(kept)
    assert est.report_.settings["auto"]["lr"] == first  # what the automatic rule chose, before the retry
    assert [r["label"] for r in est.report_.runs][-1] == "final" and len(est.report_.runs) == 3
    assert est.report_.validation["source"] == "0.2 of the training data"
    assert est.report_.seconds["validation_runs"] > 0
    assert any(issubclass(w.category, NotLearnedWarning) for w in caught) is not retry_learns
    assert est.validation_score_ == (0.9 if retry_learns else retry["constant"])

    made.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        own = CrossModalEstimator(strategy="finetune", epochs=1, lr=1e-3, **TINY).fit(X, y)
    assert [m[0] for m in made] == ["validation-finetune", "final"]  # the user's lr is theirs
    assert "lr_retry" not in own.report_.validation and own.settings_.lr == 1e-3
    assert any(issubclass(w.category, NotLearnedWarning) for w in caught)


def test_xmodal_fit_says_when_it_retried_the_lr(capsys, tmp_path):
    from xmodal.cli.fit import _print_metrics

    retry = {"automatic_lr": 2e-4, "retried_lr": 2e-5, "learned": True, "kept_lr": 2e-5}
    metrics = {"seconds": {"align": 1.0}, "strategy": {"name": "orca"}, "test": {},
               "validation": {"metric": "accuracy", "score": 0.9, "rows": 8, "lr_retry": retry}}
    _print_metrics(metrics, tmp_path)
    assert "automatic lr 0.0002 learned nothing on validation; a retry at 2e-05 learned" in capsys.readouterr().out
    _print_metrics({**metrics, "validation": {**metrics["validation"],
                                             "lr_retry": {**retry, "learned": False, "kept_lr": 2e-4}}}, tmp_path)
    assert "learned nothing either; lr 0.0002 was kept" in capsys.readouterr().out


# ------------------------------------------------------------------ strategy="auto"


def test_auto_keeps_the_candidate_with_the_better_validation_score(monkeypatch):
    """A constructed case: each candidate's validation score is set by the test; auto must refit the
    better one on all the data, whichever order the candidates come in, and keep the first on a tie."""
    X, y = sign_of_mean(n=40)
    real = est_mod.Job.run
    rigged = {}

    def run(self, label, strategy, *args):
        out = real(self, label, strategy, *args)
        if label != "final":
            out.score = rigged[strategy.name]
        return out

    monkeypatch.setattr(est_mod.Job, "run", run)
    # 8 validation rows: one (plus-four) standard error of an accuracy p is 0.12 at 0.9, 0.14 at 0.7 and 0.6
    for scores, expected, margin, clear in [({"frozen": 0.9, "finetune": 0.6}, "frozen", 0.3, True),
                                            ({"frozen": 0.4, "finetune": 0.6}, "finetune", 0.2, True),
                                            ({"frozen": 0.7, "finetune": 0.6}, "frozen", 0.1, False),
                                            ({"frozen": 0.6, "finetune": 0.6}, "frozen", 0.0, False)]:
        rigged.update(scores)
        est = CrossModalEstimator(strategy="auto", candidates=("frozen", "finetune"), epochs=1, **TINY).fit(X, y)
        assert est.strategy_ == expected and est.strategy_scores_ == scores
        choice = est.report_.validation["choice"]
        assert choice["runner_up"] == ({"frozen", "finetune"} - {expected}).pop()
        assert choice["margin"] == pytest.approx(margin) and choice["clear"] is clear
        p = scores[expected]
        assert choice["standard_error"] == pytest.approx(proportion_se(p, 8))  # p~ = (8p + 2) / 12
        note = choice_note(expected, choice, 8)
        assert (note is None) == clear and (clear or choice["runner_up"] in note)
        assert est.validation_score_ == scores[expected]
        assert [r["label"] for r in est.report_.runs] == ["validation-frozen", "validation-finetune", "final"]
        assert est.report_.runs[-1]["strategy"] == expected and est.report_.runs[-1]["train_rows"] == 40
        assert est.report_.strategy["name"] == expected
        assert est.report_.strategy["chosen_from"] == ["frozen", "finetune"]


def test_auto_needs_validation_and_leaves_align_and_mode_to_the_candidates():
    X, y = sign_of_mean(n=24)
    with pytest.raises(XmodalError, match="validation"):
        CrossModalEstimator(strategy="auto", validation=0, **TINY).fit(X, y)
    with pytest.raises(XmodalError, match="leave align/mode unset"):
        CrossModalEstimator(strategy="auto", align="otdd", **TINY).fit(X, y)


# ------------------------------------------------------------------ scikit-learn conventions


def test_clone_and_cross_val_score():
    X, y = sign_of_mean(n=48)
    est = CrossModalEstimator(task="classification", strategy="finetune", epochs=4, lr=3e-3, validation=0, **TINY)
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    scores = cross_val_score(est, X, y, cv=2)
    assert scores.shape == (2,) and (scores > 0.6).all()  # majority share is about 0.5
    assert not hasattr(est, "model_")  # cross_val_score fits clones
