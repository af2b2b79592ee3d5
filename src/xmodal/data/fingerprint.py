"""Fingerprints of arrays: what a run records to know that a resume sees the data it started with."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

__all__ = ["fingerprint"]


def fingerprint(*arrays: Any) -> str:
    """SHA-256 (first 16 hex digits) of the arrays' dtypes, shapes and bytes, in order; ``None`` entries count.

    Two calls agree exactly when every array has the same dtype, shape and values, so a different
    split, order, scaling or label encoding of the same data gives a different fingerprint.
    """
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        arr = np.ascontiguousarray(np.asarray(a))
        if arr.dtype.kind in "OUS":  # text labels: hash their text, not object pointers
            arr = arr.astype(str)
            h.update(f"{arr.dtype.str}{arr.shape};".encode())
            h.update("\x00".join(arr.ravel().tolist()).encode())
        else:
            h.update(f"{arr.dtype.str}{arr.shape};".encode())
            h.update(arr.tobytes())
    return h.hexdigest()[:16]
