"""Test objectives over a trained network's parameter expressions (method ``exact``).

The network is evaluated at fixed test inputs (:func:`test_outputs`); the margins are the program
version of :mod:`mibpcert.ops.margin`. Objectives: the worst-case test MSE (maximised), the
margins of one test point for its true class (minimised; certified when all are > 0), and the
number of misclassified test points under one shared attack (maximised).
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval, add, divide, matmul, scale, sub, sum_axis, up
from mibpcert.domains.interval import mul as imul
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
    """Maximise the test MSE ``mean_{i, r} (o_ir - y_ir)^2`` of the trained network.

    A linear model with fewer parameters per output than test points takes the spectral form
    (:func:`spectral_mse`): one square per singular direction of the test inputs instead of one
    per test point. Otherwise every residual is squared.
    """
    if len(layers) == 1 and len(layers[0][0][0]) + 1 < len(problem.data.X_test):
        return spectral_mse(b, problem, layers)
    return residual_mse(b, problem, layers)


def residual_mse(b: Builder, problem: Problem, layers: Layers) -> LinearObjective:
    """The test MSE with one square per test residual (any network)."""
    data = problem.data
    Y = np.asarray(data.y_test, dtype=np.float64).reshape(len(data.X_test), -1)
    squares = []
    for i, x in enumerate(data.X_test):
        out = test_outputs(b, layers, x, f"test{i}")
        for r, o in enumerate(out):
            squares.append(b.square(b.affine([(1.0, o)], -float(Y[i, r])), f"sq{i}_{r}"))
    e = b.affine([(1.0 / len(squares), z) for z in squares])
    return objective(e, "max", "worst-case test MSE")


def spectral_mse(b: Builder, problem: Problem, layers: Layers) -> LinearObjective:
    """The test MSE of a linear model by the singular directions of the test inputs.

    With ``A = [X_test, 1]`` (``m x n``) and its thin SVD ``A = U S V^T``, each output ``r``
    (parameters ``theta_r = [W_r, b_r]``) has

        ||A theta_r - y_r||^2 = sum_k (s_k v_k^T theta_r - u_k^T y_r)^2 + ||y_r - U U^T y_r||^2,

    ``n`` squares instead of ``m``. The relaxations see the same function, but spatial branch and
    bound now splits the few directions the objective depends on instead of one residual at a
    time (diabetes, one poisoned point, T = 3: a piece SCIP left at relative gap 1.7e-4 after
    30 s closes in 0.8 s).

    Sound in floating point: the program's objective ``e`` (the rounded ``s_k v_k``,
    ``u_k^T y_r``, ``1 / (m R)`` and constant, each exact in the model) differs from the MSE
    ``f`` by a quadratic ``theta^T P theta + 2 q^T theta + h`` whose coefficients are enclosed by
    outward-rounded interval arithmetic; its largest value over the parameter box,
    ``delta`` (about ``4e-10`` on diabetes), is added to the constant, so ``e >= f`` on the box and
    every dual bound of ``e`` bounds ``f``.
    """
    data = problem.data
    ((W, bias),) = layers
    X = np.asarray(data.X_test, dtype=np.float64)
    m = len(X)
    Y = np.asarray(data.y_test, dtype=np.float64).reshape(m, -1)
    R = Y.shape[1]
    A = np.hstack([X, np.ones((m, 1))])
    U, S, Vt = np.linalg.svd(A, full_matrices=False)
    a = S[:, None] * Vt  # (n, n): rows s_k v_k^T
    c = -(U.T @ Y)  # (n, R): the constants -u_k^T y_r
    mR = float(m * R)
    w = 1.0 / mR
    C = w * float(np.sum((Y - U @ (U.T @ Y)) ** 2))
    thetas = [[b.materialize(e) for e in [*W[r], bias[r]]] for r in range(R)]
    squares = [
        b.square(
            b.affine([(float(a[k, j]), t) for j, t in enumerate(th)], float(c[k, r])),
            f"sq{r}_{k}",
        )
        for r, th in enumerate(thetas)
        for k in range(len(S))
    ]
    # f - e = theta^T P theta + 2 q^T theta + h (per output, summed), enclosed
    pt = Interval.point
    P = sub(divide(matmul(pt(A.T), pt(A)), mR), scale(matmul(pt(a.T), pt(a)), w))
    Q = sub(  # (n, R): q_r = -A^T y_r / (m R) - w a^T c_r
        scale(divide(matmul(pt(A.T), pt(Y)), mR), -1.0), scale(matmul(pt(a.T), pt(c)), w)
    )
    h = sub(  # h = y^T y / (m R) - w c^T c - C
        sub(
            divide(matmul(pt(Y.reshape(1, -1)), pt(Y.reshape(-1, 1))), mR),
            scale(matmul(pt(c.reshape(1, -1)), pt(c.reshape(-1, 1))), w),
        ),
        pt(np.array([[C]])),
    )
    lo = np.array([[t.lo for t in th] for th in thetas])
    hi = np.array([[t.hi for t in th] for th in thetas])
    box = Interval(lo, hi)  # (R, n): the final parameters
    quad = sum_axis(imul(matmul(box, P), box).reshape(-1), 0)
    lin = sum_axis(imul(box, Interval(Q.lo.T, Q.hi.T)).reshape(-1), 0)
    total = add(add(quad, scale(lin, 2.0)), h.reshape(-1)[0])
    delta = max(0.0, float(total.hi))
    e = b.affine([(w, z) for z in squares], float(up(np.float64(C + delta))))
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
