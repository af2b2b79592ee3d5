"""A fitted model on disk, without pickle: ``config.json`` (settings, strategy, architecture, labels),
``body_config.json`` (the body's ``transformers`` config) and ``model.safetensors`` (every weight)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file

from xmodal.errors import XmodalError
from xmodal.files import atomic_write_text, write_json
from xmodal.model.assembly import CrossModalModel, ModelSpec
from xmodal.model.bodies import BodySource, body_from_config
from xmodal.runtime import atomic_save_tensors
from xmodal.tasks import get_task_kind

if TYPE_CHECKING:
    from xmodal.estimator.core import CrossModalEstimator

__all__ = ["FORMAT_VERSION", "save_model", "load"]

#: the model folder's format; a folder of another format is refused with the version it has
FORMAT_VERSION = 1


def save_model(est: Any, path: str | Path) -> Path:
    """Write a fitted estimator's ``config.json``, ``body_config.json`` and ``model.safetensors`` to the
    folder ``path``.

    ``config.json`` holds the constructor arguments (``params``) and the resolved ``strategy``
    (``{"name", "align", "mode", "embedder_init"}``) next to the architecture.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    params = est.get_params()
    config = {
        "format_version": FORMAT_VERSION,
        "params": params,
        "strategy": est._strategy_record(),
        "spec": est.model_.spec.to_dict(),
        "body_family": est.model_.body.family,
        "body_name": est.body_source_.name,
        "task": est.task_,
        "n_outputs": est.n_outputs_,
        "y_ndim": est.y_ndim_,
        "classes": None if getattr(est, "classes_", None) is None else est.classes_.tolist(),
    }
    state = est.model_.state_dict()
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise XmodalError(f"the model has non-finite weights ({bad[:3]}); it diverged and is not saved — "
                          "refit with a smaller lr")
    atomic_save_tensors(state, path / "model.safetensors")
    atomic_write_text(path / "body_config.json",
                      json.dumps(est.model_.body.config_dict(), indent=1, default=str))
    write_json(path / "config.json", config)
    if hasattr(est, "report_"):
        write_json(path / "fit_report.json", est.report_.to_dict())
    return path


def load(path: str | Path, device: str | None = None) -> CrossModalEstimator:
    """Load a folder written by :meth:`CrossModalEstimator.save` (no pickle; no pretrained download)."""
    from xmodal.estimator.core import CrossModalEstimator  # core imports this module: import on use

    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise XmodalError(f"{path} holds no xmodal model (config.json missing); pass the folder given to save()")
    try:
        config = json.loads(cfg_file.read_text())
        body_cfg = json.loads((path / "body_config.json").read_text())
        state = load_file(str(path / "model.safetensors"))
    except Exception as exc:
        raise XmodalError(f"model folder {path} is damaged ({exc}); save the model again") from exc
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        found = config.get("format_version") if isinstance(config, dict) else None
        raise XmodalError(f"model folder {path} has format {found}, expected {FORMAT_VERSION}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise XmodalError(f"model folder {path} holds non-finite weights (e.g. {bad[0]}): the run that saved it "
                          "diverged; refit it (a smaller lr)")
    try:
        est = CrossModalEstimator(**config["params"])
        if device is not None:
            est.device = device
        est.config()
        body = body_from_config(config["body_family"], body_cfg)
        spec = ModelSpec.from_dict(config["spec"])
        model = CrossModalModel(spec, body)
        model.load_state_dict(state)
        est.task_ = str(config["task"])
        est.n_outputs_ = int(config["n_outputs"])
        est.y_ndim_ = int(config["y_ndim"])
        classes = config.get("classes")
    except XmodalError as exc:
        raise XmodalError(f"model folder {path} does not load: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise XmodalError(f"model folder {path} is inconsistent: its config.json does not match its weights "
                          f"({type(exc).__name__}: {first[:300]}); save the model again") from None
    if spec.num_outputs != est.n_outputs_:
        raise XmodalError(f"model folder {path} is inconsistent: config.json says {est.n_outputs_} outputs but the "
                          f"head has {spec.num_outputs}; save the model again")
    if classes is not None and len(classes) != est.n_outputs_:
        raise XmodalError(f"model folder {path} is inconsistent: config.json lists {len(classes)} classes for "
                          f"{est.n_outputs_} outputs; save the model again")
    est.model_ = model
    if classes is not None:
        est.classes_ = np.asarray(classes)
    else:  # folders saved before labels were recorded: classification labels were 0..K-1
        est.classes_ = np.arange(est.n_outputs_) if get_task_kind(est.task_).class_labels else None
    est.body_source_ = BodySource(config["body_name"], config["body_family"])
    saved = config.get("strategy")  # absent in folders saved before strategies were recorded
    est.strategy_ = saved["name"] if isinstance(saved, dict) and "name" in saved else est._strategy_record()["name"]
    return est
