"""The benchmark suite runner: performance profiles on hand-made numbers, and a tiny resumable run."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from xmodal.errors import XmodalError
from xmodal.estimator.protocol import PROTOCOL_VERSION
from xmodal.experiments import bench
from xmodal.experiments.suite import DEVELOPMENT, HELD_OUT, SUITE, SuiteTask, get_task, suite_tasks


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path / "cache"))


def _row(task, method, value, higher=True):
    return {"task": task, "method": method, "seed": 0, "metric": "accuracy" if higher else "rel_l2",
            "higher_is_better": higher, "value": value}


def test_performance_profile_on_hand_made_errors():
    rows = [_row("a", "x", 0.9), _row("a", "y", 0.8),  # errors 0.1 and 0.2: y is 2× the best
            _row("b", "x", 0.4, False), _row("b", "y", 0.1, False)]  # errors 0.4 and 0.1: x is 4×
    taus, prof = bench.performance_profile(rows, ["a", "b"], ["x", "y"], taus=np.array([1.0, 2.0, 3.9, 4.0]))
    assert prof["x"].tolist() == [0.5, 0.5, 0.5, 1.0]
    assert prof["y"].tolist() == [0.5, 1.0, 1.0, 1.0]
    # a method missing on a task never reaches that task
    _, prof = bench.performance_profile(rows[:3], ["a", "b"], ["x", "y"], taus=np.array([1.0, 100.0]))
    assert prof["y"].tolist() == [0.0, 0.5]  # 2× the best on a, absent on b


def test_results_say_where_their_cells_ran():
    from xmodal.experiments.bench_results import environment_lines

    env = {"torch": "2.0", "transformers": "5.0", "numpy": "2.0", "cpu": "Xeon", "cpu_capability": "AVX512",
           "threads": 2}
    rows = [{**_row("a", "x", 0.9), "env": env}, {**_row("a", "y", 0.8), "env": env},
            {**_row("a", "z", 0.7), "env": {**env, "cpu_capability": "AVX2"}}, _row("b", "x", 0.5),
            {**_row("a", "auto", 0.9), "env": env, "chosen": "x"}]  # a validation choice: not another cell
    lines = environment_lines(rows)
    assert "- torch 2.0, transformers 5.0, numpy 2.0, Xeon (AVX512), 2 threads: 2 cells" in lines
    assert "- torch 2.0, transformers 5.0, numpy 2.0, Xeon (AVX2), 2 threads: 1 cells" in lines
    assert "- not recorded: 1 cells" in lines
    assert lines.index("- torch 2.0, transformers 5.0, numpy 2.0, Xeon (AVX512), 2 threads: 2 cells") < \
        lines.index("- not recorded: 1 cells")  # the most common environment first
    assert environment_lines([]) == []


def test_results_count_the_cells_an_older_validation_protocol_made():
    from xmodal.experiments.bench_results import protocol_lines

    now = {"protocol": PROTOCOL_VERSION}
    rows = [{**_row("a", "x", 0.9), **now}, {**_row("a", "y", 0.8), "protocol": PROTOCOL_VERSION - 1},
            _row("b", "x", 0.5), _row("b", "z", 0.6),  # two cells from before versions were recorded
            {**_row("a", "peer", 0.95), "peer": "hgb"},  # a peer runs no protocol
            {**_row("a", "auto", 0.8), "chosen": "y"}]  # a validation choice repeats its cell
    (line, blank) = protocol_lines(rows)
    assert f"version {PROTOCOL_VERSION}" in line and blank == ""
    assert f"1 version {PROTOCOL_VERSION - 1}" in line and "2 before versions were recorded" in line
    assert protocol_lines([{**_row("a", "x", 0.9), **now}, {**_row("a", "peer", 0.9), "peer": "hgb"}]) == []


def test_suite_registry():
    assert {"gunpoint", "japanesevowels", "mnist-5k", "fashion-mnist-10k", "darcy-16", "darcy-85", "splice",
            "breast-cancer", "credit-g", "diabetes"} <= set(SUITE)
    assert all(t.quick for t in suite_tasks(quick=True)) and len(suite_tasks(quick=True)) < len(SUITE)
    # the defaults were chosen on one half and judged on the other: the halves split the suite
    assert set(DEVELOPMENT) | set(HELD_OUT) == set(SUITE) and not set(DEVELOPMENT) & set(HELD_OUT)
    with pytest.raises(XmodalError, match="unknown suite task"):
        get_task("nope")


def test_tiny_bench_writes_results_and_resumes(tmp_path, monkeypatch):
    tiny = SuiteTask("tiny-wine", "tabular", "hgb", dict(max_tokens=16, epochs=1, batch_size=32, lr=1e-3),
                     dataset="wine")
    monkeypatch.setitem(SUITE._items, "tiny-wine", tiny)
    out = tmp_path / "bench"
    res = bench.run_bench(["tiny-wine"], ["finetune", "peer"], [0, 1], out, body="vit-tiny-random", progress=False)
    assert len(res.rows) == 4
    peer = [r for r in res.rows if r["method"] == "peer"]
    assert all(r["value"] > 0.8 for r in peer)  # gradient boosting on wine
    # each xmodal cell says which validation protocol made it (a report can tell an older one's cells apart)
    # and what its refit scored on the validation rows it trained on; a peer runs no protocol
    ours = [r for r in res.rows if r["method"] == "finetune"]
    assert all(r["protocol"] == PROTOCOL_VERSION for r in ours)
    # None where the validation run learned nothing (one epoch here), so that no refit check ran
    assert all(r["refit_on_validation_rows"] is None or 0.0 <= r["refit_on_validation_rows"] <= 1.0 for r in ours)
    assert all("refit_on_validation_rows" in r for r in ours)
    assert all("protocol" not in r for r in peer)
    md = (out / "RESULTS.md").read_text()
    assert "| tiny-wine | accuracy ↑ |" in md and "**" in md and (out / "performance_profile.png").stat().st_size > 0
    assert f"({torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} threads: 4 cells" in md
    with open(out / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    monkeypatch.setattr(bench, "_run_cell", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rerun")))
    again = bench.run_bench(["tiny-wine"], ["finetune", "peer"], [0, 1], out, body="vit-tiny-random", progress=False)
    assert [r["value"] for r in again.rows] == [r["value"] for r in res.rows]
    partial = bench.run_bench(["tiny-wine"], ["finetune", "peer"], [0, 1, 2], out, body="vit-tiny-random",
                              progress=False, report_only=True)  # seed 2 was never run: left out, not run
    md = (out / "RESULTS.md").read_text()
    assert len(partial.rows) == 4 and "Sum of the 4 cells" in md and "Wall time of this run" not in md
    with pytest.raises(XmodalError, match="unknown strategy"):
        bench.run_bench(["tiny-wine"], ["nope"], [0], out)


def test_parallel_jobs_give_the_sequential_cells_in_order(tmp_path, monkeypatch):
    tiny = SuiteTask("tiny-wine", "tabular", "hgb", dict(max_tokens=16, epochs=1, batch_size=32, lr=1e-3),
                     dataset="wine")
    monkeypatch.setitem(SUITE._items, "tiny-wine", tiny)
    args = (["tiny-wine"], ["finetune", "peer"], [0, 1])
    seq = bench.run_bench(*args, tmp_path / "seq", body="vit-tiny-random", progress=False)
    par = bench.run_bench(*args, tmp_path / "par", body="vit-tiny-random", progress=False, jobs=2)
    assert [(r["method"], r["seed"]) for r in par.rows] == [(r["method"], r["seed"]) for r in seq.rows]
    for a, b in zip(seq.rows, par.rows, strict=True):
        # the peer is deterministic; the body's float sums may differ with the thread count
        assert b["value"] == pytest.approx(a["value"], abs=0.0 if a["method"] == "peer" else 0.1)
    assert {r["threads"] for r in par.rows} == {max(1, torch.get_num_threads() // 2)}
    assert len(list((tmp_path / "par" / "cells" / "tiny-wine").glob("*.json"))) == 4
    with pytest.raises(XmodalError, match="jobs must be"):
        bench.run_bench(*args, tmp_path / "x", jobs=0)


def test_head_to_head_picks_the_best_transfer_strategy_and_respects_the_metric_direction():
    def row(task, method, value, higher=True):
        return {"task": task, "method": method, "value": value, "metric": "m", "higher_is_better": higher}

    rows = [row("a", "orca", 0.8), row("a", "finetune", 0.9), row("a", "scratch", 0.7), row("a", "peer", 0.95),
            row("b", "orca", 0.2, False), row("b", "finetune", 0.3, False), row("b", "peer", 0.25, False),
            row("c", "peer", 0.5)]  # no transfer strategy ran on c: left out
    duel = bench.head_to_head(rows, ["a", "b", "c"], ["orca", "finetune", "scratch", "peer"])
    assert [d["task"] for d in duel] == ["a", "b"]
    assert (duel[0]["best"], duel[0]["beats_peer"], duel[0]["beats_scratch"]) == ("finetune", False, True)
    assert (duel[1]["best"], duel[1]["beats_peer"], duel[1]["beats_scratch"]) == ("orca", True, None)


def test_peer_options_change_only_the_peer_cells_key():
    plain = SuiteTask("t", "x", "fno", {"epochs": 1})
    tuned = SuiteTask("t", "x", "fno", {"epochs": 1}, peer_options={"epochs": 10})
    assert bench._key(plain, "orca", 0, "minilm-l6", 10) == bench._key(tuned, "orca", 0, "minilm-l6", 10)
    assert bench._key(plain, "peer", 0, "minilm-l6", 10) != bench._key(tuned, "peer", 0, "minilm-l6", 10)


def test_a_familys_own_automatic_settings_key_its_defaults_cells(monkeypatch):
    """Changing what a family's automatic settings resolve to (``Body.auto_steps`` …) reruns that family's
    ``defaults:`` cells and no hand-set cell; transformer families set none, so their cells keep their keys."""
    from xmodal.experiments.suite import family_defaults
    from xmodal.model.bodies import FAMILIES

    task = SuiteTask("t", "x", "fno", {"epochs": 1})
    assert family_defaults("minilm-l6") == {}
    before = bench._key(task, "defaults:orca", 0, "minilm-l6", 10)
    hand = bench._key(task, "orca", 0, "minilm-l6", 10)
    monkeypatch.setattr(FAMILIES["language"], "auto_steps", 999)
    assert family_defaults("minilm-l6") == {"steps": 999}
    assert bench._key(task, "defaults:orca", 0, "minilm-l6", 10) != before
    assert bench._key(task, "orca", 0, "minilm-l6", 10) == hand


def test_the_automatic_rule_keys_every_defaults_and_tuned_cell(monkeypatch):
    """A ``defaults:`` cell is a plain fit, whose settings resolve from :data:`xmodal.defaults.RULE`, and a
    ``tuned:`` cell's study starts from them: changing one of the rule's constants reruns every family's
    ``defaults:`` and ``tuned:`` cells and no hand-set cell."""
    from dataclasses import replace

    task = SuiteTask("t", "x", "fno", {"epochs": 1})
    for body in ("minilm-l6", "efficientnet-lite0"):
        before = {m: bench._key(task, m, 0, body, 10) for m in ("defaults:orca", "tuned:orca", "orca")}
        monkeypatch.setattr(bench, "RULE", replace(bench.RULE, steps=bench.RULE.steps + 1))
        after = {m: bench._key(task, m, 0, body, 10) for m in before}
        assert after["defaults:orca"] != before["defaults:orca"] and after["tuned:orca"] != before["tuned:orca"]
        assert after["orca"] == before["orca"]
        monkeypatch.undo()
        assert {m: bench._key(task, m, 0, body, 10) for m in before} == before


def test_defaults_cells_fit_at_the_automatic_settings_not_the_tasks(tmp_path, monkeypatch):
    """``defaults:<strategy>`` runs the strategy as a plain ``xmodal fit`` would: none of the task's hand-set
    settings reach the estimator, the cell's key differs from the hand-set cell's, and ``defaults:auto`` is
    the validation choice among them, counted in the head-to-head like ``auto``."""
    import xmodal.estimator as estimator_mod
    from xmodal.experiments.suite import strategy_name, transfers

    tiny = SuiteTask("tiny-wine", "tabular", "hgb", dict(max_tokens=16, epochs=1, batch_size=32, lr=1e-3),
                     dataset="wine")
    monkeypatch.setitem(SUITE._items, "tiny-wine", tiny)
    assert strategy_name("defaults:orca") == "orca" and strategy_name("tuned:orca") == "orca"
    assert transfers("defaults:auto") and transfers("defaults:finetune") and not transfers("defaults:scratch")
    assert bench._key(tiny, "defaults:finetune", 0, "vit-tiny-random", 10) != bench._key(
        tiny, "finetune", 0, "vit-tiny-random", 10)
    seen = []
    real = estimator_mod.CrossModalEstimator

    def spy(**kwargs):
        seen.append(kwargs)
        return real(**{**kwargs, "epochs": 1})  # the automatic epochs would be many; the test keeps it short

    monkeypatch.setattr(estimator_mod, "CrossModalEstimator", spy)
    res = bench.run_bench(["tiny-wine"], ["defaults:finetune"], [0], tmp_path / "b", body="vit-tiny-random",
                          progress=False)
    assert [r["method"] for r in res.rows] == ["defaults:finetune"] and res.rows[0]["value"] is not None
    assert [k["strategy"] for k in seen] == ["finetune"]
    assert not {"max_tokens", "batch_size", "lr", "epochs"} & set(seen[0])  # the task's settings stay out
    rows = [{"task": "a", "method": m, "value": v, "metric": "m", "higher_is_better": True}
            for m, v in [("defaults:orca", 0.8), ("defaults:finetune", 0.9), ("defaults:auto", 0.8), ("peer", 0.85)]]
    duel = bench.head_to_head(rows, ["a"], ["defaults:orca", "defaults:finetune", "defaults:auto", "peer"])
    assert (duel[0]["best"], duel[0]["beats_peer"]) == ("defaults:auto", False)  # the choice, not the best by test


def test_a_diverged_cell_is_recorded_and_the_suite_goes_on(tmp_path, monkeypatch):
    tiny = SuiteTask("tiny-wine", "tabular", "hgb", dict(max_tokens=16, epochs=1, batch_size=32, lr=1e30),
                     dataset="wine")
    monkeypatch.setitem(SUITE._items, "tiny-wine", tiny)
    out = tmp_path / "bench"
    res = bench.run_bench(["tiny-wine"], ["finetune", "peer"], [0, 1], out, body="vit-tiny-random", progress=False)
    cells = [r for r in res.rows if r["method"] == "finetune"]
    assert all(r["value"] is None and "diverged" in r["diverged"] for r in cells)
    md = (out / "RESULTS.md").read_text()
    assert "diverged (2 seeds)" in md
    # under a validation choice, a diverged candidate is never the one kept
    rows = [{"task": "t", "seed": 0, "method": "orca", "value": None, "validation": None, "diverged": "x",
             "higher_is_better": True, "metric": "accuracy"},
            {"task": "t", "seed": 0, "method": "finetune", "value": 0.7, "validation": 0.6,
             "higher_is_better": True, "metric": "accuracy"}]
    chosen = bench.validation_choices(rows, ["auto"])
    assert len(chosen) == 1 and chosen[0]["chosen"] == "finetune" and chosen[0]["value"] == 0.7


def test_tuned_cells_share_one_study_per_task(tmp_path, monkeypatch):
    """``tuned:`` cells of every seed fit at the best settings of one study per task (run with seed 0)."""
    import json

    import xmodal.tuning

    tiny = SuiteTask("tiny-wine", "tabular", "hgb", dict(max_tokens=16, epochs=1, batch_size=32, lr=1e-3),
                     dataset="wine")
    monkeypatch.setitem(SUITE._items, "tiny-wine", tiny)
    studies, spaces = [], []

    def fake_tune(X, y, config, *, budget, space, out, progress):  # the best configuration a study would write
        studies.append((config.seed, out))
        spaces.append(space)
        out.mkdir(parents=True)
        best = {"max_tokens": 8, "epochs": 1, "batch_size": 16, "lr": 1e-3}
        key = xmodal.tuning.study_key(X, y, config, space=space)
        (out / "tune.json").write_text(json.dumps({"best_settings": best, "seconds": 12.5, "key": key}))

    monkeypatch.setattr(xmodal.tuning, "tune", fake_tune)
    out = tmp_path / "bench"
    res = bench.run_bench(["tiny-wine"], ["tuned:finetune"], [0, 1], out, body="vit-tiny-random", progress=False)
    assert studies == [(bench.TUNE_SEED, out / "tune-local" / "tiny-wine")]  # the default space, local
    assert [(r["seed"], r["tune_s"]) for r in res.rows] == [(0, 12.5), (1, 12.5)]
    assert all(r["value"] > 0.3 for r in res.rows)  # fitted at the study's settings, scored on the test split
    # each cell records what it ran on (scores with the same settings differ across machines)
    env = json.loads(next((out / "cells" / "tiny-wine").glob("*seed1.json")).read_text())["row"]["env"]
    assert env["torch"] == torch.__version__ and env["cpu_capability"] and env["threads"] >= 1
    # another named space: its own study (and cell key), the space passed to tune; orca's in OUT/tune/
    wide = bench.run_bench(["tiny-wine"], ["tuned:finetune"], [0], tmp_path / "orca", body="vit-tiny-random",
                           progress=False, tune_space="orca")
    assert studies[-1] == (bench.TUNE_SEED, tmp_path / "orca" / "tune" / "tiny-wine")
    assert spaces == ["local", "orca"] and wide.rows[0]["tune_s"] == 12.5
    with pytest.raises(XmodalError, match="search space"):
        bench.run_bench(["tiny-wine"], ["tuned:finetune"], [0], out, progress=False, tune_space="wide")
    # the body family's automatic learning rate changes: the cells rerun, and the study folder, which
    # started from the old one, is refused rather than reused
    from xmodal.model.bodies import FAMILIES, resolve_body

    monkeypatch.setattr(FAMILIES[resolve_body("vit-tiny-random").family], "auto_lr", 5e-4)
    with pytest.raises(XmodalError, match=r"tune-local/tiny-wine holds a study .*differs in \['automatic'\]"):
        bench.run_bench(["tiny-wine"], ["tuned:finetune"], [0], out, body="vit-tiny-random", progress=False)
    assert len(studies) == 2  # no study ran again
