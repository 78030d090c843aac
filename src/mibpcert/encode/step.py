"""One training step as a mixed-integer bilinear program (MIBP-Cert).

Variables: the parameters theta in the current box (shared by every sample: the coupling interval
arithmetic loses), the poisoned inputs/labels allowed by the threat model (with selection binaries
for k-of-n budgets), pre-activations, ReLU binaries, the loss gradient, the backward pass, and the
batch-mean gradient G. The update theta' = theta - lr G is linear, so min/max of theta'_j is a
linear objective over one feasible set (2m objectives per step).

Encodings (see :mod:`mibpcert.encode.builder` for the product rules):

* inputs: continuous features within the l-inf ball (clipped to the feature bounds); with a
  k-of-n budget a selection binary s_i bounds |x'_i - x_i| <= r s_i and sum_i s_i <= k;
  discrete features choose one allowed value with binaries;
* ReLU by big-M with interval pre-activation bounds;
* hinge: s = 1 iff y o <= 1 (either at the kink), dloss/do = -y s; label flips y' = y (1 - 2 f)
  with flip binaries f, sum f <= label_k (paired budgets share a change binary);
* MSE: dloss/do = 2 (o - t) / q with t fixed, flipped (+-1 targets) or shifted by <= label_eps;
* BCE: p = sigmoid(o) relaxed soundly by its value range and slope bounds on [L, U]
  (min/max of sigmoid' on the interval) -- a polytope that contains the graph;
* CE: softmax bounds per class (interval) and sum_k p_k = 1 -- sound, loose;
* backward pass: dL/da = W^T delta (bilinear), delta = mask * dL/da (exact), weight gradients
  delta a^T (bilinear, exact when one factor is binary or constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.bounds import ops
from mibpcert.bounds.interval import UNIT, Interval
from mibpcert.encode.builder import Builder, Expr
from mibpcert.encode.formulation import Formulation, LinearObjective
from mibpcert.encode.network import forward_exprs, parameter_exprs
from mibpcert.errors import UnsupportedError
from mibpcert.problem import Problem


@dataclass
class StepEncoding:
    """The formulation of one step and how to read its objectives."""

    formulation: Formulation
    theta_vars: np.ndarray  # (m,) variable index of each parameter
    grad_vars: np.ndarray  # (m,) variable index of each batch-mean gradient coordinate
    lr: float
    names: list[str]
    batch: np.ndarray  # training indices of the step's batch
    inputs: list[list[Expr]]  # poisoned inputs x'_i of the batch, per feature
    flips: dict[int, Expr]  # label-change binaries by training index

    def attack(self, x: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The poisoned training set encoded by the variable values ``x`` (e.g. an incumbent):
        the batch's inputs and labels replaced, everything else as in ``(X, y)``."""
        X, y = X.copy(), y.copy()
        for row, i in zip(self.inputs, self.batch, strict=True):
            X[i] = [e.value(x) for e in row]
        for i, f in self.flips.items():
            if f.value(x) > 0.5:
                y[i] = 1 - y[i]
        return X, y

    def objective(self, j: int, sense: str) -> LinearObjective:
        """``theta'_j = theta_j - lr * G_j``, minimised or maximised."""
        return LinearObjective(
            idx=np.array([self.theta_vars[j], self.grad_vars[j]]),
            coef=np.array([1.0, -self.lr]),
            constant=0.0,
            sense=sense,  # type: ignore[arg-type]
            name=f"{sense} {self.names[j]}",
        )

    def objectives(self) -> list[LinearObjective]:
        """All 2m objectives: min and max of every updated parameter."""
        m = len(self.theta_vars)
        return [self.objective(j, s) for j in range(m) for s in ("min", "max")]


def check_supported(problem: Problem) -> list[str]:
    """Raise :class:`UnsupportedError` for what the per-step encoding cannot express."""
    t = problem.threat
    notes = []
    if problem.recipe.clip is not None:
        raise UnsupportedError(
            "method 'mibp' does not encode per-sample gradient clipping yet; use --method agt "
            "or interval, or train without --clip."
        )
    if np.isinf(t.eps) and t.feature_bounds is None:
        raise UnsupportedError(
            "method 'mibp' needs bounded inputs: eps = inf requires feature_bounds."
        )
    if problem.recipe.loss == "bce":
        notes.append("BCE gradient: sigmoid relaxed by its range and slope bounds (sound, looser).")
    if problem.recipe.loss == "ce":
        notes.append(
            "CE gradient: softmax relaxed to its interval bounds and sum-to-one (sound, looser)."
        )
    if problem.data.task == "classification" and t.label_k > 0 and problem.data.n_classes != 2:
        if problem.recipe.loss != "ce":
            raise UnsupportedError("multi-class label changes need loss 'ce'.")
    return notes


def _input_exprs(
    b: Builder, problem: Problem, idx: np.ndarray
) -> tuple[list[list[Expr]], dict[int, Expr]]:
    """Poisoned inputs x'_i of the batch and the per-point feature-change binaries."""
    t = problem.threat
    X = problem.data.X_train
    n, d = X.shape
    in_scope = set(t.scope(n).tolist()) if t.perturbs_features else set()
    batch_scope = [int(i) for i in idx if int(i) in in_scope]
    budget = None if t.k is None else int(t.k)
    selective = budget is not None and budget < len(batch_scope)
    lo_box, hi_box = t.feature_box(X)
    disc = {int(df.feature): df for df in t.discrete}
    select: dict[int, Expr] = {}
    rows: list[list[Expr]] = []
    for i in idx:
        i = int(i)
        if i not in in_scope:
            rows.append([b.const(v) for v in X[i]])
            continue
        s = b.var(0.0, 1.0, f"sel{i}", binary=True) if (selective or t.paired) else None
        if s is not None:
            select[i] = s
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
        rows.append(xs)
    if selective and select:
        b.constrain(b.add(*select.values()), hi=float(budget))
    return rows, select


def _label_changes(
    b: Builder, problem: Problem, idx: np.ndarray, select: dict[int, Expr]
) -> dict[int, Expr]:
    """Binary 'label changed' indicator per batch point (empty when labels are fixed)."""
    t = problem.threat
    if t.label_k == 0 or problem.data.task == "regression":
        return {}
    y = problem.data.y_train
    scope = set(t.scope(problem.data.n_train).tolist())
    flips: dict[int, Expr] = {}
    for i in idx:
        i = int(i)
        if isinstance(t.label_mode, int) and y[i] == t.label_mode:
            continue  # a targeted change cannot change a point already of the target class
        if t.paired and i not in scope:
            continue  # paired budgets change labels only on points whose features may change
        flips[i] = b.var(0.0, 1.0, f"flip{i}", binary=True)
    if len(flips) > t.label_k:
        b.constrain(b.add(*flips.values()), hi=float(t.label_k))
    if t.paired:
        budget = max(int(t.k or 0), int(t.label_k))
        changed = []
        for i in idx:
            i = int(i)
            parts = [e for e in (select.get(i), flips.get(i)) if e is not None]
            if not parts:
                continue
            c = b.var(0.0, 1.0, f"changed{i}", binary=True)
            for e in parts:
                b.constrain(b.affine([(1.0, e), (-1.0, c)]), hi=0.0)
            changed.append(c)
        if len(changed) > budget:
            b.constrain(b.add(*changed), hi=float(budget))
    return flips


def _regression_targets(b: Builder, problem: Problem, idx: np.ndarray) -> list[list[Expr]]:
    t = problem.threat
    Y = problem.data.y_train.reshape(problem.data.n_train, -1)
    out = []
    shifts = []
    for i in idx:
        i = int(i)
        if t.label_k == 0:
            out.append([b.const(v) for v in Y[i]])
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
            shifts.append(u)
        out.append(row)
    if shifts:
        b.constrain(b.add(*shifts), hi=float(t.label_k))
    return out


def _sigmoid_relaxation(b: Builder, o: Expr, name: str) -> Expr:
    """p = sigmoid(o) over o in [L, U]: range and slope bounds (padded for libm error)."""
    L, U = o.lo, o.hi
    s = ops.sigmoid(Interval(np.array([L, U]), np.array([L, U])))
    p = b.var(float(s.lo[0]), float(s.hi[1]), name)
    if not (np.isfinite(L) and np.isfinite(U)) or U - L <= 0:
        return p

    def dsig(v: float) -> float:
        e = 1.0 / (1.0 + np.exp(-v))
        return e * (1.0 - e)

    k_max = 0.25 if L <= 0 <= U else max(dsig(L), dsig(U))
    k_min = min(dsig(L), dsig(U))
    k_max *= 1.0 + 16 * UNIT
    k_min *= 1.0 - 16 * UNIT
    pL_lo, pU_hi = float(s.lo[0]), float(s.hi[1])
    pL_hi, pU_lo = float(s.hi[0]), float(s.lo[1])

    def pad(*terms: float) -> float:  # rounding of the right-hand sides below
        return 1e-12 + 8 * UNIT * sum(abs(t) for t in terms)

    # p <= sigma(L) + k_max (o - L);  p >= sigma(U) - k_max (U - o)
    b.constrain(b.affine([(1.0, p), (-k_max, o)]), hi=pL_hi - k_max * L + pad(pL_hi, k_max * L))
    b.constrain(b.affine([(1.0, p), (-k_max, o)]), lo=pU_lo - k_max * U - pad(pU_lo, k_max * U))
    # p >= sigma(L) + k_min (o - L);  p <= sigma(U) - k_min (U - o)
    b.constrain(b.affine([(1.0, p), (-k_min, o)]), lo=pL_lo - k_min * L - pad(pL_lo, k_min * L))
    b.constrain(b.affine([(1.0, p), (-k_min, o)]), hi=pU_hi - k_min * U + pad(pU_hi, k_min * U))
    return p


def _output_gradient(
    b: Builder,
    problem: Problem,
    i: int,
    out: list[Expr],
    flip: Expr | None,
    target: list[Expr] | None,
) -> list[Expr]:
    """dloss/do for sample i (unscaled by the batch size)."""
    loss = problem.recipe.loss
    data = problem.data
    if data.task == "regression":
        q = len(out)
        return [b.affine([(2.0 / q, o), (-2.0 / q, t)]) for o, t in zip(out, target, strict=True)]
    c = int(data.y_train[i])
    y = 2.0 * c - 1.0
    if loss in ("hinge", "mse"):
        o = out[0]
        # label sign y' = y (1 - 2 f)
        ysig = b.const(y) if flip is None else b.affine([(-2.0 * y, flip)], y)
        if loss == "mse":
            return [b.affine([(2.0, o), (-2.0, ysig)])]
        margin = b.mul(ysig, o, f"m{i}")
        s = b.indicator_le(margin, 1.0, f"hinge{i}")
        return [b.scale(b.mul(ysig, s, f"ys{i}"), -1.0)]
    if loss == "bce":
        p = _sigmoid_relaxation(b, out[0], f"sig{i}")
        label = b.const(float(c)) if flip is None else b.affine([(1.0 - 2.0 * c, flip)], float(c))
        return [b.affine([(1.0, p), (-1.0, label)])]
    # cross-entropy
    C = len(out)
    sm = ops.softmax(Interval(np.array([[e.lo for e in out]]), np.array([[e.hi for e in out]])))
    ps = [b.var(float(sm.lo[0, k]), float(sm.hi[0, k]), f"p{i}_{k}") for k in range(C)]
    b.constrain(b.add(*ps), 1.0 - 1e-12, 1.0 + 1e-12)
    if flip is None:
        onehot = [b.const(1.0 if k == c else 0.0) for k in range(C)]
    else:
        mode = problem.threat.label_mode
        allowed = list(range(C)) if mode == "any" else ([1 - c] if mode == "flip" else [int(mode)])
        picks = {k: b.var(0.0, 1.0, f"lab{i}_{k}", binary=True) for k in allowed if k != c}
        # e_c = 1 - flip ; sum of other picks = flip
        b.constrain(b.affine([(1.0, e) for e in picks.values()] + [(-1.0, flip)]), 0.0, 0.0)
        onehot = [
            b.affine([(-1.0, flip)], 1.0) if k == c else picks.get(k, b.const(0.0))
            for k in range(C)
        ]
    return [b.affine([(1.0, p), (-1.0, e)]) for p, e in zip(ps, onehot, strict=True)]


def encode_step(
    problem: Problem, step: int, box: Interval, batch: np.ndarray | None = None
) -> StepEncoding:
    """The MIBP of training step ``step`` over parameters in ``box``.

    ``batch``: the step's training indices when the caller already holds the schedule (else it
    is recomputed from the recipe).
    """
    check_supported(problem)
    arch = problem.arch
    idx = problem.batches()[step] if batch is None else batch
    lr = problem.recipe.lr_at(step)
    b = Builder()
    names = arch.param_names()
    theta, layers = parameter_exprs(b, arch, box)
    slices = arch.slices()
    inputs, select = _input_exprs(b, problem, idx)
    flips = _label_changes(b, problem, idx, select)
    targets = _regression_targets(b, problem, idx) if problem.data.task == "regression" else None
    grad_terms: list[list[Expr]] = [[] for _ in range(arch.n_params)]
    for n_i, i in enumerate(idx):
        i = int(i)
        acts, masks = forward_exprs(b, layers, inputs[n_i], str(i))
        delta = _output_gradient(
            b, problem, i, acts[-1], flips.get(i), None if targets is None else targets[n_i]
        )
        for L in range(len(layers) - 1, -1, -1):
            W, _ = layers[L]
            ws, bs = slices[L]
            a_prev = acts[L]
            delta = [
                dl if dl.is_const or b.is_binary_combo(dl) else b.materialize(dl) for dl in delta
            ]
            for r, dl in enumerate(delta):
                for c, ap in enumerate(a_prev):
                    grad_terms[ws.start + r * len(a_prev) + c].append(
                        b.mul(dl, ap, f"gW{i}_{L}_{r}_{c}")
                    )
                grad_terms[bs.start + r].append(dl)
            if L > 0:
                back = [
                    b.affine(
                        [
                            (1.0, b.mul(W[r][c], delta[r], f"Wd{i}_{L}_{r}_{c}"))
                            for r in range(len(delta))
                        ]
                    )
                    for c in range(len(a_prev))
                ]
                delta = [
                    b.mul(masks[L - 1][c], back[c], f"d{i}_{L}_{c}") for c in range(len(a_prev))
                ]
    B = float(len(idx))
    grads = [
        b.materialize(b.affine([(1.0 / B, e) for e in terms]), f"G_{names[j]}")
        for j, terms in enumerate(grad_terms)
    ]
    theta_vars = np.array([t.idx[0] for t in theta])
    grad_vars = []
    for gexpr in grads:
        if gexpr.is_const:  # a constant gradient (e.g. no sample touches it): pin a variable
            gexpr = b.var(gexpr.const, gexpr.const)
        grad_vars.append(gexpr.idx[0])
    return StepEncoding(
        b.f, theta_vars, np.array(grad_vars), lr, names, np.asarray(idx), inputs, flips
    )
