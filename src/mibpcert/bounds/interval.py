"""The interval domain with outward rounding.

An :class:`Interval` is a pair of float64 arrays ``lo <= hi`` of one shape; it stands for every
real array between them. Every transformer in :mod:`mibpcert.bounds.ops` returns an interval that
contains the exact real result for all real inputs inside its arguments: each computed endpoint is
moved outward by one ulp (``numpy.nextafter``), and sums of many terms, for which one ulp is not
enough, first get an a-priori error bound (Higham's gamma_n bound, padded) added.

NaN never stands for a bound: an endpoint that became NaN (e.g. ``inf - inf`` in a diverged run) is
replaced by the widest sound value, ``-inf`` for lower and ``+inf`` for upper ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNIT = float(np.finfo(np.float64).eps)  # 2**-52, twice the unit roundoff
TINY = float(np.finfo(np.float64).tiny)  # smallest normal number; covers underflow errors


@dataclass(frozen=True)
class Interval:
    """Elementwise interval ``[lo, hi]`` over float64 arrays of one shape."""

    lo: np.ndarray
    hi: np.ndarray

    def __post_init__(self) -> None:
        lo = np.asarray(self.lo, dtype=np.float64)
        hi = np.asarray(self.hi, dtype=np.float64)
        if lo.shape != hi.shape:
            lo, hi = np.broadcast_arrays(lo, hi)
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    @classmethod
    def point(cls, x: np.ndarray) -> Interval:
        """The degenerate interval ``[x, x]``."""
        x = np.asarray(x, dtype=np.float64)
        return cls(x, x)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.lo.shape

    @property
    def width(self) -> np.ndarray:
        return self.hi - self.lo

    @property
    def mid(self) -> np.ndarray:
        return 0.5 * self.lo + 0.5 * self.hi

    def __getitem__(self, idx) -> Interval:
        return Interval(self.lo[idx], self.hi[idx])

    def reshape(self, *shape) -> Interval:
        return Interval(self.lo.reshape(*shape), self.hi.reshape(*shape))

    def contains(self, x: np.ndarray, tol: float = 0.0) -> np.ndarray:
        """Elementwise ``lo - tol <= x <= hi + tol``."""
        x = np.asarray(x, dtype=np.float64)
        return (self.lo - tol <= x) & (x <= self.hi + tol)

    def intersect(self, other: Interval) -> Interval:
        """Intersection; both must be sound enclosures of the same quantity."""
        return Interval(np.maximum(self.lo, other.lo), np.minimum(self.hi, other.hi))

    def is_valid(self) -> bool:
        return bool(np.all(self.lo <= self.hi))


def round_out(lo: np.ndarray, hi: np.ndarray, err: np.ndarray | float | None = None) -> Interval:
    """Interval with ``lo - err`` and ``hi + err`` moved outward by one ulp.

    ``lo``/``hi`` are computed endpoints, each within half an ulp of an exact value (one correctly
    rounded operation) or within ``err`` of it (longer computations). NaN endpoints widen to
    -inf/+inf.
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    if err is not None:
        lo = lo - err
        hi = hi + err
    lo = np.nextafter(lo, -np.inf)
    hi = np.nextafter(hi, np.inf)
    if np.isnan(lo).any() or np.isnan(hi).any():
        lo = np.where(np.isnan(lo), -np.inf, lo)
        hi = np.where(np.isnan(hi), np.inf, hi)
    return Interval(lo, hi)
