"""The program domain: solver-neutral optimisation models (variables, rows, products, objectives).

A :class:`Formulation` is plain data (numpy arrays and lists), picklable, so that worker processes
can rebuild it in their own solver. It never imports a solver; :mod:`mibpcert.solvers` translates
it. The program versions of the operations (:mod:`mibpcert.ops`) fill it through a
:class:`~mibpcert.domains.builder.Builder`; the encoders of :mod:`mibpcert.encode` compose them.

* variables ``j = 0..n-1`` with bounds ``lb[j] <= x_j <= ub[j]`` (finite or +-inf) and a type,
  ``"C"`` (continuous) or ``"B"`` (binary; its bounds are within [0, 1]);
* linear rows ``lo <= sum_k coef_k x_{idx_k} <= hi`` (``lo``/``hi`` may be -inf/+inf; equal for an
  equality);
* bilinear products ``x_z = x_a * x_b`` with both ``a`` and ``b`` continuous (products with a
  binary factor are linearised exactly by the encoder and never appear here);
* objectives: ``sum_k coef_k x_{idx_k} + constant``, minimised or maximised, given per solve.

``relaxed("milp")`` (:class:`~mibpcert.vocab.RelaxMode`) replaces every product by its McCormick
envelope (four linear rows from the factor bounds); ``relaxed("lp")`` additionally drops
integrality. Both are sound relaxations: every point feasible for the bilinear model stays
feasible.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mibpcert.vocab import RELAX_MODES, RelaxMode

Sense = Literal["min", "max"]

__all__ = [
    "RELAX_MODES",
    "Formulation",
    "LinearObjective",
    "RelaxMode",
    "Sense",
    "add_mccormick",
    "fold_min_max",
]


@dataclass(frozen=True)
class LinearObjective:
    """``sum coef * x[idx] + constant``, to be minimised or maximised."""

    idx: np.ndarray
    coef: np.ndarray
    constant: float = 0.0
    sense: Sense = "min"
    name: str = ""


@dataclass
class Formulation:
    """A mixed-integer (bilinear) program without objective; see the module docstring."""

    lb: list[float] = field(default_factory=list)
    ub: list[float] = field(default_factory=list)
    vtype: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    rows: list[tuple[np.ndarray, np.ndarray, float, float]] = field(default_factory=list)
    products: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def n_vars(self) -> int:
        return len(self.lb)

    @property
    def n_binaries(self) -> int:
        return sum(1 for t in self.vtype if t == "B")

    @property
    def needs(self) -> str:
        """The solver capability this program needs: ``bilinear`` (products), ``milp``
        (binaries) or ``lp``."""
        if self.products:
            return "bilinear"
        return "milp" if self.n_binaries else "lp"

    def add_var(self, lb: float, ub: float, vtype: str = "C", name: str = "") -> int:
        """Add one variable; return its index."""
        if not lb <= ub:
            raise ValueError(f"variable {name!r}: lower bound {lb} > upper bound {ub}")
        self.lb.append(float(lb))
        self.ub.append(float(ub))
        self.vtype.append(vtype)
        self.names.append(name or f"x{len(self.lb) - 1}")
        return len(self.lb) - 1

    def add_row(self, idx, coef, lo: float = -np.inf, hi: float = np.inf) -> None:
        """Add ``lo <= sum coef * x[idx] <= hi``."""
        idx = np.asarray(idx, dtype=np.int64)
        coef = np.asarray(coef, dtype=np.float64)
        if idx.shape != coef.shape:
            raise ValueError("row index and coefficient arrays differ in shape")
        self.rows.append((idx, coef, float(lo), float(hi)))

    def add_product(self, z: int, a: int, b: int) -> None:
        """Add the bilinear equality ``x_z = x_a * x_b`` (both factors continuous, bounded)."""
        self.products.append((int(z), int(a), int(b)))

    def stats(self) -> dict:
        return {
            "variables": self.n_vars,
            "binaries": self.n_binaries,
            "linear_rows": len(self.rows),
            "bilinear_products": len(self.products),
        }

    def satisfied_by(self, x: np.ndarray, mode: str | RelaxMode, tol: float = 1e-6) -> bool:
        """Whether ``x``, a solution of a relaxation of this model, is also feasible for relax
        ``mode``: every binary within ``tol`` of 0 or 1 (``milp``, ``bilinear``), and every
        product within ``tol * (1 + |a b|)`` of ``a * b`` (``bilinear``). Bounds and linear rows
        are shared by all modes, so the relaxation's solver has checked them already.

        A relaxation optimum that passes is optimal for ``mode`` too (up to the tolerances), so a
        solve in ``mode`` cannot tighten its bound.
        """
        mode = _mode(mode)
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n_vars,) or not np.all(np.isfinite(x)):
            return False
        if mode is RelaxMode.LP:
            return True
        binary = np.fromiter((t == "B" for t in self.vtype), dtype=bool, count=self.n_vars)
        if np.any(np.abs(x[binary] - np.round(x[binary])) > tol):
            return False
        if mode is RelaxMode.MILP or not self.products:
            return True
        z, a, b = np.asarray(self.products, dtype=np.int64).T
        ab = x[a] * x[b]
        return bool(np.all(np.abs(x[z] - ab) <= tol * (1.0 + np.abs(ab))))

    def relaxed(self, mode: str | RelaxMode) -> Formulation:
        """The model for relaxation ``mode``: ``bilinear`` (itself), ``milp`` or ``lp``."""
        mode = _mode(mode)
        if mode is RelaxMode.BILINEAR:
            return self
        out = copy.copy(self)
        out.rows = list(self.rows)
        out.products = []
        for z, a, b in self.products:
            add_mccormick(out, z, a, b)
        if mode is RelaxMode.LP:
            out.vtype = ["C"] * self.n_vars
        return out


def _mode(mode: str | RelaxMode) -> RelaxMode:
    try:
        return RelaxMode(mode)
    except ValueError:
        raise ValueError(f"unknown relaxation {mode!r}; use one of {RELAX_MODES}") from None


def add_mccormick(f: Formulation, z: int, a: int, b: int) -> None:
    """McCormick envelope of ``z = a * b`` over the bounds of a and b (4 linear rows).

    z >= la b + lb a - la lb,  z >= ua b + ub a - ua ub,
    z <= ua b + lb a - ua lb,  z <= la b + ub a - la ub.
    """
    la, ua, lb_, ub_ = f.lb[a], f.ub[a], f.lb[b], f.ub[b]
    if not all(np.isfinite(v) for v in (la, ua, lb_, ub_)):
        raise ValueError(f"McCormick envelope of {f.names[z]!r} needs bounded factors")
    idx = [z, b, a]
    f.add_row(idx, [1.0, -la, -lb_], lo=-la * lb_)
    f.add_row(idx, [1.0, -ua, -ub_], lo=-ua * ub_)
    f.add_row(idx, [1.0, -ua, -lb_], hi=-ua * lb_)
    f.add_row(idx, [1.0, -la, -ub_], hi=-la * ub_)


def fold_min_max(
    which: list[int], bounds: list[float | None], lo: np.ndarray, hi: np.ndarray
) -> list[int]:
    """Fold proven bounds of min/max objective pairs into the box ``[lo, hi]``, in place.

    Objective ``2 j`` minimises coordinate ``j`` and ``2 j + 1`` maximises it; ``which`` are the
    objectives solved and ``bounds`` their proven (padded) bounds. A min bound raises ``lo[j]``, a
    max bound lowers ``hi[j]``. Returns the objectives whose bound is missing (``None`` or NaN):
    their coordinate keeps its earlier bound.
    """
    missing = []
    for k, b in zip(which, bounds, strict=True):
        if b is None or np.isnan(b):
            missing.append(k)
            continue
        j = k // 2
        if k % 2 == 0:
            lo[j] = max(lo[j], b)
        else:
            hi[j] = min(hi[j], b)
    return missing
