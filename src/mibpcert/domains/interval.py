"""The interval domain with outward rounding: the representation and its arithmetic.

An :class:`Interval` is a pair of float64 arrays ``lo <= hi`` of one shape; it stands for every
real array between them. The arithmetic here (``add``, ``sub``, ``mul``, ``scale``, ``divide``,
``sum_axis``, ``prod_sum``, ``matmul``) and every operation's interval version in
:mod:`mibpcert.ops` return an interval that contains the exact real result for all real inputs
inside its arguments: each computed endpoint is moved outward by at least one ulp (:func:`up`,
:func:`down`), and sums of many terms, for which one ulp is not enough, first get an a-priori
error bound (Higham's gamma_n bound, padded) added.

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


_DENORM_MIN = float(np.nextafter(0.0, 1.0))  # the float spacing at and below tiny


def up(x: np.ndarray) -> np.ndarray:
    """``x`` moved up by at least one ulp: ``fl(x + (|x| 2 eps + 2**-1074))``, never below
    ``numpy.nextafter(x, inf)`` (and about eight times faster).

    Why: ``|x| eps`` is exact (a power-of-two scaling) and at least ``ulp(x)`` for normal ``x``,
    so the exact sum is at least ``x + 2 ulp(x)``; rounding to nearest moves it back by at most
    half the float spacing there, which is at most ``ulp(x)`` (one binade up), leaving at least
    ``x + ulp(x)`` (``|x| 2 eps`` rounds to a grid point at or above ``2 ulp(x)``). For
    ``|x| < tiny`` (zero, subnormals) ``2**-1074`` is the spacing, and the sum is exact. ``-inf``
    gives NaN (``-inf + inf``), which callers widen (:func:`round_out`: to ``-max``, as
    ``nextafter``).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        return x + (np.abs(x) * (2.0 * UNIT) + _DENORM_MIN)


def down(x: np.ndarray) -> np.ndarray:
    """``x`` moved down by at least one ulp (:func:`up` mirrored)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return x - (np.abs(x) * (2.0 * UNIT) + _DENORM_MIN)


_MAX = float(np.finfo(np.float64).max)


def round_out(lo: np.ndarray, hi: np.ndarray, err: np.ndarray | float | None = None) -> Interval:
    """Interval with ``lo - err`` and ``hi + err`` moved outward by at least one ulp
    (:func:`down`, :func:`up`).

    ``lo``/``hi`` are computed endpoints, each within half an ulp of an exact value (one correctly
    rounded operation) or within ``err`` of it (longer computations). NaN endpoints widen to
    -inf/+inf; an upper end of -inf (lower end of +inf) becomes -max (+max), as ``nextafter``
    gives.
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    if err is not None:
        lo = lo - err
        hi = hi + err
    lo_in, hi_in = lo, hi
    lo = down(lo)
    hi = up(hi)
    if np.isnan(lo).any() or np.isnan(hi).any():
        lo = np.where(np.isnan(lo), np.where(lo_in == np.inf, _MAX, -np.inf), lo)
        hi = np.where(np.isnan(hi), np.where(hi_in == -np.inf, -_MAX, np.inf), hi)
    return Interval(lo, hi)


# ----------------------------------------------------------------------------- arithmetic


def add(a: Interval, b: Interval) -> Interval:
    """a + b."""
    return round_out(a.lo + b.lo, a.hi + b.hi)


def sub(a: Interval, b: Interval) -> Interval:
    """a - b."""
    return round_out(a.lo - b.hi, a.hi - b.lo)


def _products(a: Interval, b: Interval) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise (broadcast) min and max of the four endpoint products, each rounded to
    nearest. 0 * inf (unbounded times exactly zero) is 0."""
    finite = all(np.isfinite(x).all() for x in (a.lo, a.hi, b.lo, b.hi))
    if finite and (a.lo is a.hi or b.lo is b.hi):  # a point factor: two products
        x, y = (a, b) if b.lo is b.hi else (b, a)
        with np.errstate(over="ignore"):
            p1, p2 = x.lo * y.lo, x.hi * y.lo
        return np.broadcast_arrays(np.minimum(p1, p2), np.maximum(p1, p2))
    if finite and ((a.lo >= 0).all() or (b.lo >= 0).all()):  # a nonnegative factor y
        x, y = (a, b) if (b.lo >= 0).all() else (b, a)
        # y >= 0: lo = x.lo * (y.lo if x.lo >= 0 else y.hi), hi = x.hi * (y.hi if x.hi >= 0
        # else y.lo): the corner products that can be extreme, one per endpoint
        with np.errstate(over="ignore"):
            lo = x.lo * np.where(x.lo >= 0, y.lo, y.hi)
            hi = x.hi * np.where(x.hi >= 0, y.hi, y.lo)
        return np.broadcast_arrays(lo, hi)
    if finite:  # no 0 * inf: the four products pairwise, without a stacked copy
        with np.errstate(over="ignore"):
            p1, p2, p3, p4 = a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi
        lo = np.minimum(np.minimum(p1, p2), np.minimum(p3, p4))
        hi = np.maximum(np.maximum(p1, p2), np.maximum(p3, p4))
        return np.broadcast_arrays(lo, hi)
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.stack(np.broadcast_arrays(a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi))
    if np.isnan(p).any():
        p = np.where(np.isnan(p), 0.0, p)
    return p.min(axis=0), p.max(axis=0)


def mul(a: Interval, b: Interval) -> Interval:
    """Elementwise a * b (broadcasting)."""
    return round_out(*_products(a, b))


def scale(a: Interval, c: float | np.ndarray) -> Interval:
    """c * a for a constant (float) c."""
    c = np.asarray(c, dtype=np.float64)
    p, q = c * a.lo, c * a.hi
    return round_out(np.minimum(p, q), np.maximum(p, q))


def divide(a: Interval, n: float) -> Interval:
    """a / n for a positive constant n (e.g. the batch size)."""
    return round_out(a.lo / n, a.hi / n)


def _sum_bound(lo: np.ndarray, hi: np.ndarray, axis: int) -> Interval:
    """Sum of K rounded terms along ``axis`` with a rigorous error bound.

    For K terms each within one rounding of an exact value, |fl(sum) - sum| <= gamma_K * sum|t|
    with gamma_K = K u / (1 - K u) (Higham, Accuracy and Stability, 3.1); we add
    2 (K + 1) eps * S + K * tiny (S = computed sum of magnitudes), which exceeds it with margin,
    underflow included.
    """
    K = lo.shape[axis]
    with np.errstate(invalid="ignore", over="ignore"):
        s_lo = lo.sum(axis=axis)
        s_hi = hi.sum(axis=axis)
        mag = np.maximum(np.abs(lo), np.abs(hi)).sum(axis=axis)
        err = 2.0 * (K + 1) * UNIT * mag + K * TINY
    return round_out(s_lo, s_hi, err)


def sum_axis(a: Interval, axis: int) -> Interval:
    """Sum of the elements of ``a`` along ``axis``."""
    return _sum_bound(a.lo, a.hi, axis)


def prod_sum(a: Interval, b: Interval, axis: int) -> Interval:
    """sum over ``axis`` of the broadcast product a * b (dot products, matrix products)."""
    lo, hi = _products(a, b)
    return _sum_bound(lo, hi, axis)


def _sign_split(x: Interval) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of the entries that are nonnegative, nonpositive (and not nonnegative) and that
    straddle zero."""
    pos = x.lo >= 0
    neg = ~pos & (x.hi <= 0)
    return pos, neg, ~(pos | neg)


def matmul(a: Interval, b: Interval) -> Interval:
    """The matrix product ``a @ b`` of a (n, k) and b (k, m): every scalar product exact (the
    range of ``a_ik b_kj`` over both intervals), summed by BLAS with an error bound.

    Wherever one factor of a term has a fixed sign, each endpoint of the term's range is one
    product of an endpoint of ``a_ik`` selected by the sign of ``b_kj``'s endpoint and vice versa,
    e.g. for ``a_ik >= 0``: ``lo = b.lo+ a.lo + b.lo- a.hi`` (``x+ = max(x, 0)``, ``x- =
    min(x, 0)``; one of the two products is exactly zero). That makes each endpoint a sum of six
    matrix products of masked endpoint matrices (one ``matmul`` of (n, 6k) by (6k, m)); the terms
    where both factors straddle zero (``lo = min(a.lo b.hi, a.hi b.lo)``) are added one ``k`` at
    a time. Each endpoint is then a sum of at most ``7 k`` terms, each one rounded product or an
    exact zero, in some order (BLAS may block or fuse): its error is at most
    ``gamma_K * sum |a_ik| |b_kj|`` (Higham, 3.1, any summation order; fused multiply-adds only
    round less), covered by :func:`_sum_bound`'s ``2 (K + 1) eps * mag + K * tiny`` with
    ``mag = max|a| @ max|b|``. This assumes IEEE arithmetic without flushing subnormal inputs
    to zero (numpy's default). Non-finite endpoints (where ``0 * inf`` could appear) take the
    elementwise path, :func:`prod_sum`.
    """
    if not all(np.isfinite(x).all() for x in (a.lo, a.hi, b.lo, b.hi)):
        return prod_sum(a.reshape(*a.shape, 1), b.reshape(1, *b.shape), axis=1)
    k = a.shape[1]
    pa, na, sa = _sign_split(a)
    pb, nb, sb = _sign_split(b)
    zero = 0.0
    alo_p, ahi_p = np.where(pa, a.lo, zero), np.where(pa, a.hi, zero)
    alo_n, ahi_n = np.where(na, a.lo, zero), np.where(na, a.hi, zero)
    alo_s, ahi_s = np.where(sa, a.lo, zero), np.where(sa, a.hi, zero)
    blo_p, blo_n = np.maximum(b.lo, zero), np.minimum(b.lo, zero)
    bhi_p, bhi_n = np.maximum(b.hi, zero), np.minimum(b.hi, zero)
    bhi_pb, blo_nb = np.where(pb, b.hi, zero), np.where(nb, b.lo, zero)
    with np.errstate(over="ignore", invalid="ignore"):
        lo = np.hstack([alo_p, ahi_p, alo_n, ahi_n, alo_s, ahi_s]) @ np.vstack(
            [blo_p, blo_n, bhi_p, bhi_n, bhi_pb, blo_nb]
        )
        hi = np.hstack([ahi_p, alo_p, ahi_n, alo_n, ahi_s, alo_s]) @ np.vstack(
            [bhi_p, bhi_n, blo_p, blo_n, bhi_pb, blo_nb]
        )
        for j in np.flatnonzero(sa.any(axis=0) & sb.any(axis=1)):
            r, c = np.flatnonzero(sa[:, j]), np.flatnonzero(sb[j])
            al, ah = a.lo[r, j, None], a.hi[r, j, None]
            bl, bh = b.lo[j, c], b.hi[j, c]
            cell = np.ix_(r, c)
            lo[cell] += np.minimum(al * bh, ah * bl)
            hi[cell] += np.maximum(al * bl, ah * bh)
        mag = np.maximum(np.abs(a.lo), np.abs(a.hi)) @ np.maximum(np.abs(b.lo), np.abs(b.hi))
        K = 7 * k
        err = 2.0 * (K + 1) * UNIT * mag + K * TINY
    return round_out(lo, hi, err)
