"""``xmodal fit``: the run folder around :meth:`~xmodal.CrossModalEstimator.fit` — settings,
checkpoints, resume, the epoch log, plots and metrics."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from xmodal.cli.common import TABLE_ENCODING, check_out, named_labels, print_tuning, read_data, settings_of, tune_kwargs
from xmodal.errors import XmodalError
from xmodal.files import atomic_write_text


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
    """Fit on DATA and write a run folder (after tuning the settings with --tune). Under ``torchrun`` every
    process trains; rank 0 alone decides, writes the run folder and prints (:func:`_follow_rank0`)."""
    given_out = Path(args.out) if args.out else None
    if args.resume and given_out is None:
        raise XmodalError("--resume needs --out RUN: the folder of the run to continue")
    if given_out is not None:
        check_out(given_out)
    resumed = args.resume and (given_out / "run_config.yaml").is_file()
    cfg = _resume_settings(args, given_out) if resumed else settings_of(args)
    search = tune_kwargs(args) if args.tune and not resumed else None
    if search is not None and os.environ.get("WORLD_SIZE", "1") not in ("", "1"):  # torch not imported yet
        raise XmodalError("--tune runs its trials in one process; under torchrun fit without --tune, or share one "
                          "study between several `xmodal tune --storage … --study NAME` workers")
    ds = read_data(args.data, args, cfg.task, cfg.spatial_dims)
    cfg = cfg.replace(task=ds.task)

    from xmodal import distributed
    from xmodal.estimator import CrossModalEstimator
    from xmodal.model.bodies import resolve_body
    from xmodal.runlock import RunLock
    from xmodal.runtime import resolve_device

    est = CrossModalEstimator(**cfg.to_dict())
    strategy = est.resolve_strategy()  # a conflict with --align/--mode stops here, before anything is written
    shown = cfg.strategy if cfg.strategy == "auto" else strategy.name
    run = given_out if given_out is not None else Path("runs") / f"{ds.name}-{shown}-{time.strftime('%Y%m%d-%H%M%S')}"
    prints = _data_fingerprints(ds)
    # an absent GPU or body stops here, before the run folder is written; torchrun's processes join up
    distributed.setup(resolve_device(cfg.device))
    if cfg.body != "auto":  # body auto is chosen inside fit, on the training data
        resolve_body(cfg.body)
    if not distributed.is_main():
        return _follow_rank0(ds)
    with RunLock(run):
        state = _run_state(run)
        if args.resume:
            _check_resume_data(run, prints, args.data)
        if _refuse_or_report(run, state, args.resume):
            distributed.broadcast(None)
            return 0
        print(ds.summary())
        if resumed:
            print(f"resuming the run in {run} with its own settings ({run / 'run_config.yaml'})")
        est = _train(args, ds, cfg, est, strategy, run, state, prints, search)
        metrics = _finish(args, ds, est, run)
    _print_metrics(metrics, run)
    return 0


def _follow_rank0(ds: Any) -> int:
    """A process of rank > 0 under torchrun: wait for rank 0's run folder and settings, then fit with it
    (same data, same checkpoints folder, no files written, nothing printed)."""
    from xmodal import distributed
    from xmodal.config import RunConfig
    from xmodal.estimator import CrossModalEstimator

    plan = distributed.broadcast(None)
    if plan is None:  # rank 0 had nothing to do (a finished run)
        return 0
    est = CrossModalEstimator(**RunConfig.from_dict(plan["settings"]).to_dict())
    est.fit(ds.fit_inputs(ds.X_train), named_labels(ds, ds.y_train), checkpoint_dir=Path(plan["run"]) / "checkpoints")
    return 0


def _train(args: argparse.Namespace, ds: Any, cfg: Any, est: Any, strategy: Any, run: Path, state: str,
           prints: dict[str, str | None], search: dict[str, Any] | None) -> Any:
    """Tune (``--tune``), write the run's settings, and fit with checkpoints in ``RUN/checkpoints``; a
    failure leaves ``FAILED.json`` (or, refused before training, nothing) and is re-raised."""
    from xmodal import distributed
    from xmodal.estimator import CrossModalEstimator
    from xmodal.files import write_json

    X_train, y_train = ds.fit_inputs(ds.X_train), named_labels(ds, ds.y_train)
    log = _EpochLog(run / "log.jsonl", append=args.resume)
    try:
        if search is not None:
            from xmodal.tuning import tune

            res = tune(X_train, y_train, cfg, out=run / "tune", progress=not args.quiet, **search)
            print_tuning(res)
            cfg = res.best_config
            est = CrossModalEstimator(**cfg.to_dict())
        if cfg.strategy == "auto":
            print(f"strategy: auto (chooses among {', '.join(cfg.candidates)} on {cfg.validation:g} of the "
                  "training data)")
        else:
            print(f"strategy: {strategy.name} (align={strategy.align}, mode={strategy.mode}, "
                  f"embedder init={strategy.embedder_init})")
        cfg.save(run / "run_config.yaml", header=f"the settings of this run (xmodal fit {args.data} --config THIS)")
        # what runs, resolved: the strategy's name, aligner, mode and embedder init
        config = {"data": args.data, "dataset": ds.name, "data_fingerprint": prints, **est.get_params(),
                  **strategy.to_dict()}
        config["strategy"] = config.pop("name") if cfg.strategy != "auto" else "auto"
        write_json(run / "config.json", config)
        distributed.broadcast({"run": str(run), "settings": cfg.to_dict()})  # the other processes fit with these
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
    return est


def _finish(args: argparse.Namespace, ds: Any, est: Any, run: Path) -> dict[str, Any]:
    """Save the model, the final log and plots, score the test split, write ``metrics.json`` and remove
    the checkpoints (unless ``--keep-checkpoints``); returns the metrics."""
    from xmodal.files import json_dumps, write_json

    est.save(run / "model")
    if "encoding" in ds.meta:  # a CSV: predict/evaluate re-encode new tables with the training columns
        write_json(run / "model" / TABLE_ENCODING, ds.meta["encoding"])
    lines = [json_dumps({"stage": "align", **rec}) for rec in est.report_.align.get("history", [])]
    lines += [json_dumps({"stage": "finetune", **rec}) for run_ in est.report_.histories for rec in run_]
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
        metrics["test"] = est.evaluate(ds.fit_inputs(ds.X_test), named_labels(ds, ds.y_test), metrics_for(est.task_))
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
    return metrics


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
    from xmodal.evaluate.report import save_align_curve, save_learning_curve

    history = est.report_.align.get("history", [])
    if history and "distance" in history[0]:
        save_align_curve(est.report_.align, run / "align_curve.png",
                         title=f"{name}: stage 2 ({est.report_.strategy['align']})")
    if est.report_.histories and any(est.report_.histories):
        save_learning_curve(est.report_.runs, est.report_.histories, run / "learning_curve.png",
                            title=f"{name}: stage 3")


def choice_note(chosen: str, choice: dict | None, rows: int) -> str | None:
    """A line on a validation choice between strategies that the validation rows did not settle (a tie, or a
    margin under one standard error: :func:`xmodal.estimator.protocol.choice_margin`); ``None`` when it is clear
    or cannot be judged."""
    if not choice:
        return None
    other = choice["runner_up"]
    if choice["margin"] == 0:
        return (f"note: {chosen} and {other} tied on validation; {chosen} was kept as the earlier candidate. "
                f"To tell them apart, compare them over seeds: xmodal compare DATA --strategies {chosen},{other} "
                "--seeds 0,1,2")
    if choice["clear"] is False:
        return (f"note: {chosen} led {other} by {choice['margin']:.4f} on {rows} validation rows, under one "
                f"standard error ({choice['standard_error']:.4f}): another draw of rows could have chosen {other}. "
                f"A larger --validation share, or xmodal compare DATA --strategies {chosen},{other} --seeds 0,1,2, "
                "says more")
    return None


def _print_metrics(metrics: dict, run: Path) -> None:
    secs = ", ".join(f"{k} {v:.1f}s" for k, v in metrics["seconds"].items())
    print(f"stage times: {secs}")
    val = metrics.get("validation") or {}
    if val.get("score") is not None:
        scores = val.get("strategy_scores", {})
        chosen = f" (strategy {metrics['strategy']['name']} chosen from {scores})" if len(scores) > 1 else ""
        print(f"validation {val['metric']}: {val['score']:.4f} on {val['rows']} held-out training rows{chosen}")
        note = choice_note(metrics["strategy"]["name"], val.get("choice"), val["rows"])
        if note:
            print(note)
        retry = val.get("lr_retry")
        if retry:
            outcome = ("learned; the model was fitted at it" if retry["learned"] else
                       f"learned nothing either; lr {retry['kept_lr']:g} was kept")
            print(f"note: the automatic lr {retry['automatic_lr']:g} learned nothing on validation; a retry at "
                  f"{retry['retried_lr']:g} {outcome} (validation.lr_retry in metrics.json)")
    for k, v in metrics.get("test", {}).items():
        print(f"test {k}: {v:.4f}")
    if "test_note" in metrics:
        print(metrics["test_note"])
    print(f"run folder: {run}  (model in {run / 'model'})")
