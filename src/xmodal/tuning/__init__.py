"""Hyper-parameter search (ORCA's ASHA stage) on Optuna: :func:`tune`, its search space and storages.

* :mod:`xmodal.tuning.space` — which settings a trial varies (:data:`SPACES`: ``local``, the default, the automatic
  settings' neighbourhood; ``orca``, ORCA's + tokens, epochs, warm-up; ``local-floor``, ``local`` with the
  automatic epochs as a floor);
* :mod:`xmodal.tuning.storage` — journal file (default) or PostgreSQL shared by many workers;
* :mod:`xmodal.tuning.search` — the search loop (:func:`tune`);
* :mod:`xmodal.tuning.report` — trials table, plots, best configuration, pruning savings.

The search loop (and with it torch and Optuna) loads on first use of ``tune``, ``study_key``,
``TuneResult``, ``PRUNERS`` or ``parse_duration``; the space and :data:`DEFAULT_BUDGET` are cheap to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xmodal.tuning.space import (
    DEFAULT_BUDGET,
    DEFAULT_SPACE,
    DEFAULT_SPACE_NAME,
    FLOOR_SPACE,
    LOCAL_SPACE,
    ORCA_SPACE,
    SPACES,
    SearchSpace,
    resolve_space,
)

if TYPE_CHECKING:
    from xmodal.tuning.search import PRUNERS, TuneResult, parse_duration, study_key, tune

__all__ = ["DEFAULT_BUDGET", "tune", "study_key", "TuneResult", "SearchSpace", "DEFAULT_SPACE", "DEFAULT_SPACE_NAME",
           "ORCA_SPACE", "LOCAL_SPACE", "FLOOR_SPACE", "SPACES", "resolve_space", "PRUNERS", "parse_duration"]

_LAZY = ("tune", "study_key", "TuneResult", "PRUNERS", "parse_duration")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module("xmodal.tuning.search"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xmodal.tuning' has no attribute {name!r}")
