"""Linearised poisoning attacks for continuous feature threats: one replay per target.

Each target is a scalar function of the trained trajectory: a parameter after some step, or the
margin of a test point. Its **secant sensitivity** to feature ``j`` of training point ``i`` is

    s_ij = (F(X with x_ij at its box's upper end) - F(X with x_ij at its lower end)) / (hi - lo),

one pair of ordinary training runs per feature in scope, shared by all targets. The attack for a
target moves every feature to the end of its box that its sensitivity points to (towards larger F
to maximise, smaller to minimise); under a k-of-n budget only the k points with the largest
predicted gain move. The attack is then *replayed* with the ordinary trainer, so what it reaches
is a real value: an inner bound of the reachable set that certificates can be compared with.

Only continuous feature threats (l-inf balls on all, a subset, or k of the points, clipped to the
feature bounds) are supported; label changes and discrete features raise
:class:`~mibpcert.errors.UnsupportedError`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mibpcert.errors import UnsupportedError
from mibpcert.model.trainer import Trajectory
from mibpcert.problem import Problem

Targets = Callable[[Trajectory], np.ndarray]
"""Maps a training trajectory to the vector of target values."""


def _check(problem: Problem) -> None:
    t = problem.threat
    if t.perturbs_labels or t.discrete:
        raise UnsupportedError(
            "linearised attacks cover continuous feature threats only (no label changes, no "
            "discrete features); use mibpcert.attacks.heuristic.coordinate_search instead."
        )


def feature_sensitivities(problem: Problem, targets: Targets) -> tuple[np.ndarray, np.ndarray]:
    """``(F0, S)``: the targets on the clean data, shape ``(m,)``, and their secant sensitivities
    ``S[q, i, j]`` to feature ``j`` of training point ``i``, shape ``(m, n, d)`` (0 where the
    feature cannot move). Costs two training runs per movable feature."""
    _check(problem)
    data = problem.data
    X0, y0 = data.X_train, np.asarray(data.y_train)
    f0 = np.asarray(targets(problem.train_poisoned(X0, y0)), dtype=np.float64)
    n, d = X0.shape
    S = np.zeros((f0.size, n, d))
    if not problem.threat.perturbs_features:
        return f0, S
    lo, hi = problem.threat.feature_box(X0)
    for i in problem.threat.scope(n):
        for j in range(d):
            width = hi[i, j] - lo[i, j]
            if not width > 0:
                continue
            X = X0.copy()
            X[i, j] = hi[i, j]
            up = np.asarray(targets(problem.train_poisoned(X, y0)), dtype=np.float64)
            X[i, j] = lo[i, j]
            down = np.asarray(targets(problem.train_poisoned(X, y0)), dtype=np.float64)
            S[:, i, j] = (up - down) / width
    return f0, S


def linearized_attack(problem: Problem, sensitivity: np.ndarray, sense: str) -> np.ndarray:
    """The poisoned features that the linearisation ``sensitivity`` (shape ``(n, d)``) predicts
    to maximise (``sense="max"``) or minimise (``"min"``) the target; inside the threat model."""
    if sense not in ("min", "max"):
        raise ValueError(f"sense must be 'min' or 'max', got {sense!r}")
    _check(problem)
    X0 = problem.data.X_train
    s = np.asarray(sensitivity, dtype=np.float64) * (1.0 if sense == "max" else -1.0)
    if s.shape != X0.shape:
        raise ValueError(f"sensitivity has shape {s.shape}, the training set {X0.shape}")
    lo, hi = problem.threat.feature_box(X0)
    X = np.where(s > 0, hi, np.where(s < 0, lo, X0))
    k = problem.threat.k
    if k is not None:
        gain = np.sum(np.maximum(s * (hi - X0), s * (lo - X0)), axis=1)
        keep = np.zeros(len(X0), dtype=bool)
        order = np.argsort(-gain, kind="stable")[:k]
        keep[order[gain[order] > 0]] = True
        X = np.where(keep[:, None], X, X0)
    return X


def attack_targets(
    problem: Problem, targets: Targets, senses: list[str] | str
) -> tuple[np.ndarray, np.ndarray]:
    """``(clean, attained)``: for every target, its clean value and the value its linearised
    attack reaches when replayed (``senses``: one per target, or one for all). An attack that does
    worse than the clean data leaves the clean value (the clean data is a valid attack too)."""
    f0, S = feature_sensitivities(problem, targets)
    senses = [senses] * f0.size if isinstance(senses, str) else list(senses)
    if len(senses) != f0.size:
        raise ValueError(f"{len(senses)} senses for {f0.size} targets")
    y0 = np.asarray(problem.data.y_train)
    out = f0.copy()
    for q, sense in enumerate(senses):
        X = linearized_attack(problem, S[q], sense)
        v = float(np.asarray(targets(problem.train_poisoned(X, y0)))[q])
        out[q] = max(v, f0[q]) if sense == "max" else min(v, f0[q])
    return f0, out
