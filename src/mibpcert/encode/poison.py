"""The attacker's choices as program variables: poisoned inputs, labels and targets.

One :class:`PoisonVars` describes every training point an encoding touches. The per-step program
(MIBP-Cert) builds it for the step's batch; the whole-training program (exact) builds it once for
the training set and reuses the same variables in every step, so the attack is one poisoned
dataset, as in the ordinary trainer.

Encodings:

* continuous features: ``x'_ij`` within the l-inf ball (clipped to the feature bounds); with a
  k-of-n budget a selection binary ``s_i`` bounds ``|x'_i - x_i| <= r s_i`` and
  ``sum_i s_i <= k``;
* discrete features: one binary per allowed value, exactly one chosen (a changed value needs the
  point selected);
* binary labels: flip binaries ``f_i`` (label sign ``y' = y (1 - 2 f)``), ``sum f <= label_k``;
* multi-class labels: per changeable point one binary per allowed new class plus ``f_i`` (their
  sum), so that the one-hot label is affine in binaries;
* paired budgets: a "changed" binary per point dominates its selection and label binaries;
* regression targets: ``t_i`` within ``label_eps`` of the clean target, with a shift binary when
  fewer than all points may change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mibpcert.data.datasets import Dataset
from mibpcert.domains.builder import Builder, Expr
from mibpcert.ops.targets import PointLabel
from mibpcert.problem import Problem
from mibpcert.threat.model import CHANGE_TOL


@dataclass
class PoisonVars:
    """Variables of the poisoned training points ``indices`` (see the module docstring)."""

    indices: np.ndarray
    inputs: dict[int, list[Expr]]  # x'_i per feature
    select: dict[int, Expr] = field(default_factory=dict)  # feature-change binaries
    flips: dict[int, Expr] = field(default_factory=dict)  # label-change binaries
    onehot: dict[int, list[Expr]] = field(default_factory=dict)  # multi-class labels
    targets: dict[int, list[Expr]] = field(default_factory=dict)  # regression targets
    shifts: dict[int, Expr] = field(default_factory=dict)  # regression shift binaries
    picks: dict[tuple[int, int], list[tuple[float, Expr]]] = field(default_factory=dict)
    changed: dict[int, Expr] = field(default_factory=dict)  # paired budgets

    def label_onehot(self, b: Builder, i: int, c: int, C: int) -> list[Expr]:
        """The (possibly poisoned) one-hot label of point ``i`` with clean class ``c`` of ``C``
        classes, affine in binaries."""
        if i in self.onehot:
            return self.onehot[i]
        f = self.flips.get(i)
        if f is None:
            return [b.const(1.0 if k == c else 0.0) for k in range(C)]
        # two classes: the label flips to the other one
        return [b.affine([(-1.0, f)], 1.0) if k == c else b.affine([(1.0, f)]) for k in range(C)]

    def point_label(self, b: Builder, i: int, data: Dataset, n_outputs: int) -> PointLabel:
        """The (possibly poisoned) label of training point ``i`` for a model with ``n_outputs``
        outputs: regression targets, a flip of a binary label, or a one-hot label."""
        if data.task == "regression":
            return PointLabel(targets=self.targets[i])
        c = int(data.y_train[i])
        if n_outputs == 1:
            return PointLabel(clean=c, flip=self.flips.get(i))
        return PointLabel(clean=c, onehot=self.label_onehot(b, i, c, int(data.n_classes)))

    def attack(self, x: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The poisoned training set encoded by the variable values ``x`` (e.g. an incumbent):
        the covered points' inputs and labels replaced, everything else as in ``(X, y)``."""
        X, y = np.array(X, dtype=np.float64, copy=True), np.array(y, copy=True)
        for i, row in self.inputs.items():
            X[i] = [e.value(x) for e in row]
        for i, f in self.flips.items():
            if f.value(x) > 0.5:
                if i in self.onehot:
                    y[i] = int(np.argmax([e.value(x) for e in self.onehot[i]]))
                else:
                    y[i] = 1 - y[i]
        for i, row in self.targets.items():
            vals = [e.value(x) for e in row]
            if y.ndim == 1:
                y[i] = vals[0]
            else:
                y[i] = vals
        return X, y

    def assignment(self, X0: np.ndarray, y0: np.ndarray, X: np.ndarray, y: np.ndarray) -> dict:
        """Values of the poisoning variables that encode the attack ``(X, y)`` of the clean set
        ``(X0, y0)`` (a partial start solution for a solver)."""
        out: dict[int, float] = {}

        def put(e: Expr, v: float) -> None:
            if e.is_var:
                out[e.idx[0]] = float(v)

        for i, row in self.inputs.items():
            for j, e in enumerate(row):
                if (i, j) in self.picks:
                    for v, p in self.picks[(i, j)]:
                        put(p, 1.0 if v == X[i, j] else 0.0)
                else:
                    put(e, X[i, j])
            if i in self.select:
                put(self.select[i], float(np.any(np.abs(X[i] - X0[i]) > CHANGE_TOL)))
        y0a, ya = np.asarray(y0), np.asarray(y)
        for i, f in self.flips.items():
            changed = bool(ya[i] != y0a[i])
            put(f, float(changed))
            if i in self.onehot:
                for k, e in enumerate(self.onehot[i]):
                    if not e.is_const and len(e.idx) == 1 and e.coef[0] == 1.0:
                        put(e, float(changed and int(ya[i]) == k))
        for i, row in self.targets.items():
            vals = np.atleast_1d(ya[i]).astype(np.float64)
            for e, v in zip(row, vals, strict=True):
                put(e, v)
            if i in self.shifts:
                clean = np.atleast_1d(y0a[i]).astype(np.float64)
                put(self.shifts[i], float(np.any(np.abs(vals - clean) > CHANGE_TOL)))
        for i, c in self.changed.items():
            feat = i in self.select and out.get(self.select[i].idx[0], 0.0) > 0.5
            lab = i in self.flips and bool(ya[i] != y0a[i])
            put(c, float(feat or lab))
        return out


def poison_vars(b: Builder, problem: Problem, indices: np.ndarray) -> PoisonVars:
    """Variables for the training points ``indices`` under the problem's threat model; the
    budgets (k, label_k) count over these points only."""
    idx = np.asarray(indices, dtype=np.int64)
    pv = PoisonVars(idx, {})
    _inputs(b, problem, idx, pv)
    if problem.data.task == "regression":
        _targets(b, problem, idx, pv)
    else:
        _labels(b, problem, idx, pv)
    return pv


def clean_points(b: Builder, problem: Problem, labels: bool = False) -> PoisonVars:
    """The clean training set as constants (no poisoning variables): what the loss gradient of an
    unpoisoned point reads. ``labels=True``: the inputs stay constant, the labels (or regression
    targets) are the threat's label variables with their budget, as in :func:`poison_vars`
    (the slot form's points that no slot holds)."""
    data = problem.data
    n = data.n_train
    idx = np.arange(n)
    pv = PoisonVars(idx, {i: [b.const(v) for v in data.X_train[i]] for i in range(n)})
    if data.task == "regression":
        if labels:
            _targets(b, problem, idx, pv)
        else:
            Y = data.y_train.reshape(n, -1)
            pv.targets = {i: [b.const(v) for v in Y[i]] for i in range(n)}
    elif labels:
        _labels(b, problem, idx, pv)
    return pv


def _inputs(b: Builder, problem: Problem, idx: np.ndarray, pv: PoisonVars) -> None:
    t = problem.threat
    X = problem.data.X_train
    n, d = X.shape
    in_scope = set(t.scope(n).tolist()) if t.perturbs_features else set()
    batch_scope = [int(i) for i in idx if int(i) in in_scope]
    budget = None if t.k is None else int(t.k)
    selective = budget is not None and budget < len(batch_scope)
    box = problem.input_box()
    lo_box, hi_box = box.lo, box.hi
    # with a frozen prefix the discrete features are raw ones, inside the features' box
    disc = {} if problem.prefix is not None else {int(df.feature): df for df in t.discrete}
    for i in idx:
        i = int(i)
        if i not in in_scope:
            pv.inputs[i] = [b.const(v) for v in X[i]]
            continue
        s = b.var(0.0, 1.0, f"sel{i}", binary=True) if (selective or t.paired) else None
        if s is not None:
            pv.select[i] = s
        xs = []
        for j in range(d):
            x0 = float(X[i, j])
            if j in disc:
                vals = disc[j].allowed(x0)
                if len(vals) == 1:
                    xs.append(b.const(x0))
                    continue
                picks = [b.var(0.0, 1.0, f"x{i}_{j}={v:g}", binary=True) for v in vals]
                b.constrain(b.add(*picks), 1.0, 1.0)
                if s is not None:  # a changed value needs the point selected
                    others = [p for p, v in zip(picks, vals, strict=True) if v != x0]
                    b.constrain(b.affine([(1.0, p) for p in others] + [(-1.0, s)]), hi=0.0)
                pv.picks[(i, j)] = [(float(v), p) for v, p in zip(vals, picks, strict=True)]
                xs.append(b.affine([(float(v), p) for p, v in zip(picks, vals, strict=True)]))
                continue
            lo, hi = float(lo_box[i, j]), float(hi_box[i, j])
            if lo == hi:
                xs.append(b.const(x0))
                continue
            xv = b.var(lo, hi, f"x{i}_{j}")
            if s is not None:  # x' - x0 <= (hi - x0) s ;  x0 - x' <= (x0 - lo) s
                b.constrain(b.affine([(1.0, xv), (-(hi - x0), s)]), hi=x0)
                b.constrain(b.affine([(1.0, xv), ((x0 - lo), s)]), lo=x0)
            xs.append(xv)
        pv.inputs[i] = xs
    if selective and pv.select:
        b.constrain(b.add(*pv.select.values()), hi=float(budget))


def _labels(b: Builder, problem: Problem, idx: np.ndarray, pv: PoisonVars) -> None:
    """Label-change binaries (and multi-class one-hot labels) of the covered points."""
    t = problem.threat
    if t.label_k == 0:
        return
    y = problem.data.y_train
    C = int(problem.data.n_classes)
    scope = set(t.scope(problem.data.n_train).tolist())
    for i in idx:
        i = int(i)
        if isinstance(t.label_mode, int) and y[i] == t.label_mode:
            continue  # a targeted change cannot change a point already of the target class
        if t.paired and i not in scope:
            continue  # paired budgets change labels only on points whose features may change
        f = b.var(0.0, 1.0, f"flip{i}", binary=True)
        pv.flips[i] = f
        if C > 2:
            c = int(y[i])
            mode = t.label_mode
            allowed = list(range(C)) if mode == "any" else [int(mode)]
            picks = {k: b.var(0.0, 1.0, f"lab{i}_{k}", binary=True) for k in allowed if k != c}
            # the new class is one of the picks exactly when the label changes
            b.constrain(b.affine([(1.0, e) for e in picks.values()] + [(-1.0, f)]), 0.0, 0.0)
            pv.onehot[i] = [
                b.affine([(-1.0, f)], 1.0) if k == c else picks.get(k, b.const(0.0))
                for k in range(C)
            ]
    if len(pv.flips) > t.label_k:
        b.constrain(b.add(*pv.flips.values()), hi=float(t.label_k))
    if t.paired:
        budget = max(int(t.k or 0), int(t.label_k))
        for i in idx:
            i = int(i)
            parts = [e for e in (pv.select.get(i), pv.flips.get(i)) if e is not None]
            if not parts:
                continue
            c = b.var(0.0, 1.0, f"changed{i}", binary=True)
            for e in parts:
                b.constrain(b.affine([(1.0, e), (-1.0, c)]), hi=0.0)
            pv.changed[i] = c
        if len(pv.changed) > budget:
            b.constrain(b.add(*pv.changed.values()), hi=float(budget))


def _targets(b: Builder, problem: Problem, idx: np.ndarray, pv: PoisonVars) -> None:
    """Regression targets (constants, or variables within label_eps under a label budget)."""
    t = problem.threat
    Y = problem.data.y_train.reshape(problem.data.n_train, -1)
    for i in idx:
        i = int(i)
        if t.label_k == 0:
            pv.targets[i] = [b.const(v) for v in Y[i]]
            continue
        u = b.var(0.0, 1.0, f"shift{i}", binary=True) if t.label_k < len(idx) else None
        row = []
        for v in Y[i]:
            tv = b.var(float(v) - t.label_eps, float(v) + t.label_eps, f"t{i}")
            if u is not None:
                b.constrain(b.affine([(1.0, tv), (-t.label_eps, u)]), hi=float(v))
                b.constrain(b.affine([(1.0, tv), (t.label_eps, u)]), lo=float(v))
            row.append(tv)
        if u is not None:
            pv.shifts[i] = u
        pv.targets[i] = row
    if pv.shifts:
        b.constrain(b.add(*pv.shifts.values()), hi=float(t.label_k))
