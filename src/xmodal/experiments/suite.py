"""The benchmark suite's task registry: which built-in dataset, which expert peer, and the training
settings that keep a CPU run of one (task, method, seed) cell to about a minute.

A task entry names a dataset of :mod:`xmodal.data.builtin` (loader and split), and the registry adds
what the suite needs on top: the estimator settings shared by every xmodal strategy on that task
(tokens, epochs, batch size, learning rate), the expert peer run beside them (see
:mod:`xmodal.experiments.peers`), and whether the task is in the ``--quick`` subset. The task kind
(and so the loss) and the metric come from the dataset (:mod:`xmodal.tasks`).

Settings are per task, not per method: every strategy on a task gets the same ones. They were
chosen for the 2-core CPU budget (full suite ≤ 3 h) and, where a task underfit, on a validation split
carved from its *training* set with ``benchmarks/suite_settings.py`` (finetune, seed 0; the test set
is never read). The changes and their validation scores:

* splice: 60 → 15 tokens (4-nt patches), 3 → 5 epochs, lr 1e-4 → 5e-4: accuracy 0.535 → 0.918 and
  stage 3 152 → 65 s (``--task splice --try "max_tokens=15,epochs=5,lr=5e-4"``);
* credit-g: 63 → 16 tokens: 0.700 (the majority share) → 0.738, 139 → 38 s; lr 3e-4 or 1e-3 fall back
  to the majority share;
* breast-cancer: 30 → 8 tokens: 0.934 → 0.967, 73 → 27 s;
* darcy-85: 64 → 16 tokens, 4 → 8 epochs: rel_l2 0.493 → 0.271, 86 → 53 s;
* japanesevowels: 32 → 16 tokens: accuracy 0.907 → 0.944 (validation seed 0) and 0.963 → 0.981
  (``--seed 1``), 35 → 18 s; lr 3e-4 (0.870) and 20 epochs (0.926) did less.

Kept after a validation check: credit-g's 16 tokens, 8 epochs, lr 1e-4 (0.738) against 8 tokens (0.694),
15 epochs (0.731) and lr 5e-5 (0.700).

Fewer, wider tokens learned faster on every task tried at these short budgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xmodal.errors import XmodalError
from xmodal.registry import Registry

__all__ = ["SuiteTask", "SUITE", "get_task", "suite_tasks", "settings_for"]


@dataclass(frozen=True)
class SuiteTask:
    """One task of the suite.

    Attributes:
        name: task name (also the dataset name unless ``dataset`` is given).
        modality: a short label for tables (``"1-D series"``, ``"image"``, ``"PDE field"``, …).
        peer: expert baseline from :data:`xmodal.experiments.peers.PEERS`.
        settings: estimator settings shared by all strategies (``max_tokens``, ``epochs``, …).
        quick: part of ``xmodal bench --quick``.
        dataset: built-in dataset name, when it differs from ``name``.
        peer_options: keyword options of the peer's fit (e.g. ``{"epochs": 10}`` for ``fno``).
    """

    name: str
    modality: str
    peer: str
    settings: dict[str, Any] = field(default_factory=dict)
    quick: bool = False
    dataset: str | None = None
    peer_options: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset_name(self) -> str:
        return self.dataset or self.name


_SERIES = dict(max_tokens=64, epochs=30, batch_size=8, lr=1e-4)
SUITE: Registry[SuiteTask] = Registry("suite task", sort=False)
for _task in (
    SuiteTask("gunpoint", "1-D series", "minirocket", _SERIES, quick=True),
    SuiteTask("acsf1", "1-D series", "minirocket", dict(max_tokens=64, epochs=15, batch_size=8, lr=1e-4)),
    SuiteTask("basicmotions", "1-D series (6 ch)", "minirocket", _SERIES),
    SuiteTask("japanesevowels", "1-D series (12 ch)", "minirocket",
              dict(max_tokens=16, epochs=10, batch_size=16, lr=1e-4)),
    SuiteTask("mnist-5k", "image", "hgb", dict(max_tokens=16, epochs=3, batch_size=32, lr=2e-4)),
    SuiteTask("fashion-mnist-10k", "image", "hgb", dict(max_tokens=16, epochs=2, batch_size=32, lr=2e-4)),
    SuiteTask("darcy-16", "PDE field", "fno", dict(max_tokens=16, epochs=5, batch_size=32, lr=1e-3), quick=True),
    # 6 FNO epochs: 30 took 1035 s on the 2-core CPU (rel_l2 0.0197), a fifth of the whole suite's seed,
    # and 10 took ~400 s (0.0353) for a 3-seed suite that must fit 3 h
    SuiteTask("darcy-85", "PDE field", "fno", dict(max_tokens=16, epochs=8, batch_size=16, lr=1e-3),
              peer_options={"epochs": 6}),
    SuiteTask("splice", "DNA sequence", "hgb", dict(max_tokens=15, epochs=5, batch_size=32, lr=5e-4)),
    SuiteTask("breast-cancer", "tabular", "hgb", dict(max_tokens=8, epochs=15, batch_size=16, lr=1e-4),
              quick=True),
    SuiteTask("credit-g", "tabular", "hgb", dict(max_tokens=16, epochs=8, batch_size=16, lr=1e-4)),
    SuiteTask("diabetes", "tabular", "hgb", dict(max_tokens=64, epochs=8, batch_size=16, lr=1e-4)),
):
    SUITE.add(_task.name, _task)


def get_task(name: str) -> SuiteTask:
    """The suite entry called ``name``; unknown names raise :class:`XmodalError` listing the suite."""
    return SUITE[name]


#: the methods ``xmodal bench --quick`` keeps of those asked for (the validation choice, its candidates, the expert)
QUICK_METHODS = ("auto", "orca", "finetune", "peer")


def suite_tasks(quick: bool = False) -> list[SuiteTask]:
    """All tasks, or the ``--quick`` subset."""
    return [t for t in SUITE.values() if t.quick or not quick]


#: settings for built-in datasets outside the suite that the benchmark scripts also run
EXTRA_SETTINGS: dict[str, dict[str, Any]] = {
    "italypowerdemand": dict(_SERIES),
    "wine": dict(_SERIES),
}


def settings_for(name: str) -> tuple[str, dict[str, Any]]:
    """``(dataset name, estimator settings)`` of a suite task or of a dataset in :data:`EXTRA_SETTINGS`."""
    if name in SUITE:
        return SUITE[name].dataset_name, dict(SUITE[name].settings)
    if name in EXTRA_SETTINGS:
        return name, dict(EXTRA_SETTINGS[name])
    raise XmodalError(f"no benchmark settings for {name!r}; known: {sorted(SUITE) + sorted(EXTRA_SETTINGS)}")
