"""Readers for NAS-Bench-360's files (the papers' benchmark), for users who have downloaded them.

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

PDEBench files: :mod:`xmodal.data.pdebench`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.data.dataset import Dataset
from xmodal.data.pdebench import require_h5py
from xmodal.data.readers import dataset_from_arrays, is_pickle
from xmodal.errors import XmodalError

__all__ = ["read_nasbench360", "is_pickle"]

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
    h5py = require_h5py(f"{p.name} is a MATLAB v7.3 (HDF5) file")
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
