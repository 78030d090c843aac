"""A user's data file, read and checked: what the CSV and NPZ readers return, and the checks
that do not depend on the format.

Every problem with a file raises one :class:`~mibpcert.errors.DataError` whose message is a
single line that starts with the file's name and says what is wrong, where, and how to fix it.
Places are named the way a user finds them: in a CSV file by column name, *data row* (1-based;
the header and blank lines are not counted) and line of the file; in an NPZ archive by array
name and 0-based index.

The readers are :mod:`mibpcert.data.csvfile` and :mod:`mibpcert.data.npzfile`;
:func:`mibpcert.data.datasets.load_file` splits what they read and builds the ``Dataset``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mibpcert.errors import DataError

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
NPZ_SUFFIXES = (".npz",)


def _error(source: object, msg: str) -> DataError:
    """A DataError whose message is one line that starts with the file name ``source``."""
    return DataError(" ".join(f"{source}: {msg}".splitlines()))


@dataclass
class _Part:
    """One table read from a file: features, labels, and how to name row ``i`` to a user."""

    source: str
    X: np.ndarray
    y: np.ndarray
    where: Callable[[int], str]


@dataclass
class FileData:
    """A data file read and checked: one table (``presplit`` false) or a train and a test one.

    ``ys`` hold class ids 0..C-1 (classification) or float64 targets; ``label`` names the label
    column or array in messages (``train_label``, if set, that of the training part);
    ``defaulted`` is true when the label is the default last column.
    """

    name: str
    task: str
    parts: list[_Part]
    presplit: bool
    feature_names: tuple[str, ...]
    label: str
    defaulted: bool = False
    train_label: str = ""
    ys: list[np.ndarray] = field(default_factory=list)
    n_classes: int | None = None
    class_names: tuple[str, ...] = ()

    @property
    def Xs(self) -> list[np.ndarray]:  # noqa: N802 - the usual name of a feature matrix
        return [p.X for p in self.parts]


def _encode_classes(y_raw: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    classes, y = np.unique(y_raw, return_inverse=True)
    return y.astype(np.int64), tuple(str(c) for c in classes)


def _split_sizes(
    n: int, n_train: int | None, n_test: int | None, test_fraction: float
) -> tuple[int, int]:
    """The train and test sizes of a split of ``n`` points (``None``: the rest / the fraction)."""
    if n_train is None and n_test is None:
        n_test = max(1, int(round(test_fraction * n)))
        n_train = n - n_test
    elif n_train is None:
        n_train = n - int(n_test)
    elif n_test is None:
        n_test = n - int(n_train)
    return n_train, n_test


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _not_a_class(text: str) -> bool:
    """An empty cell, or NaN/inf written as a number, is a missing class label."""
    value = _float(text)
    return not text.strip() or (value is not None and not math.isfinite(value))


def check_path(path: Path, what: str) -> str:
    """The lower-case extension of an existing data file (``what`` names it in messages)."""
    if not path.exists():
        raise _error(path, f"the {what} does not exist; check the path")
    if path.is_dir():
        raise _error(path, f"is a directory, not a {what}; give the path of a .csv or .npz file")
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + NPZ_SUFFIXES:
        raise _error(
            path,
            f"unknown extension {suffix!r}; use .csv (or .tsv, .txt) for a table with a header "
            "row, or .npz for numpy arrays",
        )
    return suffix


def _default_hint(fd: FileData) -> str:
    return " (without label_column the label is the last column)" if fd.defaulted else ""


def encode_labels(fd: FileData) -> None:
    """Encode class labels as ids 0..C-1 (regression: float64 targets); check the classes."""
    ys = [p.y for p in fd.parts]
    if fd.task == "regression":
        fd.ys = [np.asarray(v, dtype=np.float64) for v in ys]
        return
    y_cat = np.concatenate([np.asarray(v).astype(str) for v in ys])
    y_enc, class_names = _encode_classes(y_cat)
    if len(class_names) < 2:
        raise _error(
            fd.name,
            f"{fd.label} has only one class ({class_names[0]!r}) in all {len(y_cat)} rows; "
            f"classification needs at least 2 classes: check the label{_default_hint(fd)}, or "
            "use task='regression' for a numeric target",
        )
    fd.ys = list(np.split(y_enc, np.cumsum([len(v) for v in ys])[:-1]))
    fd.n_classes, fd.class_names = len(class_names), class_names
    if fd.presplit and np.unique(fd.ys[0]).size < 2:
        raise _error(
            fd.parts[0].source,
            f"the training data has only one class ({class_names[fd.ys[0][0]]!r}) in "
            f"{fd.train_label or fd.label}; a classifier needs at least 2 classes in training: "
            "add rows of the other classes to the training data",
        )


def check_split(
    fd: FileData, n_train: int | None, n_test: int | None, test_fraction: float
) -> tuple[int, int]:
    """The sizes of the seeded split of an unsplit file, checked so that the split succeeds."""
    part = fd.parts[0]
    n = len(part.X)
    n_train, n_test = _split_sizes(n, n_train, n_test, test_fraction)
    if n_train < 1 or n_test < 1 or n_train + n_test > n:
        raise _error(
            fd.name,
            f"has {n} rows; cannot split into n_train={n_train} and n_test={n_test} (both must "
            f"be >= 1 and sum to at most {n}); change n_train/n_test or test_fraction",
        )
    if fd.task != "classification":
        return n_train, n_test
    y = fd.ys[0]
    lonely = np.flatnonzero(np.bincount(y, minlength=fd.n_classes) < 2)
    if lonely.size:
        c = int(lonely[0])
        more = f" (and {lonely.size - 1} more class(es) too)" if lonely.size > 1 else ""
        numeric = (
            " every class has one row, so for a numeric target use task='regression';"
            if lonely.size == fd.n_classes
            else ""
        )
        raise _error(
            fd.name,
            f"class {fd.class_names[c]!r} of the {fd.label}{_default_hint(fd)} has only 1 row, "
            f"in {part.where(int(np.flatnonzero(y == c)[0]))}{more}; a stratified train/test "
            f"split needs at least 2 rows of every class;{numeric} add rows, drop the class, or "
            "give the test data separately (test_path, or X_train/y_train/X_test/y_test)",
        )
    for what, size in (("n_train", n_train), ("n_test", n_test)):
        if size < fd.n_classes:
            raise _error(
                fd.name,
                f"{what} = {size} is smaller than the number of classes ({fd.n_classes}); a "
                f"stratified split puts a row of every class in each split: use "
                f"{what} >= {fd.n_classes}",
            )
    return n_train, n_test


def check_train_classes(fd: FileData, y_train: np.ndarray) -> None:
    """After the split: a classifier's training split must hold at least 2 classes."""
    if fd.task == "classification" and np.unique(y_train).size < 2:
        raise _error(
            fd.name,
            f"after the train/test split the training split holds only class "
            f"{fd.class_names[int(y_train[0])]!r} ({len(y_train)} rows); a classifier needs at "
            "least 2 classes in training: use a larger n_train (or a smaller n_test)",
        )
