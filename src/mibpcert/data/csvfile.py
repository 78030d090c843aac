"""Reading a CSV (or tab-separated) data file with a header row and one label column.

The label is the column ``label_column`` or, without it, the last column. Rather than guess,
reading fails when that default is doubtful: when another column is named like a label
(:data:`LABEL_NAMES`) but the last one is not, or, for classification, when the last column
holds non-integer numbers (it is then a feature). Labels may be strings (classification); every
feature cell must be a number. Rows are named as *data row* N (1-based, not counting the header
and blank lines) and the line of the file.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mibpcert.data.filedata import (
    CSV_SUFFIXES,
    FileData,
    _error,
    _float,
    _not_a_class,
    _Part,
    check_path,
)

#: column names (case-insensitive) that say "this is the label"
LABEL_NAMES = ("label", "target", "class", "y")


def _read_rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header (stripped, without a byte-order mark), the non-blank data rows, and the line of
    the file on which each data row ends."""
    try:
        with path.open(newline="") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise _error(
            path,
            f"is not a text file (byte {exc.start} is not valid {exc.encoding}); "
            "save the table as a UTF-8 CSV file with a header row",
        ) from None
    except OSError as exc:
        raise _error(path, f"cannot read the file: {exc.strerror or exc}") from None
    first = next((line for line in io.StringIO(text, newline="") if line.strip()), "")
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for r in reader:
            if r and any(c.strip() for c in r):
                rows.append(r)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise _error(path, f"line {reader.line_num} is not valid CSV: {exc}") from None
    if not rows:
        raise _error(
            path, "the file is empty; a CSV file needs a header row of column names and data rows"
        )
    if len(rows) < 2:
        raise _error(path, "the file has a header row but no data rows; add the data below it")
    header = [h.strip() for h in rows[0]]
    header[0] = header[0].lstrip("\ufeff").strip()
    return header, rows[1:], lines[1:]


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    header, rows, _ = _read_rows(path)
    return header, rows


def _label_index(path: Path, header: list[str], label_column: str | None) -> tuple[int, bool]:
    """The label column's index, and whether it is the default (last) column."""
    if label_column is not None:
        hits = [i for i, h in enumerate(header) if h == label_column]
        if not hits:
            raise _error(
                path,
                f"has no column {label_column!r}; its columns are {header}. "
                "Set label_column to one of them.",
            )
        if len(hits) > 1:
            raise _error(
                path,
                f"has {len(hits)} columns named {label_column!r} (columns "
                f"{', '.join(str(i + 1) for i in hits)}); rename them so the label is unique",
            )
        return hits[0], False
    last = header[-1]
    named = [h for h in header[:-1] if h.lower() in LABEL_NAMES]
    if named and last.lower() not in LABEL_NAMES:
        raise _error(
            path,
            f"which column is the label? Without label_column it is the last column {last!r}, "
            f"but column(s) {named} are named like a label; set label_column "
            f"(e.g. label_column = {named[0]!r}, or --label-column {named[0]}) to the label column",
        )
    if header.count(last) > 1:
        raise _error(
            path,
            f"the label column {last!r} (the last column) appears {header.count(last)} times in "
            "the header; rename the columns so the label is unique, or set label_column",
        )
    return len(header) - 1, True


def _csv_part(
    path: Path, label_column: str | None, task: str
) -> tuple[_Part, tuple[str, ...], str, bool]:
    header, rows, lines = _read_rows(path)

    def where(r: int) -> str:
        return f"data row {r + 1} (line {lines[r]} of the file)"

    if len(header) < 2:
        raise _error(
            path,
            f"has a single column {header[0]!r}; it needs feature columns and a label column "
            "separated by commas (or tabs)",
        )
    li, defaulted = _label_index(path, header, label_column)
    label = header[li]
    feats = [i for i in range(len(header)) if i != li]
    X = np.empty((len(rows), len(feats)), dtype=np.float64)
    y_raw: list[str] = []
    for r, row in enumerate(rows):
        if len(row) != len(header):
            raise _error(
                path,
                f"data row {r + 1} has {len(row)} fields, the header has {len(header)} "
                f"(line {lines[r]} of the file); give every row one value per column "
                "(look for a missing or extra separator, or an unquoted comma)",
            )
        y_raw.append(row[li].strip())
        for c, j in enumerate(feats):
            cell = row[j].strip()
            try:
                X[r, c] = float(cell) if cell else np.nan
            except ValueError:
                raise _error(
                    path,
                    f"data row {r + 1}, column {header[j]!r} holds {cell!r}, which is not a "
                    f"number (line {lines[r]} of the file); encode categorical features "
                    "numerically (e.g. one-hot) or drop the column",
                ) from None
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        cell = rows[r][feats[c]].strip()
        raise _error(
            path,
            f"the feature matrix contains {int(bad.sum())} NaN/inf value(s), first at row {r}, "
            f"column {c} (0-based): column {header[feats[c]]!r} in {where(r)} holds "
            f"{cell!r}{' (an empty cell is a missing value)' if not cell else ''}; "
            "remove or impute them",
        )
    y = _csv_labels(path, label, y_raw, task, defaulted, where)
    names = tuple(header[i] for i in feats)
    return _Part(str(path), X, y, where), names, f"label column {label!r}", defaulted


def _csv_labels(
    path: Path,
    label: str,
    y_raw: list[str],
    task: str,
    defaulted: bool,
    where: Callable[[int], str],
) -> np.ndarray:
    if task == "regression":
        values = []
        for r, v in enumerate(y_raw):
            value = _float(v)
            if value is None or not math.isfinite(value):
                what = "an empty cell" if not v else f"{v!r}"
                fix = (
                    "use task='classification' for class labels"
                    if v and value is None
                    else "fill in or drop the row"
                )
                kind = "is not numeric" if v and value is None else "has a missing target"
                raise _error(
                    path,
                    f"label column {label!r} {kind}: {where(r)} holds {what}, so it cannot be a "
                    f"regression target; {fix}",
                )
            values.append(value)
        return np.asarray(values, dtype=np.float64)
    if defaulted and label.lower() not in LABEL_NAMES:
        numbers = [_float(v) for v in y_raw if v]
        if numbers and all(x is not None and math.isfinite(x) for x in numbers):
            odd = [r for r, v in enumerate(y_raw) if v and float(v) != round(float(v))]
            if odd:
                raise _error(
                    path,
                    f"no label column: none is named {'/'.join(LABEL_NAMES)} and the last column "
                    f"{label!r} (the default label) holds non-integer numbers such as "
                    f"{y_raw[odd[0]]!r} in {where(odd[0])}, so it looks like a feature, not a "
                    "class label; add the class column as the last column, or set "
                    "label_column (a numeric target needs task='regression')",
                )
    for r, v in enumerate(y_raw):
        if _not_a_class(v):
            raise _error(
                path,
                f"label column {label!r} has no class in {where(r)}: it holds "
                f"{'an empty cell' if not v else repr(v)}; fill in the class or drop the row",
            )
    return np.asarray(y_raw, dtype=object)


def _table_from_csv(
    path: Path, label_column: str | None, task: str
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    part, names, _, _ = _csv_part(path, label_column, task)
    return part.X, part.y, names


def read_csv_file(
    path: Path, task: str, label_column: str | None, test_path: str | Path | None
) -> FileData:
    """Read ``path`` (and the test file ``test_path``, with the same feature columns)."""
    part, names, label, defaulted = _csv_part(path, label_column, task)
    parts = [part]
    if test_path is not None:
        test = Path(test_path)
        if check_path(test, "test file") not in CSV_SUFFIXES:
            raise _error(test, "the test file of a CSV dataset must be a CSV file too")
        tpart, tnames, _, _ = _csv_part(test, label_column, task)
        if tnames != names:
            raise _error(
                test,
                f"the test file has feature columns {list(tnames)} but the training file "
                f"{str(path)!r} has {list(names)}; give both the same columns in the same "
                "order",
            )
        parts.append(tpart)
    return FileData(str(path), task, parts, test_path is not None, names, label, defaulted)
