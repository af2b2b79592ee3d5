"""Where xmodal keeps things it builds once: reassembled weights, source-proxy features."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """``$XMODAL_CACHE`` (default ``~/.cache/xmodal``) joined with ``parts``; created if absent."""
    root = Path(os.environ.get("XMODAL_CACHE", Path.home() / ".cache" / "xmodal"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
