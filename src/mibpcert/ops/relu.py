"""ReLU ``a = max(z, 0)`` and its derivative ``ReLU'(z)`` (the backward mask), in every domain.

The ordinary trainer uses ``ReLU'(0) = 0``. The interval and program versions cover both
sub-gradient conventions at ``z = 0`` (the mask may be 0 or 1 there), a sound superset.

* numpy: :func:`forward`, :func:`backward` (``g * ReLU'(z)``);
* interval: :func:`interval`, :func:`deriv_interval`, :func:`mask_mul`, :func:`backward_interval`;
* program: :func:`program` (big-M with the bounds of ``z``; a binary mask where the sign of ``z``
  is undecided), :func:`backward_program` (mask times gradient: exact, the mask is binary);
* affine sets: :func:`affine_set` (exact where decided, a zonotope band where not),
  :func:`backward_affine_set`.
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains import affine as aff
from mibpcert.domains.affine import AffineForm, Symbols
from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import TINY, UNIT, Interval

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


# ----------------------------------------------------------------------------- affine sets


def affine_set(z: AffineForm, rng: Interval) -> AffineForm:
    """``max(z, 0)`` for a form ``z`` whose values lie in ``rng``: exact where the sign is
    decided; elsewhere the zonotope relaxation ``lam z + mu +- mu`` with ``lam = u / (u - l)``
    (``relu(z) - lam z`` ranges over ``[0, max(-lam l, (1 - lam) u)]`` for any ``lam`` in
    [0, 1], so ``mu`` is half of that, rounded up)."""
    lo, hi = rng.lo, rng.hi
    on, off = lo > 0, hi <= 0
    open_ = ~(on | off)
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = np.where(open_, hi / (hi - lo), np.where(on, 1.0, 0.0))
    lam = np.clip(np.nan_to_num(lam, nan=1.0), 0.0, 1.0)
    band = np.maximum(-lam * lo, (1.0 - lam) * hi)
    mu = np.where(open_, 0.5 * band * (1.0 + 8 * UNIT) + TINY, 0.0)
    out = aff.shift(aff.scale(z, lam), mu)
    return aff.widen(out, mu)


def backward_affine_set(g: AffineForm, rng: Interval, sym: Symbols) -> AffineForm:
    """``g * ReLU'(z)`` for pre-activations in ``rng``: ``g`` where ``z > 0``, 0 where ``z < 0``;
    where the sign is undecided (or ``z`` may be 0) ``g / 2`` with local error
    ``(|c_g| + R_g) / 2``, which covers both 0 and ``g``."""
    on = rng.lo > 0
    off = rng.hi < 0
    open_ = ~(on | off)
    k = np.where(on, 1.0, np.where(open_, 0.5, 0.0))
    out = aff.scale(g, k)
    extra = np.where(open_, 0.5 * (np.abs(g.c) + sym.radius(g)), 0.0)
    return aff.widen(out, extra)
