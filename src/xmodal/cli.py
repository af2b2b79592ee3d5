"""Command-line interface: thin wrappers that parse arguments and call the Python API.

``xmodal fit``, ``compare``, ``bench``, ``predict``, ``evaluate``, ``bodies``, ``datasets``, ``strategies``, ``demo``;
``xmodal CMD --help`` explains each. Every user-facing problem surfaces as one line ``error: …`` and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.errors import XmodalError
from xmodal.files import atomic_write_text

__all__ = ["main", "build_parser"]

_DATA_HELP = (
    "a built-in dataset name (see `xmodal datasets`), an .npz file with X_train, y_train "
    "[, X_test, y_test], or a .csv file of tabular rows (target = last column unless --target)"
)


#: written next to a model fitted on a CSV: the training table's feature encoding (text columns' categories)
TABLE_ENCODING = "table_encoding.json"


def _named_labels(ds: Any, y: np.ndarray | None) -> np.ndarray | None:
    """Class indices → the dataset's class names (``meta["classes"]``: a CSV's or .npz's text labels, a
    built-in set's names) for single-label classification, so that the fitted model's ``classes_``, and
    so ``predict``, speak the names; other targets, and data without names, unchanged."""
    names = ds.meta.get("classes")
    if y is None or not names or ds.task != "classification" or np.ndim(y) != 1:
        return y
    return np.asarray([str(n) for n in names])[np.asarray(y)]


def _table_encoding(model_dir: str) -> dict | None:
    path = Path(model_dir) / TABLE_ENCODING
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise XmodalError(f"cannot read {path} ({exc}); refit the model or restore the file") from exc


def _read_data(source: str, args: argparse.Namespace, task: str = "auto", spatial_dims: int | None = None) -> Any:
    from xmodal.data.builtin import load_dataset
    from xmodal.data.readers import read_csv, read_npz

    path = Path(source)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path, spatial_dims=spatial_dims, task=task)
    if suffix in (".csv", ".tsv", ".txt"):
        target: str | int = args.target if args.target is not None else -1
        if isinstance(target, str) and target.lstrip("-").isdigit():
            target = int(target)
        return read_csv(path, target=target, test_path=args.test, task=task, test_size=args.test_size,
                        encoding=getattr(args, "encoding", None), impute=getattr(args, "impute", "none"))
    if path.exists():
        raise XmodalError(f"cannot read {source}: expected an .npz or .csv file")
    if suffix:
        raise XmodalError(f"file {source} does not exist (and it is not a built-in dataset name)")
    return load_dataset(source)  # unknown names raise with the list of built-in datasets


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
    from xmodal.tuning import DEFAULT_BUDGET

    g = p.add_argument_group("tuning (ASHA on the validation split)")
    if in_fit:
        g.add_argument("--tune", action="store_true",
                       help="tune the settings first (RUN/tune/), then fit with the best configuration")
    g.add_argument("--budget", default=DEFAULT_BUDGET,
                   help="stop tuning after this wall time, e.g. 20m, 1h, 300 (seconds); 'none': trials only "
                   f"(default: {DEFAULT_BUDGET})")
    g.add_argument("--trials", type=int, default=None, help="stop when the study holds this many trials "
                   "(all workers together; default: no limit)")
    g.add_argument("--space", metavar="FILE", help="search space file (.yaml/.json; default: ORCA's space plus "
                   "max_tokens, epochs and warmup_ratio, see xmodal.tuning.space)")
    g.add_argument("--storage", help="study storage: a journal file (default: <tuning folder>/study.journal) or "
                   "postgresql://user@host/db to share one study between workers on several machines")
    g.add_argument("--study", default=None, help="study name in --storage (default: xmodal)")
    g.add_argument("--pruner", default="asha", choices=["asha", "hyperband", "none"], help="default: asha")


def _tune_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from xmodal.tuning import SearchSpace

    budget = None if str(args.budget).strip().lower() in ("none", "0") else args.budget
    return dict(budget=budget, n_trials=args.trials, storage=args.storage, study_name=args.study,
                space=SearchSpace.from_file(args.space) if args.space else None, pruner=args.pruner)


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def cmd_bench(args: argparse.Namespace) -> int:
    """Run (or resume) the benchmark suite and print where the results are."""
    from xmodal.experiments.suite import SUITE, get_task, suite_tasks

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
        methods = [m for m in methods if m in ("auto", "orca", "finetune", "peer")] or methods
        seeds = seeds[:1]
    from xmodal.experiments.bench import run_bench

    t0 = time.perf_counter()
    res = run_bench(tasks, methods, seeds, args.out, body=args.body, progress=not args.quiet,
                    report_only=args.report, jobs=args.jobs, tune_budget=args.tune_budget)
    print()
    print(Path(res.files["markdown"]).read_text())
    print(f"written: {res.files['markdown']}, {res.files['csv']}, {res.files['profile']}")
    print(f"total wall time: {time.perf_counter() - t0:.0f} s ({len(res.rows)} cells)")
    return 0


def _settings(args: argparse.Namespace) -> Any:
    """The run configuration of the command line: defaults ← ``--config`` file ← options given (validated)."""
    from xmodal.config import config_from_cli
    from xmodal.strategies import AUTO, get_strategy

    cfg = config_from_cli(args, verbose=not args.quiet)
    for name in cfg.candidates if cfg.strategy == AUTO else [cfg.strategy] if cfg.strategy else []:
        get_strategy(name)  # an unknown name stops here, before the data are read
    return cfg


def cmd_compare(args: argparse.Namespace) -> int:
    """Run strategies side by side on one dataset; write compare.md / compare.csv."""
    from xmodal.config import SHARED
    from xmodal.strategies import get_strategy

    cfg = _settings(args)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    for name in strategies:
        get_strategy(name)  # an unknown name stops here, before the data are read
    if args.out:
        _check_out(Path(args.out))
    ds = _read_data(args.data, args, cfg.task, cfg.spatial_dims)

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
    cfg = _settings(args)
    kwargs = _tune_kwargs(args)
    if args.out:
        _check_out(Path(args.out))
    ds = _read_data(args.data, args, cfg.task, cfg.spatial_dims)

    from xmodal.tuning import tune  # loads torch and Optuna: after every cheap check
    out = Path(args.out) if args.out else Path("runs") / f"tune-{ds.name}"
    print(ds.summary())
    print(f"tuning on the training split only ({len(ds.X_train)} samples, {cfg.validation:g} held out for "
          f"validation); folder {out}")
    res = tune(ds.fit_inputs(ds.X_train), _named_labels(ds, ds.y_train), cfg.replace(task=ds.task), out=out,
               progress=not args.quiet, **kwargs)
    _print_tuning(res)
    print(f"next: xmodal fit {args.data} --config {res.files['best_config']}")
    return 0


def _print_tuning(res: Any) -> None:
    print(Path(res.files["trials_md"]).read_text())
    print(f"best validation {res.metric}: {res.best_value:.4f}; tuned settings: "
          + ", ".join(f"{k}={v}" for k, v in res.study.best_trial.user_attrs["settings"].items()))
    print("written: " + ", ".join(res.files.values()))


def _check_out(path: Path, what: str = "--out") -> None:
    """Refuse an output folder that is a file or sits where nothing can be written, before any work."""
    if path.exists() and not path.is_dir():
        raise XmodalError(f"{what} {path} is a file, not a folder; choose another path")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise XmodalError(f"{what} {path} cannot be written ({parent} is not a writable folder); choose another path")


def _data_fingerprints(ds: Any) -> dict[str, str | None]:
    from xmodal.data.fingerprint import fingerprint

    test = None if ds.X_test is None else fingerprint(ds.X_test, ds.y_test)
    return {"train": fingerprint(ds.X_train, ds.y_train), "test": test}


def _check_resume_data(run: Path, prints: dict[str, str | None], data: str) -> None:
    """``--resume`` continues a run only on the data it started with (``config.json``'s fingerprints)."""
    cfg_file = run / "config.json"
    if not cfg_file.is_file():
        return
    try:
        saved = json.loads(cfg_file.read_text()).get("data_fingerprint")
    except (OSError, ValueError, AttributeError) as exc:
        raise XmodalError(f"{cfg_file} is damaged ({exc}); delete the run folder {run} to start afresh") from None
    if not isinstance(saved, dict):
        return  # written before runs recorded their data
    for split in ("train", "test"):
        if saved.get(split) != prints[split]:
            raise XmodalError(
                f"--resume: the {split}ing data of {data!r} differ from those the run in {run} started with "
                f"(fingerprint {prints[split]} vs {saved.get(split)}); resume with the same data, or choose "
                "another --out"
            )


def _resume_settings(args: argparse.Namespace, run: Path) -> Any:
    """``--resume``: the run's own settings (``RUN/run_config.yaml``). Options given on the command line
    (or in ``--config``) that differ from them are refused, so a resume never changes what the run is;
    ``--device`` and ``--quiet`` may differ."""
    from xmodal.config import RunConfig, config_from_cli

    saved = RunConfig.load(run / "run_config.yaml")
    wanted = config_from_cli(args, base=saved, verbose=not args.quiet)
    if getattr(args, "config", None):
        file_cfg = RunConfig.load(args.config)
        wanted = wanted.replace(**{k: v for k, v in file_cfg.changed().items() if k not in vars(args)})
    have, want = saved.to_dict(), wanted.to_dict()
    diff = [f"{k}={want[k]!r} (the run has {have[k]!r})" for k in want
            if want[k] != have[k] and k not in ("device", "verbose")]
    if diff:
        raise XmodalError(f"--resume continues the run in {run} with its own settings (run_config.yaml), but "
                          f"{', '.join(diff)}; drop those options, or start a new run with another --out")
    return wanted


def _run_state(run: Path) -> str:
    """``"new"``, ``"finished"`` (a model and metrics), ``"failed"`` (marked by a failed run) or ``"started"``."""
    if (run / "metrics.json").is_file() and (run / "model").is_dir():
        return "finished"
    if (run / FAILED).is_file():
        return "failed"
    if (run / "checkpoints").exists() or (run / "run_config.yaml").exists():
        return "started"
    return "new"


def _refuse_or_report(run: Path, state: str, resume: bool) -> bool:
    """Refuse to start over a run folder that holds a run; ``True`` when ``--resume`` finds it finished."""
    if state == "finished":
        if resume:
            print(f"the run in {run} has already finished; nothing to resume (see {run / 'metrics.json'})")
            return True
        raise XmodalError(f"run folder {run} holds a finished run; choose another --out (or delete the folder)")
    if state in ("failed", "started") and not resume:
        why = ""
        if state == "failed":
            try:
                why = f" (it stopped: {json.loads((run / FAILED).read_text()).get('error', '?')})"
            except (OSError, ValueError):
                why = " (it stopped)"
        raise XmodalError(f"run folder {run} holds an unfinished run{why}; pass --resume to continue it from its "
                          "last checkpoint, or choose another --out (or delete the folder to start over)")
    return False


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit on DATA and write a run folder (after tuning the settings with --tune)."""
    given_out = Path(args.out) if args.out else None
    if args.resume and given_out is None:
        raise XmodalError("--resume needs --out RUN: the folder of the run to continue")
    if given_out is not None:
        _check_out(given_out)
    resumed = args.resume and (given_out / "run_config.yaml").is_file()
    cfg = _resume_settings(args, given_out) if resumed else _settings(args)
    tune_kwargs = _tune_kwargs(args) if args.tune and not resumed else None
    ds = _read_data(args.data, args, cfg.task, cfg.spatial_dims)
    cfg = cfg.replace(task=ds.task)

    from xmodal.estimator import CrossModalEstimator
    from xmodal.files import json_dumps, write_json
    from xmodal.runlock import RunLock

    est = CrossModalEstimator(**cfg.to_dict())
    strategy = est.resolve_strategy()  # a conflict with --align/--mode stops here, before anything is written
    shown = cfg.strategy if cfg.strategy == "auto" else strategy.name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run = given_out if given_out is not None else Path("runs") / f"{ds.name}-{shown}-{stamp}"
    prints = _data_fingerprints(ds)
    from xmodal.model.bodies import resolve_body
    from xmodal.runtime import resolve_device

    resolve_device(cfg.device)  # an absent GPU or body stops here, before the run folder is written
    resolve_body(cfg.body)
    with RunLock(run):
        state = _run_state(run)
        if args.resume:
            _check_resume_data(run, prints, args.data)
        if _refuse_or_report(run, state, args.resume):
            return 0
        print(ds.summary())
        if resumed:
            print(f"resuming the run in {run} with its own settings ({run / 'run_config.yaml'})")
        X_train, y_train = ds.fit_inputs(ds.X_train), _named_labels(ds, ds.y_train)
        log = _EpochLog(run / "log.jsonl", append=args.resume)
        try:
            if tune_kwargs is not None:
                from xmodal.tuning import tune

                res = tune(X_train, y_train, cfg, out=run / "tune", progress=not args.quiet, **tune_kwargs)
                _print_tuning(res)
                cfg = res.best_config
                est = CrossModalEstimator(**cfg.to_dict())
            if cfg.strategy == "auto":
                print(f"strategy: auto (chooses among {', '.join(cfg.candidates)} on {cfg.validation:g} of the "
                      "training data)")
            else:
                print(f"strategy: {strategy.name} (align={strategy.align}, mode={strategy.mode}, "
                      f"embedder init={strategy.embedder_init})")
            cfg.save(run / "run_config.yaml",
                     header=f"the settings of this run (xmodal fit {args.data} --config THIS)")
            # what runs, resolved: the strategy's name, aligner, mode and embedder init
            config = {"data": args.data, "dataset": ds.name, "data_fingerprint": prints, **est.get_params(),
                      **strategy.to_dict()}
            config["strategy"] = config.pop("name") if cfg.strategy != "auto" else "auto"
            write_json(run / "config.json", config)
            est.fit(X_train, y_train, checkpoint_dir=run / "checkpoints", on_epoch=log.write)
        except BaseException as exc:
            if state == "new" and not (run / "checkpoints").exists():  # refused before training: leave nothing
                for name in ("run_config.yaml", "config.json", "log.jsonl"):
                    (run / name).unlink(missing_ok=True)
            else:  # marked, so that a rerun knows to --resume; then re-raised as it was
                what = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
                write_json(run / FAILED, {"error": what.splitlines()[0][:500] if what else type(exc).__name__,
                                          "time": time.strftime("%Y-%m-%d %H:%M:%S")})
            raise
        finally:
            log.close()
        est.save(run / "model")
        if "encoding" in ds.meta:  # a CSV: predict/evaluate re-encode new tables with the training columns
            write_json(run / "model" / TABLE_ENCODING, ds.meta["encoding"])
        lines = [json_dumps({"stage": "align", **rec}) for rec in est.report_.align.get("history", [])]
        lines += [json_dumps({"stage": "finetune", **rec}) for run_ in est.report_.histories
                  for rec in run_]
        atomic_write_text(run / "log.jsonl", "".join(line + "\n" for line in lines))
        _plot_run(est, run, ds.name)
        metrics: dict[str, Any] = {"strategy": est.report_.strategy, "seconds": est.report_.seconds,
                                   "train_samples": len(ds.X_train), "settings": est.report_.settings,
                                   "validation": est.report_.validation}
        if "final_distance" in est.report_.align:
            metrics["align"] = {k: est.report_.align[k] for k in ("objective", "proxy", "initial_distance",
                                                                  "final_distance", "stopped_early")}
        if ds.X_test is not None:
            from xmodal.evaluate import metrics_for

            t0 = time.perf_counter()
            metrics["test"] = est.evaluate(ds.fit_inputs(ds.X_test), _named_labels(ds, ds.y_test),
                                           metrics_for(est.task_))
            metrics["seconds"]["evaluate"] = time.perf_counter() - t0
            metrics["test_samples"] = len(ds.X_test)
        else:
            metrics["test_note"] = ("no test split: pass a .npz with X_test/y_test, a CSV with --test FILE or "
                                    "--test-size 0.2, or score later with `xmodal evaluate`")
        write_json(run / "metrics.json", metrics)
        (run / FAILED).unlink(missing_ok=True)
        if not args.keep_checkpoints:
            import shutil

            shutil.rmtree(run / "checkpoints", ignore_errors=False)
    _print_metrics(metrics, run)
    return 0


#: the file a failed or interrupted ``fit`` leaves in its run folder
FAILED = "FAILED.json"


class _EpochLog:
    """``RUN/log.jsonl`` while the run goes: one strict-JSON line per stage-3 epoch, flushed at once; and
    the same scalars to TensorBoard (``RUN/tensorboard/``, one series per training run) when the
    ``tensorboard`` package is installed."""

    def __init__(self, path: Path, append: bool) -> None:
        import importlib.util

        self._fh = open(path, "a" if append else "w")  # noqa: SIM115 (closed by close())
        self._tb = None
        if importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(path.parent / "tensorboard"))

    def write(self, record: dict) -> None:
        from xmodal.files import json_dumps

        self._fh.write(json_dumps({"stage": "finetune", **record}) + "\n")
        self._fh.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key not in ("epoch", "run") and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{record.get('run', 'final')}/{key}", value, record["epoch"])
            self._tb.flush()

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def _plot_run(est: Any, run: Path, name: str) -> None:
    """``align_curve.png`` (stage 2) and ``learning_curve.png`` (stage 3 loss and validation metric)."""
    from xmodal.evaluate.plots import save_align_curve, save_learning_curve

    history = est.report_.align.get("history", [])
    if history and "distance" in history[0]:
        save_align_curve(est.report_.align, run / "align_curve.png",
                         title=f"{name}: stage 2 ({est.report_.strategy['align']})")
    if est.report_.histories and any(est.report_.histories):
        save_learning_curve(est.report_.runs, est.report_.histories, run / "learning_curve.png",
                            title=f"{name}: stage 3")


def _print_metrics(metrics: dict, run: Path) -> None:
    secs = ", ".join(f"{k} {v:.1f}s" for k, v in metrics["seconds"].items())
    print(f"stage times: {secs}")
    val = metrics.get("validation") or {}
    if val.get("score") is not None:
        scores = val.get("strategy_scores", {})
        chosen = f" (strategy {metrics['strategy']['name']} chosen from {scores})" if len(scores) > 1 else ""
        print(f"validation {val['metric']}: {val['score']:.4f} on {val['rows']} held-out training rows{chosen}")
    for k, v in metrics.get("test", {}).items():
        print(f"test {k}: {v:.4f}")
    if "test_note" in metrics:
        print(metrics["test_note"])
    print(f"run folder: {run}  (model in {run / 'model'})")


def _read_inputs(source: str, target: str | None, encoding: dict | None = None) -> np.ndarray:
    path = Path(source)
    if not path.exists():
        raise XmodalError(f"input file {source} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        from xmodal.data.readers import check_numpy_file

        check_numpy_file(path)
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except Exception as exc:
            raise XmodalError(f"cannot read {source} as a numeric .npy array ({exc})") from exc
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                for key in ("X", "X_test", "X_train"):
                    if key in z.files:
                        return z[key]
                raise XmodalError(f"{source} has keys {z.files}; predict reads 'X', 'X_test' or 'X_train'")
        except XmodalError:
            raise
        except Exception as exc:
            raise XmodalError(f"cannot read {source} as .npz ({exc})") from exc
    if suffix in (".csv", ".tsv", ".txt"):
        from xmodal.data.readers import read_csv_features

        return read_csv_features(path, drop=target, encoding=encoding)
    raise XmodalError(f"cannot read {source}: expected .npy, .npz or .csv")


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


def _check_model_folder(path: str) -> None:
    """The cheap check of ``xmodal.load`` (a folder with config.json), made before torch loads."""
    if not (Path(path) / "config.json").is_file():
        raise XmodalError(f"{path} holds no xmodal model (config.json missing); pass a saved model folder (RUN/model)")


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict with a saved model."""
    _check_model_folder(args.model)
    from xmodal.estimator import load

    est = load(args.model, device=args.device)
    X = _read_inputs(args.data, args.target, _table_encoding(args.model))
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
    _check_model_folder(args.model)
    from xmodal.estimator import load

    est = load(args.model, device=args.device)
    args.encoding = _table_encoding(args.model)
    ds = _read_data(args.data, args, est.task_, est.spatial_dims)
    if ds.X_test is not None:
        X, y = ds.fit_inputs(ds.X_test), ds.y_test
        note = f"scored the test split of {args.data}: {len(ds.X_test)} rows"
    else:
        X, y = ds.fit_inputs(ds.X_train), ds.y_train
        note = (f"warning: {args.data} has no test split, so all its {len(ds.X_train)} rows were scored; if the "
                "model was fitted on these rows the score is a training score, not a test score (pass held-out "
                "data: an .npz with X_test/y_test, or a CSV of new rows)")
    if getattr(est, "classes_", None) is not None and est.classes_.dtype.kind in "US":
        y = _named_labels(ds, y)  # a model fitted on class names is scored on names
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

    from xmodal.model.bodies.availability import body_status

    table = Table(title="xmodal bodies")
    for col in ("name", "available", "description"):
        table.add_column(col)
    for name, ok, note, desc in body_status():
        table.add_row(name, ("yes" if ok else "no") + (f" ({note})" if note else ""), desc)
    Console().print(table)
    print("Any BERT/RoBERTa/MPNet/ViT/Swin hub id or local transformers folder also works as --body.")
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
    from xmodal.tuning import DEFAULT_BUDGET
    parser = _Parser(
        prog="xmodal",
        description="Adapt pretrained transformers to tasks in other modalities (ORCA/MoNA align-then-refine).",
        epilog="Start with `xmodal demo`; then `xmodal fit gunpoint --epochs 30 --max-tokens 64`.",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("fit", help="fit a model on a dataset and write a run folder",
                       description="Build, align and fine-tune a model on DATA; writes RUN/config.json, "
                       "RUN/metrics.json, RUN/log.jsonl, RUN/model/ and RUN/checkpoints/ (rerun with "
                       "--resume to continue an interrupted run).")
    p.add_argument("data", help=_DATA_HELP)
    p.add_argument("--out", help="run folder (default: runs/<dataset>-<strategy>-<time>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, with the run's own settings")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep RUN/checkpoints after the run succeeds (default: removed; the model is in RUN/model)")
    _add_csv_args(p)
    _add_settings(p)
    _add_tune_args(p, in_fit=True)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("tune", help="tune the settings on DATA's training split (ASHA, Optuna), resumable",
                       description="Search the run settings with ASHA on a validation split of DATA's training "
                       "data (never its test split). Writes OUT/trials.csv, OUT/trials.md, OUT/history.png, "
                       "OUT/importance.png, OUT/tune.json and OUT/best_config.yaml (use it with `xmodal fit "
                       "--config`). The study lives in OUT/study.journal: rerun the same command to continue "
                       "it, or give --storage postgresql://… --study NAME to several workers to share one study.")
    p.add_argument("data", help=_DATA_HELP)
    p.add_argument("--out", help="tuning folder (default: runs/tune-<dataset>)")
    _add_csv_args(p)
    _add_settings(p)
    _add_tune_args(p, in_fit=False)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("compare", help="run transfer strategies side by side (mean ± std over seeds)",
                       description="Fit every strategy with every seed on DATA with the same settings; write "
                       "OUT/compare.md and OUT/compare.csv (test metric, stage times, final OTDD, source probe). "
                       "Finished cells are kept in OUT/cells and skipped when rerun with the same settings.")
    p.add_argument("data", help=_DATA_HELP)
    p.add_argument("--strategies", default="finetune,orca,mona",
                   help="comma-separated strategy names (see `xmodal strategies`; default: finetune,orca,mona)")
    p.add_argument("--seeds", type=_int_list, default=[0, 1, 2], help="comma-separated seeds (default: 0,1,2)")
    p.add_argument("--out", help="output folder (default: runs/compare-<dataset>)")
    p.add_argument("--no-probe", action="store_true", help="skip the source-knowledge probe")
    p.add_argument("--probe-size", type=int, default=500, help="proxy samples of the probe (default 500)")
    _add_csv_args(p)
    _add_settings(p, per_run=False)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("bench", help="run the benchmark suite (tasks × methods × seeds), resumable",
                       description="Run the suite's tasks with xmodal strategies and each task's expert peer; "
                       "write OUT/RESULTS.md, OUT/results.csv and OUT/performance_profile.png. Finished cells "
                       "(OUT/cells) are skipped when rerun with the same settings.")
    p.add_argument("--tasks", default=None, help="comma-separated suite tasks (default: all; see --list)")
    p.add_argument("--methods", default="auto,mona,scratch,peer",
                   help="comma-separated strategies, 'peer', 'auto' (orca and finetune, the one with the better "
                   "validation score kept per seed), 'tuned:<strategy>' and 'tuned:auto' (settings tuned per task "
                   "and seed first; see --tune-budget) (default: auto,mona,scratch,peer)")
    p.add_argument("--tune-budget", default=DEFAULT_BUDGET, help="tuning budget per (task, seed) of tuned: "
                   f"methods (default: {DEFAULT_BUDGET})")
    p.add_argument("--seeds", type=_int_list, default=[0, 1, 2], help="comma-separated seeds (default: 0,1,2)")
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

    p = sub.add_parser("predict", help="predict with a saved model")
    p.add_argument("model", help="a saved model folder (RUN/model)")
    p.add_argument("data", help=".npy array, .npz (key X, X_test or X_train) or .csv of feature columns")
    p.add_argument("--out", default="predictions.npy", help="output .npy (or .csv) file")
    p.add_argument("--proba", action="store_true", help="also write class probabilities to <out>_proba.npy")
    p.add_argument("--target", help="CSV: a target column to drop before predicting")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="score a saved model on labelled data")
    p.add_argument("model", help="a saved model folder (RUN/model)")
    p.add_argument("data", help=_DATA_HELP + "; its test split is used when it has one")
    p.add_argument("--metrics", help="comma-separated metrics (default: the task's)")
    p.add_argument("--target", help="CSV: target column")
    p.add_argument("--test", help=argparse.SUPPRESS)
    p.add_argument("--test-size", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_evaluate)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xmodal`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except XmodalError as exc:
        # one line, whatever the message quotes (a YAML parser's or a library's multi-line reason)
        print("error: " + " ".join(part.strip() for part in str(exc).splitlines() if part.strip()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun `xmodal fit ... --out RUN --resume` to continue from the last epoch",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
