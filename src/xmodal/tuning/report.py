"""What ``xmodal tune`` writes: the table of trials, Optuna's plots, the best configuration, a summary.

Files in the tuning folder (each written to a temporary name and renamed):

* ``best_config.yaml`` — the user's settings with the best trial's values (:class:`~xmodal.config.RunConfig`
  format; ``xmodal fit DATA --config best_config.yaml``);
* ``trials.csv`` / ``trials.md`` — one row per trial: number, state, validation value, epochs run of
  planned, seconds, the sampled settings, worker;
* ``history.png`` / ``importance.png`` — Optuna's optimisation history and hyper-parameter importances
  (the latter needs two finished trials);
* ``tune.json`` — the summary: best value and trial, counts per state, pruning savings, storage, and the
  study's ``key`` (what it was started on, :func:`~xmodal.tuning.search.study_key`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from xmodal.evaluate.report import markdown_table, save_figure, write_csv
from xmodal.files import atomic_write_text, write_json

__all__ = ["count_states", "pruning_savings", "trial_rows", "write_report"]


def count_states(study: Any) -> dict[str, int]:
    """Trials of ``study`` by state: ``complete``, ``pruned``, ``failed``, ``running`` (``waiting`` ones uncounted)."""
    from optuna.trial import TrialState

    names = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
             TrialState.RUNNING: "running"}
    counts = dict.fromkeys(names.values(), 0)
    for t in study.get_trials(deepcopy=False):
        if t.state in names:
            counts[names[t.state]] += 1
    return counts


def _seconds(t: Any) -> float:
    if t.datetime_start is None or t.datetime_complete is None:
        return 0.0
    return (t.datetime_complete - t.datetime_start).total_seconds()


def pruning_savings(study: Any) -> dict[str, float]:
    """The time ASHA's pruning saved: each pruned trial's remaining epochs × its seconds per epoch.

    ``spent_s`` is the wall time of every finished trial; ``saved_s`` the estimate for the pruned ones
    had they run to their planned epochs (trials stopped by the budget are not counted as savings);
    ``saved_share = saved / (spent + saved)``, the share of the no-pruning cost that was not spent.
    """
    from optuna.trial import TrialState

    spent = saved = 0.0
    for t in study.get_trials(deepcopy=False):
        spent += _seconds(t)
        a = t.user_attrs
        if t.state == TrialState.PRUNED and a.get("stopped") != "budget" and "epochs_run" in a:
            saved += max(0, int(a["epochs_planned"]) - int(a["epochs_run"])) * float(a["epoch_seconds"])
    total = spent + saved
    return {"spent_s": round(spent, 1), "saved_s": round(saved, 1),
            "saved_share": round(saved / total, 4) if total > 0 else 0.0}


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One dict per trial, for the CSV and Markdown tables."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        state = t.state.name.lower()
        if a.get("stopped") == "budget":
            state = "stopped (budget)"
        rows.append({
            "trial": t.number, "state": state, "value": t.value,
            "epochs run": f"{a.get('epochs_run', 0)}/{a.get('epochs_planned', '?')}",
            "seconds": round(_seconds(t), 1), **{k: v for k, v in (a.get("settings") or {}).items()},
            "origin": a.get("origin", "sampler"), "worker": a.get("worker", ""),
        })
    return rows


def _save_plot(ax: Any, path: Path) -> None:
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    fig.set_size_inches(7, 4.5)
    save_figure(fig, path, dpi=110)


def write_report(result: Any, out: Path, *, tune_strategy: str, storage: str, study_name: str,
                 best_number: int, key: dict[str, Any]) -> dict[str, str]:
    """Write the files of the module docstring for a :class:`~xmodal.tuning.search.TuneResult`; return them by role.
    ``key`` is the study's (:func:`~xmodal.tuning.search.study_key`), kept in ``tune.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    import optuna.visualization.matplotlib as ovm

    study = result.study
    files: dict[str, str] = {}
    header = (f"xmodal tune: best of {sum(result.counts.values())} trials (trial {best_number}, validation "
              f"{result.metric} {result.best_value:.4f}).\n`xmodal fit DATA --config THIS` fits your strategy with "
              f"these settings;\nadd `--strategy {tune_strategy} --no-refit` to repeat the best trial exactly.")
    files["best_config"] = str(result.best_config.save(out / "best_config.yaml", header=header))

    rows = trial_rows(study)
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    write_csv(rows, out / "trials.csv", cols)
    files["trials_csv"] = str(out / "trials.csv")
    md = [f"# Tuning study `{study_name}`", "",
          f"Validation {result.metric} ({'higher' if result.higher_is_better else 'lower'} is better); "
          f"trials run `{tune_strategy}`; storage: {storage}.", "",
          *markdown_table(cols, [[r.get(c) for c in cols] for r in rows])]
    p = result.pruning
    md += ["", f"Best: trial {best_number}, {result.metric} {result.best_value:.4f}. Trials: {result.counts}.",
           f"Pruning saved {p['saved_s']:.0f} s of {p['spent_s'] + p['saved_s']:.0f} s "
           f"({100 * p['saved_share']:.0f}% of running every trial to the end)."]
    atomic_write_text(out / "trials.md", "\n".join(md) + "\n")
    files["trials_md"] = str(out / "trials.md")

    with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        _save_plot(ovm.plot_optimization_history(study), out / "history.png")
        files["history"] = str(out / "history.png")
        complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
        varied = {k for t in complete for k in t.params if len({str(u.params.get(k)) for u in complete}) > 1}
        if len(complete) >= 2 and varied:
            _save_plot(ovm.plot_param_importances(study), out / "importance.png")
            files["importance"] = str(out / "importance.png")

    summary = {"study": study_name, "storage": storage, "metric": result.metric,
               "higher_is_better": result.higher_is_better, "best_value": result.best_value,
               "best_trial": best_number, "counts": result.counts, "seconds": round(result.seconds, 1),
               "pruning": result.pruning, "tune_strategy": tune_strategy,
               "best_settings": study.trials[best_number].user_attrs.get("settings"), "files": files, "key": key}
    write_json(out / "tune.json", summary)
    files["summary"] = str(out / "tune.json")
    return files
