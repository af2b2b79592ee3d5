"""The benchmark suite's task registry: which built-in dataset, which expert peer, and the training
settings that keep a CPU run of one (task, method, seed) cell to about a minute.

A task entry names a dataset of :mod:`xmodal.data.builtin` (loader and split), and the registry adds
what the suite needs on top: the estimator settings shared by every xmodal strategy on that task
(tokens, epochs, batch size, learning rate), the expert peer run beside them (see
:mod:`xmodal.experiments.peers`), and whether the task is in the ``--quick`` subset. The task kind
(and so the loss) and the metric come from the dataset (:mod:`xmodal.tasks`).

Settings are per task, not per method: every strategy on a task gets the same ones. They were
chosen for the 2-core CPU budget (full suite ≤ 3 h) and, where a task underfit, on a validation split
carved from its *training* set with ``benchmarks/suite_settings.py`` (the test set is never read);
``results/SUITE_SETTINGS.md`` records each change with its validation score and command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xmodal.errors import XmodalError
from xmodal.registry import Registry

__all__ = ["SuiteTask", "SUITE", "DEVELOPMENT", "HELD_OUT", "get_task", "suite_tasks", "settings_for",
           "settings_for_body", "family_defaults"]


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
    # 6 FNO epochs keep the peer's cell within the suite's 2-core budget (results/SUITE_SETTINGS.md)
    SuiteTask("darcy-85", "PDE field", "fno", dict(max_tokens=16, epochs=8, batch_size=16, lr=1e-3),
              peer_options={"epochs": 6}),
    SuiteTask("splice", "DNA sequence", "hgb", dict(max_tokens=15, epochs=5, batch_size=32, lr=5e-4)),
    SuiteTask("breast-cancer", "tabular", "hgb", dict(max_tokens=8, epochs=15, batch_size=16, lr=1e-4),
              quick=True),
    SuiteTask("credit-g", "tabular", "hgb", dict(max_tokens=16, epochs=8, batch_size=16, lr=1e-4)),
    SuiteTask("diabetes", "tabular", "hgb", dict(max_tokens=64, epochs=8, batch_size=16, lr=1e-4)),
):
    SUITE.add(_task.name, _task)


#: the development half of the suite (one or two tasks per modality): the automatic settings
#: (:mod:`xmodal.defaults`) and the default search space (:mod:`xmodal.tuning.space`) were chosen on these
#: tasks' validation scores; :data:`HELD_OUT` is the other half, which judges them and chose nothing
DEVELOPMENT = ("gunpoint", "japanesevowels", "mnist-5k", "darcy-16", "breast-cancer", "splice")
HELD_OUT = ("acsf1", "basicmotions", "fashion-mnist-10k", "darcy-85", "credit-g", "diabetes")


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


#: the settings the suite chose for transformer bodies (with MiniLM-L6) that a family may choose for itself,
#: each with its name in :func:`family_defaults`
FAMILY_SETTINGS = {"max_tokens": "tokens", "lr": "lr"}


def settings_for_body(settings: dict[str, Any], body: str) -> dict[str, Any]:
    """A task's suite ``settings`` as run with ``body``: the token budget and the stage-3 learning rate were
    chosen for transformer bodies, so a family that sets its own automatic ones (``Body.auto_tokens`` /
    ``Body.auto_lr``, e.g. EfficientNet's finer grid and larger rate) leaves them automatic; the epochs and
    batch size (the budget) stay the suite's. Transformer bodies get ``settings`` unchanged."""
    own = family_defaults(body)
    return {k: v for k, v in settings.items() if FAMILY_SETTINGS.get(k) not in own}


def family_defaults(body: str) -> dict[str, Any]:
    """The automatic settings ``body``'s family sets for itself (its ``Body.auto_*`` that are set), e.g.
    ``{"tokens": 3136, "lr": 1e-3, "steps": 600}`` for EfficientNet and ``{}`` for transformer bodies. They are
    part of a ``defaults:`` cell's key, so that changing them reruns the family's cells."""
    from xmodal.model.bodies import FAMILIES, resolve_body

    family = FAMILIES[resolve_body(body).family]
    own = {"tokens": family.auto_tokens, "lr": family.auto_lr, "steps": family.auto_steps}
    return {k: v for k, v in own.items() if v is not None}


# ------------------------------------------------------------------ the suite's methods
#: the method that runs the task's expert baseline (:mod:`xmodal.experiments.peers`) instead of a strategy
PEER = "peer"
#: the references xmodal is held against in the head-to-head: the expert and a randomly initialised body
REFERENCES = (PEER, "scratch")
DEFAULT_METHODS = ("orca", "mona", "finetune", "scratch", PEER)
#: the validation protocol of every xmodal cell: this share of the training data scores the run, then the
#: model is refit on all of it (the test split is never used for a choice)
VALIDATION = 0.2
#: a method ``tuned:<strategy>`` runs ``<strategy>`` with the settings tuned (:func:`xmodal.tune`) on the
#: task's training data, from the automatic defaults
TUNED = "tuned:"
#: a method ``defaults:<strategy>`` runs ``<strategy>`` at the automatic settings (:mod:`xmodal.defaults`,
#: and the body family's own token grid and lr), as a plain ``xmodal fit`` would: not the task's hand-set ones
DEFAULTS = "defaults:"
#: derived methods: per (task, seed), the candidate with the better validation score (test value reported)
CHOICES = {"auto": ("orca", "finetune"), "tuned:auto": ("tuned:orca", "tuned:finetune"),
           "defaults:auto": ("defaults:orca", "defaults:finetune")}


def strategy_name(method: str) -> str:
    """The strategy a method runs (``tuned:orca`` → ``orca``, ``defaults:orca`` → ``orca``)."""
    for prefix in (TUNED, DEFAULTS):
        if method.startswith(prefix):
            return method[len(prefix):]
    return method


def transfers(method: str) -> bool:
    """Whether a method transfers a pretrained body: a strategy whose mode starts from the pretrained
    weights (not the peer, not ``scratch``); a validation choice (:data:`CHOICES`) when one of its candidates does."""
    from xmodal.strategies import get_strategy
    from xmodal.train.modes import get_mode

    if method in CHOICES:
        return any(transfers(c) for c in CHOICES[method])
    return method != PEER and get_mode(get_strategy(strategy_name(method)).mode).pretrained_body
