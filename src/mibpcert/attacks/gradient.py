"""First-order attacks through the unrolled training: interior optima and incumbent repair.

:func:`coordinate_search` tries the ends of each coordinate's box; with two or more training
steps the worst case is often *interior* (the final parameters are polynomials of high degree in
the poisoned inputs). :func:`gradient_attack` climbs the objective by projected sign-gradient
steps with backtracking, from several starts:

* the gradient of the (search) objective with respect to every movable input coordinate is taken
  by central differences through the ordinary trainer (two replays per coordinate: exact up to
  ``O(h^2)`` where the objective is smooth, one-sided information at a ReLU/hinge kink);
* a step moves every coordinate by ``alpha * radius`` in the direction of its partial derivative
  and is projected onto the threat set: the feature box, and under a k-of-n budget the best ``k``
  changed points (the Euclidean projection onto "at most k rows differ from the clean data");
* an improving step is kept and ``alpha`` grows, a failing one halves ``alpha``; the search ends
  when ``alpha`` falls below ``min_alpha`` or the time is up.

Labels and discrete features are kept as the start has them (the coordinate search chooses
those). :func:`repair_attack` turns a solver's incumbent that replays worse than the solver said
(a training point within round-off of a hinge kink or a ReLU's 0, where the program's indicator
took the branch ordinary training does not) into an attack that replays: random moves of radius
``1e-7 ... 1e-3`` (relative to each feature's box radius) of the points the incumbent changed,
then a short gradient polish. For hinge and ReLU models the worst case can be a supremum that
attacks only approach from one side; every value reported is a replayed one.
"""

from __future__ import annotations

import time

import numpy as np

from mibpcert.attacks.replay import Attack, TestObjective, project_attack, threat_violations
from mibpcert.problem import Problem
from mibpcert.threat.model import CHANGE_TOL


class _Space:
    """The movable coordinates of a problem's feature threat and the projection onto it."""

    def __init__(self, problem: Problem, y: np.ndarray) -> None:
        t = problem.threat
        X0 = problem.data.X_train
        self.X0 = X0
        self.k = None if t.k is None else int(t.k)
        self.lo, self.hi = t.feature_box(X0) if t.perturbs_features else (X0, X0)
        mask = np.zeros(X0.shape, dtype=bool)
        if t.perturbs_features:
            scope = t.scope(len(X0))
            mask[scope] = True
            for df in t.discrete:
                mask[:, int(df.feature)] = False
            mask &= np.isfinite(self.lo) & np.isfinite(self.hi) & (self.hi > self.lo)
        y0 = np.asarray(problem.data.y_train)
        if problem.data.task == "regression":
            lab = np.any(
                np.abs(np.asarray(y, dtype=np.float64) - y0).reshape(len(y0), -1) > CHANGE_TOL,
                axis=1,
            )
        else:
            lab = np.asarray(y) != y0
        if t.paired:  # the budget is shared with the labels: keep to the labelled rows
            room = max(int(t.k or 0), int(t.label_k)) - int(lab.sum())
            self.k = max(0, room) if self.k is not None else None
        self.mask = mask
        self.rad = np.where(mask, 0.5 * (self.hi - self.lo), 0.0)
        self.discrete = [int(df.feature) for df in t.discrete]

    @property
    def size(self) -> int:
        return int(self.mask.sum())

    def project(self, X: np.ndarray, keep_discrete: np.ndarray) -> np.ndarray:
        """The nearest point of the threat set to ``X`` (features; discrete ones as given)."""
        Z = np.where(self.mask, np.clip(X, self.lo, self.hi), self.X0)
        if self.discrete:
            Z[:, self.discrete] = keep_discrete[:, self.discrete]
        if self.k is not None:
            # Euclidean projection onto "at most k rows differ from the clean data": keeping
            # row i costs |Z_i - X_i|^2, resetting it costs |X0_i - X_i|^2; keep the k rows
            # that gain most from keeping (and only those that gain)
            rows = np.flatnonzero(np.any(np.abs(Z - self.X0) > CHANGE_TOL, axis=1))
            gain = ((self.X0[rows] - X[rows]) ** 2).sum(axis=1) - (
                (Z[rows] - X[rows]) ** 2
            ).sum(axis=1)
            order = np.argsort(-gain, kind="stable")
            keep = rows[order[: self.k]][gain[order[: self.k]] > 0]
            reset = np.setdiff1d(rows, keep)
            Z[reset] = self.X0[reset]
        return Z


def _evaluator(problem: Problem, objective: TestObjective, y: np.ndarray):
    def f(X: np.ndarray) -> float:
        return float(objective.search_score(problem, problem.train_poisoned(X, y).final))

    return f


def _ascend(
    f,
    space: _Space,
    X: np.ndarray,
    deadline: float,
    min_alpha: float,
    max_iter: int,
    fd_rel: float,
) -> tuple[np.ndarray, float, int]:
    """Projected sign-gradient ascent with backtracking from ``X``; (best X, score, evals)."""
    idx = np.argwhere(space.mask)
    cur = f(X)
    evals = 1
    alpha = 0.5
    for _ in range(max_iter):
        if alpha < min_alpha or time.perf_counter() > deadline or len(idx) == 0:
            break
        g = np.zeros_like(X)
        for i, j in idx:
            h = fd_rel * max(space.rad[i, j], 1e-12)
            old = X[i, j]
            X[i, j] = old + h
            up = f(X)
            X[i, j] = old - h
            down = f(X)
            X[i, j] = old
            g[i, j] = (up - down) / (2 * h)
            evals += 2
            if time.perf_counter() > deadline:
                break
        if not np.any(g):
            break
        while alpha >= min_alpha and time.perf_counter() <= deadline:
            cand = space.project(X + alpha * space.rad * np.sign(g), X)
            s = f(cand)
            evals += 1
            if s > cur + 1e-14 * (1 + abs(cur)):
                X, cur = cand, s
                alpha = min(1.0, 1.5 * alpha)
                break
            alpha *= 0.5
    return X, cur, evals


def gradient_attack(
    problem: Problem,
    objective: TestObjective,
    starts: list[Attack] | None = None,
    time_budget: float = 5.0,
    restarts: int = 2,
    seed: int = 0,
    min_alpha: float = 1e-7,
    max_iter: int = 200,
    fd_rel: float = 1e-6,
) -> Attack:
    """The best attack found by projected sign-gradient ascent (see the module docstring) from
    ``starts`` (default: the clean data), then ``restarts`` random vertex attacks, within
    ``time_budget`` seconds. Labels and discrete features stay as each start has them. The
    returned attack lies inside the threat model and its value is replayed."""
    data = problem.data
    X0, y0 = data.X_train, np.asarray(data.y_train)
    rng = np.random.default_rng(seed)
    deadline = time.perf_counter() + float(time_budget)
    pool = [(a.X.copy(), np.copy(a.y)) for a in (starts or [])] or [(X0.copy(), y0.copy())]
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    evals = 0
    tried = 0
    while pool or (tried < len(starts or []) + restarts and time.perf_counter() < deadline):
        if pool:
            X, y = pool.pop(0)
        else:
            X, y = problem.threat.sample(X0, y0, rng, data.task, data.n_classes, vertex_prob=1.0)
        tried += 1
        space = _Space(problem, y)
        X = space.project(np.asarray(X, dtype=np.float64), X)
        X, score, n = _ascend(
            _evaluator(problem, objective, y), space, X, deadline, min_alpha, max_iter, fd_rel
        )
        evals += n
        if best is None or score > best[0]:
            best = (score, X.copy(), np.copy(y))
        if time.perf_counter() > deadline:
            break
    assert best is not None
    X, y = project_attack(problem, best[1], best[2])
    bad = threat_violations(problem, X, y)
    if bad:  # never expected: every candidate is projected
        raise RuntimeError(f"gradient attack left the threat model: {bad[0]}")
    value = objective.value(problem, problem.train_poisoned(X, y).final)
    return Attack(X, y, value, "gradient", {"evaluations": evals, "starts": tried})


def worse_for_model(objective: TestObjective, a: float, b: float) -> bool:
    """Whether the value ``a`` is strictly worse for the model than ``b`` (the attacker's
    order: smaller margins, larger MSE or count)."""
    return a < b if objective.sense == "min" else a > b


def reaches(objective: TestObjective, value: float, target: float, tol: float = 1e-6) -> bool:
    """Whether the replayed ``value`` is at least as bad as ``target`` up to ``tol`` (relative)."""
    slack = tol * (1.0 + abs(target))
    return value <= target + slack if objective.sense == "min" else value >= target - slack


def repair_attack(
    problem: Problem,
    objective: TestObjective,
    attack: Attack,
    target: float | None,
    time_budget: float = 2.0,
    seed: int = 0,
    tries: int = 24,
) -> Attack:
    """An attack near ``attack`` that replays to ``target`` (the solver's value) if one is found
    (see the module docstring), else the best one tried; never worse than ``attack``."""
    if target is None or not np.isfinite(target) or reaches(objective, attack.value, target):
        return attack
    rng = np.random.default_rng(seed)
    deadline = time.perf_counter() + float(time_budget)
    space = _Space(problem, attack.y)
    changed = np.any(np.abs(attack.X - problem.data.X_train) > CHANGE_TOL, axis=1)
    movable = space.mask & (changed[:, None] if space.k is not None else True)
    best = attack
    for radius in (1e-7, 1e-6, 1e-5, 1e-4, 1e-3):
        for _ in range(tries):
            if time.perf_counter() > deadline:
                break
            step = radius * space.rad * rng.uniform(-1.0, 1.0, attack.X.shape) * movable
            X, y = project_attack(problem, space.project(attack.X + step, attack.X), attack.y)
            if threat_violations(problem, X, y):
                continue
            v = objective.value(problem, problem.train_poisoned(X, y).final)
            if worse_for_model(objective, v, best.value):
                best = Attack(X, y, v, attack.source, dict(attack.extra))
            if reaches(objective, best.value, target):
                break
        if reaches(objective, best.value, target) or time.perf_counter() > deadline:
            break
    if not reaches(objective, best.value, target) and time.perf_counter() < deadline:
        g = gradient_attack(
            problem, objective, [best], deadline - time.perf_counter(), restarts=0, seed=seed
        )
        if worse_for_model(objective, g.value, best.value):
            best = Attack(g.X, g.y, g.value, attack.source, dict(attack.extra))
    extra = dict(best.extra)
    extra["repaired"] = best is not attack
    extra["replay_reaches_solver"] = bool(reaches(objective, best.value, target))
    return Attack(best.X, best.y, best.value, best.source, extra)
