"""Files a run writes: every one atomically (temporary file, then :func:`os.replace`), JSON strictly.

Strict JSON: non-finite floats (``NaN``, ``Infinity``), which Python's :mod:`json` writes by default
and strict readers reject, are written as ``null``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_text", "json_dumps", "write_json", "finite_or_none"]


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float (at any depth of dicts, lists, tuples) replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def json_dumps(obj: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` that writes strict JSON (non-finite floats as ``null``)."""
    return json.dumps(finite_or_none(obj), allow_nan=False, **kwargs)


def write_json(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    """Write ``obj`` as strict JSON to ``path``, atomically."""
    atomic_write_text(path, json_dumps(obj, indent=indent) + "\n")
