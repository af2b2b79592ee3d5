"""Built-in real datasets, read offline from files that installed packages ship.

Nothing here touches the network: every loader reads data bundled with a package (aeon's UCR/UEA
examples, scikit-learn's toy tables, the Darcy-flow sample of ``neuraloperator``). A loader is a
function registered with :func:`register_dataset`; :func:`load_dataset` runs it by name and
:func:`list_datasets` says which ones the current environment can provide.

=================  ===================  ================  =================  ===========  ==========
name               task                 X train / test    sample ``(C,*S)``  classes      package
=================  ===================  ================  =================  ===========  ==========
gunpoint           classification       50 / 150          (1, 150)           2            aeon
acsf1              classification       100 / 100         (1, 1460)          10           aeon
basicmotions       classification       40 / 40           (6, 100)           4            aeon
italypowerdemand   classification       67 / 1029         (1, 24)            2            aeon
breast-cancer      classification       455 / 114         (1, 30)            2            scikit-learn
wine               classification       142 / 36          (1, 13)            3            scikit-learn
darcy-16           dense-regression     1000 / 50         (1, 16, 16)        --           neuraloperator
=================  ===================  ================  =================  ===========  ==========
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
