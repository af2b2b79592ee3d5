"""The committed reports in ``results/`` are what their benchmark scripts make of the committed cells.

A report script that no longer runs, or that counts differently from the report a closing note quotes,
fails here instead of at the next long benchmark run. No model is trained: the scripts read JSON cells.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the reports name their folders as given on the command line, relative to the repo


@pytest.mark.filterwarnings("ignore:An input array is constant")
def test_body_choice_report_is_reproduced_from_its_cells(in_repo: None) -> None:
    mod = _script("body_choice")
    tasks = list(mod.IMAGE_TASKS + mod.SERIES_TASKS)
    text = mod.report(tasks, [0, 1, 2], Path("results/bodies"))
    assert text == (ROOT / "results/bodies/BODY_CHOICE.md").read_text()
    assert "EfficientNet-Lite0 beats MiniLM-L6 on 3/4 image/field tasks" in text  # issue 15's figure


def test_tuned_suite_report_is_reproduced_from_its_cells(in_repo: None, tmp_path: Path) -> None:
    mod = _script("tuned_suite")
    figure = tmp_path / "tuned_suite_curves.png"
    text = mod.report(Path("results/full"), figure, None, "orca", Path("results/bodies"), list(mod.BODIES))
    assert figure.stat().st_size > 0
    assert text == (ROOT / "results/TUNED_SUITE.md").read_text()


def test_body_choice_plan_estimates_a_seed_from_the_pairs_other_finished_seeds(tmp_path: Path) -> None:
    mod = _script("body_choice")
    task, body = mod.IMAGE_TASKS[0], mod.IMAGE_BODIES[0]
    for seed, seconds in ((0, 100.0), (1, 300.0)):
        f = mod.cell_path(tmp_path, body, task, seed)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps({"row": {"total_s": seconds}}))
    text = mod.plan([task], [2], tmp_path)
    assert f"| {task} | {body} | 2 | 200 |" in text  # the mean of seeds 0 and 1, though only seed 2 was asked for
    assert "no finished" in text  # the task's other bodies have no cell yet
