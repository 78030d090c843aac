"""ReLU ``a = max(z, 0)`` and its derivative ``ReLU'(z)`` (the backward mask), in every domain.

The ordinary trainer uses ``ReLU'(0) = 0``. The interval and program versions cover both
sub-gradient conventions at ``z = 0`` (the mask may be 0 or 1 there), a sound superset.

* numpy: :func:`forward`, :func:`backward` (``g * ReLU'(z)``);
* interval: :func:`interval`, :func:`deriv_interval`, :func:`mask_mul`, :func:`backward_interval`;
* program: :func:`program` (big-M with the bounds of ``z``; a binary mask where the sign of ``z``
  is undecided), :func:`backward_program` (mask times gradient: exact, the mask is binary).
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval

# ----------------------------------------------------------------------------- numpy


def forward(z: np.ndarray) -> np.ndarray:
    """``max(z, 0)``."""
    return np.maximum(z, 0.0)


def backward(g: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``g * ReLU'(z)`` with ``ReLU'(0) = 0``."""
    return g * (z > 0)


# ----------------------------------------------------------------------------- interval


def interval(z: Interval) -> Interval:
    """max(z, 0) (exact: no rounding needed)."""
    return Interval(np.maximum(z.lo, 0.0), np.maximum(z.hi, 0.0))


def deriv_interval(z: Interval) -> Interval:
    """ReLU'(z) in {0, 1}: 1 where z > 0 on the whole interval, 0 where z < 0, [0, 1] otherwise.

    At z = 0 both sub-gradient conventions (0 and 1) are covered.
    """
    return Interval((z.lo > 0).astype(np.float64), (z.hi >= 0).astype(np.float64))


def mask_mul(g: Interval, d: Interval) -> Interval:
    """g * d for a 0/1 mask interval d (d in [0,0], [1,1] or [0,1]); exact."""
    lo = np.where(d.hi == 0, 0.0, np.where(d.lo == 1, g.lo, np.minimum(g.lo, 0.0)))
    hi = np.where(d.hi == 0, 0.0, np.where(d.lo == 1, g.hi, np.maximum(g.hi, 0.0)))
    return Interval(lo, hi)


def backward_interval(g: Interval, z: Interval) -> Interval:
    """Bounds on ``g * ReLU'(z)`` over the pre-activation bounds ``z``."""
    return mask_mul(g, deriv_interval(z))


# ----------------------------------------------------------------------------- program


def program(b: Builder, z: Expr, name: str = "") -> tuple[Expr, Expr]:
    """``(max(z, 0), mask)``: big-M with the bounds of z; mask in {0, 1} is ReLU'(z) and may
    take either value at z = 0."""
    if z.hi < 0:
        return b.const(0.0), b.const(0.0)
    if z.lo > 0:
        return b.materialize(z), b.const(1.0)
    zv = b.materialize(z)
    d = b.var(0.0, 1.0, f"{name}_on", binary=True)
    a = b.var(0.0, z.hi, name)
    aj, zj, dj = a.idx[0], zv.idx[0], d.idx[0]
    b.f.add_row([aj, zj], [1.0, -1.0], lo=0.0)  # a >= z
    b.f.add_row([aj, zj, dj], [1.0, -1.0, -z.lo], hi=-z.lo)  # a <= z - L (1 - d)
    b.f.add_row([aj, dj], [1.0, -z.hi], hi=0.0)  # a <= U d
    return a, d


def backward_program(b: Builder, mask: Expr, g: Expr, name: str = "") -> Expr:
    """``mask * g`` (exact: the mask is binary or constant)."""
    return b.mul(mask, g, name)
