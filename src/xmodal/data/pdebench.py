"""PDEBench files as operator-learning tasks (:func:`read_pdebench`).

The files are HDF5, read with the optional ``h5py`` (``pip install 'xmodal[pdebench]'``). They are not
available offline here, so the reader is tested on tiny synthetic files with the same layouts:

==================  =========================================================  ==========================
layout              datasets                                                   input → target
==================  =========================================================  ==========================
1-D, one field      ``tensor`` (N, T, X), ``x-coordinate`` (X,),              ``tensor[:, 0]`` →
(Advection,         ``t-coordinate`` (T+1,)                                    ``tensor[:, t]``, (N, 1, X)
Burgers, ReacDiff)
CFD (1-D/2-D/3-D)   ``density``, ``pressure``, ``Vx`` [, ``Vy``, ``Vz``]       the fields at step 0 →
                    each (N, T, *S)                                            the fields at step t (N, C, *S)
Darcy (2-D)         ``nu`` (N, X, Y), ``tensor`` (N, 1, X, Y)                  ``nu`` → ``tensor`` (N, 1, X, Y)
one group per       ``"0000"/data`` (T, *S, C), ``"0000"/grid/…``              ``data[0]`` → ``data[t]``
sample (SWE,                                                                   (N, C, *S)
2-D diff-react)
==================  =========================================================  ==========================

The split follows PDEBench: the first ``int(N · test_fraction)`` samples are the test set, the rest
the training set. Targets are dense regression scored with ``rel_l2``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.data.dataset import Dataset
from xmodal.data.readers import dataset_from_arrays
from xmodal.errors import XmodalError

__all__ = ["read_pdebench", "require_h5py"]

_PDEBENCH_INSTALL = "pip install 'xmodal[pdebench]' (or: pip install h5py)"
_CFD_FIELDS = ("density", "pressure", "Vx", "Vy", "Vz")


def require_h5py(why: str = "PDEBench files are HDF5"):
    if importlib.util.find_spec("h5py") is None:
        raise XmodalError(f"{why} and need h5py, which is not installed; install with: {_PDEBENCH_INSTALL}")
    import h5py

    return h5py


def _step(t: int, n_steps: int, what: str) -> int:
    if not -n_steps <= t < n_steps:
        raise XmodalError(f"target_step {t} is out of range for {what} with {n_steps} time steps")
    return t % n_steps


# over 60 lines only through its docstring (every argument documented); the code is 48 lines
def read_pdebench(
    path: str | os.PathLike,
    *,
    target_step: int = -1,
    spatial_stride: int = 1,
    n_samples: int | None = None,
    test_fraction: float = 0.1,
    name: str | None = None,
) -> Dataset:
    """Read a PDEBench HDF5 file as an operator-learning task (see the module docstring for the layouts).

    Time-dependent files map the initial condition (step 0) to the solution at ``target_step``;
    Darcy maps the coefficient ``nu`` to the steady solution. Only the two time steps read are
    loaded from disk, so the multi-GB files fit in memory.

    Args:
        path: a PDEBench ``.hdf5`` / ``.h5`` file.
        target_step: the time index of the target (negative counts from the end; ignored for Darcy).
        spatial_stride: keep every ``spatial_stride``-th point along each spatial axis (PDEBench's
            ``reduced_resolution``).
        n_samples: use only the first ``n_samples`` samples (PDEBench's ``num_samples_max``).
        test_fraction: the first ``int(N · test_fraction)`` samples form the test set (PDEBench's
            ``test_ratio``).
        name: the dataset's name (default: the file stem).

    Returns:
        A dense-regression :class:`Dataset`, ``X`` and ``y`` ``(N, C, *S)`` float32, metric ``rel_l2``;
        ``meta`` has ``layout``, ``target_step`` and, when the file has ``t-coordinate``, ``target_time``.

    Raises:
        XmodalError: h5py missing (names the install command), unreadable file, unknown layout or
            missing datasets, a bad ``target_step``/``spatial_stride``/``test_fraction``.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise XmodalError(f"PDEBench file {str(p)!r} does not exist; check the path")
    if int(spatial_stride) != spatial_stride or spatial_stride < 1:
        raise XmodalError(f"spatial_stride must be a positive integer, got {spatial_stride!r}")
    if not 0.0 < test_fraction < 1.0:
        raise XmodalError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    if n_samples is not None and (int(n_samples) != n_samples or n_samples < 2):
        raise XmodalError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    h5py = require_h5py()
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise XmodalError(f"cannot open {str(p)!r} as HDF5 ({exc}); is it a PDEBench .hdf5 file?") from exc
    meta: dict[str, Any] = {"source": str(p)}
    with f:
        n = None if n_samples is None else int(n_samples)
        sl = (slice(None, None, int(spatial_stride)),)
        keys = set(f.keys())
        if "nu" in keys and "tensor" in keys:
            X, Y, found = _pdebench_darcy(f, p, n, sl)
        elif "tensor" in keys:
            X, Y, found = _pdebench_tensor(f, p, n, sl, target_step)
        elif {"density", "Vx"} <= keys:
            X, Y, found = _pdebench_cfd(f, p, n, sl, target_step, keys)
        else:
            X, Y, found = _pdebench_groups(f, p, n, sl, target_step, keys, h5py)
        meta.update(found)
    n_total = len(X)
    n_test = int(n_total * test_fraction)
    if n_test < 1 or n_test >= n_total:
        raise XmodalError(
            f"{str(p)!r}: {n_total} sample(s) with test_fraction={test_fraction} leave an empty train or test split"
        )
    meta.update(split=f"PDEBench: first {n_test} samples test, remaining {n_total - n_test} train")
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    return dataset_from_arrays(name or p.stem, X[n_test:], Y[n_test:], X[:n_test], Y[:n_test],
                               task="dense-regression", metric="rel_l2",
                               description=f"PDEBench {meta['layout']} file {p.name}", meta=meta)


_Read = tuple[np.ndarray, np.ndarray, dict[str, Any]]


def _pdebench_darcy(f: Any, p: Path, n: int | None, sl: tuple[slice, ...]) -> _Read:
    """Darcy: coefficient ``nu`` ``(N, *S)`` → steady solution ``tensor`` ``(N, 1, *S)``."""
    nu, sol = f["nu"], f["tensor"]
    if sol.ndim != nu.ndim + 1 or sol.shape[0] != nu.shape[0] or sol.shape[2:] != nu.shape[1:]:
        raise XmodalError(f"{str(p)!r}: Darcy 'nu' {nu.shape} and 'tensor' {sol.shape} do not match "
                          "((N, X, Y) and (N, 1, X, Y))")
    X = np.asarray(nu[:n])[(slice(None), None, *sl * (nu.ndim - 1))]
    Y = np.asarray(sol[:n, :1])[(slice(None), slice(None), *sl * (nu.ndim - 1))]
    return X, Y, {"layout": "darcy"}


def _pdebench_tensor(f: Any, p: Path, n: int | None, sl: tuple[slice, ...], target_step: int) -> _Read:
    """One field ``tensor`` ``(N, T, *S)``: step 0 → step ``target_step``."""
    t = f["tensor"]
    if t.ndim < 3:
        raise XmodalError(f"{str(p)!r}: 'tensor' has shape {t.shape}; expected (N, T, *S)")
    k = _step(target_step, t.shape[1], "'tensor'")
    spatial = (slice(None), None, *sl * (t.ndim - 2))
    return (np.asarray(t[:n, 0])[spatial], np.asarray(t[:n, k])[spatial],
            {"layout": "tensor", "target_step": k, **_time(f, k)})


def _pdebench_cfd(f: Any, p: Path, n: int | None, sl: tuple[slice, ...], target_step: int, keys: set[str]) -> _Read:
    """Compressible flow: the fields ``density``, ``pressure``, ``Vx``… ``(N, T, *S)`` as channels."""
    fields = [c for c in _CFD_FIELDS if c in keys]
    shape = f[fields[0]].shape
    if any(f[c].shape != shape for c in fields) or len(shape) < 3:
        raise XmodalError(f"{str(p)!r}: CFD fields {fields} must share one (N, T, *S) shape")
    k = _step(target_step, shape[1], "the CFD fields")
    spatial = (slice(None), slice(None), *sl * (len(shape) - 2))
    X = np.stack([np.asarray(f[c][:n, 0]) for c in fields], axis=1)[spatial]
    Y = np.stack([np.asarray(f[c][:n, k]) for c in fields], axis=1)[spatial]
    return X, Y, {"layout": "cfd", "fields": fields, "target_step": k, **_time(f, k)}


def _pdebench_groups(f: Any, p: Path, n: int | None, sl: tuple[slice, ...], target_step: int, keys: set[str],
                     h5py: Any) -> _Read:
    """One group per sample holding ``data`` ``(T, *S, C)`` (and ``grid/t``)."""
    groups = sorted(g for g in keys if isinstance(f[g], h5py.Group) and "data" in f[g])
    if not groups:
        raise XmodalError(
            f"{str(p)!r} is not a PDEBench layout xmodal knows: expected 'tensor' (N, T, *S), 'nu' + 'tensor' "
            "(Darcy), CFD fields 'density'/'pressure'/'Vx'…, or one group per sample with 'data'; "
            f"it holds {sorted(keys)[:10]}"
        )
    groups = groups[:n]
    d0 = f[groups[0]]["data"]
    if d0.ndim < 3:
        raise XmodalError(f"{str(p)!r}: '{groups[0]}/data' has shape {d0.shape}; expected (T, *S, C)")
    k = _step(target_step, d0.shape[0], f"'{groups[0]}/data'")
    spatial = (slice(None), slice(None), *sl * (d0.ndim - 2))
    X = np.stack([np.moveaxis(np.asarray(f[g]["data"][0]), -1, 0) for g in groups])[spatial]
    Y = np.stack([np.moveaxis(np.asarray(f[g]["data"][k]), -1, 0) for g in groups])[spatial]
    found: dict[str, Any] = {"layout": "groups", "target_step": k}
    tgrid = f[groups[0]].get("grid/t")
    if tgrid is not None and k < len(tgrid):
        found["target_time"] = float(tgrid[k])
    return X, Y, found


def _time(f: Any, k: int) -> dict[str, float]:
    if "t-coordinate" in f:
        t = f["t-coordinate"]
        if k < len(t):
            return {"target_time": float(t[k])}
    return {}
