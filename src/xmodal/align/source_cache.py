"""Source-proxy features, computed once per (body weights, proxy, size, seed) and cached on disk.

ORCA appendix A.3.4: "we can pass the source data through the pretrained embedder once and save all
the embedded features". The cache is a safetensors file under ``$XMODAL_CACHE/proxies`` whose name
hashes everything the features depend on. The file's metadata repeats that key and holds a SHA-256
checksum of the features and labels; a file that is unreadable, was written for another key, or whose
content does not match its checksum is regenerated, never trusted. When the cache folder cannot be
created or written (read-only home, full disk), the features are computed in memory with a warning.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from tqdm.auto import tqdm

from xmodal.cache import cache_dir
from xmodal.data.proxies import PROXIES, ProxySet, get_proxy
from xmodal.errors import XmodalError
from xmodal.model.bodies.base import Body
from xmodal.runtime import atomic_save_tensors

__all__ = ["source_features_cached", "cache_key", "cache_path", "subsample", "CACHE_FORMAT"]

#: Bumped whenever the features or the subsample of a given key would change (3: content checksum).
CACHE_FORMAT = 3


def _checksum(features: torch.Tensor, labels: torch.Tensor) -> str:
    """SHA-256 of the features' and labels' shapes and bytes."""
    h = hashlib.sha256()
    for t in (features, labels):
        a = t.detach().cpu().contiguous().numpy()
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _proxy_fingerprint(proxy_name: str) -> str:
    """For a proxy given by path, the size and mtime of its files (a replaced file is a new key)."""
    if proxy_name in PROXIES:
        return ""
    p = Path(proxy_name)
    files = [p] if p.is_file() else sorted(p.glob("data_batch_*.bin")) if p.is_dir() else []
    parts = []
    for f in files:
        st = f.stat()
        parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def cache_key(body_key: str, proxy_name: str, n: int, seed: int, fingerprint: str = "") -> str:
    """Hex digest (sha256, 32 characters) naming the cache file of these features."""
    payload = json.dumps(
        [CACHE_FORMAT, str(body_key), str(fingerprint), str(proxy_name), _proxy_fingerprint(str(proxy_name)),
         int(n), int(seed)]
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def cache_path(body_key: str, proxy_name: str, n: int, seed: int, fingerprint: str = "") -> Path:
    """Where :func:`source_features_cached` keeps these features."""
    return cache_dir("proxies") / f"{cache_key(body_key, proxy_name, n, seed, fingerprint)}.safetensors"


def subsample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``min(n, len(labels))`` samples, stratified by label, from a seeded generator.

    Each class gets its share of ``n`` in proportion to its size (largest remainders break the
    rounding, at random), so small classes are neither dropped nor inflated by chance.
    """
    labels = np.asarray(labels)
    total = len(labels)
    if n >= total:
        return np.arange(total)
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * n / total
    take = np.floor(quota).astype(int)
    short = n - int(take.sum())
    if short:
        # ties in the remainder are broken at random (a random permutation, then a stable sort)
        order = rng.permutation(len(classes))
        order = order[np.argsort(-(quota - take)[order], kind="stable")]
        take[order[:short]] += 1
    picked = [rng.choice(np.flatnonzero(inverse == c), size=int(k), replace=False) for c, k in enumerate(take) if k]
    return np.sort(np.concatenate(picked))


def _load(path: Path, expect: dict, width: int | None) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """The cached triple, or ``None`` when the file is missing, unreadable or not what was asked for."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["xmodal"])
        tensors = load_file(str(path))
        feats, labels, k = tensors["features"], tensors["labels"], int(meta["k"])
        ok = (
            all(meta.get(key) == val for key, val in expect.items())
            and feats.ndim == 2 and labels.ndim == 1 and feats.shape[0] == labels.shape[0] == meta["n"]
            and feats.dtype == torch.float32 and labels.dtype == torch.int64
            and (width is None or feats.shape[1] == width)
            and k == len(meta["classes"]) and (labels.numel() == 0 or 0 <= int(labels.min()) <= int(labels.max()) < k)
            and bool(torch.isfinite(feats).all())
            and meta.get("sha256") == _checksum(feats, labels)
        )
    except Exception:  # a damaged cache file is rebuilt, never trusted
        ok = False
    if not ok:
        try:
            path.unlink(missing_ok=True)
        except OSError:  # a read-only cache: the file is simply not used
            pass
        return None
    return feats, labels, k


def source_features_cached(
    body: Body, body_key: str, proxy_name: str, n: int = 5000, seed: int = 0, *, fingerprint: str = "",
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Features ``(n, D)`` float32, labels ``(n,)`` int64 in ``0..K-1`` and ``K`` for a proxy.

    The first call for a key embeds the proxy with ``body.source_features`` and writes
    ``$XMODAL_CACHE/proxies/<key>.safetensors`` atomically; later calls read that file.

    Args:
        body: the body whose *pretrained* embedding maps the proxy (``Body.source_features``).
        body_key: identifies the body's weights (name, location, weight-file size and mtime).
        proxy_name: a registered proxy, a CoNLL file path or a CIFAR-10 binary folder.
        n: samples to embed, stratified by class (all of them when the proxy is smaller); ORCA uses 5000.
        seed: seeds the subsample.
        fingerprint: anything else the weights depend on (hashed into the key with ``body_key``).
        progress: say when the features are built (the first use of a proxy with a body can take minutes
            on a CPU) and how long it took.

    Returns:
        ``(features, labels, K)``; labels are re-indexed to the ``K`` classes present in the sample.

    Raises:
        XmodalError: unknown proxy, missing data, or a body that cannot embed this proxy.
    """
    if int(n) < 1:
        raise XmodalError(f"source sample size n must be at least 1, got {n}")
    key = cache_key(body_key, proxy_name, n, seed, fingerprint)
    expect = {"format": CACHE_FORMAT, "key": key, "body": str(body_key), "proxy": str(proxy_name), "seed": int(seed)}
    try:
        path: Path | None = cache_dir("proxies") / f"{key}.safetensors"
    except OSError as exc:
        warnings.warn(f"the proxy-feature cache folder cannot be created ({exc}); computing the features in "
                      "memory (set XMODAL_CACHE to a writable folder to keep them)", stacklevel=2)
        path = None
    width = getattr(body, "in_width", None)
    hit = _load(path, expect, width) if path is not None else None
    if hit is not None:
        return hit
    proxy = get_proxy(proxy_name)
    part: ProxySet = proxy.subset(subsample(proxy.labels, int(n), int(seed)))
    t0 = time.perf_counter()
    if progress:
        tqdm.write(f"building the source-proxy features once: {len(part)} samples of {proxy_name} through the body's "
                   "pretrained embedder (cached for later runs)")
    feats = body.source_features(part).detach().float().cpu().contiguous()
    if progress:
        tqdm.write(f"source-proxy features built in {time.perf_counter() - t0:.0f} s")
    present, labels = np.unique(part.labels, return_inverse=True)
    labels_t = torch.as_tensor(labels.reshape(-1), dtype=torch.int64)
    k = int(present.size)
    meta = {**expect, "n": len(part), "n_requested": int(n), "k": k, "sha256": _checksum(feats, labels_t),
            "classes": [proxy.classes[i] for i in present], "fingerprint": str(fingerprint)}
    if path is not None:
        try:
            atomic_save_tensors({"features": feats, "labels": labels_t}, path, metadata={"xmodal": json.dumps(meta)})
        except OSError as exc:
            warnings.warn(f"cannot write the proxy-feature cache {path} ({exc}); the features were computed in "
                          "memory and will be computed again next time", stacklevel=2)
    return feats, labels_t, k
