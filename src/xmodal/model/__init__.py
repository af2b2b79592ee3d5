"""Model parts: embedder ``f``, bodies ``g``, predictors ``h`` and their assembly."""

from xmodal.model.assembly import CrossModalModel, ModelSpec, assemble
from xmodal.model.bodies import build_body, resolve_body
from xmodal.model.embedder import Embedder, choose_patch_size

__all__ = ["CrossModalModel", "ModelSpec", "assemble", "build_body", "resolve_body", "Embedder", "choose_patch_size"]
