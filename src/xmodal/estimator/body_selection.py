"""Which body for which task: rank candidate bodies by their OTDD to their own source modality after a
short stage 2 on the training data, before any fine-tuning (ORCA Table 4: the body that ends closer to
its pretraining modality fine-tunes better).

For each candidate: ORCA's stage 2 (OTDD, Gaussian label distances) runs for ``align_epochs`` epochs on
a class-stratified subsample of at most ``subsample`` training rows (never the test split), with stage 3
switched off. Its final OTDD is in the units of that body's features, so raw values of bodies of
different widths and scales are not comparable. The rule therefore divides it by the body's source
scale ``s = mean ‖x_i − x_j‖²`` over pairs of its source-proxy features (the same scale OTDD's ε is
relative to): every term of the OTDD is a squared feature distance, so ``OTDD / s`` does not change
when a body's features are rescaled. The pick is the candidate with the lowest ``OTDD / s``.

That normalisation makes OTDD comparable across bodies of one family, but not across families: a CNN's
source proxy (MNIST through its pretrained stem, mean-pooled) is nearly constant, so its scale is tiny
and its ratio huge, although it fine-tunes best on images (``python benchmarks/body_choice.py``). The
default rule (``rule="probe"``) is therefore measured, not predicted: after the same short stage 2, each
candidate's head alone is fitted in closed form on its frozen features of the subsample (a linear probe,
:mod:`xmodal.evaluate.linear_probe`: forward passes only) and scored with the task's metric on held-out
rows of the *training* split (the ``validation`` share, at most ``subsample`` rows). A score on a few
hundred rows is noisy, and the candidates' fine-tuning costs differ several-fold, so the pick follows the
one-standard-error rule (Breiman et al. 1984; *ESL* §7.10): among the candidates whose score is within
the best score's bootstrap standard error (:mod:`xmodal.evaluate.bootstrap`, over the held-out rows),
the one with the lowest fine-tuning estimate. ``rule="rung"`` fine-tunes the whole model for a short
rung instead of the probe (``rung`` × the optimiser steps of one full fine-tuning run, at least one epoch
of the subsample; an ASHA rung) and picks the same way; it costs more and ranks worse (a CNN at its own
learning rate is still far from its final score after one epoch): ``python benchmarks/body_choice.py
--rules probe,rung``. ``rule="otdd"`` picks the lowest ``OTDD / s`` without either. A candidate that
diverges while choosing is ranked last and marked so; if every one diverges,
:class:`~xmodal.errors.TrainingDiverged` is raised.

The cost of choosing is reported next to an estimate of one fine-tuning run per candidate: one
stage-3 optimiser step is timed on the aligned model and multiplied by the steps a full fit of the
training set would take with the run's settings.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from xmodal.config import RunConfig
from xmodal.data.split import validation_split
from xmodal.defaults import resolve_settings
from xmodal.errors import TrainingDiverged, XmodalError
from xmodal.evaluate import evaluate
from xmodal.evaluate.bootstrap import bootstrap_se
from xmodal.evaluate.linear_probe import fit_linear_head
from xmodal.evaluate.metrics import get_metric
from xmodal.model.bodies import FAMILIES, body_fingerprint, resolve_body
from xmodal.registry import Registry

__all__ = ["BodySelection", "select_body", "DEFAULT_CANDIDATES", "AUTO_BODY", "SelectionRule", "RULES"]

#: the offline bodies ``body="auto"`` chooses among (those installed and able to take the input's rank), cheapest
#: to fine-tune first: ties go to the earlier one
DEFAULT_CANDIDATES = ("minilm-l6", "efficientnet-lite0", "mpnet-base")
#: ``body=AUTO_BODY`` in ``fit``: choose among :data:`DEFAULT_CANDIDATES` with :func:`select_body` first
AUTO_BODY = "auto"


@dataclass(frozen=True)
class SelectionRule:
    """How :func:`select_body` picks: the row field it ranks by, what it runs after stage 2, its words."""

    name: str
    key: str
    after_stage2: str  # "nothing", "probe" (a closed-form linear head) or "rung" (a short fine-tuning)
    words: str
    one_se: bool = False  # pick by the one-standard-error rule (a validation score with its bootstrap SE)

    def order(self, row: dict[str, Any], higher_is_better: bool) -> float:
        """Sort key of a row, lower first; metric-valued keys follow the metric's direction, a missing or
        non-finite value (a diverged rung) sorts last."""
        value = row.get(self.key)
        if value is None or not math.isfinite(value):
            return math.inf
        return value if self.key == "score" or not higher_is_better else -value

    def pick(self, rows: list[dict[str, Any]], higher_is_better: bool) -> str:
        """The chosen body among ``rows``: the best by :meth:`order`, or for a rule with ``one_se`` the
        one-standard-error rule (Breiman et al. 1984; Hastie et al., *ESL* §7.10): of the rows whose score is
        within the best row's bootstrap standard error (``validation_se``) of the best score, the one with
        the lowest ``finetune_estimate_s``; ties go to the earlier row."""
        best = min(rows, key=lambda r: self.order(r, higher_is_better))
        se = best.get("validation_se")
        if not self.one_se or se is None or not math.isfinite(se) or not math.isfinite(self.order(best, True)):
            return best["body"]
        near = [r for r in rows if math.isfinite(self.order(r, True)) and abs(r[self.key] - best[self.key]) <= se]

        def cost(r: dict[str, Any]) -> float:
            c = r.get("finetune_estimate_s")
            return c if c is not None and math.isfinite(c) else math.inf

        return min(near, key=cost)["body"]


#: the selection rules (see the module docstring)
RULES: Registry[SelectionRule] = Registry("body selection rule")
RULES.add("probe", SelectionRule("probe", "probe_score", "probe", "the cheapest body to fine-tune whose linear "
                                 "probe, fitted on its features after a short stage 2, scores within one bootstrap "
                                 "standard error of the best probe on validation", one_se=True))
RULES.add("rung", SelectionRule("rung", "rung_score", "rung", "the cheapest body to fine-tune whose validation "
                                "score after a short stage 2 and a rung of stage 3 is within one bootstrap standard "
                                "error of the best", one_se=True))
RULES.add("otdd", SelectionRule("otdd", "score", "nothing", "lowest final OTDD / source scale after a short stage 2"))
DEFAULT_RULE = "probe"
#: target rows per class of the distance logged after each short stage-2 epoch (a fit's default is 100): the
#: logged OTDD is most of a short stage 2's cost, and the choice only reads its first and last values
CURVE_PER_CLASS = 25


@dataclass
class BodySelection:
    """The ranking: one row per candidate (``body``, ``width``, ``initial_distance``, ``final_distance``,
    ``source_scale``, ``score`` = final / scale, ``seconds`` of choosing, ``finetune_estimate_s``), the
    ``pick`` and the ``rule`` in words."""

    rows: list[dict[str, Any]]
    pick: str
    rule: str
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    def to_markdown(self) -> str:
        lines = ["| body | width | OTDD before → after | source scale | OTDD / scale | probe validation score | "
                 "rung validation score | choosing s | one fine-tuning run s (est.) | choosing / fine-tuning |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            share = r["seconds"] / r["finetune_estimate_s"] if r["finetune_estimate_s"] else float("nan")
            mark = " **(pick)**" if r["body"] == self.pick else ""
            rung, probe = r.get("rung_score"), r.get("probe_score")
            se = f" ± {r['validation_se']:.2g}" if r.get("validation_se") is not None else ""
            rung_text = "diverged" if r.get("diverged") else ("—" if rung is None else f"{rung:.4g}{se}")
            probe_text = "—" if probe is None else f"{probe:.4g}{se}"
            lines.append(f"| {r['body']}{mark} | {r['width']} | {r['initial_distance']:.4g} → "
                         f"{r['final_distance']:.4g} | {r['source_scale']:.4g} | {r['score']:.4g} | {probe_text} | "
                         f"{rung_text} | "
                         f"{r['seconds']:.1f} | {r['finetune_estimate_s']:.0f} | {share:.0%} |")
        return "\n".join(lines + ["", f"Rule: {self.rule}."])


def _source_scale(body: Any, source: Any, cfg: RunConfig) -> float:
    """Mean squared distance between pairs of the body's source-proxy features (at most 2000 rows)."""
    from xmodal.align.source_cache import source_features_cached

    Xs, _, _ = source_features_cached(body, body_fingerprint(source), cfg.proxy or body.default_proxy,
                                      cfg.source_size, cfg.seed, progress=False)
    Xs = Xs[torch.randperm(len(Xs), generator=torch.Generator().manual_seed(cfg.seed))[:2000]].double()
    return float(torch.cdist(Xs, Xs).pow(2).mean())


def _step_seconds(est: Any, X: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """Seconds of one stage-3 optimiser step (forward, backward, AdamW) of the fitted model on one batch."""
    model = est.model_
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-12)
    xb = torch.from_numpy(X[:batch_size])
    yb = torch.from_numpy(y[:batch_size])
    yb = model.encode_targets(yb) if model.kind.standardise_targets else yb
    times = []
    for _ in range(4):  # the first step pays for allocations; the fastest of the rest resists a busy machine
        t0 = time.perf_counter()
        loss = model.kind.loss(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def _candidates(bodies: Any, n_spatial: int) -> list[str]:
    if bodies is None:  # the defaults that are installed here
        from xmodal.model.bodies import NAMED_BODIES

        bodies = [b for b in DEFAULT_CANDIDATES if NAMED_BODIES[b].status()[0]]
    names = list(bodies)
    if not names or len(set(names)) != len(names):
        raise XmodalError(f"select_body needs distinct candidate bodies, got {names}")
    usable = []
    for name in names:
        source = resolve_body(name)  # unknown or uninstalled: the error says what to install
        if n_spatial in FAMILIES[source.family].spatial_dims:
            usable.append(name)
    if len(usable) < 1:
        raise XmodalError(f"none of the bodies {names} takes inputs with {n_spatial} spatial axes")
    return usable


def select_body(X: Any, y: Any, bodies: list[str] | tuple[str, ...] | None = None,
                config: RunConfig | dict | None = None, *, subsample: int = 500, align_epochs: int = 5,
                rule: str = DEFAULT_RULE, rung: float = 0.05, progress: bool = True) -> BodySelection:
    """Rank ``bodies`` (default :data:`DEFAULT_CANDIDATES` that are installed and take the input's rank) on
    training data ``(X, y)`` (see the module docstring).

    Args:
        X, y: training inputs and targets (layouts of :class:`~xmodal.CrossModalEstimator`); never the test split.
        bodies: candidate body names.
        config: the run's other settings (task, seed, tokens, proxy, ``validation`` share, …); ``body`` and
            ``strategy`` are set here. Automatic tokens and learning rate are each body's own.
        subsample: at most this many training rows (class-stratified for class labels) run stage 2 and the
            rung; at most as many held-out rows score the rung.
        align_epochs: stage-2 epochs per candidate (a short stage 2: ORCA's runs 60).
        rule: ``"probe"`` (default: validation score of a linear probe), ``"rung"`` (validation score after
            a short fine-tuning rung), both picking the cheapest body within one standard error of the best
            (:meth:`SelectionRule.pick`), or ``"otdd"`` (lowest final OTDD / source scale); :data:`RULES`.
        rung: the rung's optimiser steps as a share of one full fine-tuning run's (default 0.05), at least one
            epoch of the subsample.
        progress: one line per candidate.

    Returns:
        :class:`BodySelection`.
    """
    from xmodal.estimator.core import CrossModalEstimator  # core imports this module: import on use
    from xmodal.estimator.inputs import as_array

    base = (config if isinstance(config, RunConfig) else RunConfig.from_dict(dict(config or {}))).validate()
    how = RULES[rule]
    if int(subsample) < 4 or int(align_epochs) < 1 or not 0 < float(rung) <= 1:
        raise XmodalError(f"subsample must be ≥ 4, align_epochs ≥ 1 and rung in (0, 1], got {subsample}, "
                          f"{align_epochs} and {rung}")
    probe = CrossModalEstimator(**base.replace(strategy="finetune", align=None, validation=0).to_dict())
    Xc, yc, kind = probe._check_training_data(as_array(X), as_array(y), probe.config())
    names = _candidates(bodies, Xc.ndim - 2)
    fit_idx, val_idx = np.arange(len(Xc)), np.arange(0)
    scored = how.after_stage2 != "nothing"
    if scored:  # the probe or rung is scored on held-out training rows
        fit_idx, val_idx = validation_split(yc, base.validation or 0.2, base.seed, stratify=kind.class_labels)
    fit_idx, val_idx = _at_most(fit_idx, yc, subsample, base.seed, kind), _at_most(val_idx, yc, subsample,
                                                                                    base.seed, kind)
    higher = get_metric(kind.default_metric).higher_is_better
    t_all = time.perf_counter()
    out = []
    for name in names:
        out.append(_candidate_row(name, base, how, Xc, yc, fit_idx, val_idx, kind, int(align_epochs), rung, progress))
    if all(r["diverged"] for r in out):
        raise TrainingDiverged(f"every candidate body diverged while choosing ({', '.join(names)}); lower the "
                               "learning rate (lr=…) or choose a body with body=…")
    pick = how.pick(out, higher)
    words = f"{how.words} ({align_epochs} stage-2 epochs on {len(fit_idx)} training rows"
    if how.after_stage2 == "rung":
        words += f"; rung of {rung:.0%} of a fine-tuning run's steps"
    words += f"; scored on {len(val_idx)} held-out training rows)" if scored else ")"
    return BodySelection(out, pick, words, time.perf_counter() - t_all,
                         {"subsample": len(fit_idx), "align_epochs": int(align_epochs), "rule": how.name,
                          "rung": float(rung) if how.after_stage2 == "rung" else None,
                          "validation_rows": len(val_idx)})


def _candidate_row(name: str, base: RunConfig, how: SelectionRule, Xc: np.ndarray, yc: np.ndarray,
                   fit_idx: np.ndarray, val_idx: np.ndarray, kind: Any, align_epochs: int, rung: float,
                   progress: bool) -> dict[str, Any]:
    """One candidate's row of :func:`select_body`: the short stage 2 on rows ``fit_idx``, then the rule's
    probe or rung scored on rows ``val_idx``, the source scale and the fine-tuning estimate."""
    from xmodal.estimator.core import CrossModalEstimator  # core imports this module: import on use
    from xmodal.estimator.runs import NotLearnedWarning

    t0 = time.perf_counter()
    Xs, ys = Xc[fit_idx], yc[fit_idx]
    source = resolve_body(name)
    full, _ = resolve_settings(base.replace(body=name), len(Xc), tuple(Xc.shape[2:]), body=FAMILIES[source.family])
    full_steps = math.ceil(math.ceil(len(Xc) / full.batch_size) / full.accumulate) * full.epochs
    epoch_steps = math.ceil(math.ceil(len(Xs) / full.batch_size) / full.accumulate)
    epochs = max(1, math.ceil(rung * full_steps / epoch_steps)) if how.after_stage2 == "rung" else 0
    # the automatic lr, set: a rung is scored as it runs, never retried lower (its cost stays bounded)
    cfg = base.replace(body=name, strategy="orca", align=None, epochs=epochs, batch_size=full.batch_size,
                       lr=full.lr, validation=0, refit=False,
                       align_epochs=align_epochs, verbose=False, task=kind.name,
                       align_curve_per_class=min(base.align_curve_per_class or CURVE_PER_CLASS, CURVE_PER_CLASS))
    est = CrossModalEstimator(**cfg.to_dict())
    row: dict[str, Any] = {"body": name}
    try:
        with warnings.catch_warnings():  # a rung is short by design: its score, not a warning, says how it did
            warnings.simplefilter("ignore", NotLearnedWarning)
            est.fit(Xs, ys, validation_data=(Xc[val_idx], yc[val_idx]) if epochs else None)
    except TrainingDiverged as err:  # ranked last and marked; the error is in the row and printed
        row.update(width=None, initial_distance=math.nan, final_distance=math.nan, source_scale=math.nan,
                   score=math.nan, probe_score=None, rung_score=None, validation_se=None, rung_epochs=epochs,
                   diverged=True,
                   error=str(err), seconds=time.perf_counter() - t0, finetune_estimate_s=math.nan)
        if progress:
            print(f"{name}: diverged in choosing ({err})", flush=True)
        return row
    probe = se = None
    if how.after_stage2 == "probe":  # the aligned model's frozen features, a closed-form head
        fit_linear_head(est.model_, Xs, ys)
    if how.after_stage2 != "nothing":  # scored on the held-out rows, with how far that score may be off
        out, yv = est.model_.decode(est._raw(Xc[val_idx])), torch.from_numpy(yc[val_idx])
        if how.after_stage2 == "probe":
            probe = evaluate(kind, out, yv, [kind.default_metric])[kind.default_metric]
        se = bootstrap_se(kind, out, yv, kind.default_metric, seed=base.seed)
    scale = _source_scale(est.model_.body, source, cfg)
    rep = est.report_.align
    row.update(width=est.model_.body.in_width, initial_distance=rep["initial_distance"],
               final_distance=rep["final_distance"], source_scale=scale, score=rep["final_distance"] / scale,
               probe_score=probe, rung_score=float(est.validation_score_) if epochs else None,
               validation_se=se, rung_epochs=epochs, diverged=False, seconds=time.perf_counter() - t0)
    row["finetune_estimate_s"] = _step_seconds(est, Xc, yc, full.batch_size) * full_steps
    if progress:
        se_text = f" ± {se:.2g}" if se is not None else ""
        rung_text = f", rung ({epochs} epochs) validation {row['rung_score']:.4g}{se_text}" if epochs else ""
        rung_text += f", linear probe validation {probe:.4g}{se_text}" if probe is not None else ""
        print(f"{name}: OTDD {row['initial_distance']:.4g} → {row['final_distance']:.4g}, / source scale "
              f"{scale:.4g} = {row['score']:.4g}{rung_text} ({row['seconds']:.0f} s)", flush=True)
    return row


def _at_most(idx: np.ndarray, y: np.ndarray, n: int, seed: int, kind: Any) -> np.ndarray:
    """At most ``n`` of the rows ``idx`` (class-stratified for class labels), in order."""
    if len(idx) <= n:
        return idx
    keep = validation_split(y[idx], n / len(idx), seed, stratify=kind.class_labels)[1]
    return np.sort(idx[keep])


def body_for(cfg: RunConfig, Xc: np.ndarray, yc: np.ndarray, kind: Any) -> tuple[RunConfig, Any, BodySelection | None]:
    """The body a fit on ``(Xc, yc)`` uses: ``cfg.body``, or for ``"auto"`` the pick of :func:`select_body`
    among the installed :data:`DEFAULT_CANDIDATES`; refused (before any weights load) when its family cannot
    take the input's rank or, for dense tasks, merges tokens. Returns ``(cfg with the body, source, selection)``."""
    selection = None
    if cfg.body == AUTO_BODY:  # chosen on the training data by a short stage 2 per candidate
        selection = select_body(Xc, yc, None, cfg.replace(body=DEFAULT_CANDIDATES[0], task=kind.name),
                                progress=cfg.verbose)
        cfg = cfg.replace(body=selection.pick)
    source = resolve_body(cfg.body)
    family = FAMILIES[source.family]
    if Xc.ndim - 2 not in family.spatial_dims:
        ranks = " or ".join(map(str, family.spatial_dims))
        raise XmodalError(f"body {source.name!r} ({source.family}) takes inputs with {ranks} spatial axes, but X "
                          f"has {Xc.ndim - 2} (shape (N, C, *S) = {Xc.shape}); choose another body")
    if kind.dense and not family.keeps_tokens:
        raise XmodalError(f"body {source.name!r} ({source.family}) merges tokens, so it cannot make dense "
                          "predictions; use a language body (e.g. 'minilm-l6') or a ViT body for dense tasks")
    return cfg, source, selection
