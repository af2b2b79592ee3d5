"""Experiments built on the estimator: the strategy comparison (:mod:`xmodal.experiments.compare`), the
benchmark suite (:mod:`~xmodal.experiments.suite`, :mod:`~xmodal.experiments.bench`) and its expert peers
(:mod:`~xmodal.experiments.peers`). The suite's task list imports nothing heavy; the rest loads torch."""
