"""The shape of the source tree: imports run one way down the layers, modules and functions stay a size
a newcomer can read, and every named table is a :class:`~xmodal.registry.Registry`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from xmodal.registry import Registry

SRC = Path(__file__).resolve().parents[1] / "src" / "xmodal"
#: the layers, bottom first; a module may import its own layer and those below it
LAYERS = ["data", "model", "align", "train", "evaluate", "estimator", "tuning", "experiments", "cli"]
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
REASON = "# over 60 lines"


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xmodal"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("xmodal"))
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_run_down_the_layers(path):
    here = path.relative_to(SRC).parts[0] if len(path.relative_to(SRC).parts) > 1 else None
    if here not in LAYERS:
        return
    upward = [m for m in _imports(path) if (layer := _layer(m)) is not None
              and LAYERS.index(layer) > LAYERS.index(here)]
    assert not upward, f"{path.relative_to(SRC)} ({here}) imports from higher layers: {upward}"


def test_stage_two_mathematics_does_not_reach_into_the_loops():
    for path in (SRC / "align").glob("*.py"):
        assert not any(m.startswith("xmodal.train") for m in _imports(path)), path.name


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_and_functions_stay_readable(path):
    lines = path.read_text().split("\n")
    assert len(lines) <= MAX_MODULE_LINES or lines[0].startswith("# "), \
        f"{path.relative_to(SRC)} has {len(lines)} lines and no reason at its top"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            reason = lines[first - 2].strip().startswith(REASON)
            assert length <= MAX_FUNCTION_LINES or reason, \
                f"{path.relative_to(SRC)}:{node.lineno} {node.name} has {length} lines and no reason above it"


def test_every_named_table_is_a_registry():
    from xmodal.align import OBJECTIVES
    from xmodal.data.builtin import DATASETS
    from xmodal.data.proxies import PROXIES
    from xmodal.evaluate.metrics import METRICS
    from xmodal.experiments.peers import PEERS
    from xmodal.experiments.suite import SUITE
    from xmodal.model.bodies.base import FAMILIES, MODEL_TYPES, NAMED_BODIES
    from xmodal.strategies import STRATEGIES
    from xmodal.tasks import TASK_KINDS
    from xmodal.train import ALIGNERS, MODES
    from xmodal.train.optim import OPTIMIZERS

    tables = [ALIGNERS, OBJECTIVES, FAMILIES, MODEL_TYPES, NAMED_BODIES, METRICS, TASK_KINDS, DATASETS, PROXIES,
              MODES, OPTIMIZERS, STRATEGIES, PEERS, SUITE]
    assert all(isinstance(t, Registry) and len(t) > 0 for t in tables)
    assert len({id(t) for t in tables}) == 14


def test_registry_lists_the_choices_for_an_unknown_name_and_behaves_as_a_mapping():
    from xmodal.errors import XmodalError
    from xmodal.registry import UnknownName

    reg: Registry[int] = Registry("colour", hint=" (or a hex code)", sort=False)
    reg.add("red", 1)
    reg.register("blue")(2)
    assert reg["blue"] == 2 and "red" in reg and "green" not in reg and reg.get("green") is None
    assert [] not in reg  # an unhashable name is simply absent
    with pytest.raises(UnknownName) as info:
        reg["green"]
    assert isinstance(info.value, XmodalError) and isinstance(info.value, KeyError)
    assert str(info.value) == "unknown colour 'green'; choose one of ['red', 'blue'] (or a hex code)"
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("red", 3)
    assert list(reg) == ["red", "blue"] and len(reg) == 2
