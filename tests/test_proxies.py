"""Source proxies, their readers, and the source-feature cache (hit, miss, invalidation)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from xmodal import XmodalError
from xmodal.align import source_cache
from xmodal.data.proxies import conll_proxy, get_proxy, read_cifar10_binary, read_conll, read_idx
from xmodal.model import build_body, resolve_body


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path / "cache"))


def test_wnut16_sentences_and_labels():
    p = get_proxy("wnut16")
    assert len(p) == 2394 and p.modality == "text"
    assert p.classes[0] == "O" and "person" in p.classes and len(p.classes) == 11
    assert 0.5 < float(np.mean(p.labels == 0)) < 0.7  # most tweets have no entity


def test_conll_reader(tmp_path):
    f = tmp_path / "train.txt"
    f.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
                 "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n")
    sentences = read_conll(f)
    assert [w for w, _ in sentences] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    proxy = conll_proxy(f)
    assert [proxy.classes[i] for i in proxy.labels] == ["ORG", "PER"]  # tie → first entity seen


def test_idx_and_cifar_binary_readers(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + np.array([2, 3, 4], dtype=">u4").tobytes()
    (tmp_path / "x.idx.gz").write_bytes(gzip.compress(header + arr.tobytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx.gz"), arr)
    rec = np.zeros((3, 3073), np.uint8)
    rec[:, 0] = [7, 1, 9]
    rec[1, 1:] = 255
    (tmp_path / "data_batch_1.bin").write_bytes(rec.tobytes())
    X, y = read_cifar10_binary(tmp_path)
    assert X.shape == (3, 3, 32, 32) and y.tolist() == [7, 1, 9] and X[1].min() == 1.0
    with pytest.raises(XmodalError, match="IDX"):
        (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
        read_idx(tmp_path / "bad")


def test_unknown_proxy_and_missing_files(tmp_path):
    with pytest.raises(XmodalError, match="unknown source proxy"):
        get_proxy("no-such-proxy")
    with pytest.raises(XmodalError, match="does not exist"):
        read_conll(tmp_path / "missing.txt")
    with pytest.raises(XmodalError, match="data_batch"):
        read_cifar10_binary(tmp_path)


def test_language_source_features():
    body = build_body(resolve_body("minilm-l6"))
    Xs, ys, k = source_cache.source_features_cached(body, "minilm", "wnut16", n=32, seed=0)
    assert Xs.shape == (32, 384) and torch.isfinite(Xs).all() and ys.max() < k
    assert torch.cdist(Xs, Xs).fill_diagonal_(1).min() > 0  # different sentences, different features


def test_cache_hit_miss_and_invalidation(monkeypatch):
    body = build_body(resolve_body("vit-tiny-random"))
    first = source_cache.source_features_cached(body, "vit", "mnist", n=40, seed=0)
    files = list(source_cache.cache_dir("proxies").glob("*.safetensors"))
    assert len(files) == 1

    def fail(*a, **k):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(body, "source_features", fail)
    hit = source_cache.source_features_cached(body, "vit", "mnist", n=40, seed=0)
    torch.testing.assert_close(hit[0], first[0])
    monkeypatch.undo()
    monkeypatch.setenv("XMODAL_CACHE", str(files[0].parent.parent))
    for other in (dict(n=30, seed=0), dict(n=40, seed=1)):
        source_cache.source_features_cached(body, "vit", "mnist", **other)
    source_cache.source_features_cached(body, "vit-other-weights", "mnist", n=40, seed=0)
    assert len(list(files[0].parent.glob("*.safetensors"))) == 4  # each key its own file
    files[0].write_bytes(b"garbage")  # a damaged file is rebuilt, not trusted
    rebuilt = source_cache.source_features_cached(body, "vit", "mnist", n=40, seed=0)
    torch.testing.assert_close(rebuilt[0], first[0])
