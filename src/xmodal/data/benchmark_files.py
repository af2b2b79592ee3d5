"""Readers for the papers' benchmark files, for users who have downloaded them.

ORCA and MoNA evaluate on NAS-Bench-360 and PDEBench. Their files are not available offline here,
so these readers are tested on tiny synthetic files with the same layouts; they never unpickle.

NAS-Bench-360 (:func:`read_nasbench360`), the layouts as the benchmark distributes them:

=============  ==========================================  ====================================  ===============
task           files                                       arrays                                 read as
=============  ==========================================  ====================================  ===============
DeepSEA        ``deepsea_filtered.npz``                    ``x_train`` (N, 1000, 4) one-hot,     multilabel,
                                                           ``y_train`` (N, 36), ``x_val``/       X (N, 4, 1000),
                                                           ``y_val``, ``x_test``/``y_test``      metric auroc
NinaPro        ``ninapro_{train,val,test}.npy``,           (N, 52, 16) EMG windows,              classification,
               ``label_{train,val,test}.npy``              (N,) labels 0..17                     X (N, 1, 16, 52)
Darcy flow     ``piececonst_r421_N1024_smooth1.mat``       ``coeff`` / ``sol`` (1024, 421, 421)  dense-regression,
               (train) and ``…_smooth2.mat`` (test)        (MAT v5 via scipy, v7.3 via h5py)     X (N, 1, 85, 85)
ECG            ``challenge2017.pkl``                       a pickle                              refused
Satellite      ``satellite_{train,test}.npy``              a pickled dict inside ``.npy``        refused
Spherical      ``s2_cifar100.gz``                          a gzipped pickle                      refused
=============  ==========================================  ====================================  ===============

Any other ``.npz`` with ``x_train``/``y_train``/``x_test``/``y_test`` (optionally ``x_val``/``y_val``;
upper-case ``X_`` accepted) is read the DeepSEA way. Pickles are refused with a message saying how to
convert them (once, in an environment the user trusts) to ``.npz``: unpickling runs arbitrary code.

PDEBench (:func:`read_pdebench`, HDF5 via the optional ``h5py``: ``pip install 'xmodal[pdebench]'``):

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
from xmodal.data.readers import dataset_from_arrays, is_pickle
from xmodal.errors import XmodalError

__all__ = ["read_nasbench360", "read_pdebench", "is_pickle"]

_PDEBENCH_INSTALL = "pip install 'xmodal[pdebench]' (or: pip install h5py)"
_CONVERT = (
    "xmodal never unpickles files (unpickling runs arbitrary code). Convert it once, in an environment you "
    "trust: load it with the benchmark's own code and save the arrays with "
    "numpy.savez(out, x_train=..., y_train=..., x_test=..., y_test=...), then read that .npz"
)
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".joblib")
_DARCY_FILES = ("piececonst_r421_N1024_smooth1.mat", "piececonst_r421_N1024_smooth2.mat")


def _refuse_pickle(p: Path) -> XmodalError:
    return XmodalError(f"{str(p)!r} is a Python pickle. {_CONVERT}")


# ---------------------------------------------------------------------------------------------
# NAS-Bench-360


def read_nasbench360(
    path: str | os.PathLike,
    *,
    include_val: bool = True,
    n_train: int | None = None,
    n_test: int | None = None,
    sub: int = 5,
    channels_last: bool | None = None,
    name: str | None = None,
) -> Dataset:
    """Read a NAS-Bench-360 task from its distributed files (see the module docstring for the layouts).

    Args:
        path: a task's file (``deepsea_filtered.npz``, ``piececonst_…_smooth1.mat``, ``ninapro_train.npy``)
            or the folder holding it.
        include_val: add the validation split to the training set (ORCA's protocol when it does not
            tune on a held-out split).
        n_train: keep the first ``n_train`` training samples (Darcy default: 1000, as ORCA).
        n_test: keep the first ``n_test`` test samples (Darcy default: 100, as ORCA).
        sub: Darcy only: keep every ``sub``-th grid node (421 → 85 for ``sub=5``).
        channels_last: ``.npz`` only: whether ``x`` is ``(N, L, C)`` (DeepSEA) and must be transposed to
            ``(N, C, L)``; default: yes when ``x`` is 3-D with fewer entries on its last axis than on its second.
        name: the dataset's name (default: from the file).

    Returns:
        A :class:`Dataset` with ``X`` ``(N, C, *S)`` float32 and ``meta["source"]``.

    Raises:
        XmodalError: a pickle (ECG, Satellite, Spherical), an unknown layout, missing arrays, or
            arrays the validation refuses.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise XmodalError(f"{str(p)!r} does not exist; point at a NAS-Bench-360 task file or its folder")
    if p.is_dir():
        return _nb360_folder(p, include_val, n_train, n_test, sub, channels_last, name)
    if p.suffix.lower() in _PICKLE_SUFFIXES or is_pickle(p):
        raise _refuse_pickle(p)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return _nb360_npz(p, include_val, n_train, n_test, channels_last, name)
    if suffix == ".mat":
        return _nb360_darcy(p.parent, n_train, n_test, sub, name)
    if suffix == ".npy":
        if p.name.startswith(("ninapro_", "label_")):
            return _nb360_ninapro(p.parent, include_val, n_train, n_test, name)
        _load_npy(p)  # refuses pickled content with the conversion hint
        raise XmodalError(
            f"{str(p)!r} is a single array without its labels; point at the folder of a NinaPro-style task "
            "(ninapro_train.npy + label_train.npy, …) or save inputs and labels together in an .npz"
        )
    raise XmodalError(
        f"{str(p)!r} is not a NAS-Bench-360 file xmodal reads (.npz, .npy, .mat); pickles are refused. {_CONVERT}"
    )


def _nb360_folder(p: Path, include_val, n_train, n_test, sub, channels_last, name) -> Dataset:
    found: list[tuple[str, Any]] = []
    if (p / "deepsea_filtered.npz").is_file():
        found.append(("deepsea", lambda: _nb360_npz(p / "deepsea_filtered.npz", include_val, n_train, n_test,
                                                    channels_last, name)))
    for folder in (p, p / "ninaPro"):
        if (folder / "ninapro_train.npy").is_file():
            found.append(("ninapro", lambda folder=folder: _nb360_ninapro(folder, include_val, n_train, n_test,
                                                                          name)))
            break
    if all((p / f).is_file() for f in _DARCY_FILES):
        found.append(("darcy", lambda: _nb360_darcy(p, n_train, n_test, sub, name)))
    if len(found) == 1:
        return found[0][1]()
    if len(found) > 1:
        raise XmodalError(
            f"{str(p)!r} holds several NAS-Bench-360 tasks ({', '.join(k for k, _ in found)}); point at one file"
        )
    pickles = sorted(f.name for f in p.iterdir() if f.is_file() and (f.suffix in _PICKLE_SUFFIXES or f.suffix == ".gz"))
    if (p / "satellite_train.npy").is_file():
        _load_npy(p / "satellite_train.npy")  # raises: the satellite arrays are a pickled dict
    if pickles:
        raise XmodalError(f"{str(p)!r} holds only pickles ({', '.join(pickles)}). {_CONVERT}")
    raise XmodalError(
        f"no NAS-Bench-360 task found in {str(p)!r}: expected deepsea_filtered.npz, ninapro_*.npy + label_*.npy, "
        f"or {' + '.join(_DARCY_FILES)}"
    )


def _load_npy(p: Path) -> np.ndarray:
    if is_pickle(p):
        raise _refuse_pickle(p)
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise XmodalError(
                f"{str(p)!r} holds a pickled Python object (NAS-Bench-360's satellite files are pickled dicts "
                f"inside .npy). {_CONVERT}"
            ) from None
        raise XmodalError(f"cannot read {str(p)!r} as a .npy array ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise XmodalError(f"cannot read {str(p)!r} as a .npy array ({exc})") from exc


def _npz_arrays(p: Path) -> dict[str, np.ndarray]:
    try:
        archive = np.load(p, allow_pickle=False)
    except Exception as exc:
        raise XmodalError(f"cannot read {str(p)!r} as an .npz archive ({type(exc).__name__}: {exc})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise XmodalError(f"{str(p)!r} holds a single array, not an .npz archive of x_train/y_train/x_test/y_test")
    out: dict[str, np.ndarray] = {}
    with archive:
        for key in archive.files:
            low = key.lower()
            if low in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
                try:
                    out[low] = archive[key]
                except ValueError:
                    raise XmodalError(f"{key} in {str(p)!r} is an object array. {_CONVERT}") from None
        if not {"x_train", "y_train", "x_test", "y_test"} <= set(out):
            missing = sorted({"x_train", "y_train", "x_test", "y_test"} - set(out))
            raise XmodalError(
                f"{str(p)!r} lacks {', '.join(missing)} (it holds {sorted(archive.files)}); a NAS-Bench-360 .npz "
                "holds x_train, y_train, x_test, y_test (and optionally x_val, y_val)"
            )
    if ("x_val" in out) != ("y_val" in out):
        raise XmodalError(f"{str(p)!r} has only one of x_val / y_val; store both or neither")
    return out


def _head(a: np.ndarray, n: int | None) -> np.ndarray:
    return a if n is None else a[: int(n)]


def _nb360_npz(p: Path, include_val, n_train, n_test, channels_last, name) -> Dataset:
    arrays = _npz_arrays(p)
    x_tr, y_tr = arrays["x_train"], arrays["y_train"]
    if include_val and "x_val" in arrays:
        x_tr = np.concatenate([x_tr, arrays["x_val"]])
        y_tr = np.concatenate([y_tr, arrays["y_val"]])
    x_tr, y_tr = _head(x_tr, n_train), _head(y_tr, n_train)
    x_te, y_te = _head(arrays["x_test"], n_test), _head(arrays["y_test"], n_test)
    if channels_last is None:
        channels_last = x_tr.ndim == 3 and x_tr.shape[2] < x_tr.shape[1]
    if channels_last:
        x_tr, x_te = np.swapaxes(x_tr, 1, -1), np.swapaxes(x_te, 1, -1)
    multilabel = y_tr.ndim == 2 and y_tr.shape[1] > 1 and np.isin(y_tr, (0, 1)).all()
    return dataset_from_arrays(
        name or p.stem.replace("_filtered", ""),
        x_tr,
        y_tr,
        x_te,
        y_te,
        task="multilabel" if multilabel else "auto",
        metric="auroc" if multilabel else None,
        description=f"NAS-Bench-360 task from {p.name}",
        meta={"source": str(p), "channels_last_in_file": bool(channels_last), "val_in_train": bool(include_val)},
    )


def _nb360_ninapro(folder: Path, include_val, n_train, n_test, name) -> Dataset:
    def pair(split: str) -> tuple[np.ndarray, np.ndarray] | None:
        x, y = folder / f"ninapro_{split}.npy", folder / f"label_{split}.npy"
        if not x.is_file() or not y.is_file():
            return None
        return _load_npy(x), _load_npy(y)

    train, val, test = pair("train"), pair("val"), pair("test")
    if train is None or test is None:
        raise XmodalError(
            f"{str(folder)!r} lacks ninapro_train.npy/label_train.npy or ninapro_test.npy/label_test.npy"
        )
    (x_tr, y_tr), (x_te, y_te) = train, test
    if include_val and val is not None:
        x_tr, y_tr = np.concatenate([x_tr, val[0]]), np.concatenate([y_tr, val[1]])
    if x_tr.ndim != 3:
        raise XmodalError(f"NinaPro windows must be (N, time, electrodes), got {x_tr.shape} in {str(folder)!r}")
    # ORCA/NAS-Bench-360: (N, 52, 16) → permute to (N, 16, 52) → one image channel: (N, 1, 16, 52)
    prep = lambda x: np.swapaxes(x, 1, 2)[:, None]  # noqa: E731
    return dataset_from_arrays(
        name or "ninapro",
        prep(_head(x_tr, n_train)),
        _head(y_tr, n_train).astype(np.int64),
        prep(_head(x_te, n_test)),
        _head(y_te, n_test).astype(np.int64),
        task="classification",
        metric="accuracy",
        description="NAS-Bench-360 NinaPro DB5: sEMG windows (16 electrodes × 52 steps), 18 hand gestures",
        meta={"source": str(folder), "val_in_train": bool(include_val)},
    )


def _read_mat(p: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(p, variable_names=list(keys))
        missing = [k for k in keys if k not in mat]
        if missing:
            raise XmodalError(f"{str(p)!r} has no {', '.join(missing)}; a NAS-Bench-360 Darcy file holds {keys}")
        return {k: np.asarray(mat[k]) for k in keys}
    except NotImplementedError:  # MAT v7.3 is HDF5
        pass
    except XmodalError:
        raise
    except Exception as exc:
        raise XmodalError(f"cannot read {str(p)!r} as a MATLAB file ({type(exc).__name__}: {exc})") from exc
    h5py = _require_h5py(f"{p.name} is a MATLAB v7.3 (HDF5) file")
    with h5py.File(p, "r") as f:
        missing = [k for k in keys if k not in f]
        if missing:
            raise XmodalError(f"{str(p)!r} has no {', '.join(missing)}; a NAS-Bench-360 Darcy file holds {keys}")
        # MATLAB writes column-major: h5py sees the axes reversed
        return {k: np.transpose(np.asarray(f[k])) for k in keys}


def _nb360_darcy(folder: Path, n_train, n_test, sub: int, name) -> Dataset:
    files = [folder / f for f in _DARCY_FILES]
    absent = [f.name for f in files if not f.is_file()]
    if absent:
        raise XmodalError(f"{str(folder)!r} lacks {', '.join(absent)} (Darcy: smooth1 is train, smooth2 is test)")
    if int(sub) != sub or sub < 1:
        raise XmodalError(f"sub must be a positive integer stride, got {sub!r}")
    parts = []
    for f, n in zip(files, (1000 if n_train is None else n_train, 100 if n_test is None else n_test), strict=True):
        d = _read_mat(f, ("coeff", "sol"))
        a, u = d["coeff"], d["sol"]
        if a.ndim != 3 or u.shape != a.shape:
            raise XmodalError(f"{str(f)!r}: coeff {a.shape} and sol {u.shape} must both be (N, s, s)")
        parts.append((a[:n, ::sub, ::sub][:, None], u[:n, ::sub, ::sub][:, None]))
    (a_tr, u_tr), (a_te, u_te) = parts
    return dataset_from_arrays(
        name or "darcy-nb360",
        a_tr,
        u_tr.astype(np.float32),
        a_te,
        u_te.astype(np.float32),
        task="dense-regression",
        metric="rel_l2",
        description=f"NAS-Bench-360 / FNO Darcy flow, every {sub}th node ({a_tr.shape[-1]}×{a_tr.shape[-1]})",
        meta={"source": str(folder), "files": list(_DARCY_FILES), "sub": int(sub)},
    )


# ---------------------------------------------------------------------------------------------
# PDEBench

_CFD_FIELDS = ("density", "pressure", "Vx", "Vy", "Vz")


def _require_h5py(why: str = "PDEBench files are HDF5"):
    if importlib.util.find_spec("h5py") is None:
        raise XmodalError(f"{why} and need h5py, which is not installed; install with: {_PDEBENCH_INSTALL}")
    import h5py

    return h5py


def _step(t: int, n_steps: int, what: str) -> int:
    if not -n_steps <= t < n_steps:
        raise XmodalError(f"target_step {t} is out of range for {what} with {n_steps} time steps")
    return t % n_steps


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
    h5py = _require_h5py()
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
            nu, sol = f["nu"], f["tensor"]
            if sol.ndim != nu.ndim + 1 or sol.shape[0] != nu.shape[0] or sol.shape[2:] != nu.shape[1:]:
                raise XmodalError(f"{str(p)!r}: Darcy 'nu' {nu.shape} and 'tensor' {sol.shape} do not match "
                                  "((N, X, Y) and (N, 1, X, Y))")
            X = np.asarray(nu[:n])[(slice(None), None, *sl * (nu.ndim - 1))]
            Y = np.asarray(sol[:n, :1])[(slice(None), slice(None), *sl * (nu.ndim - 1))]
            meta.update(layout="darcy")
        elif "tensor" in keys:
            t = f["tensor"]
            if t.ndim < 3:
                raise XmodalError(f"{str(p)!r}: 'tensor' has shape {t.shape}; expected (N, T, *S)")
            k = _step(target_step, t.shape[1], "'tensor'")
            spatial = (slice(None), None, *sl * (t.ndim - 2))
            X, Y = np.asarray(t[:n, 0])[spatial], np.asarray(t[:n, k])[spatial]
            meta.update(layout="tensor", target_step=k, **_time(f, k))
        elif {"density", "Vx"} <= keys:
            fields = [c for c in _CFD_FIELDS if c in keys]
            shape = f[fields[0]].shape
            if any(f[c].shape != shape for c in fields) or len(shape) < 3:
                raise XmodalError(f"{str(p)!r}: CFD fields {fields} must share one (N, T, *S) shape")
            k = _step(target_step, shape[1], "the CFD fields")
            spatial = (slice(None), slice(None), *sl * (len(shape) - 2))
            X = np.stack([np.asarray(f[c][:n, 0]) for c in fields], axis=1)[spatial]
            Y = np.stack([np.asarray(f[c][:n, k]) for c in fields], axis=1)[spatial]
            meta.update(layout="cfd", fields=fields, target_step=k, **_time(f, k))
        else:
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
            tgrid = f[groups[0]].get("grid/t")
            meta.update(layout="groups", target_step=k)
            if tgrid is not None and k < len(tgrid):
                meta["target_time"] = float(tgrid[k])
    n_total = len(X)
    n_test = int(n_total * test_fraction)
    if n_test < 1 or n_test >= n_total:
        raise XmodalError(
            f"{str(p)!r}: {n_total} sample(s) with test_fraction={test_fraction} leave an empty train or test split"
        )
    meta.update(split=f"PDEBench: first {n_test} samples test, remaining {n_total - n_test} train")
    return dataset_from_arrays(
        name or p.stem,
        X[n_test:].astype(np.float32),
        Y[n_test:].astype(np.float32),
        X[:n_test].astype(np.float32),
        Y[:n_test].astype(np.float32),
        task="dense-regression",
        metric="rel_l2",
        description=f"PDEBench {meta['layout']} file {p.name}",
        meta=meta,
    )


def _time(f: Any, k: int) -> dict[str, float]:
    if "t-coordinate" in f:
        t = f["t-coordinate"]
        if k < len(t):
            return {"target_time": float(t[k])}
    return {}
