"""Built-in genomics: Statlog splice junctions (Debian's r-cran-mlbench, DNA.rda), one-hot ``(4, 60)``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from xmodal.data.builtin.registry import DATASETS, register_dataset, stratified_split
from xmodal.data.dataset import Dataset
from xmodal.data.readers import dataset_from_arrays
from xmodal.errors import XmodalError

# --------------------------------------------------------------------------------------------
# genomics: Statlog splice junctions (Debian's r-cran-mlbench, DNA.rda)
# --------------------------------------------------------------------------------------------

_MLBENCH_PKG = "r-cran-mlbench"
_DNA_RDA = "/usr/lib/R/site-library/mlbench/data/DNA.rda"
#: The Statlog indicator code of a nucleotide: 3 binary columns per position.
_STATLOG_CODE = {(1, 0, 0): "A", (0, 1, 0): "C", (0, 0, 1): "G", (0, 0, 0): "T"}
NUCLEOTIDES = ("A", "C", "G", "T")


def _dna_file() -> Path | None:
    from xmodal.data.debian import find_debian_file

    return find_debian_file(_DNA_RDA)


def statlog_to_onehot(indicators: np.ndarray) -> np.ndarray:
    """Statlog DNA indicators ``(N, 3·L)`` (per position ``A=100, C=010, G=001, T=000``) → one-hot ``(N, 4, L)``.

    Channels are ``A, C, G, T`` (:data:`NUCLEOTIDES`). The code is the one the Statlog project and
    mlbench document; it is confirmed by the data: the donor (``ei``) sequences carry the
    consensus ``GT`` at positions 31-32, the acceptor (``ie``) ones ``AG`` at 29-30.

    Raises:
        XmodalError: a width that is not a multiple of 3, or a triple with more than one 1.
    """
    ind = np.asarray(indicators)
    if ind.ndim != 2 or ind.shape[1] % 3:
        raise XmodalError(f"Statlog DNA indicators must be (N, 3*L) 0/1 columns, got shape {ind.shape}")
    if not np.isin(ind, (0, 1)).all():
        raise XmodalError("Statlog DNA indicators must be 0/1")
    triples = ind.reshape(len(ind), -1, 3).astype(np.int8)
    if (triples.sum(-1) > 1).any():
        raise XmodalError("a Statlog DNA position has more than one indicator set; the file is not Statlog-coded")
    onehot = np.zeros((len(ind), 4, triples.shape[1]), np.float32)
    onehot[:, :3] = np.moveaxis(triples, -1, 1)
    onehot[:, 3] = triples.sum(-1) == 0  # T = 000
    return onehot


@register_dataset(
    "splice",
    description=(
        "Statlog splice junctions: 3186 primate DNA windows of 60 nt, one-hot (4, 60), exon/intron (ei), "
        "intron/exon (ie) or neither (n); stratified 80/20 (Debian r-cran-mlbench)."
    ),
    requires=("rdata", "sklearn"),
    install="pip install rdata",
    check=lambda: _dna_file() is not None,
)
def load_splice() -> Dataset:
    """Splice: X ``(2548, 4, 60)`` / ``(638, 4, 60)`` one-hot A,C,G,T; y in {ei, ie, n} (0, 1, 2).

    Read from mlbench's ``DNA.rda`` (180 factor columns ``V1..V180``, 3 per position, and ``Class``)
    with the pure-Python ``rdata``; split ``train_test_split(test_size=0.2, stratify=y, random_state=0)``.
    """
    from xmodal.data.debian import fetch_hint

    path = _dna_file()
    if path is None:
        raise XmodalError(f"dataset 'splice' reads DNA.rda from Debian's {_MLBENCH_PKG}, which is not here; "
                          + fetch_hint(_MLBENCH_PKG))
    import rdata

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rdata: "Unknown encoding. Assumed ASCII." (the file is ASCII)
            frame = rdata.conversion.convert(rdata.parser.parse_file(path))["DNA"]
    except Exception as exc:
        raise XmodalError(f"cannot read {path} with rdata ({type(exc).__name__}: {exc}); "
                          "reinstall it: " + fetch_hint(_MLBENCH_PKG)) from exc
    columns = sorted((c for c in frame.columns if str(c).startswith("V")), key=lambda c: int(str(c)[1:]))
    if len(columns) != 180 or "Class" not in frame.columns:
        raise XmodalError(
            f"{path} does not hold mlbench's DNA frame (V1..V180 + Class); found {list(frame.columns)[:5]} …"
        )
    indicators = np.stack([np.asarray(frame[c].astype(str)) == "1" for c in columns], axis=1).astype(np.int8)
    X = statlog_to_onehot(indicators)
    classes = [str(c) for c in frame["Class"].cat.categories]
    y = np.asarray(frame["Class"].cat.codes, dtype=np.int64)
    X_tr, X_te, y_tr, y_te = stratified_split(X, y, 0.2)
    return dataset_from_arrays(
        "splice", X_tr, y_tr, X_te, y_te, task="classification", metric="accuracy",
        description=DATASETS["splice"].description,
        meta={
            "source": f"{path} (split: train_test_split(test_size=0.2, stratify=y, random_state=0))",
            "classes": classes,
            "channels": list(NUCLEOTIDES),
        },
    )
