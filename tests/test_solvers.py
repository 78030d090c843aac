"""Conformance tests of the solver backends (SCIP, HiGHS, Gurobi) on small, known problems.

Every installed backend that can solve a problem must find the same optimum (within 1e-6) as a
hand computation, brute force, exact polygon enumeration or a meet-in-the-middle subset sum.
Backends that are not installed (or Gurobi without a working licence) are skipped.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest

from mibpcert.domains.program import Formulation, LinearObjective
from mibpcert.errors import ConfigError, UnsupportedError
from mibpcert.solvers import BACKEND_NAMES, Status, get_backend, solve_capable
from mibpcert.solvers.base import SolveResult

TOL = 1e-6
MODULES = {"scip": "pyscipopt", "highs": "highspy", "gurobi": "gurobipy"}
BILINEAR = ["scip", "gurobi"]


def backend_or_skip(name: str):
    """The backend, or skip the test when it is not installed / has no usable licence."""
    pytest.importorskip(MODULES[name])
    backend = get_backend(name)
    try:
        backend.check()
    except UnsupportedError as exc:
        pytest.skip(f"{name} unusable here: {exc}")
    return backend


def obj(idx, coef, sense="min", constant=0.0, name="") -> LinearObjective:
    return LinearObjective(
        np.asarray(idx, dtype=np.int64), np.asarray(coef, dtype=float), constant, sense, name
    )


# ---------------------------------------------------------------------------------------------
# problems


def small_lp() -> Formulation:
    """x in [0, 3], y >= 0, w free; x + y <= 4, x + 3y <= 6 (written with a duplicate index),
    w = 3x + 2y, -1 <= x - y <= 2, and a free row that must be ignored."""
    f = Formulation()
    x = f.add_var(0, 3, name="x")
    y = f.add_var(0, np.inf, name="y")
    w = f.add_var(-np.inf, np.inf, name="w")
    f.add_row([x, y], [1, 1], hi=4)
    f.add_row([x, x, y], [0.5, 0.5, 3], hi=6)
    f.add_row([w, x, y], [1, -3, -2], lo=0, hi=0)
    f.add_row([x, y], [1, -1], lo=-1, hi=2)
    f.add_row([x, w], [5, 7])  # -inf <= ... <= inf
    return f


def lp_cases() -> list[tuple[LinearObjective, float]]:
    """Objectives over :func:`small_lp` with optima computed by hand.

    max w = 3x + 2y: for x < 3, 3x + 2y <= 3x + 2(4 - x) = x + 8 < 11; at (3, 1) it is 11.
    min w - 4y + 0.5 = 3x - 2y + 0.5: y <= min(x + 1, (6 - x)/3); on x <= 3/4 the value is
    x - 2 >= -2 (at x = 0), beyond it (11/3)x - 4 > -2; so -2 + 0.5 = -1.5 at (0, 1).
    min x + y: 0 at the origin (feasible).
    """
    return [
        (obj([2], [1.0], "max", name="max w"), 11.0),
        (obj([2, 1], [1.0, -4.0], "min", 0.5, "min w-4y"), -1.5),
        (obj([0, 1], [1.0, 1.0], "min", name="min x+y"), 0.0),
    ]


WEIGHTS = [4.0, 3.0, 5.0, 2.0, 6.0]
VALUES = [7.0, 5.0, 8.0, 3.0, 9.0]
CAPACITY = 11.0


def small_milp() -> Formulation:
    """5 binaries, a knapsack row, a conflict row (x0 + x2 <= 1) and a continuous slack s in
    [0, 2] with s <= x3 + x4 (s earns 0.5 per unit in the objectives below)."""
    f = Formulation()
    xs = [f.add_var(0, 1, "B", f"b{i}") for i in range(5)]
    s = f.add_var(0, 2, name="s")
    f.add_row(xs, WEIGHTS, hi=CAPACITY)
    f.add_row([xs[0], xs[2]], [1, 1], hi=1)
    f.add_row([s, xs[3], xs[4]], [1, -1, -1], hi=0)
    return f


def milp_brute_force(values: list[float], sense: str, s_coef: float) -> float:
    """Enumerate the 32 binary points; s is set optimally (it only enters one row)."""
    best = math.inf if sense == "min" else -math.inf
    for bits in itertools.product([0, 1], repeat=5):
        if np.dot(bits, WEIGHTS) > CAPACITY or bits[0] + bits[2] > 1:
            continue
        s_hi = min(2.0, bits[3] + bits[4])
        s_best = s_hi if (s_coef > 0) == (sense == "max") else 0.0
        val = float(np.dot(bits, values)) + s_coef * s_best
        best = min(best, val) if sense == "min" else max(best, val)
    return best


def milp_cases() -> list[tuple[LinearObjective, float]]:
    out = []
    for sense, vals, sc in (
        ("max", VALUES, 0.5),
        ("min", [-v for v in VALUES], -0.5),
        ("max", [1.0, -2.0, 3.0, 0.5, -1.0], 0.5),
        ("min", [1.0, -2.0, 3.0, 0.5, -1.0], 0.5),
    ):
        o = obj(list(range(6)), vals + [sc], sense, name=f"{sense} {vals}")
        out.append((o, milp_brute_force(vals, sense, sc)))
    return out


# a small mixed-integer bilinear program: z = x*y, binary b
X_BOX, Y_BOX = (-1.0, 3.0), (-2.0, 2.0)


def small_bilinear() -> Formulation:
    """x in [-1, 3], y in [-2, 2], z = x*y in [-6, 6], b binary; x + y + b <= 2.5 and
    x - y >= -2.5 + b."""
    f = Formulation()
    x = f.add_var(*X_BOX, name="x")
    y = f.add_var(*Y_BOX, name="y")
    z = f.add_var(-6, 6, name="z")
    b = f.add_var(0, 1, "B", "b")
    f.add_row([x, y, b], [1, 1, 1], hi=2.5)
    f.add_row([x, y, b], [1, -1, -1], lo=-2.5)
    f.add_product(z, x, y)
    return f


def clip(poly: list[tuple[float, float]], a: tuple[float, float], c: float):
    """Clip a convex polygon to the half-plane a . p <= c (Sutherland-Hodgman, one edge)."""
    out = []
    for p, q in zip(poly, poly[1:] + poly[:1], strict=True):
        fp, fq = a[0] * p[0] + a[1] * p[1] - c, a[0] * q[0] + a[1] * q[1] - c
        if fp <= 0:
            out.append(p)
        if fp * fq < 0:
            t = fp / (fp - fq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def bilinear_exact(cx: float, cy: float, cb: float, sense: str) -> float:
    """Exact optimum of x*y + cx x + cy y + cb b over :func:`small_bilinear`.

    For each b the (x, y) region is a convex polygon. The objective is an indefinite quadratic
    (a saddle), so its extrema lie on the boundary; along an edge it is a quadratic in the edge
    parameter, so the candidates are the vertices and each edge's stationary point.
    """
    vals = []
    for b in (0, 1):
        poly = [
            (X_BOX[0], Y_BOX[0]),
            (X_BOX[1], Y_BOX[0]),
            (X_BOX[1], Y_BOX[1]),
            (X_BOX[0], Y_BOX[1]),
        ]
        poly = clip(poly, (1.0, 1.0), 2.5 - b)
        poly = clip(poly, (-1.0, 1.0), 2.5 - b)
        if not poly:
            continue

        def f(p, b=b):
            return p[0] * p[1] + cx * p[0] + cy * p[1] + cb * b

        for p, q in zip(poly, poly[1:] + poly[:1], strict=True):
            vals.append(f(p))
            dx, dy = q[0] - p[0], q[1] - p[1]
            quad = dx * dy  # f(p + t d) = quad t^2 + lin t + f(p)
            lin = p[0] * dy + p[1] * dx + cx * dx + cy * dy
            if abs(quad) > 1e-15:
                t = -lin / (2 * quad)
                if 0 < t < 1:
                    vals.append(f((p[0] + t * dx, p[1] + t * dy)))
    return min(vals) if sense == "min" else max(vals)


def bilinear_cases() -> list[tuple[LinearObjective, float]]:
    out = []
    for cx, cy, cb in ((0.5, -0.25, 0.3), (-0.2, 0.0, 0.0), (0.0, 0.7, -1.0)):
        for sense in ("min", "max"):
            o = obj([2, 0, 1, 3], [1.0, cx, cy, cb], sense, 1.0, f"{sense} z{cx:+}x{cy:+}y{cb:+}b")
            out.append((o, bilinear_exact(cx, cy, cb, sense) + 1.0))
    return out


def test_bilinear_reference_matches_dense_grid():
    """The polygon enumeration agrees with a dense grid (sanity check of the test oracle)."""
    g = np.linspace(-2, 3, 1001)
    xx, yy = np.meshgrid(g, g)
    for o, exact in bilinear_cases():
        cx, cy, cb = o.coef[1:]
        vals = []
        for b in (0, 1):
            ok = (
                (xx >= X_BOX[0])
                & (xx <= X_BOX[1])
                & (yy >= Y_BOX[0])
                & (yy <= Y_BOX[1])
                & (xx + yy <= 2.5 - b)
                & (xx - yy >= -2.5 + b)
            )
            v = (xx * yy + cx * xx + cy * yy + cb * b + 1.0)[ok]
            vals.append(v.min() if o.sense == "min" else v.max())
        grid = min(vals) if o.sense == "min" else max(vals)
        if o.sense == "min":
            assert exact <= grid + 1e-12 and grid - exact < 0.05
        else:
            assert exact >= grid - 1e-12 and exact - grid < 0.05
    # the second objective's max lies inside an edge (spatial branching needed)
    assert bilinear_exact(-0.2, 0.0, 0.0, "max") > 1.5


# ---------------------------------------------------------------------------------------------
# (a) LP, (b) MILP, (c) bilinear: same optimum on every backend


def check_optimal(r: SolveResult, expected: float) -> None:
    assert r.status == Status.OPTIMAL, r
    assert r.dual_bound == pytest.approx(expected, abs=TOL), r
    assert r.primal == pytest.approx(expected, abs=TOL), r
    # the padded bound is on the safe side of the optimum
    b = r.bound(1e-6, 1e-6)
    assert (b <= expected + 1e-9) if r.sense == "min" else (b >= expected - 1e-9)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_lp_known_optimum(name):
    backend = backend_or_skip(name)
    with backend.session(small_lp()) as s:
        for o, expected in lp_cases():
            r = s.solve(o, return_x=True)
            check_optimal(r, expected)
            assert r.objective_name == o.name and r.backend == name and r.sense == o.sense
            x, y, w = r.x
            assert w == pytest.approx(3 * x + 2 * y, abs=1e-6)
            assert r.nodes >= 0 and r.seconds >= 0


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_milp_brute_force_optimum(name):
    backend = backend_or_skip(name)
    with backend.session(small_milp()) as s:
        for o, expected in milp_cases():
            r = s.solve(o, return_x=True)
            check_optimal(r, expected)
            bits = r.x[:5]
            assert np.allclose(bits, np.round(bits), atol=1e-6)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_start_solution_and_progress_trace(name):
    """A (partial) start solution is offered; progress points end at the final answer."""
    backend = backend_or_skip(name)
    f = small_milp()
    seen = []
    with backend.session(f) as s:
        for o, expected in milp_cases():
            # a start that fixes the first binary at 0 (feasible: the all-zero choice is)
            r = s.solve(o, start={0: 0.0}, progress=lambda *p: seen.append(p))
            check_optimal(r, expected)
            assert r.start_used in (True, None)
            assert r.trace, "every solve records at least its final point"
            t, primal, dual = r.trace[-1]
            assert t <= r.seconds + 1e-6 and primal == pytest.approx(r.primal)
            assert all(a[0] <= b[0] + 1e-9 for a, b in itertools.pairwise(r.trace))
    assert seen, "the progress callback was called"
    with backend.session(f) as s, pytest.raises(ValueError, match="out of range"):
        s.solve(milp_cases()[0][0], start={10_000: 1.0})


@pytest.mark.parametrize("name", BILINEAR)
def test_bilinear_exact_optimum(name):
    backend = backend_or_skip(name)
    with backend.session(small_bilinear()) as s:
        for o, expected in bilinear_cases():
            r = s.solve(o, return_x=True)
            check_optimal(r, expected)
            x, y, z, _ = r.x
            assert z == pytest.approx(x * y, abs=1e-5)


# (d) McCormick relaxations are sound and solvable by LP/MILP backends


@pytest.mark.parametrize("name", BACKEND_NAMES)
@pytest.mark.parametrize("mode", ["milp", "lp"])
def test_relaxations_bound_the_exact_optimum(name, mode):
    backend = backend_or_skip(name)
    relaxed = small_bilinear().relaxed(mode)
    solve_capable(backend, relaxed)
    loose = 0
    with backend.session(relaxed) as s:
        for o, exact in bilinear_cases():
            r = s.solve(o)
            assert r.status == Status.OPTIMAL, r
            if o.sense == "min":
                assert r.bound(1e-6, 1e-6) <= exact + 1e-9
            else:
                assert r.bound(1e-6, 1e-6) >= exact - 1e-9
            loose += abs(r.dual_bound - exact) > 1e-3
    assert loose > 0  # the relaxation is not exact here, so the test has teeth


def test_relaxation_hierarchy_lp_milp_exact():
    """lp bound <= milp bound <= exact optimum (min); HiGHS for the relaxations, SCIP exact."""
    highs, scip = backend_or_skip("highs"), backend_or_skip("scip")
    f = small_bilinear()
    with (
        highs.session(f.relaxed("lp")) as s_lp,
        highs.session(f.relaxed("milp")) as s_milp,
        scip.session(f) as s_ex,
    ):
        for o, _ in bilinear_cases():
            lp, milp, ex = (s.solve(o).dual_bound for s in (s_lp, s_milp, s_ex))
            if o.sense == "min":
                assert lp <= milp + 1e-7 <= ex + 2e-7
            else:
                assert lp >= milp - 1e-7 >= ex - 2e-7


# (e) one session, many objectives == fresh sessions


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_session_reuse_matches_fresh_sessions(name):
    backend = backend_or_skip(name)
    problems = [(small_milp(), milp_cases()), (small_lp(), lp_cases())]
    if "bilinear" in backend.capabilities:
        problems.append((small_bilinear(), bilinear_cases()))
    for form, cases in problems:
        objectives = [o for o, _ in cases] * 2  # min/max interleaved, then all again
        with backend.session(form) as s:
            reused = [s.solve(o) for o in objectives]
            assert s.n_solves == len(objectives)
        for o, r in zip(objectives, reused, strict=True):
            with backend.session(form) as fresh:
                f = fresh.solve(o)
            assert r.status == f.status == Status.OPTIMAL
            assert r.dual_bound == pytest.approx(f.dual_bound, abs=TOL)
            assert r.primal == pytest.approx(f.primal, abs=TOL)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_sessions_with_different_threads_interleave(name):
    """Open sessions with different thread counts can take turns (HiGHS shares one scheduler)."""
    backend = backend_or_skip(name)
    o, expected = milp_cases()[0]
    with (
        backend.session(small_milp(), threads=1) as s1,
        backend.session(small_milp(), threads=2) as s2,
    ):
        for s in (s1, s2, s1, s2):
            check_optimal(s.solve(o), expected)


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("scip", {"numerics/feastol": 1e-7}, {"no/such/param": 1}),
        ("highs", {"solver": "ipm"}, {"no_such_option": 1}),
        ("gurobi", {"Method": 2}, {"NoSuchParam": 1}),
    ],
)
def test_native_options(name, good, bad):
    backend = backend_or_skip(name)
    with backend.session(small_lp(), options=good) as s:
        for o, expected in lp_cases():
            check_optimal(s.solve(o), expected)
    with pytest.raises(ConfigError, match="invalid"):
        backend.session(small_lp(), options=bad)


# (f) time limits: a subset-sum knapsack that branch-and-bound cannot close quickly


def subset_sum_instance(n: int = 30, seed: int = 0) -> tuple[np.ndarray, int, int]:
    """Weights ~1e9 (so the LP bound is the capacity and no subset hits it exactly), capacity
    half the total; the optimum by meet-in-the-middle over 2 x 2^15 subset sums."""
    a = np.random.default_rng(seed).integers(10**9, 2 * 10**9, n)
    cap = int(a.sum() // 2)

    def sums(w: np.ndarray) -> np.ndarray:
        s = np.zeros(1, dtype=np.int64)
        for v in w:
            s = np.concatenate([s, s + v])
        return s

    left, right = np.sort(sums(a[: n // 2])), sums(a[n // 2 :])
    right = right[right <= cap]
    k = np.searchsorted(left, cap - right, side="right") - 1
    return a, cap, int((right + left[k]).max())


def test_subset_sum_oracle_on_a_tiny_case():
    a, cap, opt = subset_sum_instance(n=12, seed=3)
    brute = max(
        s for bits in itertools.product([0, 1], repeat=12) if (s := int(np.dot(bits, a))) <= cap
    )
    assert opt == brute


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_time_limit_returns_a_valid_dual_bound(name):
    backend = backend_or_skip(name)
    a, cap, opt = subset_sum_instance()
    total = int(a.sum())
    n = len(a)
    # max a.x s.t. a.x <= cap  (opt), and its complement min a.y s.t. a.y >= total - cap
    f_max, f_min = Formulation(), Formulation()
    for f in (f_max, f_min):
        for i in range(n):
            f.add_var(0, 1, "B", f"x{i}")
    f_max.add_row(np.arange(n), a.astype(float), hi=cap)
    f_min.add_row(np.arange(n), a.astype(float), lo=total - cap)
    cases = [
        (f_max, obj(np.arange(n), a.astype(float), "max"), opt),
        (f_min, obj(np.arange(n), a.astype(float), "min"), total - opt),
    ]
    for f, o, true_opt in cases:
        with backend.session(f, time_limit=0.2) as s:
            r = s.solve(o)
        assert r.seconds < 5.0, r  # the limit is respected (up to start-up/overrun slack)
        if name == "scip":
            assert r.status == Status.TIME_LIMIT, r
        else:  # other solvers may be strong enough to finish
            assert r.status in (Status.TIME_LIMIT, Status.OPTIMAL), r
        assert r.dual_bound is not None and math.isfinite(r.dual_bound), r
        slack = 1e-9 * abs(true_opt)
        if o.sense == "min":
            assert r.dual_bound <= true_opt + slack
            assert r.primal is None or r.primal >= r.dual_bound - slack
            assert r.primal is None or r.primal >= true_opt - slack
        else:
            assert r.dual_bound >= true_opt - slack
            assert r.primal is None or r.primal <= r.dual_bound + slack
            assert r.primal is None or r.primal <= true_opt + slack
        if r.status == Status.TIME_LIMIT:
            assert r.gap is None or r.gap >= 0


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_resume_goes_on_with_a_stopped_search(name):
    """``resume`` after a time limit: SCIP goes on with its tree (``resumed``, nodes add up,
    the bound only improves); other backends solve again. Every bound stays valid."""
    backend = backend_or_skip(name)
    a, cap, opt = subset_sum_instance()
    n = len(a)
    f = Formulation()
    for i in range(n):
        f.add_var(0, 1, "B", f"x{i}")
    f.add_row(np.arange(n), a.astype(float), hi=cap)
    o = obj(np.arange(n), a.astype(float), "max")
    slack = 1e-9 * opt
    with backend.session(f, time_limit=0.2) as s:
        with pytest.raises(RuntimeError, match="nothing to resume"):
            s.resume(0.2)
        first = s.solve(o, return_x=True)
        again = s.resume(0.3, return_x=True)
        for r in (first, again):
            assert r.dual_bound is not None and r.dual_bound >= opt - slack, r
            assert r.primal is None or r.primal <= opt + slack, r
        if name == "scip":
            assert first.status == Status.TIME_LIMIT and first.resumed is None
            assert again.resumed is True and "resumed" in again.message
            assert again.nodes >= first.nodes  # the same tree, counted on
            assert again.dual_bound <= first.dual_bound + slack  # the bound never loosens
            if again.primal is not None:  # its incumbent's values are returned
                assert again.x is not None and np.dot(a, again.x) <= cap + 1e-6 * cap
        else:
            assert again.resumed is False
        if again.status == Status.TIME_LIMIT:
            after = s.resume(0.2)
            assert after.dual_bound is not None and after.dual_bound >= opt - slack
    with pytest.raises(RuntimeError, match="closed"):
        s.resume(0.1)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_resume_after_a_finished_solve_solves_again(name):
    backend = backend_or_skip(name)
    f = small_milp()
    for o, expected in milp_cases()[:2]:
        with backend.session(f) as s:
            check_optimal(s.solve(o), expected)
            r = s.resume()
            assert r.resumed is False
            check_optimal(r, expected)


def test_tunings_map_to_native_options():
    scip, highs = get_backend("scip"), get_backend("highs")
    assert scip.tuning("no_root_cuts") == {"separating/maxroundsroot": 0}
    assert scip.tuning() == {} and scip.tuning("no_such_tuning") == {}
    assert highs.tuning("no_root_cuts") == {}  # not measured there: solver defaults
    pytest.importorskip("pyscipopt")
    f = small_milp()  # the tuned SCIP session still finds the brute-force optima
    for o, expected in milp_cases():
        with scip.session(f, options=scip.tuning("no_root_cuts")) as s:
            check_optimal(s.solve(o), expected)


# (g) infeasible and unbounded models


@pytest.mark.parametrize("name", BACKEND_NAMES)
@pytest.mark.parametrize("with_binary", [False, True])
def test_infeasible_status_and_bounds(name, with_binary):
    backend = backend_or_skip(name)
    f = Formulation()
    x = f.add_var(0, 1, "B" if with_binary else "C")
    y = f.add_var(0, 1)
    f.add_row([x, y], [1, 1], lo=2.5)
    with backend.session(f) as s:
        for sense, inf in (("min", math.inf), ("max", -math.inf)):
            r = s.solve(obj([x, y], [1, 2], sense))
            assert r.status == Status.INFEASIBLE, r
            assert r.dual_bound == inf and r.bound(1.0, 1.0) == inf
            assert r.primal is None


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_unbounded_proves_nothing(name):
    backend = backend_or_skip(name)
    f = Formulation()
    x = f.add_var(-np.inf, 0)
    y = f.add_var(0, 1)
    f.add_row([x, y], [1, 1], hi=1)
    with backend.session(f) as s:
        r = s.solve(obj([x], [1.0], "min"))
        assert r.status == Status.UNBOUNDED, r
        assert r.dual_bound is None and r.bound(1e-6, 1e-6) is None
        r = s.solve(obj([x], [1.0], "max"))  # same session, now bounded
        check_optimal(r, 0.0)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_infeasible_or_unbounded_is_resolved(name):
    """LP-feasible but integer-infeasible with an unbounded free variable: presolve may only say
    'infeasible or unbounded'; the backends re-solve without dual reductions to tell."""
    backend = backend_or_skip(name)
    f = Formulation()
    x = f.add_var(-np.inf, np.inf)
    bs = [f.add_var(0, 1, "B") for _ in range(3)]
    f.add_row(bs, [2, 2, 2], lo=3, hi=3)  # no binary point: 2 * (integer) != 3
    f.add_row([x, bs[0]], [1, 1], hi=5)
    with backend.session(f) as s:
        for _ in range(2):  # and the session stays usable afterwards
            for sense in ("min", "max"):
                r = s.solve(obj([x], [1.0], sense))
                assert r.status == Status.INFEASIBLE, r
                assert r.dual_bound == (math.inf if sense == "min" else -math.inf)


# (h) importing the package imports no solver


def test_import_imports_no_solver():
    code = (
        "import sys\n"
        "import mibpcert.solvers, mibpcert.solvers.base, mibpcert.solvers.scip\n"
        "import mibpcert.solvers.highs, mibpcert.solvers.gurobi\n"
        "from mibpcert.solvers import get_backend, available_backends\n"
        "[get_backend(n).available() for n in ('scip', 'highs', 'gurobi')]\n"
        "available_backends()\n"
        "print([m for m in ('pyscipopt', 'highspy', 'gurobipy') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# (i) clear errors


def test_unknown_backend_name():
    with pytest.raises(ConfigError, match="unknown solver 'cplex'.*scip, highs, gurobi"):
        get_backend("cplex")
    assert get_backend(" SCIP ").name == "scip"


def test_missing_solver_package_message(monkeypatch):
    backend = get_backend("gurobi")
    monkeypatch.setattr(backend, "module", "no_such_solver_package_xyz")
    assert not backend.available()
    with pytest.raises(UnsupportedError, match=r"not installed; pip install 'mibpcert\[gurobi\]'"):
        backend.check()
    with pytest.raises(UnsupportedError, match="not installed"):
        backend.session(small_lp())


def test_highs_refuses_bilinear_with_advice():
    backend = get_backend("highs")
    with pytest.raises(
        UnsupportedError, match=r"bilinear.*--relax milp or --relax lp.*--solver scip"
    ):
        solve_capable(backend, small_bilinear())
    solve_capable(backend, small_bilinear().relaxed("milp"))  # fine
    if backend.available():
        with pytest.raises(UnsupportedError, match="bilinear"):
            backend.session(small_bilinear())


def test_lp_only_backend_refuses_binaries():
    class LPOnly(type(get_backend("highs"))):
        capabilities = frozenset({"lp"})

    with pytest.raises(UnsupportedError, match="LPs only.*--relax lp"):
        solve_capable(LPOnly(), small_milp())
    solve_capable(LPOnly(), small_bilinear().relaxed("lp"))


def test_invalid_session_arguments():
    backend = get_backend("scip")
    with pytest.raises(ConfigError, match="time_limit"):
        backend.session(small_lp(), time_limit=0)
    with pytest.raises(ConfigError, match="threads"):
        backend.session(small_lp(), threads=0)
    with pytest.raises(ConfigError, match="gap"):
        backend.session(small_lp(), gap=-1)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_bad_objective_and_closed_session(name):
    backend = backend_or_skip(name)
    s = backend.session(small_lp())
    with pytest.raises(ValueError, match="out of range"):
        s.solve(obj([7], [1.0]))
    with pytest.raises(ValueError, match="sense"):
        s.solve(obj([0], [1.0], "maximise"))
    s.close()
    s.close()
    with pytest.raises(RuntimeError, match="closed"):
        s.solve(obj([0], [1.0]))


def test_gurobi_size_limited_licence_message():
    backend = backend_or_skip("gurobi")
    f = Formulation()
    for _ in range(201):
        f.add_var(0, 1)
    f.add_product(0, 1, 2)
    try:
        s = backend.session(f)
    except UnsupportedError as exc:
        assert "limited to 2000 variables/constraints (200 with bilinear terms)" in str(exc)
        assert "--solver scip" in str(exc)
    else:  # a full licence
        s.close()


# SolveResult.bound padding


def test_bound_padding_directions():
    def res(d, sense):
        return SolveResult(Status.OPTIMAL, d, d, 0.0, 0.0, 0, "", "o", sense)

    assert res(10.0, "min").bound(0.5, 0.1) == pytest.approx(10.0 - 0.5 - 1.0)
    assert res(-10.0, "max").bound(0.5, 0.1) == pytest.approx(-10.0 + 0.5 + 1.0)
    assert res(None, "min").bound(1, 1) is None
    assert res(math.inf, "min").bound(1, 1) == math.inf
    assert res(2.0, "max").bound() == 2.0
    with pytest.raises(ValueError):
        res(1.0, "min").bound(-1.0)


def test_satisfied_by_checks_integrality_and_products():
    f = Formulation()
    f.add_var(0, 1, "B")
    a = f.add_var(-1, 2)
    b = f.add_var(0, 3)
    z = f.add_var(-3, 6)
    f.add_product(z, a, b)
    exact = np.array([1.0, 1.5, 2.0, 3.0])
    assert all(f.satisfied_by(exact, m) for m in ("lp", "milp", "exact"))
    # a McCormick point that is no product: fine for milp, not for exact
    off = np.array([0.0, 1.5, 2.0, 2.5])
    assert f.satisfied_by(off, "milp") and not f.satisfied_by(off, "exact")
    # a fractional binary: fine for lp only
    frac = np.array([0.5, 1.5, 2.0, 3.0])
    assert f.satisfied_by(frac, "lp") and not f.satisfied_by(frac, "milp")
    assert not f.satisfied_by(frac, "exact")
    # within the tolerances
    near = np.array([1.0 - 1e-8, 1.5, 2.0, 3.0 + 1e-7])
    assert f.satisfied_by(near, "exact")
    # wrong length or non-finite values never pass
    assert not f.satisfied_by(exact[:3], "lp")
    assert not f.satisfied_by(np.array([1.0, np.nan, 2.0, 3.0]), "lp")
    with pytest.raises(ValueError, match="unknown relaxation"):
        f.satisfied_by(exact, "nlp")
