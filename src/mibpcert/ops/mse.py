"""The squared loss ``mean_j (o_j - t_j)^2`` and its gradient ``2 (o - t) / q``, in every domain.

q outputs and targets t; for a binary classification set with one output the targets are the
label signs y in {-1, +1} (:func:`~mibpcert.ops.targets.class_sign`).
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains import affine as aff
from mibpcert.domains.affine import AffineForm, Symbols
from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval, divide, scale, sub
from mibpcert.ops.targets import PointLabel, sign_hull
from mibpcert.threat.labels import LabelSet


def value(out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample ``mean_j (o_j - t_j)^2``."""
    return np.mean((out - t) ** 2, axis=1)


def grad(out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample ``2 (o - t) / q``."""
    return 2.0 * (out - t) / out.shape[1]


def grad_interval(o: Interval, labels: LabelSet) -> Interval:
    """Bounds on ``2 (o - t) / q`` over the allowed targets: the regression targets' interval,
    or for binary labels the hull of the allowed signs."""
    t = labels.targets if labels.targets is not None else sign_hull(labels.mask)
    return grad_interval_targets(o, t)


def grad_interval_targets(o: Interval, t: Interval) -> Interval:
    """d/do mean_j (o_j - t_j)^2 = 2 (o - t) / q for targets in the interval ``t``."""
    q = o.shape[1]
    return divide(scale(sub(o, t), 2.0), float(q)) if q > 1 else scale(sub(o, t), 2.0)


def grad_program(b: Builder, out: list[Expr], label: PointLabel, tags: list[str]) -> list[Expr]:
    """``2 (o_j - t_j) / q`` with the label's targets (regression) or signs (binary)."""
    q = len(out)
    targets = label.regression_or_signs(b)
    return [b.affine([(2.0 / q, o), (-2.0 / q, t)]) for o, t in zip(out, targets, strict=True)]


def grad_affine_set(o: AffineForm, rng: Interval, labels: LabelSet, sym: Symbols) -> AffineForm:
    """``2 (o - t) / q``: linear in ``o`` (exact), the targets' interval as a local error."""
    t = labels.targets if labels.targets is not None else sign_hull(labels.mask)
    q = o.shape[1]
    tf = AffineForm.hull(t, sym.size)
    diff = aff.widen(aff.shift(o, -tf.c), tf.e)
    return aff.scale(diff, 2.0 / q)
