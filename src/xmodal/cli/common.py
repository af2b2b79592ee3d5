"""What the commands share: reading DATA, the run settings of the command line, output-folder checks."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.errors import XmodalError
from xmodal.tasks import get_task_kind

DATA_HELP = (
    "a built-in dataset name (see `xmodal datasets`), an .npz file with X_train, y_train "
    "[, X_test, y_test], or a .csv file of tabular rows (target = last column unless --target)"
)


#: written next to a model fitted on a CSV: the training table's feature encoding (text columns' categories)
TABLE_ENCODING = "table_encoding.json"


def named_labels(ds: Any, y: np.ndarray | None) -> np.ndarray | None:
    """Class indices → the dataset's class names (``meta["classes"]``: a CSV's or .npz's text labels, a
    built-in set's names) for single-label classification, so that the fitted model's ``classes_``, and
    so ``predict``, speak the names; other targets, and data without names, unchanged."""
    names = ds.meta.get("classes")
    if y is None or not names or not get_task_kind(ds.task).class_labels or np.ndim(y) != 1:
        return y
    return np.asarray([str(n) for n in names])[np.asarray(y)]


def table_encoding(model_dir: str) -> dict | None:
    path = Path(model_dir) / TABLE_ENCODING
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise XmodalError(f"cannot read {path} ({exc}); refit the model or restore the file") from exc


def read_data(source: str, args: argparse.Namespace, task: str = "auto", spatial_dims: int | None = None) -> Any:
    from xmodal.data.builtin import load_dataset
    from xmodal.data.csv_tables import read_csv
    from xmodal.data.readers import read_npz

    path = Path(source)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path, spatial_dims=spatial_dims, task=task)
    if suffix in (".csv", ".tsv", ".txt"):
        target: str | int = args.target if args.target is not None else -1
        if isinstance(target, str) and target.lstrip("-").isdigit():
            target = int(target)
        return read_csv(path, target=target, test_path=args.test, task=task, test_size=args.test_size,
                        encoding=getattr(args, "encoding", None), impute=getattr(args, "impute", "none"))
    if path.exists():
        raise XmodalError(f"cannot read {source}: expected an .npz or .csv file")
    if suffix:
        raise XmodalError(f"file {source} does not exist (and it is not a built-in dataset name)")
    return load_dataset(source)  # unknown names raise with the list of built-in datasets


def settings_of(args: argparse.Namespace) -> Any:
    """The run configuration of the command line: defaults ← ``--config`` file ← options given (validated)."""
    from xmodal.config import config_from_cli
    from xmodal.strategies import AUTO, get_strategy

    cfg = config_from_cli(args, verbose=not args.quiet)
    for name in cfg.candidates if cfg.strategy == AUTO else [cfg.strategy] if cfg.strategy else []:
        get_strategy(name)  # an unknown name stops here, before the data are read
    return cfg


def tune_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from xmodal.tuning import resolve_space

    budget = None if str(args.budget).strip().lower() in ("none", "0") else args.budget
    return dict(budget=budget, n_trials=args.trials, storage=args.storage, study_name=args.study,
                space=resolve_space(args.space), pruner=args.pruner)


def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def check_out(path: Path, what: str = "--out") -> None:
    """Refuse an output folder that is a file or sits where nothing can be written, before any work."""
    if path.exists() and not path.is_dir():
        raise XmodalError(f"{what} {path} is a file, not a folder; choose another path")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise XmodalError(f"{what} {path} cannot be written ({parent} is not a writable folder); choose another path")


def print_tuning(res: Any) -> None:
    print(Path(res.files["trials_md"]).read_text())
    print(f"best validation {res.metric}: {res.best_value:.4f}; tuned settings: "
          + ", ".join(f"{k}={v}" for k, v in res.study.best_trial.user_attrs["settings"].items()))
    print("written: " + ", ".join(res.files.values()))


def read_inputs(source: str, target: str | None, encoding: dict | None = None) -> np.ndarray:
    path = Path(source)
    if not path.exists():
        raise XmodalError(f"input file {source} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        from xmodal.data.readers import check_numpy_file

        check_numpy_file(path)
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except Exception as exc:
            raise XmodalError(f"cannot read {source} as a numeric .npy array ({exc})") from exc
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                for key in ("X", "X_test", "X_train"):
                    if key in z.files:
                        return z[key]
                raise XmodalError(f"{source} has keys {z.files}; predict reads 'X', 'X_test' or 'X_train'")
        except XmodalError:
            raise
        except Exception as exc:
            raise XmodalError(f"cannot read {source} as .npz ({exc})") from exc
    if suffix in (".csv", ".tsv", ".txt"):
        from xmodal.data.csv_tables import read_csv_features

        return read_csv_features(path, drop=target, encoding=encoding)
    raise XmodalError(f"cannot read {source}: expected .npy, .npz or .csv")


def check_model_folder(path: str) -> None:
    """The cheap check of ``xmodal.load`` (a folder with config.json), made before torch loads."""
    if not (Path(path) / "config.json").is_file():
        raise XmodalError(f"{path} holds no xmodal model (config.json missing); pass a saved model folder (RUN/model)")
