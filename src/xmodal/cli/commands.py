"""The commands other than ``fit``: tune, compare, bench, predict, evaluate and the listings."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.cli.common import (
    check_model_folder,
    check_out,
    named_labels,
    print_tuning,
    read_data,
    read_inputs,
    settings_of,
    table_encoding,
    tune_kwargs,
)
from xmodal.errors import XmodalError


def cmd_bench(args: argparse.Namespace) -> int:
    """Run (or resume) the benchmark suite and print where the results are."""
    from xmodal.experiments.suite import QUICK_METHODS, SUITE, get_task, suite_tasks

    if args.list:
        for t in SUITE.values():
            print(f"{t.name:20s} {t.modality:20s} peer={t.peer:11s} quick={'yes' if t.quick else 'no':3s} {t.settings}")
        return 0
    if args.tasks:
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
        for t in tasks:
            get_task(t)  # an unknown task stops here, before torch loads
    else:
        tasks = [t.name for t in suite_tasks(quick=args.quick)]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = args.seeds
    if args.quick:
        methods = [m for m in methods if m in QUICK_METHODS] or methods
        seeds = seeds[:1]
    from xmodal.experiments.bench import run_bench

    t0 = time.perf_counter()
    res = run_bench(tasks, methods, seeds, args.out, body=args.body, progress=not args.quiet,
                    report_only=args.report, jobs=args.jobs, tune_budget=args.tune_budget,
                    tune_space=args.tune_space)
    print()
    print(Path(res.files["markdown"]).read_text())
    print(f"written: {res.files['markdown']}, {res.files['csv']}, {res.files['profile']}")
    print(f"total wall time: {time.perf_counter() - t0:.0f} s ({len(res.rows)} cells)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Run strategies side by side on one dataset; write compare.md / compare.csv."""
    from xmodal.config import SHARED
    from xmodal.strategies import get_strategy

    cfg = settings_of(args)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    for name in strategies:
        get_strategy(name)  # an unknown name stops here, before the data are read
    if args.out:
        check_out(Path(args.out))
    ds = read_data(args.data, args, cfg.task, cfg.spatial_dims)

    from xmodal.experiments.compare import compare

    out = Path(args.out) if args.out else Path("runs") / f"compare-{ds.name}"
    print(ds.summary())
    settings = cfg.replace(task=ds.task).to_dict()
    params = {k: settings[k] for k in SHARED}
    res = compare(ds, strategies, args.seeds, params, out, probe=not args.no_probe, probe_size=args.probe_size,
                  progress=True)
    print()
    print(Path(res.files["markdown"]).read_text())
    print(f"written: {res.files['markdown']}, {res.files['csv']}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune the settings on DATA's training split (ASHA); write the trials, plots and best_config.yaml."""
    cfg = settings_of(args)
    kwargs = tune_kwargs(args)
    if args.out:
        check_out(Path(args.out))
    ds = read_data(args.data, args, cfg.task, cfg.spatial_dims)

    from xmodal.tuning import tune  # loads torch and Optuna: after every cheap check
    out = Path(args.out) if args.out else Path("runs") / f"tune-{ds.name}"
    print(ds.summary())
    print(f"tuning on the training split only ({len(ds.X_train)} samples, {cfg.validation:g} held out for "
          f"validation); folder {out}")
    res = tune(ds.fit_inputs(ds.X_train), named_labels(ds, ds.y_train), cfg.replace(task=ds.task), out=out,
               progress=not args.quiet, **kwargs)
    print_tuning(res)
    print(f"next: xmodal fit {args.data} --config {res.files['best_config']}")
    return 0


def _hint_target_column(X: np.ndarray, est: Any, args: argparse.Namespace) -> None:
    """A CSV with exactly one column more than the model's features most likely still holds the target:
    say so, instead of the generic layout error."""
    shape = tuple(est.model_.spec.sample_shape)
    is_csv = Path(args.data).suffix.lower() in (".csv", ".tsv", ".txt")
    if is_csv and args.target is None and X.ndim == 2 and len(shape) == 2 and X.shape[1] == shape[0] * shape[1] + 1:
        raise XmodalError(
            f"{args.data!r} has {X.shape[1]} columns but the model takes {shape[1]} features; if one column is "
            "the target, name it with --target (name or index) so that it is dropped"
        )


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict with a saved model."""
    check_model_folder(args.model)
    from xmodal.estimator import load

    est = load(args.model, device=args.device)
    X = read_inputs(args.data, args.target, table_encoding(args.model))
    _hint_target_column(X, est, args)
    pred = est.predict(X)
    out = Path(args.out)
    if out.suffix.lower() == ".csv":
        flat = pred.reshape(len(pred), -1)
        np.savetxt(out, flat, delimiter=",", fmt="%s" if flat.dtype.kind in "US" else "%.6g")
    else:
        np.save(out, pred)
    if args.proba:
        proba = est.predict_proba(X)
        np.save(out.with_name(out.stem + "_proba.npy"), proba)
        if getattr(est, "classes_", None) is not None:
            print(f"probability columns (classes in order): {est.classes_.tolist()[:50]}")
    print(f"wrote {len(pred)} predictions of shape {pred.shape[1:]} to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a saved model on labelled data (the test split of DATA)."""
    check_model_folder(args.model)
    from xmodal.estimator import load

    est = load(args.model, device=args.device)
    args.encoding = table_encoding(args.model)
    ds = read_data(args.data, args, est.task_, est.spatial_dims)
    if ds.X_test is not None:
        X, y = ds.fit_inputs(ds.X_test), ds.y_test
        note = f"scored the test split of {args.data}: {len(ds.X_test)} rows"
    else:
        X, y = ds.fit_inputs(ds.X_train), ds.y_train
        note = (f"warning: {args.data} has no test split, so all its {len(ds.X_train)} rows were scored; if the "
                "model was fitted on these rows the score is a training score, not a test score (pass held-out "
                "data: an .npz with X_test/y_test, or a CSV of new rows)")
    if getattr(est, "classes_", None) is not None and est.classes_.dtype.kind in "US":
        y = named_labels(ds, y)  # a model fitted on class names is scored on names
    from xmodal.evaluate import metrics_for

    names = args.metrics.split(",") if args.metrics else metrics_for(est.task_)  # fit's metric set
    result = est.evaluate(X, y, names)
    print(note, file=sys.stderr)
    print(json.dumps(result, indent=1))
    return 0


def cmd_bodies(args: argparse.Namespace) -> int:
    """List bodies and whether their weights are present here."""
    from rich.console import Console
    from rich.table import Table

    from xmodal.model.bodies import body_status

    table = Table(title="xmodal bodies")
    for col in ("name", "available", "description"):
        table.add_column(col)
    for name, ok, note, desc in body_status():
        table.add_row(name, ("yes" if ok else "no") + (f" ({note})" if note else ""), desc)
    Console().print(table)
    print("Any BERT/RoBERTa/MPNet/ViT/Swin hub id or local transformers folder also works as --body.")
    return 0


def cmd_select_body(args: argparse.Namespace) -> int:
    """Rank candidate bodies on DATA's training split: a short stage 2 and a linear probe each."""
    cfg = settings_of(args)
    bodies = [b.strip() for b in args.bodies.split(",") if b.strip()] if args.bodies else None
    ds = read_data(args.data, args, cfg.task, cfg.spatial_dims)

    from xmodal.estimator.body_selection import select_body  # loads torch: after every cheap check

    print(ds.summary())
    sel = select_body(ds.fit_inputs(ds.X_train), named_labels(ds, ds.y_train), bodies, cfg.replace(task=ds.task),
                      subsample=args.subsample, align_epochs=cfg.align_epochs or 5, rule=args.rule, rung=args.rung,
                      progress=not args.quiet)
    print()
    print(sel.to_markdown())
    print(f"pick: {sel.pick} (choosing took {sel.seconds:.0f} s); fit with: xmodal fit {args.data} --body {sel.pick}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    """List built-in datasets."""
    from rich.console import Console
    from rich.table import Table

    from xmodal.data.builtin import list_datasets

    table = Table(title="built-in datasets (offline)")
    for col in ("name", "available", "description"):
        table.add_column(col)
    for name, desc, ok in list_datasets():
        table.add_row(name, "yes" if ok else "no", desc)
    Console().print(table)
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    """List the transfer strategies: name, stage-2 aligner, stage-3 mode, embedder init, description."""
    from rich.console import Console
    from rich.table import Table

    from xmodal.strategies import list_strategies

    table = Table(title="xmodal strategies (xmodal fit --strategy NAME)")
    for col in ("name", "align", "mode", "embedder init"):
        table.add_column(col, no_wrap=True)
    table.add_column("description")
    for s in list_strategies():
        table.add_row(s.name, s.align, s.mode, s.embedder_init, s.description)
    Console().print(table)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Fine-tune the default body on a real task next to the train-from-scratch baseline."""
    from xmodal.demo import run_demo

    run_demo(dataset=args.dataset, epochs=args.epochs, out=Path(args.out) if args.out else None,
             verbose=not args.quiet)
    return 0
