"""File readers: round trips, layouts, and one test per input the readers / validation refuse."""

from __future__ import annotations

import numpy as np
import pytest

from xmodal.data.csv_tables import read_csv, read_csv_features
from xmodal.data.dataset import Dataset
from xmodal.data.readers import dataset_from_arrays, encode_labels, read_npz, write_npz
from xmodal.errors import XmodalError

rng = np.random.default_rng(0)


def _labels(n: int, k: int = 2) -> np.ndarray:
    return np.arange(n) % k


def _npz(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _csv(tmp_path, text: str, name="table.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# accepted inputs
# --------------------------------------------------------------------------------------------


def test_npz_round_trip_keeps_arrays_task_and_classes(tmp_path):
    ds = dataset_from_arrays(
        "orig",
        rng.normal(size=(12, 3, 20)),
        _labels(12, 3),
        rng.normal(size=(5, 3, 20)),
        _labels(5, 3),
        meta={"classes": ["a", "b", "c"]},
    )
    path = write_npz(tmp_path / "sub" / "series.npz", ds)
    back = read_npz(path)
    assert back.name == "series" and back.task == "classification" and back.metric == "accuracy"
    for attr in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(ds, attr))
    assert back.X_train.dtype == np.float32 and back.y_train.dtype == np.int64
    assert back.meta["classes"] == ["a", "b", "c"] and back.meta["source"] == str(path)


def test_npz_text_labels_are_class_names(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "named.npz"
    np.savez(path, X_train=rng.normal(size=(6, 1, 5)), y_train=np.array(["up", "down", "up", "flat", "down", "up"]),
             X_test=rng.normal(size=(2, 1, 5)), y_test=np.array(["flat", "up"]))
    ds = read_npz(path)
    assert ds.task == "classification" and ds.meta["classes"] == ["down", "flat", "up"]
    np.testing.assert_array_equal(ds.y_train, [2, 0, 2, 1, 0, 2])
    np.testing.assert_array_equal(ds.y_test, [1, 2])
    np.savez(path, X_train=rng.normal(size=(3, 1, 5)), y_train=np.array(["a", "b", "a"]),
             X_test=rng.normal(size=(1, 1, 5)), y_test=np.array(["c"]))
    with pytest.raises(XmodalError, match="never seen in training"):
        read_npz(path)


def test_npz_round_trip_dense_regression_without_test(tmp_path):
    X = rng.normal(size=(6, 1, 8, 8))
    y = rng.normal(size=(6, 8, 8))
    ds = dataset_from_arrays("field", X, y, task="dense-regression")
    assert ds.y_train.shape == (6, 1, 8, 8)
    back = read_npz(write_npz(tmp_path / "field.npz", ds))
    assert back.task == "dense-regression" and back.X_test is None and back.y_test is None
    np.testing.assert_array_equal(back.y_train, ds.y_train)


def test_npz_spatial_dims_adds_channel_axis(tmp_path):
    path = _npz(tmp_path, X_train=rng.normal(size=(8, 5, 7)), y_train=_labels(8))
    ds = read_npz(path, spatial_dims=2)
    assert ds.X_train.shape == (8, 1, 5, 7)
    # without spatial_dims the same array is read as 1-D series with 5 channels
    assert read_npz(path).X_train.shape == (8, 5, 7)


def test_npz_single_class_test_set_is_accepted(tmp_path):
    path = _npz(
        tmp_path,
        X_train=rng.normal(size=(6, 4)),
        y_train=_labels(6),
        X_test=rng.normal(size=(3, 4)),
        y_test=np.ones(3, dtype=int),
    )
    ds = read_npz(path)
    assert ds.X_train.shape == (6, 1, 4) and ds.y_test.tolist() == [1, 1, 1]


def test_csv_with_header_and_string_classes(tmp_path):
    path = _csv(tmp_path, "a,b,species\n1,2,setosa\n3,4.5,virginica\n5,6,setosa\n7,8,versicolor\n")
    ds = read_csv(path)
    assert ds.name == "table" and ds.task == "classification"
    assert ds.X_train.shape == (4, 1, 2) and ds.X_train.dtype == np.float32
    np.testing.assert_array_equal(ds.X_train[:, 0], [[1, 2], [3, 4.5], [5, 6], [7, 8]])
    assert ds.meta["classes"] == ["setosa", "versicolor", "virginica"]
    assert ds.y_train.tolist() == [0, 2, 0, 1]
    assert ds.meta["feature_names"] == ["a", "b"] and ds.meta["target"] == "species"


def test_csv_without_header_string_target_is_not_mistaken_for_header(tmp_path):
    path = _csv(tmp_path, "1,2,cat\n3,4,dog\n5,6,cat\n")
    ds = read_csv(path)
    assert ds.X_train.shape == (3, 1, 2) and ds.meta["classes"] == ["cat", "dog"]


def test_csv_target_by_name_regression_and_semicolons(tmp_path):
    path = _csv(tmp_path, "price;x1;x2\n1.5;0;1\n2.25;1;1\n3.0;1;0\n0.5;0;0\n")
    ds = read_csv(path, target="price", task="regression")
    assert ds.task == "regression" and ds.y_train.shape == (4, 1)
    np.testing.assert_allclose(ds.y_train[:, 0], [1.5, 2.25, 3.0, 0.5])
    assert ds.meta["feature_names"] == ["x1", "x2"]


def test_csv_test_path_uses_training_classes(tmp_path):
    train = _csv(tmp_path, "f,label\n0.1,b\n0.2,a\n0.3,c\n", "train.csv")
    test = _csv(tmp_path, "f,label\n0.4,c\n0.5,c\n", "test.csv")
    ds = read_csv(train, target="label", test_path=test)
    assert ds.meta["classes"] == ["a", "b", "c"]
    assert ds.y_train.tolist() == [1, 0, 2] and ds.y_test.tolist() == [2, 2]
    assert ds.X_test.shape == (2, 1, 1)


def test_csv_test_size_split_is_stratified_and_seeded(tmp_path):
    rows = "\n".join(f"{i},{i % 7},{'yes' if i % 5 == 0 else 'no'}" for i in range(40))
    path = _csv(tmp_path, "x,z,y\n" + rows + "\n")
    ds = read_csv(path, test_size=0.25, seed=1)
    assert len(ds.X_train) == 30 and len(ds.X_test) == 10
    assert ds.meta["classes"] == ["no", "yes"]
    assert int(ds.y_test.sum()) == 2  # 8 of 40 rows are "yes": a stratified 10-row test split holds 2
    again = read_csv(path, test_size=0.25, seed=1)
    np.testing.assert_array_equal(ds.X_test, again.X_test)


def test_encode_labels_sorts_numbers_numerically():
    ytr, yte, classes = encode_labels(["10", "2", "1", "2"], ["1"])
    assert classes == ["1", "2", "10"] and ytr.tolist() == [2, 1, 0, 1] and yte.tolist() == [0]


# --------------------------------------------------------------------------------------------
# refused inputs: one test each
# --------------------------------------------------------------------------------------------


def test_refuses_nan_in_X(tmp_path):
    X = rng.normal(size=(6, 1, 10))
    X[2, 0, 3] = np.nan
    with pytest.raises(
        XmodalError, match=r"X contains 1 NaN/Inf value\(s\) in 1 sample\(s\) \(first: index 2\)"
    ):
        read_npz(_npz(tmp_path, X_train=X, y_train=_labels(6)))


def test_refuses_inf_in_X_test(tmp_path):
    Xt = rng.normal(size=(3, 1, 10))
    Xt[1, 0, 0] = np.inf
    path = _npz(
        tmp_path, X_train=rng.normal(size=(6, 1, 10)), y_train=_labels(6), X_test=Xt, y_test=_labels(3)
    )
    with pytest.raises(XmodalError, match=r"X_test contains 1 NaN/Inf"):
        read_npz(path)


def test_refuses_wrong_rank(tmp_path):
    with pytest.raises(XmodalError, match=r"X has rank 6"):
        read_npz(_npz(tmp_path, X_train=np.zeros((4, 1, 2, 2, 2, 2)), y_train=_labels(4)))


def test_refuses_X_y_length_mismatch(tmp_path):
    with pytest.raises(XmodalError, match=r"X has 10 samples but y has 9"):
        read_npz(_npz(tmp_path, X_train=rng.normal(size=(10, 5)), y_train=_labels(9)))


def test_refuses_negative_labels(tmp_path):
    y = np.array([0, 1, -1, 1])
    with pytest.raises(XmodalError, match=r"negative label -1"):
        read_npz(_npz(tmp_path, X_train=rng.normal(size=(4, 5)), y_train=y))


def test_refuses_test_labels_outside_training_classes(tmp_path):
    path = _npz(
        tmp_path,
        X_train=rng.normal(size=(4, 5)),
        y_train=_labels(4),
        X_test=rng.normal(size=(2, 5)),
        y_test=np.array([0, 2]),
    )
    with pytest.raises(XmodalError, match=r"y_test has label 2, outside the training classes 0\.\.1"):
        read_npz(path)


def test_refuses_non_integer_labels_for_classification(tmp_path):
    path = _npz(tmp_path, X_train=rng.normal(size=(4, 5)), y_train=np.array([0.0, 1.5, 1.0, 0.0]))
    with pytest.raises(XmodalError, match=r"integer class indices 0\.\.K-1"):
        read_npz(path, task="classification")


def test_refuses_single_class(tmp_path):
    with pytest.raises(XmodalError, match=r"one class"):
        read_npz(_npz(tmp_path, X_train=rng.normal(size=(5, 3)), y_train=np.zeros(5, dtype=int)))


def test_refuses_empty_data(tmp_path):
    with pytest.raises(XmodalError, match=r"X is empty"):
        read_npz(_npz(tmp_path, X_train=np.zeros((0, 1, 4)), y_train=np.zeros(0, dtype=int)))


def test_refuses_dense_targets_with_other_spatial_shape(tmp_path):
    path = _npz(tmp_path, X_train=rng.normal(size=(3, 1, 16, 16)), y_train=rng.normal(size=(3, 1, 8, 8)))
    with pytest.raises(
        XmodalError, match=r"dense targets have spatial shape \(1, 8, 8\) but the inputs have \(16, 16\)"
    ):
        read_npz(path, task="dense-regression")


def test_refuses_garbage_npz(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"this is not a zip archive \x00\x01\x02" * 10)
    with pytest.raises(XmodalError, match=r"cannot read .*broken\.npz.* as an \.npz archive"):
        read_npz(path)


def test_refuses_wrong_keys_npz(tmp_path):
    path = _npz(tmp_path, X=rng.normal(size=(4, 3)), y=_labels(4))
    with pytest.raises(XmodalError, match=r"has no X_train or y_train \(it holds \['X', 'y'\]\)"):
        read_npz(path)


def test_refuses_object_array_npz(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1.0, 2.0], [3.0]
    path = tmp_path / "objects.npz"
    np.savez(path, X_train=ragged, y_train=_labels(2))  # savez pickles object arrays
    with pytest.raises(XmodalError, match=r"X_train in .* is an object array"):
        read_npz(path)


def test_refuses_test_inputs_without_test_targets(tmp_path):
    path = _npz(tmp_path, X_train=rng.normal(size=(4, 3)), y_train=_labels(4), X_test=rng.normal(size=(2, 3)))
    with pytest.raises(XmodalError, match=r"has X_test but no y_test"):
        read_npz(path)


def test_refuses_test_set_with_other_layout(tmp_path):
    path = _npz(
        tmp_path,
        X_train=rng.normal(size=(4, 1, 10)),
        y_train=_labels(4),
        X_test=rng.normal(size=(2, 1, 12)),
        y_test=_labels(2),
    )
    with pytest.raises(XmodalError, match=r"X_test has per-sample shape \(1, 12\) but X_train has \(1, 10\)"):
        read_npz(path)


def test_refuses_string_targets_in_npz_for_regression(tmp_path):
    path = _npz(tmp_path, X_train=rng.normal(size=(4, 3)), y_train=np.array(["a", "b", "a", "b"]))
    with pytest.raises(XmodalError, match=r"y has dtype <U1; encode labels"):
        read_npz(path, task="regression")


def test_refuses_complex_inputs(tmp_path):
    path = _npz(tmp_path, X_train=rng.normal(size=(4, 3)) + 1j, y_train=_labels(4))
    with pytest.raises(XmodalError, match=r"X has complex dtype complex128"):
        read_npz(path)


def test_refuses_npy_disguised_as_npz(tmp_path):
    path = tmp_path / "single.npz"
    with open(path, "wb") as fh:
        np.save(fh, np.zeros((3, 3)))
    with pytest.raises(XmodalError, match=r"single \.npy array, not an \.npz archive"):
        read_npz(path)


def test_refuses_missing_file(tmp_path):
    with pytest.raises(XmodalError, match=r"file not found: .*nothing\.npz"):
        read_npz(tmp_path / "nothing.npz")
    with pytest.raises(XmodalError, match=r"file not found: .*nothing\.csv"):
        read_csv(tmp_path / "nothing.csv")


def test_refuses_wrong_extension(tmp_path):
    path = _csv(tmp_path, "1,2,0\n", "data.parquet")
    with pytest.raises(XmodalError, match=r"does not look like an \.npz archive"):
        read_npz(path)
    with pytest.raises(XmodalError, match=r"does not look like a CSV file"):
        read_csv(path)


def test_csv_text_columns_are_one_hot_encoded_with_the_training_categories(tmp_path):
    train = _csv(tmp_path, "a,colour,label\n1,red,0\n3,blue,1\n5,,0\n7,red,1\n", "train.csv")
    test = _csv(tmp_path, "a,colour,label\n2,blue,0\n4,green,1\n", "test.csv")
    ds = read_csv(train, test_path=test)
    assert ds.meta["feature_names"] == ["a", "colour=blue", "colour=red"]
    np.testing.assert_array_equal(ds.X_train[:, 0], [[1, 0, 1], [3, 1, 0], [5, 0, 0], [7, 0, 1]])
    # a category the training file has not seen, like an empty cell, is all zeros
    np.testing.assert_array_equal(ds.X_test[:, 0], [[2, 1, 0], [4, 0, 0]])
    assert ds.meta["encoding"]["columns"][1] == {"name": "colour", "kind": "categorical",
                                                 "categories": ["blue", "red"]}
    # the same encoding for features-only tables (prediction), the target column dropped
    X = read_csv_features(test, drop="label", encoding=ds.meta["encoding"])
    np.testing.assert_array_equal(X, ds.X_test[:, 0])
    with pytest.raises(XmodalError, match="if one column is the target"):
        read_csv_features(test, encoding=ds.meta["encoding"])


def test_csv_median_imputation_uses_the_training_medians(tmp_path):
    train = _csv(tmp_path, "a,b,label\n1,,0\n3,4,1\n5,10,0\n7,nan,1\n", "train.csv")
    test = _csv(tmp_path, "a,b,label\n,2,0\n4,,1\n", "test.csv")
    with pytest.raises(XmodalError, match="empty \\(missing\\) cell.*impute='median'"):
        read_csv(train)
    ds = read_csv(train, test_path=test, impute="median")
    np.testing.assert_array_equal(ds.X_train[:, 0, 1], [7, 4, 10, 7])  # median of 4 and 10
    np.testing.assert_array_equal(ds.X_test[:, 0], [[4, 2], [4, 7]])  # the training medians, not the test's
    assert ds.meta["encoding"]["columns"][0] == {"name": "a", "kind": "numeric", "fill": 4.0}
    np.testing.assert_array_equal(read_csv_features(test, drop="label", encoding=ds.meta["encoding"]),
                                  ds.X_test[:, 0])
    with pytest.raises(XmodalError, match="impute must be"):
        read_csv(train, impute="mean")


def test_csv_held_out_rows_do_not_feed_the_imputed_medians(tmp_path):
    b = [str(i * i) if i % 4 else "" for i in range(40)]  # skewed values, every fourth missing
    lines = ["id,b,label"] + [f"{i},{v},{i % 2}" for i, v in enumerate(b)]
    ds = read_csv(_csv(tmp_path, "\n".join(lines) + "\n"), test_size=0.5, impute="median", seed=3)
    train_ids = ds.X_train[:, 0, 0].astype(int)
    seen = [i * i for i in train_ids if i % 4]
    fill = ds.meta["encoding"]["columns"][1]["fill"]
    assert fill == np.median(seen) != np.median([i * i for i in range(40) if i % 4])
    test_ids = ds.X_test[:, 0, 0].astype(int)
    np.testing.assert_array_equal(ds.X_test[test_ids % 4 == 0, 0, 1], fill)
    assert sorted([*train_ids, *test_ids]) == list(range(40))


def test_refuses_text_in_a_column_that_the_encoding_says_is_numeric(tmp_path):
    train = _csv(tmp_path, "a,b,label\n1,2,0\n3,4,1\n", "train.csv")
    test = _csv(tmp_path, "a,b,label\n1,2,0\n3,abc,1\n5,6,0\n", "test.csv")
    msg = r"non-numeric cell 'abc' in the numeric feature column 'b' at row 2 \(line 3\)"
    with pytest.raises(XmodalError, match=msg):
        read_csv(train, test_path=test)
    with pytest.raises(XmodalError, match="non-numeric cell 'abc'"):
        read_csv_features(test, drop="label")  # no encoding: every column numeric


def test_refuses_csv_nan_cell(tmp_path):
    path = _csv(tmp_path, "a,b,label\n1,2,0\n3,4,1\nNaN,6,0\n")
    with pytest.raises(XmodalError, match=r"'NaN' \(NaN/Inf\) in feature column 'a' at row 3"):
        read_csv(path)


def test_refuses_csv_empty_cell(tmp_path):
    path = _csv(tmp_path, "a,b,label\n1,,0\n3,4,1\n")
    with pytest.raises(XmodalError, match=r"empty \(missing\) cell in the numeric feature column 'b' at row 1"):
        read_csv(path)


def test_refuses_csv_ragged_rows(tmp_path):
    path = _csv(tmp_path, "a,b,label\n1,2,0\n3,1\n")
    with pytest.raises(XmodalError, match=r"row 2 \(line 3\) has 2 cells but the header has 3"):
        read_csv(path)


def test_refuses_csv_unknown_target_column(tmp_path):
    path = _csv(tmp_path, "a,b,label\n1,2,0\n3,4,1\n")
    with pytest.raises(XmodalError, match=r"no column 'class'; its columns are \['a', 'b', 'label'\]"):
        read_csv(path, target="class")


def test_refuses_csv_unseen_test_class(tmp_path):
    train = _csv(tmp_path, "f,label\n0.1,a\n0.2,b\n", "train.csv")
    test = _csv(tmp_path, "f,label\n0.4,c\n", "test.csv")
    with pytest.raises(XmodalError, match=r"class\(es\) never seen in training \('c'\)"):
        read_csv(train, test_path=test)


def test_refuses_csv_string_target_for_regression(tmp_path):
    path = _csv(tmp_path, "a,label\n1,x\n2,y\n")
    with pytest.raises(XmodalError, match=r"non-numeric values .* only task='classification'"):
        read_csv(path, task="regression")


def test_refuses_nan_regression_targets():
    with pytest.raises(XmodalError, match=r"y contains 1 NaN/Inf"):
        dataset_from_arrays("d", rng.normal(size=(3, 2)), np.array([0.5, np.nan, 1.5]), task="regression")


def test_write_npz_needs_npz_suffix(tmp_path):
    ds = Dataset("d", "classification", np.zeros((2, 1, 2), np.float32), np.array([0, 1]))
    with pytest.raises(XmodalError, match=r"ending in \.npz"):
        write_npz(tmp_path / "d.npy", ds)


def test_whole_number_quantities_are_regression_and_few_codes_stay_classes(tmp_path):
    """scikit-learn's diabetes table as a user writes it to CSV: 214 whole-number targets in 442 rows."""
    import warnings

    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    path = tmp_path / "diabetes.csv"
    lines = [",".join([f"f{i}" for i in range(10)] + ["target"])]
    lines += [",".join(f"{v:.6f}" for v in row) + f",{t:.1f}" for row, t in zip(X, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="214 distinct whole numbers.*task='classification'"):
        ds = read_csv(path, test_size=0.2)
    assert ds.task == "regression" and len(ds.X_test) == 89
    codes = tmp_path / "codes.csv"
    codes.write_text("a,b,label\n" + "".join(f"{i},{i % 7},{i % 3}\n" for i in range(30)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clear case: no warning
        assert read_csv(codes).task == "classification"
