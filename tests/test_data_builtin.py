"""Built-in datasets load offline from installed packages, with the sizes and layouts their sources define."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from xmodal.data import builtin
from xmodal.data.builtin import list_datasets, load_dataset, register_dataset
from xmodal.data.dataset import Dataset
from xmodal.errors import XmodalError

EXPECTED = {
    # name: (n_train, n_test, sample shape (C, *S), n_classes or None)
    "gunpoint": (50, 150, (1, 150), 2),
    "acsf1": (100, 100, (1, 1460), 10),
    "basicmotions": (40, 40, (6, 100), 4),
    "italypowerdemand": (67, 1029, (1, 24), 2),
    "breast-cancer": (455, 114, (1, 30), 2),
    "wine": (142, 36, (1, 13), 3),
    "darcy-16": (1000, 50, (1, 16, 16), None),
}


def _available(name: str) -> bool:
    return dict((n, a) for n, _, a in list_datasets())[name]


@pytest.fixture(scope="module")
def loaded() -> dict[str, Dataset]:
    return {name: load_dataset(name) for name in EXPECTED if _available(name)}


def test_registry_lists_every_builtin_with_description():
    listed = {n: (d, a) for n, d, a in list_datasets()}
    assert set(EXPECTED) <= set(listed)
    assert [n for n, _, _ in list_datasets()] == sorted(listed)
    for name, (description, available) in listed.items():
        assert description and isinstance(available, bool), name
    # the packages this project depends on are installed in the test environment
    for name in ("gunpoint", "basicmotions", "breast-cancer", "wine"):
        assert listed[name][1], name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_shapes_sizes_and_labels(name, loaded):
    if name not in loaded:
        pytest.skip(f"{name} is not available in this environment")
    ds = loaded[name]
    n_train, n_test, sample, n_classes = EXPECTED[name]
    assert ds.name == name
    assert ds.X_train.shape == (n_train, *sample)
    assert ds.X_test.shape == (n_test, *sample)
    assert ds.X_train.dtype == np.float32 and ds.X_test.dtype == np.float32
    assert np.isfinite(ds.X_train).all() and np.isfinite(ds.X_test).all()
    assert ds.meta["source"]
    if n_classes is None:
        return
    assert ds.task == "classification" and ds.metric == "accuracy"
    assert ds.y_train.shape == (n_train,) and ds.y_test.shape == (n_test,)
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert len(ds.meta["classes"]) == n_classes
    assert set(np.unique(ds.y_train)) == set(range(n_classes))  # every class occurs in training
    assert ds.y_test.min() >= 0 and ds.y_test.max() < n_classes


def test_gunpoint_matches_ucr_definition(loaded):
    ds = loaded["gunpoint"]
    assert ds.X_train.shape == (50, 1, 150) and ds.X_test.shape == (150, 1, 150)
    assert ds.meta["classes"] == ["1", "2"]
    # UCR series are z-normalised per series
    np.testing.assert_allclose(ds.X_train.mean(axis=-1), 0.0, atol=1e-3)


def test_basicmotions_has_six_channels_and_named_classes(loaded):
    ds = loaded["basicmotions"]
    assert ds.X_train.shape[1] == 6
    assert ds.meta["classes"] == ["badminton", "running", "standing", "walking"]
    assert np.bincount(ds.y_train).tolist() == [10, 10, 10, 10]


def test_tabular_split_is_stratified_and_deterministic(loaded):
    ds = loaded["breast-cancer"]
    assert ds.X_train.shape[2] == 30
    assert ds.meta["classes"] == ["malignant", "benign"]
    assert len(ds.meta["feature_names"]) == 30
    # stratified: class proportions agree between the splits
    assert abs(ds.y_train.mean() - ds.y_test.mean()) < 0.02
    again = load_dataset("breast-cancer")
    np.testing.assert_array_equal(ds.X_test, again.X_test)


def test_darcy_is_dense_regression_at_input_resolution(loaded):
    if "darcy-16" not in loaded:
        pytest.skip("neuraloperator==0.3.0 is not installed")
    ds = loaded["darcy-16"]
    assert ds.task == "dense-regression" and ds.metric == "rel_l2"
    assert ds.y_train.shape == (1000, 1, 16, 16) and ds.y_test.shape == (50, 1, 16, 16)
    assert ds.y_train.dtype == np.float32 and np.isfinite(ds.y_train).all()
    # the permeability field is binary, the solution is a non-trivial field
    assert set(np.unique(ds.X_train)) == {0.0, 1.0}
    assert ds.y_train.std() > 0.1


def test_names_are_case_and_separator_insensitive():
    assert load_dataset("GunPoint").name == "gunpoint"
    assert load_dataset("breast_cancer").name == "breast-cancer"


def test_unknown_name_lists_available_datasets():
    with pytest.raises(XmodalError, match=r"unknown dataset 'nope'.*gunpoint.*wine"):
        load_dataset("nope")


def test_missing_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name.split(".")[0] == "neuralop" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    assert dict((n, a) for n, _, a in list_datasets())["darcy-16"] is False
    with pytest.raises(XmodalError, match=r"neuralop.*pip install --no-deps neuraloperator==0\.3\.0"):
        load_dataset("darcy-16")


def test_register_dataset_decorator(monkeypatch):
    monkeypatch.setattr(builtin.DATASETS, "_items", dict(builtin.DATASETS._items))

    @register_dataset(
        "toy-missing",
        description="needs a package nobody has",
        requires=("no_such_pkg_xyz",),
        install="pip install no-such-pkg",
    )
    def _toy() -> Dataset:  # pragma: no cover - never called
        raise AssertionError

    assert ("toy-missing", "needs a package nobody has", False) in list_datasets()
    with pytest.raises(XmodalError, match=r"no_such_pkg_xyz.*pip install no-such-pkg"):
        load_dataset("toy-missing")
    with pytest.raises(ValueError, match="registered twice"):
        register_dataset("toy-missing", description="again")(_toy)
