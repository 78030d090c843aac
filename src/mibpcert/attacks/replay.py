"""Attacks as poisoned datasets, checked against the threat model and replayed.

An :class:`Attack` is a poisoned copy ``(X, y)`` of the training set. :func:`replay` trains on it
with the ordinary trainer and evaluates a :class:`TestObjective` on the trained parameters, so an
attack's value never depends on a solver. :func:`threat_violations` lists every way an attack
breaks the threat model (empty: the attack is valid); :func:`project_attack` removes a solver's
round-off (values a hair outside the box, "changes" of 1e-12).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mibpcert.model.network import forward
from mibpcert.ops import margin
from mibpcert.problem import Problem
from mibpcert.threat.model import CHANGE_TOL


@dataclass(frozen=True)
class TestObjective:
    """What an attack is scored by, on the parameters after training.

    ``kind``: ``"mse"`` (test MSE, maximised), ``"margin"`` (margin of test point ``point`` for
    its true class, minimised; <= 0 means the attack changes its prediction or ties it) or
    ``"misclassified"`` (test points whose true class is not strictly best, maximised).
    """

    __test__ = False  # not a pytest test class

    kind: str
    point: int | None = None

    @property
    def sense(self) -> str:
        return "min" if self.kind == "margin" else "max"

    def margins(self, problem: Problem, theta: np.ndarray, idx: np.ndarray | None = None):
        """Margins min_{j != c} (o_c - o_j) (one output: sign * o) of the test points ``idx``."""
        data = problem.data
        X = data.X_test if idx is None else data.X_test[idx]
        y = data.y_test if idx is None else data.y_test[idx]
        return margin.margins(forward(problem.arch, theta, X), y)

    def value(self, problem: Problem, theta: np.ndarray) -> float:
        """The objective at the trained parameters ``theta``."""
        data = problem.data
        if not np.all(np.isfinite(theta)):
            return np.inf if self.sense == "max" else -np.inf
        if self.kind == "mse":
            Y = np.asarray(data.y_test, dtype=np.float64).reshape(len(data.X_test), -1)
            return float(np.mean((forward(problem.arch, theta, data.X_test) - Y) ** 2))
        if self.kind == "margin":
            return float(self.margins(problem, theta, np.array([self.point]))[0])
        return float(np.sum(self.margins(problem, theta) <= 0.0))

    def search_score(self, problem: Problem, theta: np.ndarray) -> float:
        """A score to maximise in a search: the objective (sign-adjusted), plus for the count a
        small pull of the correctly classified points' margins towards 0."""
        v = self.value(problem, theta)
        if self.kind == "margin":
            return -v
        if self.kind == "misclassified":
            mg = self.margins(problem, theta)
            return v + 1e-3 * float(np.mean(np.maximum(0.0, 1.0 - np.maximum(mg, 0.0))))
        return v

    def accuracy(self, problem: Problem, theta: np.ndarray) -> float:
        """Plain test accuracy of ``theta`` (classification)."""
        out = forward(problem.arch, theta, problem.data.X_test)
        return float(np.mean(margin.predict(out) == np.asarray(problem.data.y_test)))


@dataclass
class Attack:
    """A poisoned training set and what it achieved.

    ``value``: the objective replayed by the ordinary trainer; ``source``: who found it
    (``"heuristic"``, ``"solver"``, ``"clean"``).
    """

    X: np.ndarray
    y: np.ndarray
    value: float
    source: str
    extra: dict = field(default_factory=dict)

    def changes(self, problem: Problem) -> dict:
        """Which training points changed: features and labels."""
        X0, y0 = problem.data.X_train, np.asarray(problem.data.y_train)
        feat = np.flatnonzero(np.any(np.abs(self.X - X0) > CHANGE_TOL, axis=1))
        if problem.data.task == "regression":
            diff = np.abs(np.asarray(self.y, dtype=np.float64) - y0).reshape(len(y0), -1)
            lab = np.flatnonzero(np.any(diff > CHANGE_TOL, axis=1))
        else:
            lab = np.flatnonzero(np.asarray(self.y) != y0)
        return {"features_changed": feat.tolist(), "labels_changed": lab.tolist()}

    def summary(self, problem: Problem) -> dict:
        return {"value": self.value, "source": self.source, **self.changes(problem), **self.extra}

    def save(self, problem: Problem, path: str | Path) -> dict[str, Path]:
        """Write ``<path>.npz`` (the whole poisoned set) and ``<path>.csv`` (changed points:
        index, clean and poisoned features, clean and poisoned label)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ch = self.changes(problem)
        rows = sorted(set(ch["features_changed"]) | set(ch["labels_changed"]))
        npz = path.with_suffix(".npz")
        np.savez_compressed(
            npz,
            X=self.X,
            y=self.y,
            changed=np.asarray(rows, dtype=np.int64),
            value=np.asarray(self.value),
        )
        X0, y0 = problem.data.X_train, np.asarray(problem.data.y_train)
        d = X0.shape[1]
        csv_path = path.with_suffix(".csv")
        with csv_path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                ["index"]
                + [f"x{j}_clean" for j in range(d)]
                + [f"x{j}_poisoned" for j in range(d)]
                + ["label_clean", "label_poisoned"]
            )
            for i in rows:
                w.writerow(
                    [i]
                    + [repr(float(v)) for v in X0[i]]
                    + [repr(float(v)) for v in self.X[i]]
                    + [np.asarray(y0[i]).tolist(), np.asarray(self.y[i]).tolist()]
                )
        return {"npz": npz, "csv": csv_path}


def replay(problem: Problem, X: np.ndarray, y: np.ndarray, objective: TestObjective) -> float:
    """Train on ``(X, y)`` with the ordinary trainer; the objective at the final parameters."""
    theta = problem.train_poisoned(X, y).final
    return objective.value(problem, theta)


def threat_violations(problem: Problem, X: np.ndarray, y: np.ndarray, tol: float = 0.0) -> list:
    """Every way the poisoned set ``(X, y)`` breaks the threat model (empty when valid)."""
    t = problem.threat
    data = problem.data
    X0, y0 = data.X_train, np.asarray(data.y_train)
    out = []
    if X.shape != X0.shape or np.shape(y) != np.shape(y0):
        return [f"shape {X.shape}/{np.shape(y)} differs from the training set's"]
    lo, hi = t.feature_box(X0)
    bad = (X < lo - tol) | (X > hi + tol)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        out.append(f"point {i} feature {j} = {X[i, j]} outside [{lo[i, j]}, {hi[i, j]}]")
    for df in t.discrete:
        j = int(df.feature)
        for i in np.flatnonzero(np.abs(X[:, j] - X0[:, j]) > CHANGE_TOL):
            if not np.any(np.abs(df.allowed(X0[i, j]) - X[i, j]) <= tol):
                out.append(f"point {i} discrete feature {j} = {X[i, j]} is not allowed")
    feat = set(np.flatnonzero(np.any(np.abs(X - X0) > CHANGE_TOL + tol, axis=1)).tolist())
    if t.k is not None and len(feat) > t.k:
        out.append(f"{len(feat)} points changed, k = {t.k}")
    if data.task == "regression":
        yp = np.asarray(y, dtype=np.float64)
        diff = np.abs(yp - y0).reshape(len(y0), -1)
        lab = set(np.flatnonzero(np.any(diff > CHANGE_TOL + tol, axis=1)).tolist())
        # the target box, as for the features: fl(y0 + label_eps) is in the threat set even
        # where fl(fl(y0 + label_eps) - y0) rounds above label_eps
        ylo, yhi = t.target_box(y0)
        out_of_box = (yp < ylo - tol) | (yp > yhi + tol)
        if out_of_box.any():
            i = int(np.argwhere(out_of_box.reshape(len(y0), -1))[0][0])
            out.append(
                f"point {i}: target moved by {diff[i].max()} > label_eps = {t.label_eps} "
                f"(outside [{ylo.reshape(len(y0), -1)[i]}, {yhi.reshape(len(y0), -1)[i]}])"
            )
    else:
        lab = set(np.flatnonzero(np.asarray(y) != y0).tolist())
        mode = t.label_mode
        for i in lab:
            if mode == "flip" and y[i] != 1 - y0[i]:
                out.append(f"point {i}: label {y[i]} is not the flip of {y0[i]}")
            elif isinstance(mode, int) and y[i] != mode:
                out.append(f"point {i}: label {y[i]} is not the target class {mode}")
    if len(lab) > t.label_k:
        out.append(f"{len(lab)} labels changed, label_k = {t.label_k}")
    if t.paired:
        scope = set(t.scope(len(X0)).tolist())
        if lab - scope:
            out.append("paired budget: a label changed outside the points in scope")
        if len(feat | lab) > max(int(t.k or 0), int(t.label_k)):
            out.append("paired budget: too many points changed")
    return out


def project_attack(problem: Problem, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove a solver's round-off from an attack: clip to the feature box, snap discrete
    features to their nearest allowed value, undo changes smaller than :data:`CHANGE_TOL`, round
    class labels, and keep every budget to the last bit: when more points (or targets) changed
    than ``k`` (``label_k``, or the paired budget) allows -- a solver's round-off can move extra
    rows by ~1e-9 --, only the largest changes are kept and the others reset to the clean data.
    The result passes :func:`threat_violations` with no tolerance."""
    t = problem.threat
    X0, y0 = problem.data.X_train, np.asarray(problem.data.y_train)
    lo, hi = t.feature_box(X0)
    X = np.clip(np.asarray(X, dtype=np.float64), lo, hi)
    X = np.where(np.abs(X - X0) <= CHANGE_TOL, X0, X)
    for df in t.discrete:
        j = int(df.feature)
        for i in range(len(X)):
            vals = df.allowed(X0[i, j])
            X[i, j] = vals[np.argmin(np.abs(vals - X[i, j]))]
    if problem.data.task == "regression":
        y = np.asarray(y, dtype=np.float64)
        ylo, yhi = t.target_box(y0)
        y = np.clip(y, ylo, yhi)
        y = np.where(np.abs(y - y0) <= CHANGE_TOL, y0, y)
    else:
        y = np.rint(np.asarray(y, dtype=np.float64)).astype(y0.dtype)
    return _within_budgets(problem, X, y)


def _change_sizes(X: np.ndarray, X0: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per row, the largest feature change relative to its box radius (raw where unbounded)."""
    rad = np.where(np.isfinite(hi - lo) & (hi > lo), 0.5 * (hi - lo), 1.0)
    return np.max(np.abs(X - X0) / rad, axis=1, initial=0.0)


def _within_budgets(problem: Problem, X: np.ndarray, y: np.ndarray):
    t = problem.threat
    X0, y0 = problem.data.X_train, np.asarray(problem.data.y_train)
    lo, hi = t.feature_box(X0)
    size = _change_sizes(X, X0, lo, hi)
    feat = np.any(np.abs(X - X0) > CHANGE_TOL, axis=1)
    if t.k is not None and feat.sum() > t.k:
        rows = np.flatnonzero(feat)
        reset = rows[np.argsort(-size[rows], kind="stable")[int(t.k) :]]
        X[reset] = X0[reset]
        feat[reset] = False
    if problem.data.task == "regression":
        dy = np.abs(np.asarray(y, dtype=np.float64) - y0).reshape(len(y0), -1).max(axis=1)
        lab = dy > CHANGE_TOL
        if lab.sum() > t.label_k:
            rows = np.flatnonzero(lab)
            reset = rows[np.argsort(-dy[rows], kind="stable")[int(t.label_k) :]]
            y = np.array(y, dtype=np.float64)
            y[reset] = y0[reset]
            lab[reset] = False
    else:
        lab = np.asarray(y) != y0
    if t.paired:
        room = max(int(t.k or 0), int(t.label_k))
        extra = int((feat | lab).sum()) - room
        if extra > 0:  # reset the smallest feature-only changes
            rows = np.flatnonzero(feat & ~lab)
            reset = rows[np.argsort(size[rows], kind="stable")[:extra]]
            X[reset] = X0[reset]
    return X, y
