"""A user's data files: every unusable CSV or NPZ file fails with one DataError whose message is
a single line that starts with the file name and says what, where and how to fix it."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from mibpcert.data.datasets import load_dataset, load_file
from mibpcert.errors import DataError


def fails(path, match, **kwargs):
    """``load_file(path)`` raises a one-line DataError that starts with ``path`` and matches."""
    with pytest.raises(DataError) as info:
        load_file(path, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg, msg
    assert msg.startswith(f"{path}: "), msg
    assert re.search(match, msg), msg
    return msg


def csv_file(tmp_path, text, name="d.csv"):
    f = tmp_path / name
    f.write_text(text)
    return f


def npz_file(tmp_path, name="d.npz", **arrays):
    f = tmp_path / name
    np.savez(f, **arrays)
    return f


# ----------------------------------------------------------------------------- 1. label column


def test_csv_without_a_label_column(tmp_path):
    rows = "".join(f"{i * 0.37:.2f},{i * 1.1:.2f},{i * 0.7 + 0.05:.2f}\n" for i in range(12))
    f = csv_file(tmp_path, "a,b,c\n" + rows)
    msg = fails(f, r"no label column: none is named label/target/class/y and the last column 'c'")
    assert "'0.05' in data row 1 (line 2 of the file)" in msg and "label_column" in msg
    # a last column named like a label is the label, whatever it holds
    g = csv_file(tmp_path, "a,b,target\n" + rows, "g.csv")
    assert "no label column" not in fails(g, r"has only 1 row", n_test=3)
    # told which column it is, the same file loads
    assert load_file(f, label_column="c", task="regression", n_test=3).feature_names == ("a", "b")


def test_csv_label_named_but_not_last_is_ambiguous(tmp_path):
    f = csv_file(tmp_path, "target,a,b\n" + "0,1.5,2\n1,2.5,1\n" * 6)
    fails(f, r"which column is the label\? .*last column 'b'.*\['target'\].*set label_column")
    ds = load_file(f, label_column="target")
    assert ds.feature_names == ("a", "b") and ds.class_names == ("0", "1")


def test_csv_label_rule_keeps_the_last_column(tmp_path):
    # the last column stays the default label: names like 'y' elsewhere do not matter then
    f = csv_file(tmp_path, "x,y,label\n" + "0.5,1.5,a\n1.5,0.5,b\n" * 4)
    ds = load_file(f)
    assert ds.feature_names == ("x", "y") and ds.class_names == ("a", "b")
    g = csv_file(tmp_path, "u,v,animal\n" + "0.5,1,cat\n1.5,2,dog\n" * 4, "g.csv")
    assert load_file(g).class_names == ("cat", "dog")


def test_csv_duplicate_label_column(tmp_path):
    f = csv_file(tmp_path, "a,label,label\n" + "1,x,x\n2,y,y\n" * 3)
    fails(f, r"the label column 'label' \(the last column\) appears 2 times")
    fails(f, r"has 2 columns named 'label' \(columns 2, 3\)", label_column="label")


# ----------------------------------------------------------------------------- 2. classes


def test_constant_label(tmp_path):
    f = csv_file(tmp_path, "a,b,label\n" + "1,2,x\n3,4,x\n" * 3)
    fails(f, r"label column 'label' has only one class \('x'\) in all 6 rows; .*at least 2")
    g = npz_file(tmp_path, X=np.ones((6, 2)), y=np.zeros(6, dtype=int))
    fails(g, r"array 'y' has only one class \('0'\)")


def test_one_class_in_the_training_split(tmp_path):
    # 98 'a' and 2 'b': a stratified split into 2 training rows puts no 'b' in training
    f = csv_file(tmp_path, "a,label\n" + "".join(f"{i},a\n" for i in range(98)) + "1,b\n2,b\n")
    fails(
        f,
        r"after the train/test split the training split holds only class 'a' \(2 rows\)",
        n_train=2,
    )
    assert load_file(f, n_train=50).n_classes == 2


def test_one_class_in_presplit_training_data(tmp_path):
    tr = csv_file(tmp_path, "a,label\n1,x\n2,x\n", "train.csv")
    te = csv_file(tmp_path, "a,label\n1,x\n2,y\n", "test.csv")
    fails(tr, r"the training data has only one class \('x'\) in label column", test_path=te)
    g = npz_file(
        tmp_path,
        X_train=np.ones((4, 2)),
        y_train=[0, 0, 0, 0],
        X_test=np.ones((2, 2)),
        y_test=[0, 1],
    )
    fails(g, r"the training data has only one class \('0'\) in array 'y_train'")


def test_class_with_a_single_row_or_too_small_splits(tmp_path):
    rows = "".join(f"{i},{'ab'[i % 2]}\n" for i in range(10))
    f = csv_file(tmp_path, "a,label\n" + rows + "5,c\n")
    fails(f, r"class 'c' of the label column 'label'.* has only 1 row, in data row 11 \(line 12")
    g = csv_file(
        tmp_path, "a,label\n" + "".join(f"{i},{'abc'[i % 3]}\n" for i in range(12)), "g.csv"
    )
    fails(g, r"n_test = 2 is smaller than the number of classes \(3\).*n_test >= 3", n_test=2)
    fails(g, r"has 12 rows; cannot split into n_train=20 and n_test=-8", n_train=20)
    # a numeric target read as classes: every class has one row
    h = npz_file(tmp_path, "h.npz", X=np.ones((6, 1)), y=np.arange(6) + 0.5)
    fails(h, r"class '0\.5' of the array 'y' has only 1 row, in row 0 \(0-based\).*regression")


# ----------------------------------------------------------------------------- 3. NaN / inf


def test_nan_and_inf_in_csv_features_name_column_and_row(tmp_path):
    f = csv_file(tmp_path, "a,b,label\n1,2,x\n3,,y\n5,6,x\n7,8,y\n")
    fails(
        f, r"first at row 1, column 1 \(0-based\): column 'b' in data row 2 \(line 3 of the file\)"
    )
    g = csv_file(tmp_path, "a,b,label\n1,2,x\n\n3,4,y\n5,inf,x\n", "g.csv")
    fails(g, r"column 'b' in data row 3 \(line 5 of the file\) holds 'inf'")


def test_nan_or_missing_labels_in_csv(tmp_path):
    f = csv_file(tmp_path, "a,label\n" + "1,x\n2,y\n" * 3 + "3,nan\n")
    fails(
        f, r"label column 'label' has no class in data row 7 \(line 8 of the file\): it holds 'nan'"
    )
    g = csv_file(tmp_path, "a,label\n" + "1,x\n2,y\n" * 3 + "3,\n", "g.csv")
    fails(g, r"label column 'label' has no class in data row 7 .*an empty cell")
    h = csv_file(tmp_path, "a,t\n" + "1,0.5\n2,1.5\n" * 3 + "3,inf\n", "h.csv")
    fails(h, r"label column 't' has a missing target: data row 7 .* holds 'inf'", task="regression")


def test_nan_in_npz_labels(tmp_path):
    X = np.arange(20.0).reshape(10, 2)
    y = np.array([0.0, 1.0] * 4 + [np.nan, 1.0])
    f = npz_file(tmp_path, X=X, y=y)
    fails(f, r"array 'y' contains 1 NaN/inf value\(s\), first at row 8 \(0-based\)")
    fails(f, r"array 'y' contains 1 NaN/inf value\(s\), first at row 8", task="regression")
    g = npz_file(tmp_path, "g.npz", X=X, y=np.array(["a", "b"] * 4 + ["", "a"]))
    fails(g, r"array 'y' has no class at row 8 \(0-based\)")
    Xn = X.copy()
    Xn[3, 1] = -np.inf
    h = npz_file(tmp_path, "h.npz", X=Xn, y=np.arange(10) % 2)
    fails(h, r"array 'X' contains 1 NaN/inf value\(s\), first at row 3, column 1 \(0-based")


# ----------------------------------------------------------------------------- 4. non-numbers


def test_non_numeric_feature_names_column_row_and_value(tmp_path):
    f = csv_file(tmp_path, "a,b,label\n1,2,x\n3,red,y\n")
    fails(f, r"data row 2, column 'b' holds 'red', which is not a number \(line 3 of the file\)")
    g = npz_file(tmp_path, X=np.array([["1", "2"], ["3", "x"]]), y=[0, 1])
    fails(g, r"array 'X' holds 'x' at row 1, column 1 \(0-based\), which is not a number")
    h = csv_file(tmp_path, "a,t\n1,0.5\n2,high\n", "h.csv")
    fails(h, r"label column 't' is not numeric: data row 2 .* holds 'high'", task="regression")


def test_string_class_labels_still_load(tmp_path):
    f = csv_file(tmp_path, "a,b,label\n" + "1,2,cat\n3,4,dog\n" * 3)
    ds = load_file(f, n_test=2)
    assert ds.class_names == ("cat", "dog") and ds.y_train.dtype == np.int64


# ----------------------------------------------------------------------------- 5. table shape


def test_ragged_rows(tmp_path):
    f = csv_file(tmp_path, "a,b,label\n1,2,x\n3,4\n")
    fails(f, r"data row 2 has 2 fields, the header has 3 \(line 3 of the file\)")
    g = csv_file(tmp_path, "a,b,label\n1,2,x\n3,4,y,9\n", "g.csv")
    fails(g, r"data row 2 has 4 fields, the header has 3")


def test_empty_header_only_and_single_column_files(tmp_path):
    fails(csv_file(tmp_path, "", "e.csv"), r"the file is empty; .*header row")
    fails(csv_file(tmp_path, "\n \n", "b.csv"), r"the file is empty")
    fails(csv_file(tmp_path, "a,b,label\n", "h.csv"), r"has a header row but no data rows")
    fails(csv_file(tmp_path, "label\nx\ny\n", "s.csv"), r"has a single column 'label'")
    fails(csv_file(tmp_path, "a;b;label\n1;2;x\n", "semi.csv"), r"single column 'a;b;label'")


def test_binary_file_named_csv(tmp_path):
    f = tmp_path / "d.csv"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 10)
    fails(f, r"is not a text file")


def test_tab_separated_file(tmp_path):
    f = csv_file(tmp_path, "a\tb\tlabel\n" + "1\t2\tx\n3\t4\ty\n" * 4, "d.tsv")
    ds = load_file(f, n_test=2)
    assert ds.feature_names == ("a", "b") and ds.class_names == ("x", "y")


def test_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    f = tmp_path / "d.csv"
    f.write_bytes("\ufefflabel,a\nx,1\ny,2\nx,3\ny,4\n".encode())
    ds = load_file(f, label_column="label", n_test=2)
    assert ds.feature_names == ("a",)


# ----------------------------------------------------------------------------- 6. NPZ


def test_npz_missing_keys_say_which(tmp_path):
    f = npz_file(tmp_path, features=np.ones((4, 2)), labels=[0, 1, 0, 1])
    fails(f, r"has arrays \['features', 'labels'\] but needs 'X' and 'y'.*missing \['X', 'y'\]")
    g = npz_file(
        tmp_path, "g.npz", X_train=np.ones((4, 2)), y_train=[0, 1, 0, 1], X_test=np.ones((2, 2))
    )
    fails(g, r"'X_train', 'y_train', 'X_test' and 'y_test'.*missing \['y_test'\]")


def test_npz_shapes(tmp_path):
    y = np.arange(10) % 2
    fails(
        npz_file(tmp_path, "a.npz", X=np.arange(10.0), y=y),
        r"array 'X' has shape \(10,\); it must be 2-D.*reshape\(-1, 1\)",
    )
    fails(
        npz_file(tmp_path, "b.npz", X=np.ones((10, 2, 2)), y=y), r"array 'X' has shape \(10, 2, 2\)"
    )
    fails(
        npz_file(tmp_path, "c.npz", X=np.ones((10, 2)), y=y[:9]),
        r"array 'y' has 9 entries but 'X' has 10 rows",
    )
    c = tmp_path / "c.npz"
    fails(c, r"array 'y' has 9 entries but 'X' has 10 rows", task="regression")
    d = npz_file(tmp_path, "d.npz", X=np.arange(20.0).reshape(10, 2), y=y.reshape(10, 1))
    fails(d, r"array 'y' has shape \(10, 1\); class labels must be 1-D.*y\.ravel\(\)")
    e = npz_file(
        tmp_path,
        "e.npz",
        X_train=np.ones((4, 2)),
        y_train=[0, 1, 0, 1],
        X_test=np.ones((2, 3)),
        y_test=[0, 1],
    )
    fails(e, r"'X_train' has 2 columns but 'X_test' has 3")
    fails(npz_file(tmp_path, "f.npz", X=np.ones((0, 2)), y=y[:0]), r"array 'X' has shape \(0, 2\)")


def test_npz_object_arrays_are_refused(tmp_path):
    f = npz_file(tmp_path, X=np.array([[1.0, None]] * 4, dtype=object), y=[0, 1, 0, 1])
    fails(f, r"array 'X' holds Python objects \(dtype=object\)")


def test_files_that_are_not_npz_archives(tmp_path):
    fails(
        csv_file(tmp_path, "hello\n", "text.npz"),
        r"is not an NPZ archive \(the file is not a zip archive\); .*numpy\.savez",
    )
    fails(csv_file(tmp_path, "", "empty.npz"), r"is not an NPZ archive \(the file is empty\)")
    buf = io.BytesIO()
    np.save(buf, np.ones(3))
    (tmp_path / "one.npz").write_bytes(buf.getvalue())
    fails(tmp_path / "one.npz", r"is a single \.npy array, not an \.npz archive")
    good = npz_file(
        tmp_path, "good.npz", X=np.arange(2000.0).reshape(1000, 2), y=np.arange(1000) % 2
    )
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:3000])
    fails(tmp_path / "cut.npz", r"cannot read the NPZ archive \(BadZipFile: .*truncated or corrupt")


# ----------------------------------------------------------------------------- 7. paths


def test_bad_paths(tmp_path):
    fails(tmp_path / "nope.csv", r"the data file does not exist; check the path")
    (tmp_path / "dir.csv").mkdir()
    fails(tmp_path / "dir.csv", r"is a directory, not a data file")
    fails(tmp_path, r"is a directory")
    fails(csv_file(tmp_path, "a", "data.xlsx"), r"unknown extension '\.xlsx'; use \.csv")
    tr = csv_file(tmp_path, "a,label\n1,x\n2,y\n1,x\n2,y\n", "train.csv")
    missing = tmp_path / "nope_test.csv"
    with pytest.raises(DataError) as info:
        load_file(tr, test_path=missing)
    assert str(info.value) == f"{missing}: the test file does not exist; check the path"


def test_options_an_npz_file_cannot_use(tmp_path):
    f = npz_file(tmp_path, X=np.arange(20.0).reshape(10, 2), y=np.arange(10) % 2)
    fails(f, r"test_path = .* is only for CSV files", test_path=tmp_path / "t.csv")
    fails(f, r"label_column = 'y' is only for CSV files", label_column="y")


def test_errors_through_load_dataset(tmp_path):
    f = csv_file(tmp_path, "a,b,label\n1,2,x\n3,red,y\n")
    with pytest.raises(DataError, match=rf"^{re.escape(str(f))}: data row 2, column 'b'"):
        load_dataset(str(f))
