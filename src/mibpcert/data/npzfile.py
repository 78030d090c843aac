"""Reading an NPZ data file: arrays ``X`` and ``y`` (split when loading) or ``X_train``,
``y_train``, ``X_test``, ``y_test`` (already split).

``X`` arrays must be 2-D (rows, features) and numeric; ``y`` arrays hold one label per row
(numbers or strings for classification, numbers of shape (n,) or (n, q) for regression). No
pickles are loaded. Places are named by array and 0-based index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mibpcert.data.filedata import FileData, _error, _not_a_class, _Part
from mibpcert.errors import DataError

NPZ_SINGLE = ("X", "y")
NPZ_PRESPLIT = ("X_train", "y_train", "X_test", "y_test")
_NPZ_HINT = "save the arrays with numpy.savez(path, X=X, y=y)"


def _npz_arrays(path: Path) -> tuple[dict[str, np.ndarray], bool]:
    """The arrays a file needs (``X``, ``y`` or the four split ones) and whether it is split."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise _error(path, f"cannot read the file: {exc.strerror or exc}") from None
    if magic.startswith(b"\x93NUMPY"):
        raise _error(path, f"is a single .npy array, not an .npz archive; {_NPZ_HINT}")
    if not magic.startswith(b"PK"):
        what = "empty" if not magic else "not a zip archive"
        raise _error(path, f"is not an NPZ archive (the file is {what}); {_NPZ_HINT}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            if set(NPZ_PRESPLIT) <= keys:
                wanted, presplit = NPZ_PRESPLIT, True
            elif set(NPZ_SINGLE) <= keys:
                wanted, presplit = NPZ_SINGLE, False
            else:
                want = NPZ_PRESPLIT if keys & set(NPZ_PRESPLIT) else NPZ_SINGLE
                raise _error(
                    path,
                    f"has arrays {sorted(keys)} but needs 'X' and 'y' (split when loading), or "
                    "'X_train', 'y_train', 'X_test' and 'y_test' (already split); missing "
                    f"{[k for k in want if k not in keys]}; save the arrays under these names",
                )
            arrays = {}
            for k in wanted:
                try:
                    arrays[k] = npz[k]
                except ValueError as exc:
                    if "allow_pickle" not in str(exc):
                        raise
                    raise _error(
                        path,
                        f"array {k!r} holds Python objects (dtype=object), which are not loaded "
                        "(no pickles); save it as an array of numbers (or strings, for labels)",
                    ) from None
    except DataError:
        raise
    except Exception as exc:  # zipfile, zlib and numpy raise many types for a damaged archive
        raise _error(
            path,
            f"cannot read the NPZ archive ({type(exc).__name__}: {exc}); the file is truncated "
            "or corrupt, save it again with numpy.savez",
        ) from None
    return arrays, presplit


def _first_non_number(a: np.ndarray) -> tuple[int, ...]:
    """Index of the first entry of a string array that ``float`` cannot read."""
    for idx in np.ndindex(a.shape):
        try:
            float(a[idx])
        except (ValueError, TypeError):
            return idx
    return (0,) * a.ndim


def _npz_features(path: Path, key: str, a: np.ndarray, allow_empty: bool) -> np.ndarray:
    if a.dtype.kind not in "biufUS":
        raise _error(path, f"array {key!r} has dtype {a.dtype}; features must be real numbers")
    if a.ndim != 2:
        fix = f" (for a single feature save {key}.reshape(-1, 1))" if a.ndim == 1 else ""
        raise _error(
            path, f"array {key!r} has shape {a.shape}; it must be 2-D (rows, features){fix}"
        )
    if a.shape[1] == 0 or (a.shape[0] == 0 and not allow_empty):
        raise _error(path, f"array {key!r} has shape {a.shape}; it needs rows and feature columns")
    try:
        X = np.asarray(a, dtype=np.float64)
    except (ValueError, TypeError):
        idx = _first_non_number(a)
        raise _error(
            path,
            f"array {key!r} holds {a[idx].item()!r} at row {idx[0]}, column {idx[1]} "
            "(0-based), which is not a number; features must be numeric",
        ) from None
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise _error(
            path,
            f"array {key!r} contains {int(bad.sum())} NaN/inf value(s), first at row {r}, "
            f"column {c} (0-based, {key}[{r}, {c}]); remove or impute them",
        )
    return X


def _npz_labels(path: Path, key: str, y: np.ndarray, n_rows: int, task: str) -> np.ndarray:
    xkey = "X" + key[1:]
    if y.dtype.kind not in "biufUS":
        raise _error(path, f"array {key!r} has dtype {y.dtype}; labels must be numbers or strings")
    if task == "classification" and y.ndim != 1:
        fix = f" (save {key}.ravel())" if y.ndim == 2 and y.shape[1] == 1 else ""
        raise _error(
            path, f"array {key!r} has shape {y.shape}; class labels must be 1-D, one per row{fix}"
        )
    if y.ndim not in (1, 2):
        raise _error(
            path, f"array {key!r} has shape {y.shape}; targets must have shape (n,) or (n, q)"
        )
    if len(y) != n_rows:
        raise _error(
            path,
            f"array {key!r} has {len(y)} entries but {xkey!r} has {n_rows} rows; "
            "give one label per row",
        )
    if task == "classification":
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            r = int(np.flatnonzero(~np.isfinite(y))[0])
            raise _error(
                path,
                f"array {key!r} contains {int((~np.isfinite(y)).sum())} NaN/inf value(s), first "
                f"at row {r} (0-based); every row needs a class label, drop those rows",
            )
        if y.dtype.kind in "US":
            for r, v in enumerate(y.astype(str)):
                if _not_a_class(v):
                    raise _error(
                        path,
                        f"array {key!r} has no class at row {r} (0-based): it holds {v!r}; "
                        "fill in the class or drop the row",
                    )
        return y
    try:
        t = np.asarray(y, dtype=np.float64)
    except (ValueError, TypeError):
        idx = _first_non_number(y)
        raise _error(
            path,
            f"array {key!r} is not numeric (row {idx[0]}, 0-based, holds {y[idx].item()!r}), so "
            "it cannot hold regression targets; use task='classification' for class labels",
        ) from None
    bad = ~np.isfinite(t)
    if bad.any():
        idx = np.argwhere(bad)[0]
        at = f"row {idx[0]}" + (f", column {idx[1]}" if t.ndim == 2 else "")
        raise _error(
            path,
            f"array {key!r} contains {int(bad.sum())} NaN/inf value(s), first at {at} "
            "(0-based); remove those rows or impute the targets",
        )
    return t


def read_npz_file(path: Path, task: str) -> FileData:
    """Read and check the arrays of ``path``."""
    arrays, presplit = _npz_arrays(path)
    parts = []
    for xk, yk in (("X_train", "y_train"), ("X_test", "y_test")) if presplit else (("X", "y"),):
        X = _npz_features(path, xk, arrays[xk], allow_empty=xk == "X_test")
        y = _npz_labels(path, yk, arrays[yk], len(X), task)
        parts.append(_Part(str(path), X, y, lambda r, k=yk: f"row {r} (0-based) of {k!r}"))
    if presplit:
        (tr, te) = parts
        if tr.X.shape[1] != te.X.shape[1]:
            raise _error(
                path,
                f"'X_train' has {tr.X.shape[1]} columns but 'X_test' has {te.X.shape[1]}; "
                "both need the same features",
            )
        if task == "regression" and tr.y.shape[1:] != te.y.shape[1:]:
            raise _error(
                path,
                f"'y_train' has shape {tr.y.shape} but 'y_test' has {te.y.shape}; both need the "
                "same number of targets",
            )
    names = tuple(f"x{i}" for i in range(parts[0].X.shape[1]))
    if presplit:
        return FileData(
            str(path),
            task,
            parts,
            True,
            names,
            "arrays 'y_train' and 'y_test'",
            train_label="array 'y_train'",
        )
    return FileData(str(path), task, parts, False, names, "array 'y'")
