"""A cheap primal heuristic: randomised coordinate search over the attacker's choices.

Every candidate is a valid attack (inside the threat model) and is scored by *replaying* it with
the ordinary trainer, so the value the heuristic reports is a real attack's value. Moves:

* move one feature of one point in scope to an end of its box (continuous features, where the
  worst case of a linear-ish objective lies) or its clean value, or to another allowed value
  (discrete features);
* change one label (flip, another allowed class, or a regression target to either end of its
  ``label_eps`` range) or restore it.

A move that would exceed a budget (k changed points, label_k labels, paired budgets) is skipped.
The search starts from the best of the clean data and random vertex attacks, accepts improving
moves in random order until a pass improves nothing, then restarts from a new random attack while
time is left.
"""

from __future__ import annotations

import time

import numpy as np

from mibpcert.attacks.replay import Attack, TestObjective, threat_violations
from mibpcert.problem import Problem
from mibpcert.threat.model import CHANGE_TOL


def _moves(problem: Problem) -> list[tuple]:
    """All single-coordinate moves: ("x", i, j, value) and ("y", i, value)."""
    t = problem.threat
    data = problem.data
    X0, y0 = data.X_train, np.asarray(data.y_train)
    moves: list[tuple] = []
    if t.perturbs_features:
        lo, hi = t.feature_box(X0)
        disc = {int(df.feature): df for df in t.discrete}
        for i in t.scope(len(X0)):
            i = int(i)
            for j in range(X0.shape[1]):
                if j in disc:
                    vals = disc[j].allowed(X0[i, j])
                else:
                    vals = [v for v in (lo[i, j], hi[i, j]) if np.isfinite(v)]
                for v in sorted({float(v) for v in vals} | {float(X0[i, j])}):
                    moves.append(("x", i, j, v))
    if t.label_k > 0:
        pool = t.scope(len(X0)) if t.paired else np.arange(len(X0))
        for i in pool:
            i = int(i)
            if data.task == "regression":
                for v in (y0[i] - t.label_eps, y0[i] + t.label_eps, y0[i]):
                    moves.append(("y", i, v))
                continue
            mode = t.label_mode
            if mode == "flip":
                new = [1 - int(y0[i])]
            elif mode == "any":
                new = [c for c in range(int(data.n_classes)) if c != int(y0[i])]
            else:
                new = [int(mode)] if int(mode) != int(y0[i]) else []
            for c in [*new, int(y0[i])]:
                moves.append(("y", i, c))
    return moves


def _budget_ok(problem: Problem, X: np.ndarray, y: np.ndarray, i: int) -> bool:
    """Budgets after a change of point ``i`` (checked only on counts, cheaply)."""
    t = problem.threat
    X0, y0 = problem.data.X_train, np.asarray(problem.data.y_train)
    feat = np.any(np.abs(X - X0) > CHANGE_TOL, axis=1)
    if problem.data.task == "regression":
        lab = np.abs(np.asarray(y, dtype=np.float64) - y0).reshape(len(y0), -1).max(axis=1) > (
            CHANGE_TOL
        )
    else:
        lab = np.asarray(y) != y0
    if t.k is not None and feat.sum() > t.k:
        return False
    if lab.sum() > t.label_k:
        return False
    if t.paired and (feat | lab).sum() > max(int(t.k or 0), int(t.label_k)):
        return False
    return True


def coordinate_search(
    problem: Problem,
    objective: TestObjective,
    time_budget: float = 5.0,
    seed: int = 0,
    max_evals: int | None = None,
) -> Attack:
    """The best attack found within ``time_budget`` seconds (or ``max_evals`` replays)."""
    data = problem.data
    X0, y0 = data.X_train, np.asarray(data.y_train)
    rng = np.random.default_rng(seed)
    deadline = time.perf_counter() + time_budget
    evals = 0

    def score(X: np.ndarray, y: np.ndarray) -> float:
        nonlocal evals
        evals += 1
        return objective.search_score(problem, problem.train_poisoned(X, y).final)

    def out_of_budget() -> bool:
        return time.perf_counter() > deadline or (max_evals is not None and evals >= max_evals)

    best_X, best_y = X0.copy(), y0.copy()
    best = score(best_X, best_y)
    moves = _moves(problem)
    restarts = 0
    while not out_of_budget():
        if restarts == 0:
            X, y, cur = best_X.copy(), best_y.copy(), best
            # a few random vertex attacks as alternative starts
            for _ in range(4):
                if out_of_budget():
                    break
                Xr, yr = problem.threat.sample(
                    X0, y0, rng, data.task, data.n_classes, vertex_prob=1.0
                )
                s = score(Xr, yr)
                if s > cur:
                    X, y, cur = Xr, yr, s
        else:
            X, y = problem.threat.sample(X0, y0, rng, data.task, data.n_classes, vertex_prob=1.0)
            cur = score(X, y)
        improved = True
        while improved and not out_of_budget():
            improved = False
            for k in rng.permutation(len(moves)):
                if out_of_budget():
                    break
                mv = moves[k]
                if mv[0] == "x":
                    _, i, j, v = mv
                    if X[i, j] == v:
                        continue
                    old = X[i, j]
                    X[i, j] = v
                    if _budget_ok(problem, X, y, i):
                        s = score(X, y)
                        if s > cur + 1e-12:
                            cur, improved = s, True
                            continue
                    X[i, j] = old
                else:
                    _, i, v = mv
                    if np.array_equal(y[i], v):
                        continue
                    old = np.copy(y[i])
                    y[i] = v
                    if _budget_ok(problem, X, y, i):
                        s = score(X, y)
                        if s > cur + 1e-12:
                            cur, improved = s, True
                            continue
                    y[i] = old
        if cur > best:
            best, best_X, best_y = cur, X.copy(), y.copy()
        restarts += 1
        if not moves:
            break
    problems = threat_violations(problem, best_X, best_y)
    if problems:  # never expected: every move keeps the attack valid
        raise RuntimeError(f"heuristic produced an invalid attack: {problems[0]}")
    value = objective.value(problem, problem.train_poisoned(best_X, best_y).final)
    return Attack(best_X, best_y, value, "heuristic", {"evaluations": evals, "restarts": restarts})
