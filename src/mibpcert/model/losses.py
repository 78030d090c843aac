"""The losses of the ordinary trainer (numpy): values, gradients, targets, predictions.

The math of each loss lives in its module of :mod:`mibpcert.ops` (with its interval and program
versions); this module is the numpy domain's view of them. Conventions: see
:mod:`mibpcert.ops.loss`.
"""

from __future__ import annotations

from mibpcert.ops.loss import LOSSES, check_loss, encode_targets
from mibpcert.ops.loss import grad as loss_grad
from mibpcert.ops.loss import value as loss_values
from mibpcert.ops.margin import predict as predict_classes

__all__ = [
    "LOSSES",
    "check_loss",
    "encode_targets",
    "loss_grad",
    "loss_values",
    "predict_classes",
]
