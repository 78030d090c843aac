"""The label conventions every domain shares, and a training point's label as expressions.

* class ``c`` of a binary problem has the sign ``2 c - 1`` (class 1 -> +1, class 0 -> -1):
  :func:`class_sign`; a flipped label has the sign ``y (1 - 2 f)`` (:func:`sign_from_class`), a
  0/1 class indicator ``u`` the sign ``2 u - 1`` (:func:`sign_from_indicator`);
* :class:`PointLabel` is the (possibly poisoned) label of one training point in the program
  domain, in whichever form a loss needs (signs, 0/1 class, one-hot, targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval


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
