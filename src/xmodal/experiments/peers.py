"""Expert peers run beside xmodal in the benchmark suite, on the same splits and metric.

* ``minirocket`` — MiniRocket (Dempster et al., 2021; aeon's ``MiniRocketClassifier``), the expert
  the ORCA paper cites for satellite time series; 1-D classification.
* ``hgb`` — scikit-learn's ``HistGradientBoostingClassifier`` / ``Regressor`` on the flattened
  inputs; the standard strong baseline for tabular data, also run on images and DNA here.
* ``fno`` — a Fourier neural operator (Li et al., 2021) for dense 2-D regression (Darcy flow): the
  expert of ORCA's Darcy row. ``neuraloperator`` 0.3.0 is installed without its dependencies (it
  cannot be imported: it needs ``wandb`` and more), so :class:`FNO2d` is a compact implementation of
  the paper's architecture (lifting, 4 spectral layers with a 1×1 skip and GELU, projection), trained
  with Adam on the relative L2 loss as FNO's Darcy script does.

Each peer is ``fit_score(data, seed) -> (metric value, seconds)`` with the task's default metric.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from xmodal.data.dataset import Dataset
from xmodal.errors import XmodalError
from xmodal.evaluate.metrics import evaluate
from xmodal.registry import Registry
from xmodal.tasks import get_task_kind

__all__ = ["Peer", "PEERS", "get_peer", "FNO2d"]


@dataclass(frozen=True)
class Peer:
    """An expert baseline: which task kinds it serves and how it is fitted and scored."""

    name: str
    description: str
    tasks: tuple[str, ...]
    fit_score: Callable[..., float]

    def run(self, data: Dataset, seed: int = 0, **options: Any) -> tuple[float, float]:
        """Fit on the training split, score the test split: ``(metric value, seconds)``. ``options`` go
        to the peer's fit function (e.g. ``epochs=10`` for ``fno``)."""
        if data.task not in self.tasks:
            raise XmodalError(f"peer {self.name!r} handles {list(self.tasks)} tasks; {data.name!r} is {data.task}")
        if data.X_test is None:
            raise XmodalError(f"dataset {data.name!r} has no test split to score the peer on")
        t0 = time.perf_counter()
        value = self.fit_score(data, seed, **options)
        return float(value), time.perf_counter() - t0


def _score_proba(data: Dataset, proba: np.ndarray) -> float:
    kind = get_task_kind(data.task)
    out = torch.log(torch.as_tensor(proba, dtype=torch.float32).clamp_min(1e-12))  # log p: softmax(log p) = p
    return evaluate(kind, out, torch.as_tensor(data.y_test), [kind.default_metric])[kind.default_metric]


def _minirocket(data: Dataset, seed: int) -> float:
    from aeon.classification.convolution_based import MiniRocketClassifier

    if data.X_train.ndim != 3:
        raise XmodalError("minirocket needs series (N, C, L)")
    clf = MiniRocketClassifier(random_state=seed, n_jobs=1)
    clf.fit(data.X_train.astype(np.float64), data.y_train)
    proba = np.zeros((len(data.X_test), int(max(data.y_train.max(), data.y_test.max())) + 1))
    proba[:, clf.classes_.astype(int)] = clf.predict_proba(data.X_test.astype(np.float64))
    return _score_proba(data, proba)


def _hgb(data: Dataset, seed: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    Xtr = data.X_train.reshape(len(data.X_train), -1)
    Xte = data.X_test.reshape(len(data.X_test), -1)
    kind = get_task_kind(data.task)
    if kind.class_labels:
        clf = HistGradientBoostingClassifier(random_state=seed).fit(Xtr, data.y_train)
        proba = np.zeros((len(Xte), int(max(data.y_train.max(), data.y_test.max())) + 1))
        proba[:, clf.classes_.astype(int)] = clf.predict_proba(Xte)
        return _score_proba(data, proba)
    ytr = data.y_train.reshape(len(data.y_train), -1)
    if ytr.shape[1] != 1:
        raise XmodalError("hgb handles one regression target; use fno for fields")
    reg = HistGradientBoostingRegressor(random_state=seed).fit(Xtr, ytr[:, 0])
    pred = torch.as_tensor(reg.predict(Xte), dtype=torch.float32).reshape(data.y_test.shape)
    return evaluate(kind, pred, torch.as_tensor(data.y_test), [kind.default_metric])[kind.default_metric]


class _SpectralConv2d(nn.Module):
    """Multiply the lowest ``modes × modes`` Fourier coefficients (both signs of the first axis) by
    learned complex weights: ``(N, C_in, H, W)`` → ``(N, C_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int, modes: int) -> None:
        super().__init__()
        scale = 1.0 / (c_in * c_out)
        self.modes = modes
        self.w1 = nn.Parameter(scale * torch.randn(c_in, c_out, modes, modes, dtype=torch.cfloat))
        self.w2 = nn.Parameter(scale * torch.randn(c_in, c_out, modes, modes, dtype=torch.cfloat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        m1, m2 = min(self.modes, h // 2), min(self.modes, w // 2 + 1)
        xf = torch.fft.rfft2(x)
        out = torch.zeros(n, self.w1.shape[1], h, w // 2 + 1, dtype=torch.cfloat, device=x.device)
        out[:, :, :m1, :m2] = torch.einsum("bixy,ioxy->boxy", xf[:, :, :m1, :m2], self.w1[:, :, :m1, :m2])
        out[:, :, -m1:, :m2] = torch.einsum("bixy,ioxy->boxy", xf[:, :, -m1:, :m2], self.w2[:, :, :m1, :m2])
        return torch.fft.irfft2(out, s=(h, w))


class FNO2d(nn.Module):
    """Fourier neural operator for ``(N, C, H, W)`` → ``(N, K, H, W)`` fields (grid coordinates appended)."""

    def __init__(self, c_in: int, c_out: int, modes: int = 12, width: int = 32, layers: int = 4) -> None:
        super().__init__()
        self.lift = nn.Conv2d(c_in + 2, width, 1)
        self.spectral = nn.ModuleList(_SpectralConv2d(width, width, modes) for _ in range(layers))
        self.skip = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(layers))
        self.proj = nn.Sequential(nn.Conv2d(width, 128, 1), nn.GELU(), nn.Conv2d(128, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        gy = torch.linspace(0, 1, h, device=x.device).reshape(1, 1, h, 1).expand(n, 1, h, w)
        gx = torch.linspace(0, 1, w, device=x.device).reshape(1, 1, 1, w).expand(n, 1, h, w)
        z = self.lift(torch.cat([x, gy, gx], dim=1))
        for i, (spec, skip) in enumerate(zip(self.spectral, self.skip, strict=True)):
            z = spec(z) + skip(z)
            if i < len(self.spectral) - 1:
                z = nn.functional.gelu(z)
        return self.proj(z)


def _fno(data: Dataset, seed: int, epochs: int = 30, batch_size: int = 20, lr: float = 1e-3) -> float:
    kind = get_task_kind(data.task)
    if not (kind.dense and kind.standardise_targets) or data.X_train.ndim != 4:
        raise XmodalError("fno handles dense regression on 2-D fields (N, C, H, W)")
    torch.manual_seed(seed)
    X = torch.as_tensor(data.X_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train, dtype=torch.float32)
    y = y.unsqueeze(1) if y.ndim == 3 else y
    xm, xs = X.mean((0, 2, 3), keepdim=True), X.std((0, 2, 3), keepdim=True).clamp_min(1e-6)
    ym, ys = y.mean((0, 2, 3), keepdim=True), y.std((0, 2, 3), keepdim=True).clamp_min(1e-6)
    model = FNO2d(X.shape[1], y.shape[1], modes=min(12, X.shape[2] // 2))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * -(-len(X) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(X), generator=gen).split(batch_size):
            pred = model((X[idx] - xm) / xs) * ys + ym
            diff = (pred - y[idx]).flatten(1).norm(dim=1) / y[idx].flatten(1).norm(dim=1).clamp_min(1e-12)
            loss = diff.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        Xt = torch.as_tensor(data.X_test, dtype=torch.float32)
        pred = torch.cat([model((xb - xm) / xs) * ys + ym for xb in Xt.split(64)])
    yt = torch.as_tensor(data.y_test, dtype=torch.float32)
    pred = pred.reshape(yt.shape) if yt.ndim == 3 else pred
    kind = get_task_kind(data.task)
    return evaluate(kind, pred, yt, [kind.default_metric])[kind.default_metric]


PEERS: Registry[Peer] = Registry("peer")
for _peer in (
    Peer("minirocket", "MiniRocket (aeon), the time-series expert", ("classification",), _minirocket),
    Peer("hgb", "histogram gradient boosting (scikit-learn) on flattened inputs",
         ("classification", "regression"), _hgb),
    Peer("fno", "Fourier neural operator (4 layers, 12 modes, width 32; 30 epochs unless the task sets fewer)",
         ("dense-regression",), _fno),
):
    PEERS.add(_peer.name, _peer)


def get_peer(name: str) -> Peer:
    """The registered peer called ``name``."""
    return PEERS[name]
