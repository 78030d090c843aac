"""Class margins, the quantity every test-time verdict is decided by, in every domain.

The margin of class c at outputs o is ``min_{j != c} (o_c - o_j)``; with one output (binary,
class 1 iff o > 0) it is ``sign * o`` with sign +1 for class 1 and -1 for class 0. A model
predicts c exactly when the margin of c is > 0 (ties count against c).

* numpy: :func:`margins`, :func:`predict`;
* interval: :func:`lower_bounds_from_output` (one output), :func:`lower_bounds_from_last_layer`
  (C outputs: bounds on the differences of the last layer's rows, which keeps the shared hidden
  activations correlated);
* program: :func:`program` -- the margins whose minimum decides the prediction, as expressions.
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains import affine as aff
from mibpcert.domains.affine import AffineForm, Symbols
from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval, add, prod_sum, sub

# ----------------------------------------------------------------------------- numpy


def margins(out: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``min_{j != y} (o_y - o_j)`` per row (one output: ``sign * o``) for classes ``y``."""
    y = np.asarray(y, dtype=np.int64)
    if out.shape[1] == 1:
        return np.where(y == 1, out[:, 0], -out[:, 0])
    own = out[np.arange(len(y)), y]
    other = np.where(np.eye(out.shape[1], dtype=bool)[y], -np.inf, out)
    return own - other.max(axis=1)


def predict(out: np.ndarray) -> np.ndarray:
    """Class predictions: sign for one output (o > 0 -> class 1), argmax otherwise."""
    if out.shape[1] == 1:
        return (out[:, 0] > 0).astype(np.int64)
    return np.argmax(out, axis=1).astype(np.int64)


# ----------------------------------------------------------------------------- interval


def lower_bounds_from_output(out: Interval) -> np.ndarray:
    """(n, 2) lower bounds on the margins of class 0 and class 1 of a one-output model."""
    return np.stack([-out.hi[:, 0], out.lo[:, 0]], axis=1)


def lower_bounds_from_last_layer(A: Interval, W: Interval, b: Interval) -> np.ndarray:
    """(n, C) lower bounds on ``min_{j != c} (o_c - o_j)`` for every class c, from the last
    layer's inputs ``A`` (n, h) and its weights ``W`` (C, h) and bias ``b`` (C,)."""
    C = W.shape[0]
    Wd = sub(W.reshape(C, 1, -1), W.reshape(1, C, -1))  # (C, C, h): W_c - W_j
    bd = sub(b.reshape(C, 1), b.reshape(1, C))
    n = A.shape[0]
    diff = prod_sum(A.reshape(n, 1, 1, -1), Wd.reshape(1, *Wd.shape), axis=3)
    diff = add(diff, bd.reshape(1, C, C))  # (n, c, j) bounds on o_c - o_j
    lo = np.where(np.eye(C, dtype=bool)[None], np.inf, diff.lo)
    return lo.min(axis=2)


# ----------------------------------------------------------------------------- program


def program(b: Builder, out: list[Expr], cls: int) -> list[Expr]:
    """Margins whose minimum decides the prediction: ``sign * o`` (one output; class 1 needs
    o > 0) or ``o_cls - o_j`` for every j != cls."""
    if len(out) == 1:
        return [b.scale(out[0], 1.0 if cls == 1 else -1.0)]
    return [b.affine([(1.0, out[cls]), (-1.0, out[j])]) for j in range(len(out)) if j != cls]


def others(n_outputs: int, cls: int) -> list[int]:
    """The classes ``j`` of the margins :func:`program` returns, in order."""
    return [j for j in range(max(2, n_outputs)) if j != cls]


# ----------------------------------------------------------------------------- affine sets


def lower_bounds_affine_set(out: AffineForm, sym: Symbols) -> np.ndarray:
    """(n, C) lower bounds on the margin of every class from output forms (n, C) (one output:
    classes 0 and 1); the differences ``o_c - o_j`` keep their shared symbols."""
    if out.shape[1] == 1:
        b = sym.bounds(out)
        return np.stack([-b.hi[:, 0], b.lo[:, 0]], axis=1)
    n, C = out.shape
    diff = aff.add(
        AffineForm(out.c[:, :, None], out.G[:, :, None, :], out.e[:, :, None]),
        aff.scale(AffineForm(out.c[:, None, :], out.G[:, None, :, :], out.e[:, None, :]), -1.0),
    )
    lo = sym.bounds(diff).lo
    lo = np.where(np.eye(C, dtype=bool)[None], np.inf, lo)
    return lo.min(axis=2)
