"""A :class:`~mibpcert.domains.program.Formulation` as validated arrays (for every backend)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mibpcert.domains.program import Formulation, LinearObjective


@dataclass(frozen=True)
class ModelArrays:
    """A validated :class:`Formulation` as arrays: bounds, binaries and a CSR row matrix.

    Duplicate indices within a row are summed. Rows keep their order; ``row_lo``/``row_hi`` may
    be infinite.
    """

    lb: np.ndarray
    ub: np.ndarray
    binary: np.ndarray
    names: list[str]
    row_start: np.ndarray
    row_index: np.ndarray
    row_value: np.ndarray
    row_lo: np.ndarray
    row_hi: np.ndarray
    products: list[tuple[int, int, int]]

    @property
    def n_vars(self) -> int:
        """Number of variables."""
        return len(self.lb)

    @property
    def n_rows(self) -> int:
        """Number of linear rows."""
        return len(self.row_lo)

    def row(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and coefficients of row ``r``."""
        s, e = self.row_start[r], self.row_start[r + 1]
        return self.row_index[s:e], self.row_value[s:e]


def _merge_duplicates(idx: np.ndarray, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the coefficients of repeated indices; return sorted unique indices."""
    if len(idx) <= 1:
        return idx, coef
    uniq, inv = np.unique(idx, return_inverse=True)
    if len(uniq) == len(idx):
        order = np.argsort(idx, kind="stable")
        return idx[order], coef[order]
    out = np.zeros(len(uniq))
    np.add.at(out, inv, coef)
    return uniq, out


def _rows_csr(rows: list, n: int) -> tuple[np.ndarray, ...]:
    """Validated CSR arrays ``(index, value, start, lo, hi)`` of ``rows`` over ``n`` variables:
    within a row, indices sorted and duplicates summed (in their order of appearance)."""
    R = len(rows)
    row_lo = np.fromiter((r[2] for r in rows), dtype=np.float64, count=R)
    row_hi = np.fromiter((r[3] for r in rows), dtype=np.float64, count=R)
    idx_parts = [np.asarray(r[0], dtype=np.int64).ravel() for r in rows]
    coef_parts = [np.asarray(r[1], dtype=np.float64).ravel() for r in rows]
    lens = np.fromiter((len(a) for a in idx_parts), dtype=np.int64, count=R)
    coef_lens = np.fromiter((len(a) for a in coef_parts), dtype=np.int64, count=R)
    if (lens != coef_lens).any():
        r = int(np.flatnonzero(lens != coef_lens)[0])
        raise ValueError(f"row {r}: index and coefficient arrays differ in shape")
    idx = np.concatenate(idx_parts) if R else np.zeros(0, dtype=np.int64)
    coef = np.concatenate(coef_parts) if R else np.zeros(0)
    rid = np.repeat(np.arange(R), lens)
    bad = (idx < 0) | (idx >= n)
    if bad.any():
        raise ValueError(f"row {int(rid[np.argmax(bad)])}: variable index out of range [0, {n})")
    bad = ~np.isfinite(coef)
    if bad.any():
        raise ValueError(f"row {int(rid[np.argmax(bad)])}: non-finite coefficient")
    bad = np.isnan(row_lo) | np.isnan(row_hi) | (row_lo > row_hi)
    if bad.any():
        r = int(np.argmax(bad))
        raise ValueError(f"row {r}: invalid bounds [{row_lo[r]}, {row_hi[r]}]")
    order = np.lexsort((idx, rid))  # by row, then index; stable for repeated indices
    rid, idx, coef = rid[order], idx[order], coef[order]
    first = np.ones(len(idx), dtype=bool)
    first[1:] = (rid[1:] != rid[:-1]) | (idx[1:] != idx[:-1])
    groups = np.flatnonzero(first)
    value = np.add.reduceat(coef, groups) if len(groups) else coef
    counts = np.bincount(rid[groups], minlength=R)
    start = np.zeros(R + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    return idx[groups], value.astype(np.float64), start, row_lo, row_hi


def formulation_arrays(f: Formulation) -> ModelArrays:
    """Validate ``f`` and return it as :class:`ModelArrays`.

    Raises:
        ValueError: inconsistent lengths, unknown variable types, bad bounds, indices out of
            range, non-finite coefficients or products with a binary factor.
    """
    n = f.n_vars
    if not (len(f.ub) == len(f.vtype) == len(f.names) == n):
        raise ValueError("formulation lb/ub/vtype/names have different lengths")
    lb = np.asarray(f.lb, dtype=np.float64).reshape(n)
    ub = np.asarray(f.ub, dtype=np.float64).reshape(n)
    bad_type = sorted({t for t in f.vtype if t not in ("C", "B")})
    if bad_type:
        raise ValueError(f"unknown variable types {bad_type}; use 'C' or 'B'")
    binary = np.array([t == "B" for t in f.vtype], dtype=bool)
    if np.isnan(lb).any() or np.isnan(ub).any() or (lb > ub).any():
        j = int(np.flatnonzero(np.isnan(lb) | np.isnan(ub) | (lb > ub))[0])
        raise ValueError(f"variable {f.names[j]!r} has invalid bounds [{lb[j]}, {ub[j]}]")
    if binary.any() and ((lb[binary] < 0) | (ub[binary] > 1)).any():
        j = int(np.flatnonzero(binary & ((lb < 0) | (ub > 1)))[0])
        raise ValueError(f"binary variable {f.names[j]!r} has bounds outside [0, 1]")

    row_index, row_value, row_start, row_lo, row_hi = _rows_csr(f.rows, n)
    products = []
    for z, a, b in f.products:
        for v in (z, a, b):
            if not 0 <= v < n:
                raise ValueError(f"product ({z}, {a}, {b}): variable index out of range")
        if binary[a] or binary[b]:
            raise ValueError(
                f"product {f.names[z]!r} = {f.names[a]!r} * {f.names[b]!r} has a binary factor; "
                "such products must be linearised by the encoder"
            )
        products.append((int(z), int(a), int(b)))
    return ModelArrays(
        lb=lb,
        ub=ub,
        binary=binary,
        names=list(f.names),
        row_start=row_start,
        row_index=row_index,
        row_value=row_value,
        row_lo=row_lo,
        row_hi=row_hi,
        products=products,
    )


def objective_arrays(objective: LinearObjective, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated, duplicate-free ``(idx, coef)`` of ``objective`` over ``n`` variables."""
    if objective.sense not in ("min", "max"):
        raise ValueError(f"objective {objective.name!r}: sense must be 'min' or 'max'")
    if not math.isfinite(objective.constant):
        raise ValueError(f"objective {objective.name!r}: non-finite constant")
    idx = np.asarray(objective.idx, dtype=np.int64).ravel()
    coef = np.asarray(objective.coef, dtype=np.float64).ravel()
    if idx.shape != coef.shape:
        raise ValueError(f"objective {objective.name!r}: idx and coef differ in shape")
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"objective {objective.name!r}: variable index out of range [0, {n})")
    if not np.isfinite(coef).all():
        raise ValueError(f"objective {objective.name!r}: non-finite coefficient")
    return _merge_duplicates(idx, coef)


def dense_objective(objective: LinearObjective, n: int) -> np.ndarray:
    """The objective's cost vector of length ``n`` (duplicates summed)."""
    idx, coef = objective_arrays(objective, n)
    out = np.zeros(n)
    out[idx] = coef
    return out
