"""How scikit-learn's ``check_estimator`` goes for the estimator: checks run, passed, expected failures, skipped.

Uses the test suite's fast configuration and documented skips (``tests/test_sklearn_api.py``). Run from
the repository root:

    python benchmarks/sklearn_checks.py
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from tests.test_sklearn_api import FAST, SKIPPED  # noqa: E402
from xmodal import CrossModalEstimator  # noqa: E402


def main() -> None:
    print("| task | checks | passed | expected failures (documented skips) | skipped by scikit-learn | failed |")
    print("|---|---|---|---|---|---|")
    for task in ("classification", "regression"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = check_estimator(CrossModalEstimator(**FAST, task=task), expected_failed_checks=SKIPPED,
                                  on_fail=None)
        c = Counter(r["status"] for r in res)
        print(f"| {task} | {len(res)} | {c['passed']} | {c['xfail']} | {c['skipped']} | {c['failed']} |")


if __name__ == "__main__":
    main()
