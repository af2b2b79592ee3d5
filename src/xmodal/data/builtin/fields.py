"""Built-in PDE fields: FNO's Darcy-flow sample (16x16, neuraloperator) and Darcy flow generated at 85x85."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from xmodal.data.builtin.registry import DATASETS, files_present, register_dataset
from xmodal.data.dataset import Dataset
from xmodal.data.readers import dataset_from_arrays
from xmodal.errors import XmodalError

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


@register_dataset(
    "darcy-16",
    description=(
        "FNO Darcy flow 16x16: binary permeability field a(x) -> pressure solution u(x); "
        "1000 train / 50 test (neuraloperator 0.3.0 sample data)."
    ),
    requires=("neuralop", "torch"),
    install=_NEURALOP_INSTALL,
    check=lambda: files_present(_darcy_files()),
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
        "darcy-16", X_tr, y_tr, X_te, y_te, task="dense-regression", spatial_dims=2, metric="rel_l2",
        description=DATASETS["darcy-16"].description,
        meta={"source": str(files[0].parent), "files": [f.name for f in files], "resolution": 16},
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
        "1000 / 100, generated with scipy on first use and cached."
    ),
    requires=("scipy",),
    install="pip install scipy",
)
def load_darcy_85() -> Dataset:
    """Darcy flow: X ``(N, 1, 85, 85)`` float32 permeability, y ``(N, 1, 85, 85)`` float32 pressure.

    ``N`` is 1000 for train and 100 for test (seed 0). Task ``dense-regression``, metric ``rel_l2``.
    """
    return generated_darcy_dataset("darcy-85", 1000, 100, 85, 0)
