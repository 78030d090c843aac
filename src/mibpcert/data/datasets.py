"""Datasets: built-in loaders with seeded splits, and a user's CSV or NPZ files.

Everything is float64. Classification labels are integers 0..C-1 (the original class names are
kept in :attr:`Dataset.class_names`); regression targets are float64 arrays of shape (n,) or
(n, q). A user's files are read and checked by :mod:`mibpcert.data.csvfile` and
:mod:`mibpcert.data.npzfile` (:mod:`mibpcert.data.filedata`: what they return, and the checks
common to both); :func:`load_file` splits them and builds the :class:`Dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from mibpcert.data.csvfile import _read_csv as _read_csv
from mibpcert.data.csvfile import _table_from_csv as _table_from_csv
from mibpcert.data.csvfile import read_csv_file
from mibpcert.data.filedata import (
    CSV_SUFFIXES,
    NPZ_SUFFIXES,
    _split_sizes,
    check_path,
    check_split,
    check_train_classes,
    encode_labels,
)
from mibpcert.data.filedata import _encode_classes as _encode_classes
from mibpcert.data.npzfile import read_npz_file
from mibpcert.errors import DataError

Task = Literal["classification", "regression"]

BUILTIN_DATASETS = ("moons", "iris", "iris-binary", "diabetes", "breast-cancer")


@dataclass(frozen=True)
class Dataset:
    """A train/test split with its task description.

    Attributes:
        name: dataset name (built-in name or file path).
        X_train, X_test: float64 feature matrices of shape (n, d).
        y_train, y_test: int64 class labels in 0..C-1 (classification) or float64 targets.
        task: ``"classification"`` or ``"regression"``.
        n_classes: number of classes (classification) or ``None``.
        feature_names: one name per feature column.
        class_names: original label values, index = class id (classification only).
        standardization: ``None`` or a dict with the ``mean``/``scale`` used for features (and
            ``target_mean``/``target_scale`` for standardised regression targets).
        X_val, y_val: an optional clean validation split (``None``: none), drawn from the test
            pool (:meth:`with_validation`), for choosing the epoch by certified validation
            accuracy.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: Task
    n_classes: int | None = None
    feature_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    standardization: dict | None = field(default=None, compare=False)
    X_val: np.ndarray | None = field(default=None, compare=False)
    y_val: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _validate_split(self)

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.X_test.shape[0])

    @property
    def n_targets(self) -> int:
        """Number of regression targets (1 for classification)."""
        if self.task == "regression" and self.y_train.ndim == 2:
            return int(self.y_train.shape[1])
        return 1

    def standardized(self) -> Dataset:
        """Return a copy with features (and regression targets) standardised on the train split."""
        if self.standardization is not None:
            return self
        mean = self.X_train.mean(axis=0)
        scale = self.X_train.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        info: dict = {"mean": mean.tolist(), "scale": scale.tolist()}
        y_train, y_test = self.y_train, self.y_test
        if self.task == "regression":
            t_mean = y_train.mean(axis=0)
            t_scale = y_train.std(axis=0)
            t_scale = np.where(t_scale > 0, t_scale, 1.0)
            y_train = (y_train - t_mean) / t_scale
            y_test = (y_test - t_mean) / t_scale
            info["target_mean"] = np.atleast_1d(t_mean).tolist()
            info["target_scale"] = np.atleast_1d(t_scale).tolist()
        return replace(
            self,
            X_train=(self.X_train - mean) / scale,
            X_test=(self.X_test - mean) / scale,
            y_train=y_train,
            y_test=y_test,
            standardization=info,
        )

    def with_powers(self, degree: int) -> Dataset:
        """Copy with every feature x expanded to [x, x^2, ..., x^degree] (before scaling)."""
        if not isinstance(degree, (int, np.integer)) or degree < 1:
            raise DataError(f"poly_degree must be a positive integer, got {degree!r}.")
        if degree == 1:
            return self
        if self.standardization is not None:
            raise DataError("apply polynomial features before standardisation, not after.")

        def expand(X: np.ndarray) -> np.ndarray:
            return np.concatenate([X**p for p in range(1, degree + 1)], axis=1)

        names = tuple(
            f if p == 1 else f"{f}^{p}" for p in range(1, degree + 1) for f in self.feature_names
        )
        return replace(
            self, X_train=expand(self.X_train), X_test=expand(self.X_test), feature_names=names
        )

    @property
    def n_val(self) -> int:
        return 0 if self.X_val is None else int(self.X_val.shape[0])

    def with_validation(self, n_val: int, seed: int = 0) -> Dataset:
        """Copy with ``n_val`` points of the test split moved, at random (seeded), into a clean
        validation split; the rest stays the test split."""
        if not isinstance(n_val, (int, np.integer)) or n_val < 0:
            raise DataError(f"n_val must be a non-negative integer, got {n_val!r}.")
        if n_val == 0:
            return self
        if n_val >= self.n_test:
            raise DataError(
                f"n_val = {n_val} leaves no test points (the test split has {self.n_test}); "
                "use a smaller n_val or a larger n_test."
            )
        order = np.random.default_rng(10_000 + int(seed)).permutation(self.n_test)
        val, test = np.sort(order[:n_val]), np.sort(order[n_val:])
        return replace(
            self,
            X_test=self.X_test[test],
            y_test=self.y_test[test],
            X_val=self.X_test[val],
            y_val=self.y_test[val],
        )

    def describe(self) -> dict:
        """A JSON-serialisable summary (used in reports)."""
        out = {
            "name": self.name,
            "task": self.task,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_val": self.n_val,
            "n_features": self.n_features,
            "standardized": self.standardization is not None,
        }
        if self.task == "classification":
            out["n_classes"] = self.n_classes
            out["class_names"] = list(self.class_names)
        else:
            out["n_targets"] = self.n_targets
        return out


def _check_finite(name: str, what: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = np.argwhere(bad)[0]
        where = f"row {idx[0]}" + (f", column {idx[1]}" if arr.ndim > 1 else "")
        raise DataError(
            f"dataset {name!r}: {what} contains {int(bad.sum())} NaN/inf value(s), "
            f"first at {where}; "
            "remove or impute them before certification."
        )


def _validate_split(ds: Dataset) -> None:
    for what, X in (("X_train", ds.X_train), ("X_test", ds.X_test)):
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype != np.float64:
            raise DataError(
                f"dataset {ds.name!r}: {what} must be a float64 array of shape (n, d), "
                f"got {getattr(X, 'dtype', type(X))} with shape {getattr(X, 'shape', None)}."
            )
        _check_finite(ds.name, what, X)
    if ds.X_train.shape[0] == 0:
        raise DataError(f"dataset {ds.name!r}: the training split is empty.")
    if ds.X_train.shape[1] != ds.X_test.shape[1]:
        raise DataError(
            f"dataset {ds.name!r}: X_train has {ds.X_train.shape[1]} features but X_test has "
            f"{ds.X_test.shape[1]}."
        )
    for what, X, y in (("train", ds.X_train, ds.y_train), ("test", ds.X_test, ds.y_test)):
        if len(y) != len(X):
            raise DataError(
                f"dataset {ds.name!r}: {what} split has {len(X)} feature rows but {len(y)} labels."
            )
    if ds.task == "classification":
        if ds.n_classes is None or ds.n_classes < 2:
            raise DataError(f"dataset {ds.name!r}: classification needs at least 2 classes.")
        for what, y in (("y_train", ds.y_train), ("y_test", ds.y_test)):
            if y.dtype.kind not in "iu" or y.ndim != 1:
                raise DataError(
                    f"dataset {ds.name!r}: {what} must hold integer class ids of shape (n,)."
                )
            if len(y) and (y.min() < 0 or y.max() >= ds.n_classes):
                raise DataError(
                    f"dataset {ds.name!r}: {what} has class ids outside 0..{ds.n_classes - 1}."
                )
    elif ds.task == "regression":
        for what, y in (("y_train", ds.y_train), ("y_test", ds.y_test)):
            if y.dtype != np.float64 or y.ndim not in (1, 2):
                raise DataError(
                    f"dataset {ds.name!r}: {what} must be float64 targets of shape (n,) or (n, q)."
                )
            _check_finite(ds.name, what, y)
    else:
        raise DataError(
            f"dataset {ds.name!r}: unknown task {ds.task!r}; use 'classification' or 'regression'."
        )


def _split(
    X: np.ndarray,
    y: np.ndarray,
    n_train: int | None,
    n_test: int | None,
    test_fraction: float,
    seed: int,
    stratify: bool,
    name: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    n = len(X)
    n_train, n_test = _split_sizes(n, n_train, n_test, test_fraction)
    if n_train < 1 or n_test < 1 or n_train + n_test > n:
        raise DataError(
            f"dataset {name!r} has {n} points; cannot split into n_train={n_train} and "
            f"n_test={n_test} (both must be >= 1 and sum to at most {n})."
        )
    try:
        Xtr, Xte, ytr, yte = train_test_split(
            X,
            y,
            train_size=int(n_train),
            test_size=int(n_test),
            random_state=seed,
            stratify=y if stratify else None,
        )
    except ValueError as exc:
        raise DataError(
            f"dataset {name!r}: cannot make a stratified split with n_train={n_train}, "
            f"n_test={n_test}: {exc}. Each split needs at least one point per class."
        ) from None
    return Xtr, Xte, ytr, yte


def make_moons_dataset(
    n_train: int = 100, n_test: int = 200, noise: float = 0.1, seed: int = 0
) -> Dataset:
    """Two-Moons (scikit-learn ``make_moons``): 2 features, 2 classes, seeded."""
    from sklearn.datasets import make_moons

    if n_train < 1 or n_test < 1:
        raise DataError(f"moons: n_train and n_test must be >= 1, got {n_train} and {n_test}.")
    if noise < 0:
        raise DataError(f"moons: noise must be >= 0, got {noise}.")
    X, y = make_moons(n_samples=n_train + n_test, noise=noise, random_state=seed, shuffle=True)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    return Dataset(
        name="moons",
        X_train=X[:n_train].copy(),
        y_train=y[:n_train].copy(),
        X_test=X[n_train:].copy(),
        y_test=y[n_train:].copy(),
        task="classification",
        n_classes=2,
        feature_names=("x0", "x1"),
        class_names=("0", "1"),
    )


def _sklearn_dataset(
    name: str, n_train: int | None, n_test: int | None, test_fraction: float, seed: int
) -> Dataset:
    from sklearn import datasets as skd

    loaders = {
        "iris": skd.load_iris,
        "iris-binary": skd.load_iris,
        "diabetes": skd.load_diabetes,
        "breast-cancer": skd.load_breast_cancer,
    }
    bunch = loaders[name]()
    X = np.asarray(bunch.data, dtype=np.float64)
    feature_names = tuple(str(f) for f in bunch.feature_names)
    if name == "diabetes":
        y = np.asarray(bunch.target, dtype=np.float64)
        Xtr, Xte, ytr, yte = _split(X, y, n_train, n_test, test_fraction, seed, False, name)
        return Dataset(name, Xtr, ytr, Xte, yte, "regression", None, feature_names)
    y = np.asarray(bunch.target, dtype=np.int64)
    target_names = [str(t) for t in bunch.target_names]
    if name == "iris-binary":
        keep = y > 0  # versicolor (-> class 0) vs virginica (-> class 1): not linearly separable
        X, y = X[keep], y[keep] - 1
        target_names = target_names[1:]
    Xtr, Xte, ytr, yte = _split(X, y, n_train, n_test, test_fraction, seed, True, name)
    return Dataset(
        name,
        Xtr,
        ytr,
        Xte,
        yte,
        "classification",
        len(target_names),
        feature_names,
        tuple(target_names),
    )


def load_file(
    path: str | Path,
    *,
    task: Task = "classification",
    label_column: str | None = None,
    test_path: str | Path | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> Dataset:
    """Load a user's dataset from CSV (header row, one label column) or NPZ.

    NPZ files hold either ``X`` and ``y`` (split here with ``seed``) or ``X_train``, ``y_train``,
    ``X_test``, ``y_test``. CSV files use ``label_column`` (default: the last column, unless
    another column is named ``label``, ``target``, ``class`` or ``y``: then it must be set); a
    separate test file can be given with ``test_path``, otherwise the file is split with ``seed``
    (stratified by class for classification). A file that cannot be used raises a
    :class:`~mibpcert.errors.DataError` whose one-line message starts with the file name.
    """
    if task not in ("classification", "regression"):
        raise DataError(f"task must be 'classification' or 'regression', got {task!r}.")
    path = Path(path)
    if check_path(path, "data file") in NPZ_SUFFIXES:
        for what, value in (("test_path", test_path), ("label_column", label_column)):
            if value is not None:
                raise DataError(
                    f"{path}: {what} = {str(value)!r} is only for CSV files; an NPZ archive "
                    "holds its labels in 'y' (its split in X_train, y_train, X_test, y_test); "
                    "unset it"
                )
        fd = read_npz_file(path, task)
    else:
        fd = read_csv_file(path, task, label_column, test_path)
    encode_labels(fd)
    if fd.presplit:
        (Xtr, Xte), (ytr, yte) = fd.Xs, fd.ys
    else:
        n_train, n_test = check_split(fd, n_train, n_test, test_fraction)
        Xtr, Xte, ytr, yte = _split(
            fd.Xs[0],
            fd.ys[0],
            n_train,
            n_test,
            test_fraction,
            seed,
            task == "classification",
            fd.name,
        )
        check_train_classes(fd, ytr)
    return Dataset(
        fd.name, Xtr, ytr, Xte, yte, task, fd.n_classes, fd.feature_names, fd.class_names
    )


def load_dataset(
    name: str,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    noise: float = 0.1,
    seed: int = 0,
    standardize: bool = False,
    test_fraction: float = 0.3,
    task: Task = "classification",
    label_column: str | None = None,
    test_path: str | None = None,
    poly_degree: int = 1,
    n_val: int = 0,
) -> Dataset:
    """Load a built-in dataset by name, or a CSV/NPZ file by path.

    Built-in names: ``moons`` (defaults 100 train / 200 test, ``noise``), ``iris`` (3 classes),
    ``iris-binary`` (versicolor vs virginica), ``diabetes`` (regression), ``breast-cancer``.
    Splits are seeded with ``seed``; ``poly_degree`` > 1 expands every feature x to
    [x, x^2, ..., x^p]; ``standardize`` then fits mean/std on the training split; ``n_val``
    moves that many test points into a clean validation split.
    """
    if name == "moons":
        ds = make_moons_dataset(
            100 if n_train is None else n_train, 200 if n_test is None else n_test, noise, seed
        )
    elif name in BUILTIN_DATASETS:
        ds = _sklearn_dataset(name, n_train, n_test, test_fraction, seed)
    elif name.lower().endswith(CSV_SUFFIXES + NPZ_SUFFIXES):
        ds = load_file(
            name,
            task=task,
            label_column=label_column,
            test_path=test_path,
            n_train=n_train,
            n_test=n_test,
            test_fraction=test_fraction,
            seed=seed,
        )
    elif Path(name).is_dir():
        raise DataError(
            f"{name}: is a directory, not a dataset; pass one of {', '.join(BUILTIN_DATASETS)} "
            "or the path of a .csv or .npz file."
        )
    else:
        raise DataError(
            f"unknown dataset {name!r}; use one of {', '.join(BUILTIN_DATASETS)} or a path to a "
            ".csv or .npz file."
        )
    ds = ds.with_powers(poly_degree)
    ds = ds.standardized() if standardize else ds
    return ds.with_validation(n_val, seed)
