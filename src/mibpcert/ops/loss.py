"""The losses as a registry, and the label conventions every domain shares.

Each loss is a module of :mod:`mibpcert.ops` (:mod:`~mibpcert.ops.hinge`,
:mod:`~mibpcert.ops.bce`, :mod:`~mibpcert.ops.ce`, :mod:`~mibpcert.ops.mse`) with the same four
functions:

* ``value(out, t)`` and ``grad(out, t)`` -- numpy, per sample, for encoded targets ``t``;
* ``grad_interval(o, labels)`` -- bounds on ``dloss/do`` for every output in ``o`` and every label
  in the :class:`~mibpcert.threat.LabelSet`;
* ``grad_program(b, out, label, tags)`` -- ``dloss/do`` of one training point as program
  expressions, for the (possibly poisoned) :class:`PointLabel`.

**Conventions** (one definition here, used by every domain):

* class ``c`` of a binary problem has the sign ``2 c - 1`` (class 1 -> +1, class 0 -> -1):
  :func:`class_sign`; a flipped label has the sign ``y (1 - 2 f)`` (:func:`sign_from_class`), a
  0/1 class indicator ``u`` the sign ``2 u - 1`` (:func:`sign_from_indicator`);
* encoded targets (:func:`encode_targets`): ``hinge`` and ``mse`` on binary data use the sign in
  one column; ``bce`` the class in {0, 1}; ``ce`` the class index; regression the targets. The
  one-vs-rest hinge (C outputs) keeps the sign encoding ``2 c - 1`` of the class c in one column
  and recovers c from it;
* the training loss is the mean over the batch, so the batch gradient is the mean of the
  per-sample gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval
from mibpcert.errors import ModelError
from mibpcert.threat.labels import LabelSet

LOSSES = ("hinge", "mse", "bce", "ce")


# ----------------------------------------------------------------------------- conventions


def class_sign(c):
    """The +-1 target of class ``c`` of a binary problem: ``2 c - 1`` (numbers or arrays)."""
    return 2.0 * c - 1.0


def sign_from_class(b: Builder, c: int, flip: Expr | None) -> Expr:
    """The label sign of a point of clean class ``c`` whose label flips when the binary ``flip``
    is 1: ``y (1 - 2 f)`` with ``y = 2 c - 1``."""
    y = class_sign(c)
    return b.const(y) if flip is None else b.affine([(-2.0 * y, flip)], y)


def class_from_clean(b: Builder, c: int, flip: Expr | None) -> Expr:
    """The 0/1 class of a point of clean class ``c`` whose label flips when ``flip`` is 1:
    ``c + (1 - 2 c) f``."""
    return b.const(float(c)) if flip is None else b.affine([(1.0 - 2.0 * c, flip)], float(c))


def sign_from_indicator(b: Builder, u: Expr) -> Expr:
    """The +-1 sign ``2 u - 1`` of a 0/1 class indicator ``u`` (affine in binaries)."""
    return b.affine([(2.0, u)], -1.0)


def sign_hull(mask: np.ndarray) -> Interval:
    """(n, 1) hull of the +-1 signs of the classes allowed by a binary ``mask`` (n, 2)."""
    lo = np.where(mask[:, 0], class_sign(0), class_sign(1))[:, None]
    hi = np.where(mask[:, 1], class_sign(1), class_sign(0))[:, None]
    return Interval(lo, hi)


@dataclass(frozen=True)
class PointLabel:
    """The (possibly poisoned) label of one training point as program expressions.

    Exactly one description is given:

    * ``clean`` (the clean class) with an optional label-change binary ``flip`` (binary data,
      one output), or with ``onehot`` (C classes: the one-hot label, affine in binaries);
    * ``indicators``: 0/1 class indicators, one per output (the slot form: for one output the
      class-1 indicator);
    * ``targets``: regression targets.
    """

    clean: int | None = None
    flip: Expr | None = None
    onehot: list[Expr] | None = None
    indicators: list[Expr] | None = None
    targets: list[Expr] | None = None

    def signs(self, b: Builder) -> list[Expr]:
        """The +-1 sign of every output (one output: the label's sign; C outputs: one-vs-rest)."""
        if self.indicators is not None:
            return [sign_from_indicator(b, u) for u in self.indicators]
        if self.onehot is not None:
            return [sign_from_indicator(b, e) for e in self.onehot]
        return [sign_from_class(b, int(self.clean), self.flip)]

    def cls(self, b: Builder) -> Expr:
        """The 0/1 class of a binary label (one output)."""
        if self.indicators is not None:
            return self.indicators[0]
        return class_from_clean(b, int(self.clean), self.flip)

    def regression_or_signs(self, b: Builder) -> list[Expr]:
        """The targets of a squared loss: regression targets, else the +-1 signs."""
        return self.targets if self.targets is not None else self.signs(b)


def output_tags(tag: str, n_outputs: int) -> list[str]:
    """Name suffixes of a point's per-output variables: ``tag`` for one output, else
    ``tag_k``."""
    return [tag] if n_outputs == 1 else [f"{tag}_{k}" for k in range(n_outputs)]


# ----------------------------------------------------------------------------- registry


def get_loss(name: str) -> ModuleType:
    """The module of loss ``name`` (``hinge``, ``mse``, ``bce`` or ``ce``)."""
    from mibpcert.ops import bce, ce, hinge, mse

    table = {"hinge": hinge, "mse": mse, "bce": bce, "ce": ce}
    if name not in table:
        raise ModelError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}.")
    return table[name]


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
