"""Building blocks of the program domain: bounded affine expressions over a :class:`Formulation`.

Every quantity of a training step (inputs, pre-activations, gradients, ...) is an :class:`Expr`,
an affine combination of model variables with a sound interval ``[lo, hi]`` computed by
outward-rounded interval arithmetic. Products dispatch on their factors:

* a constant factor scales the other expression (linear);
* a factor that is an affine combination of binary variables is distributed, and every
  ``binary * x`` is linearised exactly
  (``l s <= z <= u s``, ``x - u (1 - s) <= z <= x - l (1 - s)``);
* two continuous factors give a bilinear product ``z = a * b`` (exact in the exact model,
  McCormick in the relaxations).

Bounds of new variables are what makes big-M constants and McCormick envelopes valid, so they are
always computed with outward rounding (:mod:`mibpcert.domains.interval`). The program versions of
the operations (:mod:`mibpcert.ops`) are written with these primitives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mibpcert.domains.interval import TINY, UNIT
from mibpcert.domains.program import Formulation


@dataclass(frozen=True)
class Expr:
    """``sum coef[k] * x[idx[k]] + const`` with sound bounds ``lo <= value <= hi``."""

    idx: tuple[int, ...]
    coef: tuple[float, ...]
    const: float
    lo: float
    hi: float

    @property
    def is_const(self) -> bool:
        return not self.idx

    @property
    def is_var(self) -> bool:
        return len(self.idx) == 1 and self.coef[0] == 1.0 and self.const == 0.0

    def value(self, x: np.ndarray) -> float:
        """The expression's value at the variable values ``x`` (e.g. a solver's incumbent)."""
        return self.const + float(sum(a * x[j] for j, a in zip(self.idx, self.coef, strict=True)))


def _down(x: float) -> float:
    return float(np.nextafter(x, -np.inf))


def _up(x: float) -> float:
    return float(np.nextafter(x, np.inf))


@dataclass
class Builder:
    """Adds variables/rows to ``f`` and tracks which variables are binary."""

    f: Formulation = field(default_factory=Formulation)
    binary: set[int] = field(default_factory=set)

    # ----------------------------------------------------------------- leaves
    def const(self, c: float) -> Expr:
        c = float(c)
        return Expr((), (), c, c, c)

    def var(self, lo: float, hi: float, name: str = "", binary: bool = False) -> Expr:
        """A new variable in [lo, hi] (binaries: [0, 1] or fixed)."""
        if binary:
            lo, hi = max(0.0, lo), min(1.0, hi)
        j = self.f.add_var(lo, hi, "B" if binary else "C", name)
        if binary:
            self.binary.add(j)
        return Expr((j,), (1.0,), 0.0, lo, hi)

    # ----------------------------------------------------------------- affine
    def affine(self, terms: list[tuple[float, Expr]], const: float = 0.0) -> Expr:
        """``sum c * e + const`` with outward-rounded bounds."""
        coef: dict[int, float] = {}
        c0 = float(const)
        lo_parts = [c0]
        hi_parts = [c0]
        for c, e in terms:
            c = float(c)
            if c == 0.0:
                continue
            c0 += c * e.const
            for j, a in zip(e.idx, e.coef, strict=True):
                coef[j] = coef.get(j, 0.0) + c * a
            p, q = c * e.lo, c * e.hi
            lo_parts.append(min(p, q))
            hi_parts.append(max(p, q))
        lo_arr, hi_arr = np.asarray(lo_parts), np.asarray(hi_parts)
        err = (
            2.0
            * (len(lo_parts) + 1)
            * UNIT
            * float(np.maximum(np.abs(lo_arr), np.abs(hi_arr)).sum())
            + len(lo_parts) * TINY
        )
        lo = _down(float(lo_arr.sum()) - err)
        hi = _up(float(hi_arr.sum()) + err)
        idx = tuple(j for j, a in coef.items() if a != 0.0)
        return Expr(idx, tuple(coef[j] for j in idx), c0, lo, hi)

    def add(self, *exprs: Expr) -> Expr:
        return self.affine([(1.0, e) for e in exprs])

    def scale(self, e: Expr, c: float) -> Expr:
        return self.affine([(c, e)])

    def materialize(self, e: Expr, name: str = "", lo: float = -np.inf, hi: float = np.inf) -> Expr:
        """A single variable equal to ``e`` (``e`` itself when it already is one).

        ``lo``/``hi``: further *proven* bounds on the value of ``e`` (e.g. from another sound
        method), intersected with the propagated ones.
        """
        if e.is_var or e.is_const:
            return e
        v = self.var(max(e.lo, lo), min(e.hi, hi), name)
        self.f.add_row([v.idx[0], *e.idx], [1.0, *(-a for a in e.coef)], e.const, e.const)
        return v

    def tighten(self, e: Expr, lo: float, hi: float) -> Expr:
        """Variable ``e`` with its bounds intersected with the proven ``[lo, hi]``; later
        products and big-M constants use the tighter bounds."""
        if not e.is_var:
            raise ValueError("only a single variable can be tightened")
        j = e.idx[0]
        new_lo, new_hi = max(self.f.lb[j], lo), min(self.f.ub[j], hi)
        if new_lo > new_hi:  # two proofs disagree (round-off): keep the old bounds
            new_lo, new_hi = self.f.lb[j], self.f.ub[j]
        self.f.lb[j], self.f.ub[j] = new_lo, new_hi
        return Expr(e.idx, e.coef, e.const, new_lo, new_hi)

    def fork(self) -> Builder:
        """An independent copy to extend (the rows added so far are shared read-only)."""
        f = Formulation(
            list(self.f.lb),
            list(self.f.ub),
            list(self.f.vtype),
            list(self.f.names),
            list(self.f.rows),
            list(self.f.products),
        )
        return Builder(f, set(self.binary))

    def constrain(self, e: Expr, lo: float = -np.inf, hi: float = np.inf) -> None:
        """Add ``lo <= e <= hi``."""
        if e.is_const:
            if not (lo <= e.const <= hi):
                raise ValueError("constant constraint is violated")
            return
        self.f.add_row(list(e.idx), list(e.coef), lo - e.const, hi - e.const)

    # ----------------------------------------------------------------- products
    def is_binary_combo(self, e: Expr) -> bool:
        return bool(e.idx) and all(j in self.binary for j in e.idx)

    def mul(self, a: Expr, b: Expr, name: str = "") -> Expr:
        """The product ``a * b``; see the module docstring for the dispatch."""
        if a.is_const:
            return self.scale(b, a.const)
        if b.is_const:
            return self.scale(a, b.const)
        if not self.is_binary_combo(a) and self.is_binary_combo(b):
            a, b = b, a
        if self.is_binary_combo(a):
            bv = self.materialize(b)
            terms = [(c, self._bin_times(j, bv, name)) for j, c in zip(a.idx, a.coef, strict=True)]
            terms.append((a.const, bv))
            return self.affine(terms)
        av, bv = self.materialize(a), self.materialize(b)
        p = [av.lo * bv.lo, av.lo * bv.hi, av.hi * bv.lo, av.hi * bv.hi]
        z = self.var(_down(min(p)), _up(max(p)), name)
        self.f.add_product(z.idx[0], av.idx[0], bv.idx[0])
        return z

    def square(self, e: Expr, name: str = "") -> Expr:
        """``e * e`` as a bilinear product of one variable with itself (bounds >= 0)."""
        if e.is_const:
            return self.const(e.const * e.const)
        a = self.materialize(e)
        lo_sq = 0.0 if a.lo <= 0.0 <= a.hi else _down(min(a.lo * a.lo, a.hi * a.hi))
        z = self.var(max(lo_sq, 0.0), _up(max(a.lo * a.lo, a.hi * a.hi)), name)
        self.f.add_product(z.idx[0], a.idx[0], a.idx[0])
        return z

    def _bin_times(self, s: int, x: Expr, name: str = "") -> Expr:
        """Exact linearisation of ``z = s * x`` for binary variable ``s``."""
        lo, hi = x.lo, x.hi
        both_binary = x.is_var and x.idx[0] in self.binary
        z = self.var(min(lo, 0.0), max(hi, 0.0), name, binary=both_binary)
        zj, xj = z.idx[0], x.idx[0]
        self.f.add_row([zj, s], [1.0, -lo], lo=0.0)  # z >= lo * s
        self.f.add_row([zj, s], [1.0, -hi], hi=0.0)  # z <= hi * s
        self.f.add_row([zj, xj, s], [1.0, -1.0, -hi], lo=-hi)  # z >= x - hi (1 - s)
        self.f.add_row([zj, xj, s], [1.0, -1.0, -lo], hi=-lo)  # z <= x - lo (1 - s)
        return z

    # ----------------------------------------------------------------- indicators
    def indicator_le(self, e: Expr, t: float, name: str = "") -> Expr:
        """Binary s with s = 1 => e <= t and s = 0 => e >= t (either at e = t)."""
        if e.hi < t:
            return self.const(1.0)
        if e.lo > t:
            return self.const(0.0)
        s = self.var(0.0, 1.0, name, binary=True)
        big_up = _up(e.hi - t)
        big_dn = _up(t - e.lo)
        # e <= t + big_up (1 - s);  e >= t - big_dn s
        self.constrain(self.affine([(1.0, e), (big_up, s)]), hi=t + big_up)
        self.constrain(self.affine([(1.0, e), (big_dn, s)]), lo=t)
        return s
