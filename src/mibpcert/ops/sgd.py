"""The SGD update ``theta' = theta - lr g``, in every domain.

* numpy: :func:`update`;
* interval: :func:`interval` -- the lower end with the upper gradient and vice versa, rounded
  outward;
* program: :func:`program` (the updated parameter as an expression) and :func:`terms` (its
  linear terms over the parameter and gradient variables, the per-step objectives);
* affine sets: :func:`affine_set` (linear, exact up to rounding).
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains import affine as aff
from mibpcert.domains.affine import AffineForm
from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval, scale, sub


def update(theta: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
    """``theta - lr * g``."""
    return theta - lr * g


def interval(theta: Interval, grad: Interval, lr: float) -> Interval:
    """theta - lr * grad, the lower end with the upper gradient and vice versa."""
    return sub(theta, scale(grad, lr))


def program(b: Builder, theta: Expr, grad: Expr, lr: float) -> Expr:
    """``theta - lr * grad`` as an expression."""
    return b.affine([(1.0, theta), (-lr, grad)])


def terms(lr: float) -> tuple[float, float]:
    """The coefficients of ``(theta, grad)`` in ``theta' = theta - lr grad``."""
    return 1.0, -lr


def affine_set(theta: AffineForm, grad: AffineForm, lr: float) -> AffineForm:
    """``theta - lr * grad`` for forms (linear: exact up to rounding)."""
    return aff.add(theta, aff.scale(grad, -lr))
