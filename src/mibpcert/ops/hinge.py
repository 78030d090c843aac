"""The hinge loss ``max(0, 1 - y o)`` and its gradient ``-y [y o < 1]``, in every domain.

Binary: one output o, label sign y in {-1, +1} (:func:`~mibpcert.ops.targets.class_sign`). With C
outputs (one per class) the one-vs-rest hinge: output k has the target y_k = +1 for the label's
class and -1 otherwise, loss ``sum_k max(0, 1 - y_k o_k)``, gradient ``-y_k [y_k o_k < 1]``.
Targets stay encoded as ``2 c - 1`` for class c (one column); the C-output loss recovers c.

At the kink ``y o = 1`` the ordinary trainer takes the gradient 0; the interval and program
versions allow both -y and 0 there (any sub-gradient convention).
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains.affine import AffineForm, Symbols
from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval
from mibpcert.ops.targets import PointLabel
from mibpcert.threat.labels import LabelSet

# ----------------------------------------------------------------------------- numpy


def signs(out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(n, C) targets +-1 of the hinge loss: ``t`` itself for one output, else one-vs-rest
    signs of the classes c = (t + 1) / 2 encoded in ``t``."""
    if out.shape[1] == 1:
        return t[:, :1]
    cls = np.rint((t[:, 0] + 1.0) / 2.0).astype(np.int64)
    return np.where(np.arange(out.shape[1])[None, :] == cls[:, None], 1.0, -1.0)


def value(out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample ``sum_k max(0, 1 - y_k o_k)``."""
    return np.maximum(0.0, 1.0 - signs(out, t) * out).sum(axis=1)


def grad(out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample ``-y [y o < 1]`` (0 at the kink)."""
    y = signs(out, t)
    return np.where(y * out < 1.0, -y, 0.0)


# ----------------------------------------------------------------------------- interval


def grad_interval(o: Interval, labels: LabelSet) -> Interval:
    """d/do max(0, 1 - y o) = -y [y o < 1], hull over the allowed y in {-1 (class 0), +1}.

    Where y o may equal 1 the gradient is the hull {-y, 0} (any sub-gradient convention).
    With C > 1 outputs (one-vs-rest hinge) output k may have y_k = +1 when class k is allowed
    and y_k = -1 when another class is allowed; each output is bounded on its own.
    """
    return _grad_interval(o, labels.mask)


def _grad_interval(o: Interval, mask: np.ndarray) -> Interval:
    C = o.shape[1]
    if C > 1:
        cols = []
        for k in range(C):
            others = np.delete(mask, k, axis=1).any(axis=1)
            cols.append(_grad_interval(o[:, k : k + 1], np.stack([others, mask[:, k]], axis=1)))
        return Interval(
            np.concatenate([c.lo for c in cols], axis=1),
            np.concatenate([c.hi for c in cols], axis=1),
        )
    lo = np.full(o.shape[0], np.inf)
    hi = np.full(o.shape[0], -np.inf)
    for cls, y in ((0, -1.0), (1, 1.0)):
        m_lo = np.minimum(y * o.lo[:, 0], y * o.hi[:, 0])
        m_hi = np.maximum(y * o.lo[:, 0], y * o.hi[:, 0])
        g_lo = np.where(m_lo > 1.0, 0.0, min(-y, 0.0))
        g_hi = np.where(m_lo > 1.0, 0.0, max(-y, 0.0))
        g_lo = np.where(m_hi < 1.0, -y, g_lo)
        g_hi = np.where(m_hi < 1.0, -y, g_hi)
        ok = mask[:, cls]
        lo = np.where(ok, np.minimum(lo, g_lo), lo)
        hi = np.where(ok, np.maximum(hi, g_hi), hi)
    return Interval(lo[:, None], hi[:, None])


# ----------------------------------------------------------------------------- program


def grad_program(b: Builder, out: list[Expr], label: PointLabel, tags: list[str]) -> list[Expr]:
    """``-y_k [y_k o_k <= 1]`` for every output k, with the label's signs (affine in binaries)."""
    return [
        output_grad_program(b, y, o, tag)
        for y, o, tag in zip(label.signs(b), out, tags, strict=True)
    ]


def output_grad_program(b: Builder, ysig: Expr, o: Expr, tag: str) -> Expr:
    """d max(0, 1 - y o) / do = -y [y o <= 1] for a label sign y (affine in binaries); either
    value is allowed at the kink y o = 1 (big-M indicator)."""
    margin = b.mul(ysig, o, f"m{tag}")
    s = b.indicator_le(margin, 1.0, f"hinge{tag}")
    return b.scale(b.mul(ysig, s, f"ys{tag}"), -1.0)


# ----------------------------------------------------------------------------- affine sets


def grad_affine_set(o: AffineForm, rng: Interval, labels: LabelSet, sym: Symbols) -> AffineForm:
    """The gradient is piecewise constant: where the hinge is decided for every output in
    ``rng`` (and every allowed label) it is a constant; where it is not, the hull of its values,
    a local error. Both are the interval version on ``rng``."""
    return AffineForm.hull(grad_interval(rng, labels), sym.size)
