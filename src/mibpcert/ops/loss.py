"""The losses as a registry, and the label conventions every domain shares.

Each loss is a module of :mod:`mibpcert.ops` (:mod:`~mibpcert.ops.hinge`,
:mod:`~mibpcert.ops.bce`, :mod:`~mibpcert.ops.ce`, :mod:`~mibpcert.ops.mse`) with the same four
functions:

* ``value(out, t)`` and ``grad(out, t)`` -- numpy, per sample, for encoded targets ``t``;
* ``grad_interval(o, labels)`` -- bounds on ``dloss/do`` for every output in ``o`` and every label
  in the :class:`~mibpcert.threat.LabelSet`;
* ``grad_program(b, out, label, tags)`` -- ``dloss/do`` of one training point as program
  expressions, for the (possibly poisoned) :class:`~mibpcert.ops.targets.PointLabel`.

**Conventions** (label signs: :mod:`mibpcert.ops.targets`):

* encoded targets (:func:`encode_targets`): ``hinge`` and ``mse`` on binary data use the sign in
  one column; ``bce`` the class in {0, 1}; ``ce`` the class index; regression the targets. The
  one-vs-rest hinge (C outputs) keeps the sign encoding ``2 c - 1`` of the class c in one column
  and recovers c from it;
* the training loss is the mean over the batch, so the batch gradient is the mean of the
  per-sample gradients.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval
from mibpcert.errors import ModelError
from mibpcert.ops import bce, ce, hinge, mse
from mibpcert.ops.targets import (
    PointLabel,
    class_from_clean,
    class_sign,
    output_tags,
    sign_from_class,
    sign_from_indicator,
    sign_hull,
)
from mibpcert.threat.labels import LabelSet

__all__ = [
    "LOSSES",
    "PointLabel",
    "check_loss",
    "class_from_clean",
    "class_sign",
    "encode_targets",
    "get_loss",
    "grad",
    "grad_interval",
    "grad_program",
    "output_tags",
    "sign_from_class",
    "sign_from_indicator",
    "sign_hull",
    "value",
]

LOSSES = ("hinge", "mse", "bce", "ce")


# ----------------------------------------------------------------------------- registry


_TABLE: dict[str, ModuleType] = {"hinge": hinge, "mse": mse, "bce": bce, "ce": ce}


def get_loss(name: str) -> ModuleType:
    """The module of loss ``name`` (``hinge``, ``mse``, ``bce`` or ``ce``)."""
    if name not in _TABLE:
        raise ModelError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}.")
    return _TABLE[name]


def check_loss(loss: str, n_outputs: int, task: str, n_classes: int | None, n_targets: int = 1):
    """Raise :class:`ModelError` when ``loss`` does not fit the model output and the task."""
    if loss not in LOSSES:
        raise ModelError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}.")
    if task == "regression":
        if loss != "mse":
            raise ModelError(f"regression data needs loss 'mse', got {loss!r}.")
        if n_outputs != n_targets:
            raise ModelError(
                f"the model has {n_outputs} output(s) but the regression data has {n_targets} "
                f"target(s); make the last layer size {n_targets}."
            )
        return
    if loss == "hinge" and n_outputs > 1:
        if n_outputs != n_classes:
            raise ModelError(
                f"one-vs-rest hinge needs one output per class: the data has {n_classes} "
                f"classes, the model has {n_outputs} outputs."
            )
        return
    if loss in ("hinge", "bce", "mse"):
        if n_classes != 2:
            raise ModelError(
                f"loss {loss!r} is binary but the data has {n_classes} classes; use loss 'ce' "
                f"(or the one-vs-rest 'hinge') with {n_classes} outputs."
            )
        if n_outputs != 1:
            raise ModelError(
                f"loss {loss!r} needs a model with 1 output (sign = class), got {n_outputs}; "
                "make the last layer size 1."
            )
    elif n_outputs != n_classes:
        raise ModelError(
            f"loss 'ce' needs one output per class: the data has {n_classes} classes, the model "
            f"has {n_outputs} outputs."
        )


def encode_targets(loss: str, y: np.ndarray, task: str) -> np.ndarray:
    """Numeric targets used by the loss: (n, 1) signs/0-1 values, (n, q) regression targets, or
    (n,) integer classes for ``ce``."""
    if task == "regression":
        y = np.asarray(y, dtype=np.float64)
        return y.reshape(len(y), -1)
    y = np.asarray(y)
    if loss in ("hinge", "mse"):
        return class_sign(y).reshape(-1, 1)
    if loss == "bce":
        return y.astype(np.float64).reshape(-1, 1)
    return y.astype(np.int64)


def value(loss: str, out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample loss values for outputs ``out`` (n, k) and encoded targets ``t``."""
    return get_loss(loss).value(out, t)


def grad(loss: str, out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample gradient of the loss with respect to the output, shape (n, k)."""
    return get_loss(loss).grad(out, t)


def grad_interval(loss: str, o: Interval, labels: LabelSet) -> Interval:
    """Per-sample gradient bounds of ``loss`` with respect to the output, over every allowed
    label."""
    return get_loss(loss).grad_interval(o, labels)


def grad_program(
    loss: str, b: Builder, out: list[Expr], label: PointLabel, tags: list[str]
) -> list[Expr]:
    """``dloss/do`` of one training point (unscaled by the batch size) as expressions."""
    return get_loss(loss).grad_program(b, out, label, tags)
