"""Source proxies, their readers, bodies' source features and the source-feature cache."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from xmodal import XmodalError
from xmodal.align import source_cache
from xmodal.data import proxies
from xmodal.data.proxies import (
    ProxySet,
    conll_proxy,
    get_proxy,
    list_proxies,
    proxy_table,
    read_cifar10_binary,
    read_conll,
    read_idx,
)
from xmodal.model import build_body, resolve_body
from xmodal.model.bodies.base import BodySource


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def vit():
    return build_body(resolve_body("vit-tiny-random"))


def _fake_cifar(folder, labels):
    folder.mkdir(parents=True, exist_ok=True)
    rec = np.zeros((len(labels), 3073), np.uint8)
    rec[:, 0] = labels
    rec[:, 1:] = np.arange(len(labels), dtype=np.uint8)[:, None] * 40  # image i is uniformly 40·i/255
    (folder / "data_batch_1.bin").write_bytes(rec.tobytes())
    return folder


# --- proxies and readers -----------------------------------------------------------------------


def test_wnut16_sentences_and_labels():
    p = get_proxy("wnut16")
    assert p.modality == "text" and len(p) == len(p.inputs) == 2394
    assert sum(map(len, p.inputs)) == 46469 and all(p.inputs)
    assert p.classes[0] == "O" and len(p.classes) == 11 and {"person", "geo-loc", "company"} <= set(p.classes)
    assert p.labels.dtype == np.int64 and np.bincount(p.labels).tolist()[:2] == [1476, 112]
    assert 0.6 < float(np.mean(p.labels == 0)) < 0.63  # most tweets mention no entity
    # the first tweet: "… Empire State Building = ESB ." (B-/I-facility ×4 tokens, nothing else)
    assert p.inputs[0][14:19] == ["Empire", "State", "Building", "=", "ESB"] and p.classes[p.labels[0]] == "facility"
    get_proxy("wnut16").inputs[0].append("mutated")  # callers get copies
    assert get_proxy("wnut16").inputs[0][-1] == "."


def test_conll_reader_space_and_tab(tmp_path):
    f = tmp_path / "train.txt"
    f.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
                 "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\nin IN B-PP O\nParis NNP B-NP B-LOC\n\n"
                 "nothing NN B-NP O\n")
    sentences = read_conll(f)
    assert [w for w, _ in sentences] == [["EU", "rejects", "German"], ["Peter", "Blackburn", "in", "Paris"],
                                         ["nothing"]]
    assert read_conll(f, tag_col=1)[0][1] == ["NNP", "VBZ", "JJ"]
    proxy = conll_proxy(f)
    assert proxy.classes == ["O", "ORG", "PER"]  # sentence labels only: no sentence is mostly LOC or MISC
    assert [proxy.classes[i] for i in proxy.labels] == ["ORG", "PER", "O"]  # tie → first seen; PER ×2 > LOC
    t = tmp_path / "tabs.conll"
    t.write_text("New York\tB-geo-loc\nrocks\tO\n\t\nhi\tO\n")  # WNUT style: tab-only separator line
    assert read_conll(t) == [(["New York", "rocks"], ["B-geo-loc", "O"]), (["hi"], ["O"])]
    assert get_proxy(str(t)).classes == ["O", "geo-loc"]


def test_idx_and_cifar_binary_readers(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + np.array([2, 3, 4], dtype=">u4").tobytes()
    (tmp_path / "x.idx.gz").write_bytes(gzip.compress(header + arr.tobytes()))
    (tmp_path / "x.idx").write_bytes(header + arr.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx.gz"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx"), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(XmodalError, match="IDX"):
        read_idx(tmp_path / "bad")
    folder = _fake_cifar(tmp_path / "cifar", [7, 1, 9])
    X, y = read_cifar10_binary(folder)
    assert X.shape == (3, 3, 32, 32) and X.dtype == np.float32 and y.tolist() == [7, 1, 9]
    assert X[0].max() == 0.0 and X[2].min() == pytest.approx(80 / 255)
    p = get_proxy(str(folder))
    assert p.modality == "image" and p.classes[7] == "horse" and len(p) == 3
    (folder / "data_batch_2.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(XmodalError, match="3073"):
        read_cifar10_binary(folder)


def test_mnist_and_fashion_mnist(monkeypatch, tmp_path):
    m = get_proxy("mnist")
    assert m.inputs.shape == (5000, 1, 28, 28) and m.inputs.dtype == np.float32
    assert 0.0 <= m.inputs.min() and m.inputs.max() <= 1.0 and m.inputs.max() > 0.99
    assert np.bincount(m.labels).tolist() == [500] * 10 and len(m.classes) == 10
    monkeypatch.setattr(proxies, "FASHION_MNIST_DIRS", (tmp_path / "none",))
    with pytest.raises(XmodalError, match="apt-get install dataset-fashion-mnist"):
        proxies._fashion_mnist()
    assert ("fashion-mnist", "image") == proxy_table()[0][:2] and proxy_table()[0][3] is False


def test_unknown_proxy_and_missing_files(tmp_path):
    assert {"wnut16", "mnist", "fashion-mnist"} <= set(list_proxies())
    with pytest.raises(XmodalError, match="unknown source proxy 'no-such-proxy'.*wnut16"):
        get_proxy("no-such-proxy")
    with pytest.raises(XmodalError, match="does not exist"):
        get_proxy(str(tmp_path / "missing.txt"))
    with pytest.raises(XmodalError, match="does not exist"):
        read_conll(tmp_path / "missing.txt")
    with pytest.raises(XmodalError, match="data_batch"):
        read_cifar10_binary(tmp_path)
    (tmp_path / "empty.txt").write_text("-DOCSTART- O\n\n")
    with pytest.raises(XmodalError, match="no sentences"):
        read_conll(tmp_path / "empty.txt")


def test_stratified_subsample():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    idx = source_cache.subsample(labels, 20, seed=3)
    assert len(idx) == 20 == len(set(idx.tolist())) and np.all(np.diff(idx) > 0)
    assert np.bincount(labels[idx]).tolist() == [18, 2]  # the singleton class's 0.2 share loses the rounding
    np.testing.assert_array_equal(idx, source_cache.subsample(labels, 20, seed=3))
    assert not np.array_equal(idx, source_cache.subsample(labels, 20, seed=4))
    np.testing.assert_array_equal(source_cache.subsample(labels, 500, seed=0), np.arange(100))


# --- bodies' source features ------------------------------------------------------------------------


def test_language_source_features():
    body = build_body(resolve_body("minilm-l6"))
    assert not any("word_embeddings" in k for k in body.state_dict())  # kept outside the state dict
    Xs, ys, k = source_cache.source_features_cached(body, "minilm", "wnut16", n=32, seed=0)
    assert Xs.shape == (32, 384) and Xs.dtype == torch.float32 and torch.isfinite(Xs).all()
    assert ys.dtype == torch.int64 and ys.shape == (32,) and int(ys.max()) == k - 1 and k >= 3
    assert torch.cdist(Xs, Xs).fill_diagonal_(1).min() > 0  # different sentences, different features
    one = body.source_features(ProxySet("s", "text", [["hello", "world"], ["Paris"]], np.zeros(2, np.int64), ["O"]))
    assert one.shape == (2, 384)
    with pytest.raises(XmodalError, match="embeds text"):
        body.source_features(get_proxy(str(_fake_cifar(source_cache.cache_dir("c"), [0]))))


def test_config_only_language_body_has_no_tokenizer():
    cfg = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
           "intermediate_size": 64, "vocab_size": 100}
    body = build_body(BodySource("tiny-bert", "language", config=cfg))
    words = ProxySet("s", "text", [["a"]], np.zeros(1, np.int64), ["O"])
    with pytest.raises(XmodalError, match="pretrained language body with a tokenizer"):
        body.source_features(words)


@pytest.mark.parametrize("name,width", [("vit-tiny-random", 64), ("swin-tiny-random", 32)])
def test_vision_source_features(name, width):
    body = build_body(resolve_body(name))
    keys = set(body.state_dict())
    assert not any("patch_embeddings" in k for k in keys)
    imgs = get_proxy("mnist").subset(np.arange(6))
    X = body.source_features(imgs, batch_size=4)
    assert X.shape == (6, width) and torch.isfinite(X).all() and torch.cdist(X, X).fill_diagonal_(1).min() > 0
    assert set(body.state_dict()) == keys


# --- the cache ----------------------------------------------------------------------------------------


def test_cache_hit_miss_and_invalidation(monkeypatch, vit, tmp_path):
    first = source_cache.source_features_cached(vit, "vit", "mnist", n=40, seed=0)
    assert first[0].shape == (40, 64) and first[2] == 10 and np.bincount(first[1]).tolist() == [4] * 10
    folder = source_cache.cache_dir("proxies")
    files = list(folder.glob("*.safetensors"))
    assert len(files) == 1 and files[0] == source_cache.cache_path("vit", "mnist", 40, 0)

    def fail(*a, **k):
        raise AssertionError("recomputed although cached")

    with monkeypatch.context() as m:
        m.setattr(vit, "source_features", fail)
        hit = source_cache.source_features_cached(vit, "vit", "mnist", n=40, seed=0)
    for a, b in zip(hit, first, strict=True):
        assert torch.equal(a, b) if torch.is_tensor(a) else a == b

    cifar = _fake_cifar(tmp_path / "cifar", [3, 5, 3, 5, 8])
    small = source_cache.source_features_cached(vit, "vit", str(cifar), n=40, seed=0)  # all 5, re-indexed
    assert small[0].shape == (5, 64) and small[1].tolist() == [0, 1, 0, 1, 2] and small[2] == 3
    for other in (dict(n=30, seed=0), dict(n=40, seed=1)):
        source_cache.source_features_cached(vit, "vit", "mnist", **other)
    source_cache.source_features_cached(vit, "vit-other-weights", "mnist", n=40, seed=0)
    source_cache.source_features_cached(vit, "vit", "mnist", n=40, seed=0, fingerprint="v2")
    assert len(list(folder.glob("*.safetensors"))) == 6  # each key its own file

    files[0].write_bytes(b"garbage")  # a damaged file is rebuilt, not trusted
    rebuilt = source_cache.source_features_cached(vit, "vit", "mnist", n=40, seed=0)
    torch.testing.assert_close(rebuilt[0], first[0])
    with monkeypatch.context() as m:
        m.setattr(vit, "source_features", fail)
        source_cache.source_features_cached(vit, "vit", "mnist", n=40, seed=0)  # the rebuilt file is a hit


def test_cache_bad_inputs(vit):
    with pytest.raises(XmodalError, match="unknown source proxy"):
        source_cache.source_features_cached(vit, "vit", "no-such-proxy", n=4)
    with pytest.raises(XmodalError, match="does not exist"):
        source_cache.source_features_cached(vit, "vit", "/no/such/eng.train", n=4)
    with pytest.raises(XmodalError, match="embeds image"):
        source_cache.source_features_cached(vit, "vit", "wnut16", n=4)
    with pytest.raises(XmodalError, match="at least 1"):
        source_cache.source_features_cached(vit, "vit", "mnist", n=0)
    assert not list(source_cache.cache_dir("proxies").glob("*"))  # nothing half-written
