"""Hyper-parameter search (ORCA's ASHA stage) on Optuna: :func:`tune`, its search space and storages.

* :mod:`xmodal.tuning.space` — which settings a trial varies (:data:`DEFAULT_SPACE`: ORCA's + tokens, epochs, warm-up);
* :mod:`xmodal.tuning.storage` — journal file (default) or PostgreSQL shared by many workers;
* :mod:`xmodal.tuning.search` — the search loop (:func:`tune`);
* :mod:`xmodal.tuning.report` — trials table, plots, best configuration, pruning savings.
"""

from xmodal.tuning.search import DEFAULT_BUDGET, PRUNERS, TuneResult, parse_duration, tune
from xmodal.tuning.space import DEFAULT_SPACE, SearchSpace

__all__ = ["DEFAULT_BUDGET", "tune", "TuneResult", "SearchSpace", "DEFAULT_SPACE", "PRUNERS", "parse_duration"]
