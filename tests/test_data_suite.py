"""The benchmark suite's offline datasets, the Darcy-flow generator, the ARFF reader and the benchmark-file readers."""

from __future__ import annotations

import gzip
import importlib.util
import pickle

import numpy as np
import pytest

from xmodal.data import darcy, debian
from xmodal.data.arff_tables import arff_dataset, read_arff
from xmodal.data.benchmark_files import is_pickle, read_nasbench360
from xmodal.data.builtin import list_datasets, load_dataset
from xmodal.data.builtin.fields import generated_darcy_dataset
from xmodal.data.builtin.genomics import statlog_to_onehot
from xmodal.data.pdebench import read_pdebench
from xmodal.errors import XmodalError

FETCH = "run scripts/fetch_debian_data.sh"

SUITE = {
    # name: (n_train, n_test, sample shape (C, *S), n_classes)
    "japanesevowels": (270, 370, (12, 29), 9),
    "mnist-5k": (4000, 1000, (1, 28, 28), 10),
    "fashion-mnist": (60000, 10000, (1, 28, 28), 10),
    "fashion-mnist-10k": (8000, 2000, (1, 28, 28), 10),
    "splice": (2548, 638, (4, 60), 3),
    "credit-g": (800, 200, (1, 63), 2),
    "diabetes": (614, 154, (1, 8), 2),
}
DEBIAN = {"fashion-mnist", "fashion-mnist-10k", "splice", "credit-g", "diabetes"}


def _available(name: str) -> bool:
    return dict((n, a) for n, _, a in list_datasets())[name]


def _load(name: str):
    if not _available(name):
        reason = f"Debian data absent: {FETCH}" if name in DEBIAN else "its package is not installed"
        pytest.skip(f"{name} is not available here ({reason})")
    return load_dataset(name)


# --- the registered datasets ---------------------------------------------------------------------


def test_suite_is_registered_and_package_datasets_are_available():
    listed = {n: a for n, _, a in list_datasets()}
    assert set(SUITE) | {"darcy-85"} <= set(listed)
    for name in ("japanesevowels", "mnist-5k", "darcy-85"):  # from this project's own dependencies
        assert listed[name], name


@pytest.mark.parametrize("name", sorted(SUITE))
def test_suite_shapes_sizes_and_labels(name):
    ds = _load(name)
    n_train, n_test, sample, k = SUITE[name]
    assert ds.name == name and ds.task == "classification" and ds.metric == "accuracy"
    assert ds.X_train.shape == (n_train, *sample) and ds.X_test.shape == (n_test, *sample)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.y_train.shape == (n_train,) and ds.y_test.shape == (n_test,)
    assert len(ds.meta["classes"]) == k and ds.meta["source"]
    assert set(np.unique(ds.y_train)) == set(range(k)) and set(np.unique(ds.y_test)) <= set(range(k))
    assert np.isfinite(ds.X_train).all() and np.isfinite(ds.X_test).all()


def test_japanesevowels_is_zero_padded_to_the_longest_series():
    ds = _load("japanesevowels")
    lengths = np.array(ds.meta["lengths_train"])
    assert lengths.min() == 7 and max(ds.meta["lengths_train"] + ds.meta["lengths_test"]) == 29
    assert ds.meta["classes"] == [str(i) for i in range(1, 10)]
    for x, n in zip(ds.X_train, lengths, strict=True):
        assert not x[:, n:].any() and x[:, n - 1].any()  # zeros after the series, data up to its end


def test_mnist_5k_split_is_stratified_and_scaled():
    ds = _load("mnist-5k")
    assert ds.X_train.min() == 0.0 and ds.X_train.max() == 1.0
    share_tr = np.bincount(ds.y_train) / len(ds.y_train)
    share_te = np.bincount(ds.y_test) / len(ds.y_test)
    np.testing.assert_allclose(share_tr, share_te, atol=0.002)


def test_fashion_mnist_official_split_and_the_10k_subsample():
    full = _load("fashion-mnist")
    assert np.bincount(full.y_train).tolist() == [6000] * 10 and np.bincount(full.y_test).tolist() == [1000] * 10
    assert full.meta["classes"][0] == "t-shirt" and 0.0 <= full.X_train.min() < full.X_train.max() <= 1.0
    small = load_dataset("fashion-mnist-10k")
    assert np.bincount(small.y_train).tolist() == [800] * 10 and np.bincount(small.y_test).tolist() == [200] * 10
    # a subsample of the official splits: its images are official train / test images
    flat_tr = {x.tobytes() for x in full.X_train[full.y_train == small.y_train[0]]}
    assert small.X_train[0].tobytes() in flat_tr
    flat_te = {x.tobytes() for x in full.X_test[full.y_test == small.y_test[0]]}
    assert small.X_test[0].tobytes() in flat_te
    np.testing.assert_array_equal(load_dataset("fashion-mnist-10k").y_train, small.y_train)  # seeded


def test_splice_one_hot_and_consensus_sites():
    ds = _load("splice")
    assert ds.meta["classes"] == ["ei", "ie", "n"] and ds.meta["channels"] == ["A", "C", "G", "T"]
    for X in (ds.X_train, ds.X_test):
        assert set(np.unique(X)) == {0.0, 1.0}
        np.testing.assert_array_equal(X.sum(axis=1), 1.0)  # every position is exactly one nucleotide
    X, y = ds.X_train, ds.y_train
    seq = np.array(["ACGT"[i] for i in X.argmax(1).ravel()]).reshape(len(X), 60)
    donors = seq[y == 0]  # exon|intron boundary between 30 and 31: the intron starts with GT
    assert np.mean((donors[:, 30] == "G") & (donors[:, 31] == "T")) > 0.97
    acceptors = seq[y == 1]  # intron|exon: the intron ends with AG
    assert np.mean((acceptors[:, 28] == "A") & (acceptors[:, 29] == "G")) > 0.97
    assert np.bincount(np.concatenate([ds.y_train, ds.y_test])).tolist() == [767, 765, 1654]


def test_credit_g_one_hot_blocks_and_class_balance():
    ds = _load("credit-g")
    names = ds.meta["feature_names"]
    assert names[0] == "checking_status=<0" and "duration" in names and "foreign_worker=no" in names
    assert ds.meta["classes"] == ["good", "bad"]
    assert np.bincount(ds.y_train).tolist() == [560, 240] and np.bincount(ds.y_test).tolist() == [140, 60]
    X = ds.X_train[:, 0]
    for attr in ("checking_status", "purpose", "job"):
        block = [j for j, n in enumerate(names) if n.startswith(attr + "=")]
        np.testing.assert_array_equal(X[:, block].sum(1), 1.0)  # no missing values in credit-g
    assert X[:, names.index("credit_amount")].max() > 10000  # numeric columns are kept raw


def test_diabetes_features():
    ds = _load("diabetes")
    assert ds.meta["feature_names"] == ["preg", "plas", "pres", "skin", "insu", "mass", "pedi", "age"]
    assert ds.meta["classes"] == ["tested_negative", "tested_positive"]
    assert ds.tabular and ds.fit_inputs(ds.X_train).shape == (614, 8)


def test_darcy_85_when_already_generated():
    if not darcy.darcy_cache_path(1100, 85, 0).is_file():
        pytest.skip("darcy-85 is not generated yet (load_dataset('darcy-85') generates and caches it in ~20 s)")
    ds = load_dataset("darcy-85")
    assert ds.task == "dense-regression" and ds.metric == "rel_l2"
    assert ds.X_train.shape == ds.y_train.shape == (1000, 1, 85, 85)
    assert ds.X_test.shape == ds.y_test.shape == (100, 1, 85, 85)
    assert set(np.unique(ds.X_train)) == {3.0, 12.0}


def test_missing_debian_data_names_the_fetch_script(monkeypatch, tmp_path):
    monkeypatch.setattr(debian, "debian_roots", lambda: [tmp_path])
    listed = {n: a for n, _, a in list_datasets()}
    for name in sorted(DEBIAN):
        assert listed[name] is False, name
        with pytest.raises(XmodalError, match=r"scripts/fetch_debian_data\.sh.*apt-get install"):
            load_dataset(name)


def test_fetched_data_are_found_under_xmodal_data(monkeypatch, tmp_path):
    monkeypatch.setenv("XMODAL_DATA", str(tmp_path))
    assert debian.debian_data_root() == tmp_path and debian.debian_roots()[-1] == tmp_path
    rel = "/usr/share/xmodal-test-no-such-package/x.arff"
    assert debian.find_debian_file(rel) is None
    (tmp_path / rel.lstrip("/")).parent.mkdir(parents=True)
    (tmp_path / rel.lstrip("/")).write_text("x")
    assert debian.find_debian_file("/nope/y.arff", rel) == tmp_path / rel.lstrip("/")


# --- Darcy flow: solver and generator -------------------------------------------------------------


def _manufactured(s: int, variable: bool) -> float:
    """Max error of the solver on u = sin(πx) sin(πy) with a = 2 + xy (or a = 1)."""
    x = np.linspace(0.0, 1.0, s)
    X, Y = np.meshgrid(x, x, indexing="ij")
    u = np.sin(np.pi * X) * np.sin(np.pi * Y)
    if variable:
        a = 2.0 + X * Y  # f = -∇·(a∇u) = -(a_x u_x + a_y u_y) + a · 2π² u
        f = -np.pi * (Y * np.cos(np.pi * X) * np.sin(np.pi * Y) + X * np.sin(np.pi * X) * np.cos(np.pi * Y))
        f += 2 * np.pi**2 * a * u
    else:
        a, f = np.ones_like(u), 2 * np.pi**2 * u
    return float(np.abs(darcy.solve_darcy(a, f) - u).max())


@pytest.mark.parametrize("variable", [False, True])
def test_solver_matches_a_manufactured_solution_at_second_order(variable):
    errors = [_manufactured(s, variable) for s in (17, 33, 65)]
    assert errors[-1] < 3e-4
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert 3.5 < coarse / fine < 4.5  # h halves, the error quarters


def test_solver_is_linear_and_respects_the_maximum_principle():
    rng = np.random.default_rng(0)
    a = darcy.threshold_permeability(darcy.sample_grf(21, rng))
    u = darcy.solve_darcy(a)
    assert set(np.unique(a)) == {3.0, 12.0}
    assert np.all(u[0] == 0) and np.all(u[-1] == 0) and np.all(u[:, 0] == 0) and np.all(u[:, -1] == 0)
    assert (u[1:-1, 1:-1] > 0).all()  # f = 1 > 0, zero boundary: a positive solution
    np.testing.assert_allclose(darcy.solve_darcy(4 * a, 2.0), u / 2, rtol=1e-10)
    # between the constant-coefficient solutions with a = 12 and a = 3 (comparison principle)
    u_hi, u_lo = darcy.solve_darcy(np.full_like(a, 12.0)), darcy.solve_darcy(np.full_like(a, 3.0))
    assert (u_hi <= u + 1e-12).all() and (u <= u_lo + 1e-12).all()


def test_solver_refuses_bad_coefficients():
    with pytest.raises(XmodalError, match="square"):
        darcy.solve_darcy(np.ones((4, 5)))
    with pytest.raises(XmodalError, match="positive"):
        darcy.solve_darcy(np.zeros((5, 5)))


def test_generator_is_deterministic_and_prefix_stable():
    a, u = darcy.generate_darcy(4, resolution=29, seed=0, cache=False)
    assert a.shape == u.shape == (4, 1, 29, 29) and a.dtype == u.dtype == np.float32
    assert set(np.unique(a)) == {3.0, 12.0}
    a2, u2 = darcy.generate_darcy(4, resolution=29, seed=0, cache=False)
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(u, u2)
    a3, u3 = darcy.generate_darcy(2, resolution=29, seed=0, cache=False)
    np.testing.assert_array_equal(a3, a[:2])
    np.testing.assert_array_equal(u3, u[:2])
    b, _ = darcy.generate_darcy(2, resolution=29, seed=1, cache=False)
    assert not np.array_equal(b, a[:2])
    assert 0.2 < (a == 12).mean() < 0.8  # the field is zero-mean: both phases occur
    with pytest.raises(XmodalError, match="n >= 1"):
        darcy.generate_darcy(0)
    with pytest.raises(XmodalError, match="resolution"):
        darcy.generate_darcy(2, resolution=3)


def test_generator_cache_hit_atomic_write_and_damaged_file(monkeypatch, tmp_path):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path))
    path = darcy.darcy_cache_path(3, 21, 5)
    assert path.parent == tmp_path / "darcy" and "v1" in path.name and not path.exists()
    a, u = darcy.generate_darcy(3, resolution=21, seed=5)
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["a", "u"]

    def boom(*args, **kwargs):
        raise AssertionError("solved again instead of reading the cache")

    monkeypatch.setattr(darcy, "solve_darcy", boom)
    a2, u2 = darcy.generate_darcy(3, resolution=21, seed=5)
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(u, u2)
    monkeypatch.undo()
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path))
    path.write_bytes(b"not an npz")  # a damaged cache is regenerated, not trusted
    a3, u3 = darcy.generate_darcy(3, resolution=21, seed=5)
    np.testing.assert_array_equal(u, u3)
    with np.load(path, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["u"], u)


def test_generated_darcy_dataset_small(monkeypatch, tmp_path):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path))
    ds = generated_darcy_dataset("darcy-small", n_train=4, n_test=2, resolution=29)
    assert ds.task == "dense-regression" and ds.metric == "rel_l2"
    assert ds.X_train.shape == ds.y_train.shape == (4, 1, 29, 29)
    assert ds.X_test.shape == ds.y_test.shape == (2, 1, 29, 29)
    a, u = darcy.generate_darcy(6, resolution=29, seed=0, cache=False)
    np.testing.assert_array_equal(ds.y_test, u[4:])  # the test samples follow the training ones


# --- ARFF --------------------------------------------------------------------------------------------

ARFF = """% a comment
@relation toy
@attribute width numeric
@attribute colour {red, 'light blue', green}
@attribute 'size cm' real
@attribute class {yes, no}
@data
1.5,red,10,yes
2,'light blue',20,no
-1,?,30,yes
0,green,40,no
3,red,50,yes
4,green,60,no
"""


def test_read_arff_one_hot_encodes_nominal_columns(tmp_path):
    path = tmp_path / "toy.arff"
    path.write_text(ARFF)
    t = read_arff(path)
    assert t.relation == "toy" and t.target == "class" and t.classes == ["yes", "no"]
    assert t.feature_names == ["width", "colour=red", "colour=light blue", "colour=green", "size cm"]
    expected = [
        [1.5, 1, 0, 0, 10],
        [2, 0, 1, 0, 20],
        [-1, 0, 0, 0, 30],  # a missing nominal value: all zeros
        [0, 0, 0, 1, 40],
        [3, 1, 0, 0, 50],
        [4, 0, 0, 1, 60],
    ]
    np.testing.assert_array_equal(t.X, expected)
    assert t.y.tolist() == [0, 1, 0, 1, 0, 1]
    gz = tmp_path / "toy.arff.gz"
    gz.write_bytes(gzip.compress(ARFF.encode()))
    np.testing.assert_array_equal(read_arff(gz).X, t.X)
    complete = tmp_path / "complete.arff"
    complete.write_text(ARFF.replace("-1,?,30", "-1,red,30"))
    by_colour = read_arff(complete, target="colour")
    assert by_colour.classes == ["red", "light blue", "green"] and by_colour.y.tolist() == [0, 1, 0, 2, 0, 2]
    assert by_colour.feature_names == ["width", "size cm", "class=yes", "class=no"]
    with pytest.raises(XmodalError, match=r"1 row\(s\) without a class"):
        read_arff(path, target="colour")


def test_read_arff_refusals(tmp_path):
    path = tmp_path / "toy.arff"
    path.write_text(ARFF)
    with pytest.raises(XmodalError, match="numeric, not nominal"):
        read_arff(path, target="width")
    with pytest.raises(XmodalError, match="no attribute 'nope'"):
        read_arff(path, target="nope")
    missing = tmp_path / "missing.arff"
    missing.write_text(ARFF.replace("0,green,40", "0,green,?"))
    with pytest.raises(XmodalError, match="'size cm' has 1 missing"):
        read_arff(missing)
    with pytest.raises(XmodalError, match="does not exist"):
        read_arff(tmp_path / "absent.arff")
    text = tmp_path / "text.arff"
    text.write_text("@relation r\n@attribute s string\n@attribute c {a,b}\n@data\n'x',a\n")
    with pytest.raises(XmodalError, match="type string, which has no numeric encoding"):
        read_arff(text)
    ragged = tmp_path / "ragged.arff"
    ragged.write_text(ARFF + "1,red,2,yes,extra\n")
    with pytest.raises(XmodalError, match="cannot read"):
        read_arff(ragged)


def test_arff_dataset_stratified_split(tmp_path):
    path = tmp_path / "toy.arff"
    path.write_text(ARFF)
    ds = arff_dataset(path, test_size=2, seed=0)
    assert ds.name == "toy" and ds.X_train.shape == (4, 1, 5) and ds.X_test.shape == (2, 1, 5)
    assert sorted(ds.y_test.tolist()) == [0, 1] and ds.tabular


# --- splice encoding ---------------------------------------------------------------------------------


def test_statlog_indicators_map_to_acgt_one_hot():
    # A=100, C=010, G=001, T=000, position by position
    ind = np.array([[1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0]])
    onehot = statlog_to_onehot(ind)
    assert onehot.shape == (2, 4, 4) and onehot.dtype == np.float32
    decoded = ["".join("ACGT"[i] for i in row) for row in onehot.argmax(1)]
    assert decoded == ["ACGT", "TGAC"]
    np.testing.assert_array_equal(onehot.sum(1), 1.0)
    with pytest.raises(XmodalError, match="more than one"):
        statlog_to_onehot(np.array([[1, 1, 0]]))
    with pytest.raises(XmodalError, match=r"\(N, 3\*L\)"):
        statlog_to_onehot(np.zeros((2, 4)))


# --- NAS-Bench-360 files -------------------------------------------------------------------------------


def _deepsea(path, n=(8, 2, 4), length=20, labels=3):
    rng = np.random.default_rng(0)

    def split(k):
        x = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (k, length))]  # (k, L, 4), channels last
        y = np.zeros((k, labels), np.uint8)
        y[np.arange(k), np.arange(k) % labels] = 1
        return x, y

    (xtr, ytr), (xva, yva), (xte, yte) = (split(k) for k in n)
    np.savez(path, x_train=xtr, y_train=ytr, x_val=xva, y_val=yva, x_test=xte, y_test=yte)
    return xtr, xva


def test_nasbench360_deepsea_layout(tmp_path):
    xtr, xva = _deepsea(tmp_path / "deepsea_filtered.npz")
    ds = read_nasbench360(tmp_path)  # the folder
    assert ds.task == "multilabel" and ds.metric == "auroc" and ds.name == "deepsea"
    assert ds.X_train.shape == (10, 4, 20) and ds.X_test.shape == (4, 4, 20) and ds.y_train.shape == (10, 3)
    np.testing.assert_array_equal(ds.X_train[0], xtr[0].T)  # (L, 4) → (4, L)
    np.testing.assert_array_equal(ds.X_train[-1], xva[-1].T)  # the validation split joins training
    only_train = read_nasbench360(tmp_path / "deepsea_filtered.npz", include_val=False, n_test=2)
    assert len(only_train.X_train) == 8 and len(only_train.X_test) == 2


def test_nasbench360_ninapro_and_darcy_layouts(tmp_path):
    import scipy.io

    nina = tmp_path / "ninaPro"
    nina.mkdir()
    rng = np.random.default_rng(0)
    for split, k in (("train", 6), ("val", 3), ("test", 3)):
        np.save(nina / f"ninapro_{split}.npy", rng.standard_normal((k, 52, 16)).astype(np.float32))
        np.save(nina / f"label_{split}.npy", (np.arange(k) % 3).astype(np.int8))
    ds = read_nasbench360(tmp_path)
    assert ds.task == "classification" and ds.X_train.shape == (9, 1, 16, 52) and ds.X_test.shape == (3, 1, 16, 52)
    np.testing.assert_array_equal(ds.X_test[0, 0], np.load(nina / "ninapro_test.npy")[0].T)

    darcy_dir = tmp_path / "darcy"
    darcy_dir.mkdir()
    for fname, k in (("piececonst_r421_N1024_smooth1.mat", 5), ("piececonst_r421_N1024_smooth2.mat", 3)):
        coeff = rng.choice([3.0, 12.0], size=(k, 11, 11))
        scipy.io.savemat(darcy_dir / fname, {"coeff": coeff, "sol": coeff / 100.0})
    ds = read_nasbench360(darcy_dir / "piececonst_r421_N1024_smooth1.mat", n_train=4)
    assert ds.task == "dense-regression" and ds.metric == "rel_l2"
    assert ds.X_train.shape == ds.y_train.shape == (4, 1, 3, 3) and ds.X_test.shape == (3, 1, 3, 3)
    np.testing.assert_allclose(ds.y_train, ds.X_train / 100.0, rtol=1e-6)


def test_nasbench360_refuses_pickles_and_incomplete_files(tmp_path):
    ecg = tmp_path / "challenge2017.pkl"
    ecg.write_bytes(pickle.dumps({"data": [1, 2], "label": ["N", "A"]}))  # written, never loaded
    assert is_pickle(ecg)
    with pytest.raises(XmodalError, match=r"pickle.*never unpickles.*numpy\.savez"):
        read_nasbench360(ecg)
    sph = tmp_path / "s2_cifar100.gz"
    sph.write_bytes(gzip.compress(pickle.dumps({"train": {}}, protocol=4)))
    with pytest.raises(XmodalError, match="pickle"):
        read_nasbench360(sph)
    with pytest.raises(XmodalError, match="only pickles"):
        read_nasbench360(tmp_path)
    sat = tmp_path / "sat"
    sat.mkdir()
    np.save(sat / "satellite_train.npy", np.array({"data": 1, "label": 2}, dtype=object), allow_pickle=True)
    with pytest.raises(XmodalError, match="pickled Python object"):
        read_nasbench360(sat)
    with pytest.raises(XmodalError, match="pickled Python object"):
        read_nasbench360(sat / "satellite_train.npy")
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=np.zeros((2, 4, 5)), y_train=np.zeros(2), x_test=np.zeros((2, 4, 5)))
    with pytest.raises(XmodalError, match=r"lacks y_test.*x_train, y_train, x_test, y_test"):
        read_nasbench360(partial)
    with pytest.raises(XmodalError, match="does not exist"):
        read_nasbench360(tmp_path / "absent.npz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(XmodalError, match="no NAS-Bench-360 task"):
        read_nasbench360(empty)


# --- PDEBench files ------------------------------------------------------------------------------------


def test_pdebench_without_h5py_names_the_extra(monkeypatch, tmp_path):
    path = tmp_path / "1D_Advection_Sols_beta0.1.hdf5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a, **k: None if n == "h5py" else real(n, *a, **k))
    with pytest.raises(XmodalError, match=r"h5py.*pip install 'xmodal\[pdebench\]'"):
        read_pdebench(path)


def test_pdebench_layouts(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    one_d = tmp_path / "1D_Burgers_Sols_Nu0.001.hdf5"
    tensor = rng.standard_normal((10, 5, 16)).astype(np.float32)
    with h5py.File(one_d, "w") as f:
        f["tensor"] = tensor
        f["x-coordinate"] = np.linspace(0, 1, 16)
        f["t-coordinate"] = np.linspace(0, 2, 6)
    ds = read_pdebench(one_d)
    assert ds.task == "dense-regression" and ds.metric == "rel_l2" and ds.name == "1D_Burgers_Sols_Nu0.001"
    assert ds.X_train.shape == ds.y_train.shape == (9, 1, 16) and ds.X_test.shape == (1, 1, 16)
    np.testing.assert_array_equal(ds.X_test[:, 0], tensor[:1, 0])  # PDEBench: the first 10 % are the test set
    np.testing.assert_array_equal(ds.y_train[:, 0], tensor[1:, -1])
    assert ds.meta["layout"] == "tensor" and ds.meta["target_step"] == 4 and ds.meta["target_time"] == 1.6
    sub = read_pdebench(one_d, target_step=2, spatial_stride=4, n_samples=5, test_fraction=0.2)
    assert sub.X_train.shape == (4, 1, 4) and sub.X_test.shape == (1, 1, 4)
    np.testing.assert_array_equal(sub.y_test[0, 0], tensor[0, 2, ::4])
    with pytest.raises(XmodalError, match="target_step 7 is out of range"):
        read_pdebench(one_d, target_step=7)

    darcy_file = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    nu = rng.choice([0.1, 1.0], size=(10, 8, 8)).astype(np.float32)
    with h5py.File(darcy_file, "w") as f:
        f["nu"] = nu
        f["tensor"] = (nu * 2)[:, None]
    ds = read_pdebench(darcy_file)
    assert ds.X_train.shape == ds.y_train.shape == (9, 1, 8, 8) and ds.meta["layout"] == "darcy"
    np.testing.assert_allclose(ds.y_train, 2 * ds.X_train)

    cfd = tmp_path / "2D_CFD_Rand.hdf5"
    with h5py.File(cfd, "w") as f:
        for c in ("density", "pressure", "Vx", "Vy"):
            f[c] = rng.standard_normal((10, 3, 4, 4)).astype(np.float32)
    ds = read_pdebench(cfd, target_step=1)
    assert ds.X_train.shape == (9, 4, 4, 4) and ds.meta["fields"] == ["density", "pressure", "Vx", "Vy"]

    groups = tmp_path / "2D_diff-react_NA_NA.h5"
    with h5py.File(groups, "w") as f:
        for i in range(10):
            g = f.create_group(f"{i:04d}")
            g["data"] = rng.standard_normal((3, 6, 6, 2)).astype(np.float32)  # (T, X, Y, C)
            g["grid/t"] = np.array([0.0, 0.5, 1.0])
    ds = read_pdebench(groups)
    assert ds.X_train.shape == ds.y_train.shape == (9, 2, 6, 6) and ds.meta["target_time"] == 1.0
    with h5py.File(groups, "r") as f:
        np.testing.assert_array_equal(ds.y_test[0], np.moveaxis(f["0000/data"][2], -1, 0))

    odd = tmp_path / "odd.hdf5"
    with h5py.File(odd, "w") as f:
        f["something"] = np.zeros(3)
    with pytest.raises(XmodalError, match="not a PDEBench layout"):
        read_pdebench(odd)
    with pytest.raises(XmodalError, match="empty train or test"):
        read_pdebench(one_d, n_samples=5, test_fraction=0.1)

