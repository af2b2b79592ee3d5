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

The cost of choosing is reported next to an estimate of one fine-tuning run per candidate: one
stage-3 optimiser step is timed on the aligned model and multiplied by the steps a full fit of the
training set would take with the run's settings.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from xmodal.config import RunConfig
from xmodal.data.split import validation_split
from xmodal.defaults import resolve_settings
from xmodal.errors import XmodalError
from xmodal.model.bodies import FAMILIES, body_fingerprint, resolve_body

__all__ = ["BodySelection", "select_body", "DEFAULT_CANDIDATES", "AUTO_BODY"]

#: the offline bodies ``body="auto"`` chooses among (those installed and able to take the input's rank)
DEFAULT_CANDIDATES = ("minilm-l6", "mpnet-base", "efficientnet-lite0")
#: ``body=AUTO_BODY`` in ``fit``: choose among :data:`DEFAULT_CANDIDATES` with :func:`select_body` first
AUTO_BODY = "auto"


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
        lines = ["| body | width | OTDD before → after | source scale | OTDD / scale | choosing s | "
                 "one fine-tuning run s (est.) | choosing / fine-tuning |", "|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            share = r["seconds"] / r["finetune_estimate_s"] if r["finetune_estimate_s"] else float("nan")
            mark = " **(pick)**" if r["body"] == self.pick else ""
            lines.append(f"| {r['body']}{mark} | {r['width']} | {r['initial_distance']:.4g} → "
                         f"{r['final_distance']:.4g} | {r['source_scale']:.4g} | {r['score']:.4g} | "
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
                config: RunConfig | dict | None = None, *, subsample: int = 500, align_epochs: int = 10,
                progress: bool = True) -> BodySelection:
    """Rank ``bodies`` (default :data:`DEFAULT_CANDIDATES` that are installed and take the input's rank) on
    training data ``(X, y)`` by the normalised OTDD after a short stage 2 (see the module docstring).

    Args:
        X, y: training inputs and targets (layouts of :class:`~xmodal.CrossModalEstimator`); never the test split.
        bodies: candidate body names.
        config: the run's other settings (task, seed, tokens, proxy, …); ``body`` and ``strategy`` are set here.
        subsample: at most this many training rows (class-stratified for class labels) run stage 2.
        align_epochs: stage-2 epochs per candidate (a short stage 2: ORCA's runs 60).
        progress: one line per candidate.

    Returns:
        :class:`BodySelection`.
    """
    from xmodal.estimator.core import CrossModalEstimator  # core imports this module: import on use
    from xmodal.estimator.inputs import as_array

    base = (config if isinstance(config, RunConfig) else RunConfig.from_dict(dict(config or {}))).validate()
    if int(subsample) < 4 or int(align_epochs) < 1:
        raise XmodalError(f"subsample must be ≥ 4 and align_epochs ≥ 1, got {subsample} and {align_epochs}")
    probe = CrossModalEstimator(**base.replace(strategy="finetune", align=None, validation=0).to_dict())
    Xc, yc, kind = probe._check_training_data(as_array(X), as_array(y), probe.config())
    names = _candidates(bodies, Xc.ndim - 2)
    rows_idx = np.arange(len(Xc))
    if len(Xc) > subsample:
        rows_idx = np.sort(validation_split(yc, subsample / len(Xc), base.seed, stratify=kind.class_labels)[1])
    Xs, ys = Xc[rows_idx], yc[rows_idx]
    t_all = time.perf_counter()
    out = []
    for name in names:
        t0 = time.perf_counter()
        cfg = base.replace(body=name, strategy="orca", align=None, epochs=0, validation=0, refit=False,
                           align_epochs=int(align_epochs), verbose=False, task=kind.name)
        est = CrossModalEstimator(**cfg.to_dict()).fit(Xs, ys)
        source = resolve_body(name)
        scale = _source_scale(est.model_.body, source, cfg)
        seconds = time.perf_counter() - t0
        full, _ = resolve_settings(base.replace(body=name), len(Xc), tuple(Xc.shape[2:]), body=FAMILIES[source.family])
        steps = math.ceil(math.ceil(len(Xc) / full.batch_size) / full.accumulate) * full.epochs
        rep = est.report_.align
        row = {"body": name, "width": est.model_.body.in_width, "initial_distance": rep["initial_distance"],
               "final_distance": rep["final_distance"], "source_scale": scale,
               "score": rep["final_distance"] / scale, "seconds": seconds,
               "finetune_estimate_s": _step_seconds(est, Xc, yc, full.batch_size) * steps}
        out.append(row)
        if progress:
            print(f"{name}: OTDD {row['initial_distance']:.4g} → {row['final_distance']:.4g}, / source scale "
                  f"{scale:.4g} = {row['score']:.4g} ({seconds:.0f} s)", flush=True)
    pick = min(out, key=lambda r: r["score"])["body"]
    rule = ("lowest final OTDD / source scale after a short stage 2 "
            f"({align_epochs} epochs, {len(Xs)} training rows)")
    return BodySelection(out, pick, rule, time.perf_counter() - t_all,
                         {"subsample": len(Xs), "align_epochs": int(align_epochs)})


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
