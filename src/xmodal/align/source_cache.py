"""Source-proxy features, computed once per (body weights, proxy, size, seed) and cached on disk.

ORCA appendix A.3.4: "we can pass the source data through the pretrained embedder once and save all
the embedded features". The cache is a safetensors file under ``$XMODAL_CACHE/proxies`` whose name
hashes everything the features depend on; an unreadable file is regenerated.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from xmodal.cache import cache_dir
from xmodal.data.proxies import ProxySet, get_proxy
from xmodal.model.bodies.base import Body
from xmodal.train.checkpoint import atomic_save_tensors

__all__ = ["source_features_cached", "cache_key", "subsample"]

_FORMAT = 1


def cache_key(body_key: str, proxy_name: str, n: int, seed: int) -> str:
    """Hex digest naming the cache file of these features."""
    payload = json.dumps([_FORMAT, body_key, proxy_name, int(n), int(seed)])
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def subsample(proxy: ProxySet, n: int, seed: int) -> np.ndarray:
    """Indices of ``min(n, len(proxy))`` samples, drawn with a seeded generator (sorted)."""
    rng = np.random.default_rng(seed)
    if n >= len(proxy):
        return np.arange(len(proxy))
    return np.sort(rng.choice(len(proxy), size=n, replace=False))


def source_features_cached(
    body: Body, body_key: str, proxy_name: str, n: int = 5000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Features ``(n, D)`` float32, labels ``(n,)`` int64 in ``0..K-1`` and ``K`` for a proxy.

    Args:
        body: the body whose *pretrained* embedding maps the proxy (``Body.source_features``).
        body_key: identifies the body's weights (name, location, weight-file size and mtime).
        proxy_name: a registered proxy or a CoNLL file path.
        n: samples to embed (all of them when the proxy is smaller); ORCA uses 5000.
        seed: seeds the subsample.
    """
    path = cache_dir("proxies") / f"{cache_key(body_key, proxy_name, n, seed)}.safetensors"
    if path.exists():
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {})["xmodal"])
            return tensors["features"], tensors["labels"], int(meta["classes"])
        except Exception:  # a damaged cache file is rebuilt below, never trusted
            path.unlink(missing_ok=True)
    proxy = get_proxy(proxy_name)
    idx = subsample(proxy, n, seed)
    inputs = [proxy.inputs[i] for i in idx] if proxy.modality == "text" else proxy.inputs[idx]
    part = ProxySet(proxy.name, proxy.modality, inputs, proxy.labels[idx], proxy.classes, proxy.meta)
    feats = body.source_features(part).float()
    present, labels = np.unique(part.labels, return_inverse=True)
    labels_t = torch.as_tensor(labels, dtype=torch.int64)
    meta = {"body": body_key, "proxy": proxy_name, "n": len(idx), "seed": seed, "classes": int(present.size),
            "class_names": [proxy.classes[i] for i in present]}
    atomic_save_tensors({"features": feats, "labels": labels_t}, path, metadata={"xmodal": json.dumps(meta)})
    return feats, labels_t, int(present.size)
