"""What a plain ``xmodal fit DATA`` gives: every task fitted with the automatic settings only.

For each task: the settings :mod:`xmodal.defaults` resolved, the validation score, the test score
next to the majority-class share of the test set (classification) or the mean predictor's error
(regression), whether the model learned (test score beyond that baseline), and the fit's wall time.
Tasks are built-in dataset names (``xmodal datasets``) or ``ucr:<Problem>`` for a UCR/UEA set that
aeon ships and the suite does not use (e.g. ``ucr:ArrowHead``, ``ucr:OSULeaf``).

    python benchmarks/default_settings.py --tasks acsf1 credit-g ucr:ArrowHead --strategy auto
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from xmodal import CrossModalEstimator
from xmodal.data.builtin import load_dataset
from xmodal.data.builtin.series import _aeon_classification


def load(name: str):
    if name.startswith("ucr:"):
        problem = name[4:]
        return _aeon_classification(problem.lower(), problem, f"UCR/UEA {problem} (aeon's bundled copy)")
    return load_dataset(name)


def baseline(ds) -> float | None:
    """Majority share of the test set (classes of the training set), or the mean predictor's relative L2."""
    if ds.task == "classification":
        major = np.bincount(np.asarray(ds.y_train)).argmax()
        return float((np.asarray(ds.y_test) == major).mean())
    if ds.task.endswith("regression"):
        y, mean = np.asarray(ds.y_test, dtype=float), np.asarray(ds.y_train, dtype=float).mean(axis=0)
        return float(np.mean(np.linalg.norm((y - mean).reshape(len(y), -1), axis=1)
                             / np.linalg.norm(y.reshape(len(y), -1), axis=1)))
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", required=True)
    ap.add_argument("--strategy", default=None, help="default: the estimator's (orca)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--body", default="minilm-l6")
    args = ap.parse_args()
    print("| task | N train | strategy | tokens | epochs | batch | lr | validation | test | baseline | learned | "
          "fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.tasks:
        ds = load(name)
        est = CrossModalEstimator(body=args.body, strategy=args.strategy, seed=args.seed, task=ds.task, verbose=False)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(ds.fit_inputs(ds.X_train), ds.y_train)
        seconds = time.perf_counter() - t0
        metric = est.model_.kind.default_metric
        test = est.score(ds.fit_inputs(ds.X_test), ds.y_test, metric=est.model_.kind.default_metric)
        base = baseline(ds)
        higher = metric != "rel_l2" and metric != "mse"
        learned = "–" if base is None else ("yes" if (test > base + 1e-9 if higher else test < base - 1e-9) else "NO")
        s = est.settings_
        warned = " (warned)" if any("not learned" in str(w.message) for w in caught) else ""
        print(f"| {name} | {len(ds.X_train)} | {est.strategy_} | {s.max_tokens} | {s.epochs} | {s.batch_size} | "
              f"{s.lr:g} | {est.validation_score_:.4f} | {metric} {test:.4f} | "
              f"{'–' if base is None else f'{base:.4f}'} | {learned}{warned} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
