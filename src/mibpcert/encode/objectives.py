"""Test objectives over a trained network's parameter expressions (method ``exact``).

The network is evaluated at fixed test inputs (:func:`test_outputs`); the margins are the program
version of :mod:`mibpcert.ops.margin`. Objectives: the worst-case test MSE (maximised), the
margins of one test point for its true class (minimised; certified when all are > 0), and the
number of misclassified test points under one shared attack (maximised).
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.program import LinearObjective
from mibpcert.encode.network import Layers, forward_exprs
from mibpcert.ops import margin
from mibpcert.problem import Problem


def objective(e: Expr, sense: str, name: str) -> LinearObjective:
    """The expression ``e`` as an objective (its variables, coefficients and constant)."""
    return LinearObjective(np.array(e.idx), np.array(e.coef), e.const, sense, name)  # type: ignore[arg-type]


def test_outputs(b: Builder, layers: Layers, x: np.ndarray, tag: str) -> list[Expr]:
    """Outputs of the trained network (parameters ``layers``) at the fixed test input ``x``."""
    acts, _ = forward_exprs(b, layers, [b.const(float(v)) for v in x], tag)
    return acts[-1]


def mse_objective(b: Builder, problem: Problem, layers: Layers) -> LinearObjective:
    """Maximise the test MSE ``mean_{i, r} (o_ir - y_ir)^2`` of the trained network."""
    data = problem.data
    Y = np.asarray(data.y_test, dtype=np.float64).reshape(len(data.X_test), -1)
    squares = []
    for i, x in enumerate(data.X_test):
        out = test_outputs(b, layers, x, f"test{i}")
        for r, o in enumerate(out):
            squares.append(b.square(b.affine([(1.0, o)], -float(Y[i, r])), f"sq{i}_{r}"))
    e = b.affine([(1.0 / len(squares), z) for z in squares])
    return objective(e, "max", "worst-case test MSE")


def margin_objectives(
    b: Builder, problem: Problem, layers: Layers, point: int
) -> list[LinearObjective]:
    """Minimise every margin of test point ``point`` for its true class (certified when all are
    > 0)."""
    data = problem.data
    cls = int(data.y_test[point])
    out = test_outputs(b, layers, data.X_test[point], f"test{point}")
    margins = margin.program(b, out, cls)
    return [
        objective(mg, "min", f"margin of test point {point}: class {cls} vs {j}")
        for mg, j in zip(margins, margin.others(len(out), cls), strict=True)
    ]


def misclassified_objective(
    b: Builder, problem: Problem, layers: Layers, points: np.ndarray | None = None
) -> LinearObjective:
    """Maximise the number of test points (``points``, default all) whose true class is not
    strictly best: binary m_i = 1 forces some margin of point i to be <= 0."""
    data = problem.data
    idx = np.arange(len(data.X_test)) if points is None else np.asarray(points)
    counts = []
    for i in idx:
        i = int(i)
        out = test_outputs(b, layers, data.X_test[i], f"test{i}")
        margins = margin.program(b, out, int(data.y_test[i]))
        if any(mg.hi <= 0.0 for mg in margins):
            counts.append(b.const(1.0))  # some margin is always <= 0
            continue
        open_margins = [mg for mg in margins if mg.lo <= 0.0]
        if not open_margins:
            continue  # every margin is always > 0: never misclassified
        m = b.var(0.0, 1.0, f"miscl{i}", binary=True)
        if len(open_margins) == 1:  # m = 1 => margin <= 0 (margin + hi m <= hi)
            mg = open_margins[0]
            b.constrain(b.affine([(1.0, mg), (mg.hi, m)]), hi=mg.hi)
        else:
            us = []
            for j, mg in enumerate(open_margins):
                u = b.var(0.0, 1.0, f"miscl{i}_{j}", binary=True)
                b.constrain(b.affine([(1.0, mg), (mg.hi, u)]), hi=mg.hi)
                us.append(u)
            b.constrain(b.affine([(1.0, m)] + [(-1.0, u) for u in us]), hi=0.0)  # m <= sum u
        counts.append(m)
    e = b.add(*counts) if counts else b.const(0.0)
    if e.is_const:  # keep a variable so that the objective is well formed
        e = b.var(e.const, e.const, "miscl_const")
    return objective(e, "max", "misclassified test points")


def single_objective(b: Builder, problem: Problem, layers: Layers, kind: str) -> LinearObjective:
    """The one-program objective ``kind``: ``"mse"`` (:func:`mse_objective`) or
    ``"misclassified"`` (:func:`misclassified_objective`)."""
    if kind == "mse":
        return mse_objective(b, problem, layers)
    return misclassified_objective(b, problem, layers)
