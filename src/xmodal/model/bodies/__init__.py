"""Bodies ``g``: one module per family, one registry (see :mod:`xmodal.model.bodies.base`)."""

from xmodal.model.bodies import cnn, language, named, vision  # noqa: F401  (registers families and names)
from xmodal.model.bodies.base import (
    FAMILIES,
    NAMED_BODIES,
    Body,
    BodySource,
    SourceTokens,
    body_fingerprint,
    body_from_config,
    body_status,
    build_body,
    resolve_body,
)

__all__ = [
    "FAMILIES", "NAMED_BODIES", "Body", "BodySource", "SourceTokens", "body_fingerprint", "body_from_config",
    "body_status", "build_body", "resolve_body",
]
