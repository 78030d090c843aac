"""The SGD update with optional weight decay and L1 regularisation, in every domain.

``theta' = c theta - lr g - lr l1 sign(theta)`` with ``c = 1 - lr wd`` (the gradient of
``wd/2 |theta|^2 + l1 |theta|_1`` added to the loss gradient ``g``; ``sign(0) = 0``, the
subgradient PyTorch and the AGT library use). With ``wd = l1 = 0`` it is ``theta - lr g`` bit for
bit.

* numpy: :func:`update` -- the ordinary trainer's arithmetic, in this order;
* interval: :func:`interval` -- the same operations on intervals, rounded outward, so the
  trainer's floating-point result lies inside; ``sign`` of an interval is ``[sign(lo),
  sign(hi)]`` (monotone);
* program: :func:`program` (the updated parameter as an expression) and :func:`terms` (its
  linear terms over the parameter and gradient variables, the per-step objectives); the L1 term
  is not in the program: :func:`l1_interval` bounds it from the parameter box and is added to the
  solved bounds (a sound relaxation: the sign is taken as free over the box's signs);
* affine sets: :func:`affine_set` (linear part exact up to rounding; the L1 term's hull goes to
  the local error).

Momentum (PyTorch SGD with ``dampening = 0``): the velocity ``v`` (0 before the first step) is
state beside theta. With ``d = g + wd theta + l1 sign(theta)``,

* classic: ``v' = mu v + d``, ``theta' = theta - lr v'``;
* Nesterov: ``v' = mu v + d``, ``theta' = theta - lr (d + mu v')``.

Every domain computes them in one order, :func:`step` (numpy) and :func:`step_interval`:
``a = mu v + g``, ``v' = a + wd theta + l1 sign(theta)`` and ``theta' = update(theta, u, lr,
s wd, s l1)`` with ``u = a, s = 1`` (classic) or ``u = (1 + mu) g + mu^2 v, s = 1 + mu``
(Nesterov) -- the same numbers as the recursion above, with theta entering ``theta'`` once (so
its box is not counted twice). :func:`momentum_terms` gives the coefficients for the programs.
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains import affine as aff
from mibpcert.domains.affine import AffineForm
from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval, add, scale, sub


def decay(lr: float, wd: float) -> float:
    """``c = 1 - lr wd``, the factor of theta (a float constant every domain uses as it is)."""
    return 1.0 - lr * wd


def update(
    theta: np.ndarray, g: np.ndarray, lr: float, wd: float = 0.0, l1: float = 0.0
) -> np.ndarray:
    """``c theta - lr g - (lr l1) sign(theta)``; ``theta - lr g`` without regularisation."""
    if wd == 0.0 and l1 == 0.0:
        return theta - lr * g
    out = decay(lr, wd) * theta - lr * g
    if l1 != 0.0:
        out = out - (lr * l1) * np.sign(theta)
    return out


def sign_interval(theta: Interval) -> Interval:
    """``sign`` over a box: ``[sign(lo), sign(hi)]`` (sign is monotone)."""
    return Interval(np.sign(theta.lo), np.sign(theta.hi))


def l1_interval(theta: Interval, lr: float, l1: float) -> Interval:
    """``(lr l1) sign(theta)`` over the box ``theta`` (outward)."""
    return scale(sign_interval(theta), lr * l1)


def interval(
    theta: Interval, grad: Interval, lr: float, wd: float = 0.0, l1: float = 0.0
) -> Interval:
    """The update on intervals, in the trainer's order of operations (outward rounding)."""
    if wd == 0.0 and l1 == 0.0:
        return sub(theta, scale(grad, lr))
    out = sub(scale(theta, decay(lr, wd)), scale(grad, lr))
    if l1 != 0.0:
        out = sub(out, l1_interval(theta, lr, l1))
        # a parameter exactly 0 with a gradient exactly 0 stays exactly 0 (no rounding error in
        # c 0 - lr 0 - lr l1 sign(0)); without this, outward rounding would make its box
        # straddle 0 and the sign's jump would widen it by 2 lr l1 at every step
        zero = (theta.lo == 0) & (theta.hi == 0) & (grad.lo == 0) & (grad.hi == 0)
        if zero.any():
            out = Interval(np.where(zero, 0.0, out.lo), np.where(zero, 0.0, out.hi))
    return out


def program(b: Builder, theta: Expr, grad: Expr, lr: float, wd: float = 0.0) -> Expr:
    """``c theta - lr grad`` as an expression (no L1 term: see the module docstring)."""
    return b.affine([(decay(lr, wd), theta), (-lr, grad)])


def terms(lr: float, wd: float = 0.0) -> tuple[float, float]:
    """The coefficients of ``(theta, grad)`` in ``theta' = c theta - lr grad``."""
    return decay(lr, wd), -lr


def affine_set(
    theta: AffineForm,
    grad: AffineForm,
    lr: float,
    wd: float = 0.0,
    l1: float = 0.0,
    box: Interval | None = None,
) -> AffineForm:
    """The update for forms; the L1 term needs ``box``, a sound box of ``theta``."""
    if wd == 0.0 and l1 == 0.0:
        return aff.add(theta, aff.scale(grad, -lr))
    out = aff.add(aff.scale(theta, decay(lr, wd)), aff.scale(grad, -lr))
    if l1 != 0.0:
        if box is None:
            raise ValueError("the L1 term of an affine-set update needs the parameters' box")
        s = l1_interval(box, lr, l1)
        out = aff.add(out, aff.scale(AffineForm.hull(s, out.n_symbols), -1.0))
    return out


def momentum_terms(
    lr: float, wd: float, mu: float, nesterov: bool
) -> tuple[float, float, float, float]:
    """``theta' = a theta + b g + c v - lr l sign(theta)``: the coefficients ``(a, b, c, l / l1)``
    of one momentum step (:func:`step`); ``mu = 0`` gives plain SGD's ``(1 - lr wd, -lr, 0, 1)``."""
    if not nesterov:
        return decay(lr, wd), -lr, -lr * mu, 1.0
    s = 1.0 + mu
    return decay(lr, s * wd), -lr * s, -lr * (mu * mu), s


def step(
    theta: np.ndarray,
    v: np.ndarray | None,
    g: np.ndarray,
    lr: float,
    wd: float = 0.0,
    l1: float = 0.0,
    mu: float = 0.0,
    nesterov: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One SGD step with momentum ``mu`` (``v``: the velocity, ``None`` = 0 before the first
    step): ``(theta', v')``; ``mu = 0`` is :func:`update` with ``v' = None``."""
    if mu == 0.0:
        return update(theta, g, lr, wd, l1), None
    vel = np.zeros_like(theta) if v is None else v
    a = mu * vel + g
    v_next = a
    if wd != 0.0:
        v_next = v_next + wd * theta
    if l1 != 0.0:
        v_next = v_next + l1 * np.sign(theta)
    if not nesterov:
        return update(theta, a, lr, wd, l1), v_next
    s = 1.0 + mu
    u = s * g + (mu * mu) * vel
    return update(theta, u, lr, s * wd, s * l1), v_next


def step_interval(
    theta: Interval,
    v: Interval | None,
    g: Interval,
    lr: float,
    wd: float = 0.0,
    l1: float = 0.0,
    mu: float = 0.0,
    nesterov: bool = False,
) -> tuple[Interval, Interval | None]:
    """:func:`step` on intervals, in its order of operations (outward rounding)."""
    if mu == 0.0:
        return interval(theta, g, lr, wd, l1), None
    vel = Interval.point(np.zeros(theta.shape)) if v is None else v
    a = add(scale(vel, mu), g)
    v_next = a
    if wd != 0.0:
        v_next = add(v_next, scale(theta, wd))
    if l1 != 0.0:
        v_next = add(v_next, scale(sign_interval(theta), l1))
    if not nesterov:
        return interval(theta, a, lr, wd, l1), v_next
    s = 1.0 + mu
    u = add(scale(g, s), scale(vel, mu * mu))
    return interval(theta, u, lr, s * wd, s * l1), v_next
