"""Built-in series: UCR/UEA examples bundled with aeon (GunPoint, ACSF1, BasicMotions, ItalyPowerDemand,
JapaneseVowels)."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np

from xmodal.data.builtin.registry import DATASETS, files_present, register_dataset
from xmodal.data.dataset import Dataset
from xmodal.data.readers import dataset_from_arrays, encode_labels
from xmodal.errors import XmodalError

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


def _shipped_files(name: str, problem: str, alternative: str = "") -> tuple[Path, Path]:
    """The train/test ``.ts`` files of ``problem`` in the installed aeon, or an error saying what to install."""
    files = _aeon_files(problem)
    if files is None:
        raise XmodalError(f"dataset {name!r} needs aeon; install with: pip install aeon")
    if not all(f.is_file() for f in files):
        raise XmodalError(
            f"dataset {name!r}: this aeon installation does not ship {problem} (looked for {files[0]}); "
            f"install an aeon release that bundles it: pip install 'aeon>=1.0,<1.7'{alternative}"
        )
    return files


def _aeon_classification(name: str, problem: str, description: str) -> Dataset:
    files = _shipped_files(name, problem, f", or download it with aeon.datasets.load_classification({problem!r}) "
                                          "and use read_npz")
    from aeon.datasets import load_from_ts_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X_tr, y_tr = load_from_ts_file(str(files[0]), return_type="numpy3D")
        X_te, y_te = load_from_ts_file(str(files[1]), return_type="numpy3D")
    y_tr_idx, y_te_idx, classes = encode_labels(y_tr, y_te)
    return dataset_from_arrays(
        name, X_tr, y_tr_idx, X_te, y_te_idx, task="classification", metric="accuracy", description=description,
        meta={"source": str(files[0].parent), "classes": classes, "problem": problem},
    )


def _register_aeon(name: str, problem: str, description: str) -> None:
    def loader() -> Dataset:
        return _aeon_classification(name, problem, description)

    loader.__name__ = f"load_{name.replace('-', '_')}"
    loader.__doc__ = f"{description} Task classification, metric accuracy."
    register_dataset(name, description=description, requires=("aeon",), install="pip install aeon",
                     check=lambda: files_present(_aeon_files(problem)))(loader)


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
# aeon: unequal-length multivariate (JapaneseVowels), zero-padded on the right
# --------------------------------------------------------------------------------------------


@register_dataset(
    "japanesevowels",
    description=(
        "UEA JapaneseVowels: 12 LPC cepstrum coefficients of 9 speakers' /ae/, unequal lengths 7-29 "
        "zero-padded to 29; 270 / 370, 9 classes (aeon)."
    ),
    requires=("aeon",),
    install="pip install aeon",
    check=lambda: files_present(_aeon_files("JapaneseVowels")),
)
def load_japanesevowels() -> Dataset:
    """JapaneseVowels: X ``(270, 12, 29)`` / ``(370, 12, 29)`` float32, y ``(N,)`` speaker 0..8.

    The series have 7 to 29 frames; each is padded on the right with zeros to the longest length
    over train and test (29). Zero is the neutral value once the model standardises each channel;
    the true lengths are in ``meta["lengths_train"]`` / ``meta["lengths_test"]``.
    """
    name, problem = "japanesevowels", "JapaneseVowels"
    files = _shipped_files(name, problem)
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
