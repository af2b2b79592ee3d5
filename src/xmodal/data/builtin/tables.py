"""Built-in tables: scikit-learn's toy tables and OpenML-CC18 members among Debian weka's examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xmodal.data.builtin.registry import register_dataset
from xmodal.data.dataset import Dataset
from xmodal.data.readers import dataset_from_arrays
from xmodal.errors import XmodalError

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
        name, X_tr, y_tr, X_te, y_te, task="classification", metric="accuracy", description=description,
        meta={
            "source": f"sklearn.datasets.{loader_name} (split: train_test_split(test_size=0.2, "
            "stratify=y, random_state=0))",
            "classes": [str(c) for c in bunch.target_names],
            "feature_names": [str(f) for f in bunch.feature_names],
        },
    )


def _register_sklearn(name: str, loader_name: str, description: str, doc: str) -> None:
    def loader() -> Dataset:
        return _sklearn_table(name, loader_name, description)

    loader.__name__ = f"load_{name.replace('-', '_')}"
    loader.__doc__ = doc
    register_dataset(name, description=description, requires=("sklearn",), install="pip install scikit-learn")(loader)


_register_sklearn("breast-cancer", "load_breast_cancer",
                  "Wisconsin breast cancer: 569 tumours, 30 numeric features, malignant vs benign (sklearn).",
                  "Breast cancer table: X ``(455, 1, 30)`` / ``(114, 1, 30)``, y ``(N,)`` in {0, 1}.")
_register_sklearn("wine", "load_wine",
                  "UCI wine recognition: 178 wines, 13 chemical features, 3 cultivars (sklearn).",
                  "Wine table: X ``(142, 1, 13)`` / ``(36, 1, 13)``, y ``(N,)`` in {0, 1, 2}.")


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
