"""How much source-modality knowledge a model keeps, and how well its target modality lines up with it.

* :func:`source_probe` — MoNA's Fig. 3 probe: linear-probe accuracy on the source proxy (e.g. WNUT-16
  sentences for a language body, MNIST for a vision body) of the body's pooled features. Run it on the
  pretrained body and on a fine-tuned one: the drop is the source knowledge the fine-tuning destroyed.
* :func:`modality_discrepancy` — MoNA's Definition 2.1 with the approximation of its appendix A.4:
  the source conditional distribution comes from the *pretrained* body with a source classifier, the
  target one from the target labels; the discrepancy is the smallest 0-1 disagreement over subsets of
  ``K_t`` source classes and one-to-one matchings of target to source classes.

  Differences from A.4, both measured improvements of the approximation (never larger values):
  the paper draws random permutations of the target labels; here the best matching for each subset
  is solved exactly (Hungarian algorithm on the ``K_t × K_t`` confusion table, ``scipy``), and all
  subsets are enumerated when there are at most ``trials`` of them. Our bodies are encoders without
  their pretraining classifier, so the "complete source model" is the body followed by a logistic
  regression fitted on the proxy (``K_s`` = the proxy's classes).
* :func:`source_otdd` — the Gaussian-inner OTDD between a model's embedded target data and the source
  proxy's features (ORCA's measure of how close stage 2 left the target to the source modality).

Both use scikit-learn's ``LogisticRegression`` on standardised features (no hand-written solver).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch

from xmodal.errors import XmodalError
from xmodal.model.assembly import CrossModalModel
from xmodal.model.bodies.base import Body

__all__ = ["proxy_body_features", "source_probe", "modality_discrepancy", "best_matching_error", "source_otdd"]


def source_otdd(model: CrossModalModel, X: torch.Tensor, y: torch.Tensor, Xs: torch.Tensor, ys: torch.Tensor,
                k_source: int, seed: int = 0) -> float:
    """Gaussian-inner OTDD between ``model``'s embedded inputs ``X`` ``(N, C, *S)`` (labels: ``y`` or its
    k-means pseudo-labels, as stage 2 uses them) and source features ``Xs`` ``(n, D)`` with labels ``ys``."""
    from xmodal.align.otdd import OTDD
    from xmodal.align.targets import embed_features, target_labels

    device = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        feats = embed_features(model, X, device).cpu()
    finally:
        model.train(was)
    labels = target_labels(model, y, k_source, seed)
    return float(OTDD(Xs, ys, inner="gaussian").value(feats, labels))


@torch.no_grad()
def proxy_body_features(
    body: Body, proxy: str, n: int = 500, seed: int = 0, batch_size: int = 32, max_length: int = 64,
    source_body: Body | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pooled body outputs ``(n', out_width)`` of ``n`` class-stratified proxy samples, their labels
    ``(n',)`` in ``0..K-1`` and the ``K`` class names. The body runs in eval mode on its own device.

    ``source_body`` (default ``body``) is the body whose *pretrained* input embedding maps the proxy
    to tokens; pass the pretrained body when ``body`` was trained from scratch (its own input
    embedding is then random)."""
    from xmodal.align.source_cache import subsample
    from xmodal.data.proxies import get_proxy

    data = get_proxy(proxy)
    part = data.subset(subsample(data.labels, int(n), int(seed)))
    was_training = body.training
    body.eval()
    device = next(body.parameters()).device
    feats = []
    try:
        for i in range(0, len(part), batch_size):
            chunk = part.subset(np.arange(i, min(i + batch_size, len(part))))
            src = (source_body or body).source_tokens(chunk, batch_size=batch_size, max_length=max_length).to(device)
            feats.append(body.encode_source(src).float().cpu())
    finally:
        body.train(was_training)
    present, labels = np.unique(part.labels, return_inverse=True)
    return torch.cat(feats).numpy(), labels.reshape(-1), [data.classes[i] for i in present]


def _logreg(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0, random_state=seed))


def source_probe(
    body: Body, proxy: str | None = None, n: int = 500, seed: int = 0, source_body: Body | None = None
) -> dict[str, float]:
    """Linear-probe accuracy on the source proxy through ``body`` (MoNA Fig. 3).

    ``n`` class-stratified proxy samples are split 50/50 (stratified, seeded); a logistic regression on
    the standardised pooled features is fitted on one half and scored on the other.

    Proxies are often dominated by one class (most WNUT-16 sentences hold no entity), so the score is
    the *balanced* accuracy (mean per-class recall), whose chance level is ``1 / K``.

    Returns:
        ``{"accuracy": balanced test accuracy, "chance": 1 / K, "n": samples}``.
    """
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split

    proxy = proxy or body.default_proxy
    F, y, _ = proxy_body_features(body, proxy, n, seed, source_body=source_body)
    counts = np.bincount(y)
    keep = np.isin(y, np.nonzero(counts >= 2)[0])  # a stratified split needs two samples per class
    F, y = F[keep], y[keep]
    if len(np.unique(y)) < 2:
        raise XmodalError(f"proxy {proxy!r} gave fewer than two classes with two samples; raise n (now {n})")
    Ftr, Fte, ytr, yte = train_test_split(F, y, test_size=0.5, stratify=y, random_state=seed)
    clf = _logreg(seed).fit(Ftr, ytr)
    return {
        "accuracy": float(balanced_accuracy_score(yte, clf.predict(Fte))),
        "chance": 1.0 / len(np.unique(yte)),
        "n": int(len(y)),
    }


def best_matching_error(pred: np.ndarray, y: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """Smallest 0-1 error of ``pred`` against ``y`` (both ``(n,)`` in ``0..k-1``) over one-to-one
    relabellings of ``pred``; returns the error and the matching ``(k,)`` (``match[target] = pred class``)."""
    from scipy.optimize import linear_sum_assignment

    table = np.zeros((k, k), dtype=np.int64)
    np.add.at(table, (y, pred), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    match = np.empty(k, dtype=np.int64)
    match[rows] = cols
    return 1.0 - table[rows, cols].sum() / max(1, len(y)), match


# over 60 lines only through its docstring (every argument documented); the code is 43 lines
@torch.no_grad()
def modality_discrepancy(
    model: Any,
    X: Any,
    y: Any,
    *,
    proxy: str | None = None,
    source_size: int = 500,
    trials: int = 2000,
    seed: int = 0,
    body: Body | None = None,
) -> dict[str, Any]:
    """MoNA's modality knowledge discrepancy of a (body, target data) pair, in ``[0, 1]`` (lower: better aligned).

    Args:
        model: a :class:`~xmodal.model.assembly.CrossModalModel` (or a fitted
            :class:`~xmodal.CrossModalEstimator`); its embedder maps the target inputs.
        X: target inputs ``(N, C, *S)`` (or ``(N, F)`` tabular rows, as given to ``fit``).
        y: target class labels ``(N,)``; other targets (regression, dense) get k-means pseudo-labels
            with ``k`` = the number of source classes, as stage 2 does.
        proxy: source proxy (default: the body's own).
        source_size: proxy samples used to fit the source classifier.
        trials: subsets of source classes tried (all of them when there are fewer).
        seed: seeds the proxy sample, the classifier and the subset draw.
        body: the *pretrained* body defining the source model (default: ``model``'s body, which is the
            pretrained one before stage 3; pass a fresh one to measure a fine-tuned model's embedder).

    Returns:
        ``discrepancy``, ``baseline`` (the same with the target labels shuffled: what no alignment
        looks like), ``subsets_tried``, ``exhaustive``, ``best_subset`` (source class names) and
        ``matching`` (target class → source class name).

    Raises:
        XmodalError: fewer source classes than target classes (MoNA's assumption), or bad inputs.
    """
    from xmodal.align.source_cache import subsample
    from xmodal.align.targets import target_labels
    from xmodal.data.proxies import get_proxy
    from xmodal.data.validation import check_same_layout, check_X

    est_model = getattr(model, "model_", model)
    body = body if body is not None else est_model.body
    proxy = proxy or body.default_proxy
    # every check before any features are computed
    Xc = check_X(X, getattr(model, "spatial_dims", None))
    check_same_layout(Xc, est_model.spec.sample_shape)
    y_arr = np.asarray(y)
    if y_arr.shape[0] != Xc.shape[0]:
        raise XmodalError(f"X has {Xc.shape[0]} samples but y has {y_arr.shape[0]}")
    if not np.isfinite(y_arr.astype(np.float64)).all():
        raise XmodalError("y contains NaN or Inf")
    src_labels = get_proxy(proxy).labels
    k_s = int(np.unique(src_labels[subsample(src_labels, int(source_size), int(seed))]).size)
    labels = target_labels(est_model, torch.as_tensor(y_arr), k_s, seed).numpy().reshape(-1)
    _, labels = np.unique(labels, return_inverse=True)
    k_t = int(labels.max()) + 1
    if k_t > k_s:
        raise XmodalError(
            f"the target has {k_t} classes but the source proxy {proxy!r} only {k_s}; MoNA's discrepancy "
            "assumes at least as many source classes (use a proxy with more classes)"
        )
    Fs, ys, names = proxy_body_features(body, proxy, source_size, seed)
    clf = _logreg(seed).fit(Fs, ys)
    logits = clf.decision_function(_target_body_features(est_model, body, Xc))
    if logits.ndim == 1:  # binary source classifier: scores for class 1
        logits = np.stack([-logits, logits], axis=1)
    return _best_subset_matching(logits, labels, k_s, k_t, trials, seed, names)


@torch.no_grad()
def _target_body_features(model: Any, body: Body, Xc: np.ndarray) -> np.ndarray:
    """Mean-pooled ``body`` outputs ``(N, D)`` of ``model``'s embedded inputs, in eval mode (modes restored)."""
    device = next(body.parameters()).device
    was = (model.training, body.training)
    model.eval()
    body.eval()
    feats = []
    try:
        for xb in torch.from_numpy(Xc).split(64):
            feats.append(body(model.embed(xb.to(device)), model.grid).mean(1).float().cpu())
    finally:
        model.train(was[0])
        body.train(was[1])
    return torch.cat(feats).numpy()


def _best_subset_matching(logits: np.ndarray, labels: np.ndarray, k_s: int, k_t: int, trials: int, seed: int,
                          names: list[str]) -> dict[str, Any]:
    """The smallest 0-1 disagreement over subsets of ``k_t`` source classes and one-to-one matchings (all
    subsets when there are at most ``trials``), and the same with the target labels shuffled."""
    rng = np.random.default_rng(seed)
    total = math.comb(k_s, k_t)
    exhaustive = total <= trials
    subsets = (itertools.combinations(range(k_s), k_t) if exhaustive
               else (tuple(sorted(rng.choice(k_s, k_t, replace=False))) for _ in range(trials)))
    shuffled = rng.permutation(labels)
    best, best_sub, best_match, base = 2.0, None, None, 2.0
    for sub in subsets:
        pred = np.argmax(logits[:, list(sub)], axis=1)
        err, match = best_matching_error(pred, labels, k_t)
        if err < best:
            best, best_sub, best_match = err, sub, match
        base = min(base, best_matching_error(pred, shuffled, k_t)[0])
    return {
        "discrepancy": float(best),
        "baseline": float(base),
        "subsets_tried": int(total if exhaustive else trials),
        "exhaustive": bool(exhaustive),
        "best_subset": [names[i] for i in best_sub],
        "matching": {int(t): names[best_sub[int(best_match[t])]] for t in range(k_t)},
        "source_classes": k_s,
        "target_classes": k_t,
    }
