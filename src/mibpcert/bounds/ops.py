"""The interval domain's table: every operation's interval version under one name.

Each function is the interval version from the operation's own module in :mod:`mibpcert.ops`
(or the interval arithmetic of :mod:`mibpcert.domains.interval`); nothing is computed here.
Every one maps intervals to an interval that encloses the exact (real-arithmetic) result of the
operation for every real input inside its arguments, rounding outward.
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains.interval import (
    Interval,
    add,
    divide,
    matmul,
    mul,
    prod_sum,
    scale,
    sub,
    sum_axis,
)
from mibpcert.ops import bce, ce, hinge, mse
from mibpcert.ops import clip as _clip
from mibpcert.ops import relu as _relu
from mibpcert.ops import sgd as _sgd
from mibpcert.ops.affine import interval as affine
from mibpcert.ops.bce import sigmoid_interval as sigmoid
from mibpcert.ops.ce import softmax_interval as softmax
from mibpcert.ops.loss import grad_interval as loss_grad
from mibpcert.threat.labels import LabelSet

relu = _relu.interval
relu_deriv = _relu.deriv_interval
mask_mul = _relu.mask_mul
clip = _clip.interval
sgd_update = _sgd.interval
mse_grad = mse.grad_interval_targets


def hinge_grad(o: Interval, mask: np.ndarray) -> Interval:
    """:func:`mibpcert.ops.hinge.grad_interval` for the allowed classes ``mask``."""
    return hinge.grad_interval(o, LabelSet(mask=mask))


def bce_grad(o: Interval, mask: np.ndarray) -> Interval:
    """:func:`mibpcert.ops.bce.grad_interval` for the allowed classes ``mask``."""
    return bce.grad_interval(o, LabelSet(mask=mask))


def ce_grad(o: Interval, mask: np.ndarray) -> Interval:
    """:func:`mibpcert.ops.ce.grad_interval` for the allowed classes ``mask``."""
    return ce.grad_interval(o, LabelSet(mask=mask))


__all__ = [
    "LabelSet",
    "add",
    "affine",
    "bce_grad",
    "ce_grad",
    "clip",
    "divide",
    "hinge_grad",
    "loss_grad",
    "mask_mul",
    "matmul",
    "mse_grad",
    "mul",
    "prod_sum",
    "relu",
    "relu_deriv",
    "scale",
    "sgd_update",
    "sigmoid",
    "softmax",
    "sub",
    "sum_axis",
]
