"""The argument parser of every command, and :func:`main`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from xmodal.cli.commands import (
    cmd_bench,
    cmd_bodies,
    cmd_compare,
    cmd_datasets,
    cmd_demo,
    cmd_evaluate,
    cmd_predict,
    cmd_select_body,
    cmd_strategies,
    cmd_tune,
)
from xmodal.cli.common import DATA_HELP, int_list
from xmodal.cli.fit import cmd_fit
from xmodal.errors import XmodalError


def _add_settings(p: argparse.ArgumentParser, per_run: bool = True) -> None:
    """The run settings (:class:`xmodal.config.RunConfig`) as options, plus ``--config FILE``;
    ``per_run=False`` leaves out what varies per cell of a comparison (strategy, align, mode, seed)."""
    from xmodal.config import PER_CELL, add_cli_options

    p.add_argument("--config", metavar="FILE",
                   help="a run configuration (.yaml/.json, e.g. a tuner's best_config.yaml); options given on the "
                   "command line override it")
    add_cli_options(p, exclude=() if per_run else PER_CELL)


def _add_tune_args(p: argparse.ArgumentParser, in_fit: bool) -> None:
    """The options of the hyper-parameter search (``xmodal tune``, ``xmodal fit --tune``)."""
    from xmodal.tuning import DEFAULT_BUDGET, DEFAULT_SPACE_NAME

    g = p.add_argument_group("tuning (ASHA on the validation split)")
    if in_fit:
        g.add_argument("--tune", action="store_true",
                       help="tune the settings first (RUN/tune/), then fit with the best configuration")
    g.add_argument("--budget", default=DEFAULT_BUDGET,
                   help="stop tuning after this wall time, e.g. 20m, 1h, 300 (seconds); 'none': trials only "
                   f"(default: {DEFAULT_BUDGET})")
    g.add_argument("--trials", type=int, default=None, help="stop when the study holds this many trials "
                   "(all workers together; default: no limit)")
    g.add_argument("--space", metavar="NAME|FILE", default=DEFAULT_SPACE_NAME,
                   help="search space: 'local' (default: within 10x of the automatic lr, Adam/AdamW, tokens and "
                   "epochs halved or doubled), 'orca' (ORCA's wide space plus max_tokens, epochs and warmup_ratio; "
                   "for long budgets), 'local-floor' ('local' without halved epochs) or a .yaml/.json space file (see "
                   "xmodal.tuning.space)")
    g.add_argument("--storage", help="study storage: a journal file (default: <tuning folder>/study.journal) or "
                   "postgresql://user@host/db to share one study between workers on several machines")
    g.add_argument("--study", default=None, help="study name in --storage (default: xmodal)")
    g.add_argument("--pruner", default="asha", choices=["asha", "hyperband", "none"], help="default: asha")


def _add_csv_args(p: argparse.ArgumentParser) -> None:
    """The options of a command that reads a labelled CSV (fit, compare)."""
    p.add_argument("--target", help="CSV: target column name or index (default: last column)")
    p.add_argument("--test", help="CSV: a separate test file with the same columns")
    p.add_argument("--test-size", type=float, default=None, help="CSV without --test: hold out this fraction")
    p.add_argument("--impute", choices=["none", "median"], default="none",
                   help="CSV: fill missing numeric cells with the training column's median (default: none = error)")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``error: …``, exit status 2 (argparse prints the usage too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``xmodal`` argument parser."""
    parser = _Parser(
        prog="xmodal",
        description="Adapt pretrained transformers to tasks in other modalities (ORCA/MoNA align-then-refine).",
        epilog="Start with `xmodal demo`; then `xmodal fit gunpoint --epochs 30 --max-tokens 64`.",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for add in (_add_fit, _add_tune, _add_compare, _add_bench, _add_predict, _add_evaluate, _add_select_body,
                _add_listings):
        add(sub)
    return parser


def _add_fit(sub: Any) -> None:
    p = sub.add_parser("fit", help="fit a model on a dataset and write a run folder",
                       description="Build, align and fine-tune a model on DATA; writes RUN/config.json, "
                       "RUN/metrics.json, RUN/log.jsonl, RUN/model/ and RUN/checkpoints/ (rerun with "
                       "--resume to continue an interrupted run).")
    _add_data_run(p, "run folder (default: runs/<dataset>-<strategy>-<time>)", in_fit=True)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, with the run's own settings")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep RUN/checkpoints after the run succeeds (default: removed; the model is in RUN/model)")
    p.set_defaults(func=cmd_fit)


def _add_data_run(p: argparse.ArgumentParser, out_help: str, in_fit: bool) -> None:
    """DATA, --out, the CSV options, the run settings and the tuning options (``fit`` and ``tune``)."""
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("--out", help=out_help)
    _add_csv_args(p)
    _add_settings(p)
    _add_tune_args(p, in_fit=in_fit)


def _add_tune(sub: Any) -> None:
    p = sub.add_parser("tune", help="tune the settings on DATA's training split (ASHA, Optuna), resumable",
                       description="Search the run settings with ASHA on a validation split of DATA's training "
                       "data (never its test split). Writes OUT/trials.csv, OUT/trials.md, OUT/history.png, "
                       "OUT/importance.png, OUT/tune.json and OUT/best_config.yaml (use it with `xmodal fit "
                       "--config`). The study lives in OUT/study.journal: rerun the same command to continue "
                       "it, or give --storage postgresql://… --study NAME to several workers to share one study.")
    _add_data_run(p, "tuning folder (default: runs/tune-<dataset>)", in_fit=False)
    p.set_defaults(func=cmd_tune)


def _add_compare(sub: Any) -> None:
    p = sub.add_parser("compare", help="run transfer strategies side by side (mean ± std over seeds)",
                       description="Fit every strategy with every seed on DATA with the same settings; write "
                       "OUT/compare.md and OUT/compare.csv (test metric, stage times, final OTDD, source probe). "
                       "Finished cells are kept in OUT/cells and skipped when rerun with the same settings.")
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("--strategies", default="finetune,orca,mona",
                   help="comma-separated strategy names (see `xmodal strategies`; default: finetune,orca,mona)")
    p.add_argument("--seeds", type=int_list, default=[0, 1, 2], help="comma-separated seeds (default: 0,1,2)")
    p.add_argument("--out", help="output folder (default: runs/compare-<dataset>)")
    p.add_argument("--no-probe", action="store_true", help="skip the source-knowledge probe")
    p.add_argument("--probe-size", type=int, default=500, help="proxy samples of the probe (default 500)")
    _add_csv_args(p)
    _add_settings(p, per_run=False)
    p.set_defaults(func=cmd_compare)


def _add_bench(sub: Any) -> None:
    from xmodal.tuning import DEFAULT_BUDGET, DEFAULT_SPACE_NAME, SPACES

    p = sub.add_parser("bench", help="run the benchmark suite (tasks × methods × seeds), resumable",
                       description="Run the suite's tasks with xmodal strategies and each task's expert peer; "
                       "write OUT/RESULTS.md, OUT/results.csv and OUT/performance_profile.png. Finished cells "
                       "(OUT/cells) are skipped when rerun with the same settings.")
    p.add_argument("--tasks", default=None, help="comma-separated suite tasks (default: all; see --list)")
    p.add_argument("--methods", default="auto,mona,scratch,peer",
                   help="comma-separated strategies, 'peer', 'auto' (orca and finetune, the one with the better "
                   "validation score kept per seed), 'tuned:<strategy>' and 'tuned:auto' (settings tuned once per "
                   "task, shared by every seed; see --tune-budget), 'defaults:<strategy>' and 'defaults:auto' "
                   "(the automatic settings of a plain `xmodal fit`, not the task's hand-set ones) "
                   "(default: auto,mona,scratch,peer)")
    p.add_argument("--tune-budget", default=DEFAULT_BUDGET, help="tuning budget per task of tuned: "
                   f"methods (default: {DEFAULT_BUDGET})")
    p.add_argument("--tune-space", default=DEFAULT_SPACE_NAME, help="named search space of those studies: "
                   f"{', '.join(SPACES.choices())} (default: {DEFAULT_SPACE_NAME}; see xmodal.tuning.space); "
                   "studies go to OUT/tune/ for orca and OUT/tune-<space>/ for another space")
    p.add_argument("--seeds", type=int_list, default=[0, 1, 2], help="comma-separated seeds (default: 0,1,2)")
    p.add_argument("--quick", action="store_true",
                   help="the quick subset: fewer tasks, auto (orca, finetune) and peer, 1 seed")
    p.add_argument("--body", default="minilm-l6", help="body of every xmodal strategy (default: minilm-l6)")
    p.add_argument("--out", default="bench", help="output folder (default: bench)")
    p.add_argument("--list", action="store_true", help="list the suite's tasks and exit")
    p.add_argument("--jobs", type=int, default=1,
                   help="cells run at once, each process with 1/JOBS of the CPU threads (default: 1)")
    p.add_argument("--report", action="store_true",
                   help="run nothing: write OUT/RESULTS.md etc. from the cells already finished in OUT")
    p.set_defaults(func=cmd_bench)


def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict with a saved model")
    p.add_argument("model", help="a saved model folder (RUN/model)")
    p.add_argument("data", help=".npy array, .npz (key X, X_test or X_train) or .csv of feature columns")
    p.add_argument("--out", default="predictions.npy", help="output .npy (or .csv) file")
    p.add_argument("--proba", action="store_true", help="also write class probabilities to <out>_proba.npy")
    p.add_argument("--target", help="CSV: a target column to drop before predicting")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_predict)


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="score a saved model on labelled data")
    p.add_argument("model", help="a saved model folder (RUN/model)")
    p.add_argument("data", help=DATA_HELP + "; its test split is used when it has one")
    p.add_argument("--metrics", help="comma-separated metrics (default: the task's)")
    p.add_argument("--target", help="CSV: target column")
    p.add_argument("--test", help=argparse.SUPPRESS)
    p.add_argument("--test-size", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_evaluate)


def _add_select_body(sub: Any) -> None:
    p = sub.add_parser("select-body", help="rank bodies for DATA: a short stage 2 and a linear probe each",
                       description="For each candidate body, a short stage 2 (ORCA's OTDD) on a subsample of "
                       "DATA's training split, then a linear probe (the head alone, fitted in closed form on the "
                       "body's frozen features) scored on held-out training rows (--validation share). A table "
                       "gives the final OTDD divided by the body's source scale (comparable within a family, not "
                       "across: see xmodal.estimator.body_selection), the probe's validation score, the time it "
                       "took and an estimate of one fine-tuning run. The pick is the cheapest body to fine-tune whose "
                       "probe score is within one bootstrap standard error of the best (--rule rung: a short "
                       "fine-tuning rung instead; --rule otdd: the lowest OTDD / scale). --align-epochs "
                       "sets the short stage 2 (default here: 5). The test split is never read.")
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("--bodies", default=None,
                   help="comma-separated candidates (default: minilm-l6, efficientnet-lite0, mpnet-base where "
                   "installed)")
    p.add_argument("--subsample", type=int, default=500,
                   help="training rows that run stage 2 and the rung, and held-out rows that score it (default 500)")
    p.add_argument("--rule", default="probe", choices=("probe", "rung", "otdd"),
                   help="probe: validation score of a linear probe on the aligned body's features (default); "
                   "rung: validation score after a short fine-tuning rung (both pick the cheapest body within one "
                   "standard error of the best score); otdd: lowest final OTDD / source scale")
    p.add_argument("--rung", type=float, default=0.05,
                   help="the rung's optimiser steps as a share of one fine-tuning run's (default 0.05)")
    _add_csv_args(p)
    _add_settings(p)
    p.set_defaults(func=cmd_select_body)


def _add_listings(sub: Any) -> None:
    p = sub.add_parser("bodies", help="list bodies and whether their weights are installed")
    p.set_defaults(func=cmd_bodies)
    p = sub.add_parser("datasets", help="list built-in datasets")
    p.set_defaults(func=cmd_datasets)
    p = sub.add_parser("strategies", help="list the transfer strategies (--strategy of fit)")
    p.set_defaults(func=cmd_strategies)

    p = sub.add_parser("demo", help="orca vs finetune vs scratch on GunPoint with MiniLM (CPU, minutes)")
    p.add_argument("--dataset", default="gunpoint")
    p.add_argument("--epochs", type=int, default=None, help="override the demo's epochs")
    p.add_argument("--out", default=None, help="also write the demo's table as JSON here")
    p.set_defaults(func=cmd_demo)


#: the commands that run data-parallel under torchrun (the others would run N copies writing the same files)
DATA_PARALLEL = ("fit",)


def _check_launcher(args: argparse.Namespace) -> None:
    """Refuse a command that is not data-parallel when torchrun started several processes."""
    import os

    processes = os.environ.get("WORLD_SIZE", "1")
    command = getattr(args, "command", None)
    if processes.isdigit() and int(processes) > 1 and command is not None and command not in DATA_PARALLEL:
        raise XmodalError(f"`xmodal {command}` runs in one process, but torchrun started {processes}; run it "
                          f"without torchrun (only {', '.join(DATA_PARALLEL)} runs data-parallel)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xmodal`` command."""
    args = build_parser().parse_args(argv)
    try:
        _check_launcher(args)
        return int(args.func(args) or 0)
    except XmodalError as exc:
        # one line, whatever the message quotes (a YAML parser's or a library's multi-line reason)
        print("error: " + " ".join(part.strip() for part in str(exc).splitlines() if part.strip()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun `xmodal fit ... --out RUN --resume` to continue from the last epoch",
              file=sys.stderr)
        return 130
