"""Poisoning, every training step and a test objective as one mixed-integer program (exact).

Variables: the poisoning (:mod:`mibpcert.encode.poison`, built once for the training set and
shared by every step), and for every step t = 0..T-1 the forward pass, loss gradient and backward
pass of the step's batch (:func:`mibpcert.encode.step.gradient_exprs`) and the parameters
``theta_{t+1} = theta_t - lr_t G_t``, a variable tied to theta_t -- no box between steps. theta_0
is the (constant) initialisation, so the first step has no bilinear products.

Bounds (they make big-M constants and McCormick envelopes valid, and they are what makes the
program solvable): theta_{t+1} is bounded by the interval step (and the AGT step under k-of-n or
label budgets) from theta_t's bounds, and optionally tightened by an LP pass: minimise and
maximise every coordinate of theta_{t+1} over the McCormick LP relaxation of the program built
so far (HiGHS), dual bounds padded. Each bound is proven for every feasible point of the exact
program, so tightening never cuts an attack.

Exact reformulation: for a linear model with the MSE loss the gradient contribution of the
clean points of a batch is linear in theta; it enters as ``(2/q) (A theta_r - c_r)`` with the
precomputed ``A = sum x~ x~^T`` (x~ = [x; 1]) instead of one output variable per point and step.
Two encodings of a linear model's poisoning avoid one poisoned input per training point: the
moment form (full-batch MSE, :func:`_moments`) and the slot form (hinge or MSE under a k-of-n
feature threat, :func:`_slot_gradient`), both built on the k slots of :class:`SlotPoison`.

Test objectives (:func:`test_objective`): worst-case test MSE (regression), the margin of one test
point (minimised), or the number of misclassified test points (maximised).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mibpcert.bounds.interval import Interval
from mibpcert.encode.builder import Builder, Expr
from mibpcert.encode.formulation import LinearObjective
from mibpcert.encode.network import Layers, forward_exprs
from mibpcert.encode.poison import PoisonVars, clean_points, poison_vars
from mibpcert.encode.step import (
    _hinge_grad,
    _output_gradient,
    check_supported,
    gradient_exprs,
)
from mibpcert.problem import Problem

#: padding of LP dual bounds used to tighten variable bounds (absolute + relative)
PAD_ABS = 1e-6
PAD_REL = 1e-6

TightenFn = Callable[[Builder, list[Expr]], tuple[np.ndarray, np.ndarray, dict]]
"""``tighten(builder, exprs) -> (lower, upper, info)``: proven bounds of the variables ``exprs``
over (a relaxation of) the builder's program."""


@dataclass
class TrainingProgram:
    """The unrolled training program (no objective yet)."""

    builder: Builder
    poison: PoisonVars | SlotPoison
    thetas: list[list[Expr]]  # theta_0 .. theta_T, flat parameter order
    lower: np.ndarray  # (T+1, m) bounds of theta_t used in the program
    upper: np.ndarray
    step_info: list[dict] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    form: str = "points"  # points | slots | moments

    @property
    def n_steps(self) -> int:
        return len(self.thetas) - 1

    def layers(self, problem: Problem, t: int = -1) -> Layers:
        return layers_of(problem, self.thetas[t])


def layers_of(problem: Problem, theta: list[Expr]) -> Layers:
    """Arrange flat parameter expressions as ``[(W, bias), ...]``."""
    layers: Layers = []
    for (ws, bs), (o, i) in zip(problem.arch.slices(), problem.arch.layer_shapes, strict=True):
        W = [[theta[ws.start + r * i + c] for c in range(i)] for r in range(o)]
        layers.append((W, [theta[bs.start + r] for r in range(o)]))
    return layers


def _linear_mse_clean(problem: Problem, idx: np.ndarray, pv: PoisonVars) -> np.ndarray:
    """Training indices of ``idx`` whose gradient is linear in theta (linear model, MSE loss,
    constant input and target); empty when the reformulation does not apply."""
    if problem.arch.n_layers != 1 or problem.recipe.loss != "mse":
        return np.zeros(0, dtype=np.int64)
    keep = []
    for i in idx:
        i = int(i)
        if i in pv.flips or i in pv.select:
            continue
        if not all(e.is_const for e in pv.inputs[i]):
            continue
        if i in pv.targets and not all(e.is_const for e in pv.targets[i]):
            continue
        keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def _batch_gradient(
    b: Builder, problem: Problem, layers: Layers, theta: list[Expr], idx, pv, tag: str
) -> list[Expr]:
    """Batch-mean gradient expressions; clean points of a linear MSE model aggregated."""
    clean = _linear_mse_clean(problem, idx, pv)
    if len(clean) < 2:
        return gradient_exprs(b, problem, layers, idx, pv, tag)
    clean_set = set(clean.tolist())
    rest = np.asarray([i for i in idx if int(i) not in clean_set], dtype=np.int64)
    B = float(len(idx))
    grads = (
        [b.scale(g, len(rest) / B) for g in gradient_exprs(b, problem, layers, rest, pv, tag)]
        if len(rest)
        else [b.const(0.0)] * problem.arch.n_params
    )
    X = problem.data.X_train[clean]
    Xt = np.hstack([X, np.ones((len(clean), 1))])  # x~ = [x; 1]
    A = Xt.T @ Xt
    if problem.data.task == "regression":
        Y = problem.data.y_train.reshape(problem.data.n_train, -1)[clean]
    else:  # binary MSE classification: targets +-1
        Y = (2.0 * problem.data.y_train[clean] - 1.0).reshape(-1, 1)
    q = Y.shape[1]
    Cm = Xt.T @ Y  # (d+1, q)
    (ws, bs), (o, d) = problem.arch.slices()[0], problem.arch.layer_shapes[0]
    out = list(grads)
    for r in range(o):
        rows = [ws.start + r * d + c for c in range(d)] + [bs.start + r]
        th = [theta[j] for j in rows]
        for a, j in enumerate(rows):  # dL/dtheta_rj summed over clean points: (2/q)(A th - c)
            lin = b.affine([(float(A[a, c]), th[c]) for c in range(d + 1)], -float(Cm[a, r]))
            out[j] = b.affine([(1.0, out[j]), (2.0 / (q * B), lin)])
    return out


def _moment_gradient(b: Builder, problem: Problem, M, cv, theta: list[Expr]) -> list[Expr]:
    """Full-batch gradient ``(2/(q n)) (M theta_r - c_r)`` of a linear MSE model."""
    (ws, bs), (o, d) = problem.arch.slices()[0], problem.arch.layer_shapes[0]
    scale = 2.0 / (o * problem.data.n_train)
    out: list[Expr] = [b.const(0.0)] * problem.arch.n_params
    for r in range(o):
        rows = [ws.start + r * d + c for c in range(d)] + [bs.start + r]
        th = [theta[j] for j in rows]
        for a, j in enumerate(rows):
            terms = [(1.0, b.mul(M[a][c], th[c], f"Mth{a}_{c}")) for c in range(d + 1)]
            out[j] = b.affine([(scale, b.affine(terms)), (-scale, cv[a][r])])
    return out


def encode_training(
    problem: Problem,
    steps: int | None = None,
    box_step: Callable[[Interval, int, np.ndarray], Interval] | None = None,
    tighten: TightenFn | None = None,
    on_step: Callable[[int, int], None] | None = None,
    moments: bool | None = None,
    slots: bool | None = None,
) -> TrainingProgram:
    """Unroll the first ``steps`` training steps (default: all) into one program.

    ``moments``: use the moment form of a full-batch linear MSE model (:func:`_moments`);
    ``None`` chooses it where it applies and has fewer bilinear products. ``slots``: use the
    slot form of a linear model under a k-of-n feature threat (:func:`_slot_gradient`) when the
    moment form is not used; ``None`` chooses it where it applies.

    ``box_step(box, step, batch)``: a sound box of theta_{t+1} given theta_t in ``box`` (e.g. the
    interval step intersected with the AGT step); ``tighten``: an LP pass that proves tighter
    bounds of theta_{t+1} over the program so far (see :data:`TightenFn`).
    """
    check_supported(problem)
    batches = problem.batches()
    T = len(batches) if steps is None else int(steps)
    m = problem.arch.n_params
    names = problem.arch.param_names()
    b = Builder()
    if moments is None:
        moments = moment_form_applies(problem) and moment_form_pays(problem, T)
    elif moments and not moment_form_applies(problem):
        raise ValueError("the moment form needs a full-batch linear MSE model (see its doc)")
    if moments:
        slots = False
    elif slots is None:
        slots = slot_form_applies(problem) and slot_form_pays(problem, T)
    elif slots and not slot_form_applies(problem):
        raise ValueError(
            "the slot form needs a linear hinge/MSE model under a k-of-n feature threat with "
            "clean labels (see slot_form_applies)"
        )
    pv: PoisonVars | SlotPoison
    if moments:
        M, cv, pv = _moments(b, problem)
    elif slots:
        pv = _slots(b, problem)
        clean = clean_points(b, problem)  # constants, shared by every step
    else:
        pv = poison_vars(b, problem, np.arange(problem.data.n_train))
    theta = [b.const(float(v)) for v in problem.theta0]
    lower = np.empty((T + 1, m))
    upper = np.empty((T + 1, m))
    lower[0] = upper[0] = problem.theta0
    thetas = [theta]
    info: list[dict] = []
    seconds: list[float] = []
    for t in range(T):
        t0 = time.perf_counter()
        idx, lr = batches[t], problem.recipe.lr_at(t)
        if moments:
            grads = _moment_gradient(b, problem, M, cv, theta)
        elif slots:
            layers = layers_of(problem, theta)
            grads = _slot_gradient(b, problem, layers, idx, pv, clean, f"s{t}_")
        else:
            grads = _batch_gradient(b, problem, layers_of(problem, theta), theta, idx, pv, f"s{t}_")
        box = (
            box_step(Interval(lower[t], upper[t]), t, idx)
            if box_step is not None
            else Interval(np.full(m, -np.inf), np.full(m, np.inf))
        )
        nxt = [
            b.materialize(
                b.affine([(1.0, th), (-lr, g)]),
                f"theta{t + 1}_{names[j]}",
                float(box.lo[j]),
                float(box.hi[j]),
            )
            for j, (th, g) in enumerate(zip(theta, grads, strict=True))
        ]
        row: dict = {"step": t + 1, "variables": b.f.n_vars}
        if tighten is not None:
            lo, hi, row["tighten"] = tighten(b, nxt)
            nxt = [
                e if e.is_const else b.tighten(e, float(lo[j]), float(hi[j]))
                for j, e in enumerate(nxt)
            ]
        lower[t + 1] = [e.lo for e in nxt]
        upper[t + 1] = [e.hi for e in nxt]
        theta = nxt
        thetas.append(theta)
        seconds.append(time.perf_counter() - t0)
        info.append(row)
        if on_step is not None:
            on_step(t + 1, T)
    form = "moments" if moments else "slots" if slots else "points"
    return TrainingProgram(b, pv, thetas, lower, upper, info, seconds, form)


# ----------------------------------------------------------------------------- test objectives


def class_margins(b: Builder, out: list[Expr], cls: int) -> list[Expr]:
    """Margins whose minimum decides the prediction: ``sign * o`` (one output; class 1 needs
    o > 0) or ``o_cls - o_j`` for every j != cls."""
    if len(out) == 1:
        return [b.scale(out[0], 1.0 if cls == 1 else -1.0)]
    return [b.affine([(1.0, out[cls]), (-1.0, out[j])]) for j in range(len(out)) if j != cls]


def _objective(e: Expr, sense: str, name: str) -> LinearObjective:
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
    return _objective(e, "max", "worst-case test MSE")


def margin_objectives(
    b: Builder, problem: Problem, layers: Layers, point: int
) -> list[LinearObjective]:
    """Minimise every margin of test point ``point`` for its true class (certified when all are
    > 0)."""
    data = problem.data
    cls = int(data.y_test[point])
    out = test_outputs(b, layers, data.X_test[point], f"test{point}")
    margins = class_margins(b, out, cls)
    others = [j for j in range(max(2, len(out))) if j != cls]
    return [
        _objective(mg, "min", f"margin of test point {point}: class {cls} vs {j}")
        for mg, j in zip(margins, others, strict=True)
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
        margins = class_margins(b, out, int(data.y_test[i]))
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
    return _objective(e, "max", "misclassified test points")


# ----------------------------------------------------------------------------- moment form


@dataclass
class SlotPoison:
    """Feature poisoning of exactly ``k`` of the points in scope through ``k`` slots (linear
    models with clean labels: the moment form and the slot form).

    Slot s chooses one point of the scope with binaries ``z_si`` (``sum_i z_si = 1``; a point
    fills at most one slot, ``sel_i = sum_s z_si``; slots hold points in increasing index order,
    which removes the k! symmetric copies) or, when every point in scope may change, belongs to
    one fixed point. Its poisoned input is ``x'_s = sum_i z_si x_i + d_s`` within the chosen
    point's box, its label the chosen point's clean label. Choosing a point and leaving it
    unchanged (``d_s = 0``) is allowed, so "exactly k" loses no attack of "at most k".
    """

    points: dict[int, dict[int, Expr]]  # slot -> {training index: z_si (or constant 1)}
    delta: dict[int, list[Expr]]  # slot -> perturbation per feature
    inputs: dict[int, list[Expr]] = field(default_factory=dict)  # slot -> x'_s per feature
    labels: dict[int, list[Expr]] = field(default_factory=dict)  # slot -> one-hot / targets
    select: dict[int, Expr] = field(default_factory=dict)  # point -> sel_i (binary)

    def attack(self, x: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.array(X, dtype=np.float64, copy=True)
        for s, zs in self.points.items():
            for i, z in zs.items():
                if z.value(x) > 0.5:
                    X[i] = X[i] + np.array([e.value(x) for e in self.delta[s]])
        return X, np.array(y, copy=True)

    def assignment(self, X0: np.ndarray, y0: np.ndarray, X: np.ndarray, y: np.ndarray) -> dict:
        out: dict[int, float] = {}

        def put(e: Expr, v: float) -> None:
            if e.is_var:
                out[e.idx[0]] = float(v)

        changed = [int(i) for i in np.flatnonzero(np.any(np.abs(X - X0) > 1e-9, axis=1))]
        free = {}
        for s, zs in self.points.items():
            if len(zs) == 1:  # a fixed slot
                (i,) = zs
                for e, v in zip(self.delta[s], X[i] - X0[i], strict=True):
                    put(e, v)
            else:
                free[s] = zs
        if free:  # the changed points, filled up with unchanged ones, in increasing order
            scope = sorted({i for zs in free.values() for i in zs})
            fillers = [i for i in scope if i not in changed]
            chosen = sorted(changed + fillers[: max(0, len(free) - len(changed))])
            for s, i in zip(sorted(free), chosen, strict=False):
                for j, z in free[s].items():
                    put(z, float(j == i))
                for e, v in zip(self.delta[s], X[i] - X0[i], strict=True):
                    put(e, v)
                if i in self.select:
                    put(self.select[i], 1.0)
            for i, e in self.select.items():
                if i not in chosen:
                    put(e, 0.0)
        return out


def _slots(b: Builder, problem: Problem) -> SlotPoison:
    """The slots of a k-of-n feature threat with clean labels (see :class:`SlotPoison`)."""
    data, t = problem.data, problem.threat
    X0 = data.X_train
    n, d = X0.shape
    scope = [int(i) for i in t.scope(n)]
    S = len(scope) if t.k is None else min(int(t.k), len(scope))
    lo_box, hi_box = t.feature_box(X0)
    fixed = S == len(scope)
    slots = SlotPoison({}, {})
    if data.task == "regression":
        Y = data.y_train.reshape(n, -1).astype(np.float64)
    else:  # one-hot clean labels (one column for one output: the class-1 indicator)
        C = int(data.n_classes)
        Y = np.eye(C)[np.asarray(data.y_train, dtype=np.int64)]
        if problem.arch.n_outputs == 1:
            Y = Y[:, 1:2]
    for s in range(S):
        if fixed:
            zs = {scope[s]: b.const(1.0)}
        else:
            zs = {i: b.var(0.0, 1.0, f"slot{s}_pt{i}", binary=True) for i in scope}
            b.constrain(b.add(*zs.values()), 1.0, 1.0)
        xs = [b.affine([(float(X0[i, j]), z) for i, z in zs.items()]) for j in range(d)]
        delta, xp = [], []
        for j in range(d):
            lo_j = min(float(lo_box[i, j]) for i in zs)
            hi_j = max(float(hi_box[i, j]) for i in zs)
            dlo = min(float(lo_box[i, j] - X0[i, j]) for i in zs)
            dhi = max(float(hi_box[i, j] - X0[i, j]) for i in zs)
            e = b.var(dlo, dhi, f"slot{s}_d{j}") if dlo < dhi else b.const(0.0)
            x = b.materialize(b.affine([(1.0, xs[j]), (1.0, e)]), f"slot{s}_x{j}", lo_j, hi_j)
            if not e.is_const:  # x'_s within the chosen point's box
                b.constrain(
                    b.affine([(1.0, x)] + [(-float(lo_box[i, j]), z) for i, z in zs.items()]),
                    lo=0.0,
                )
                b.constrain(
                    b.affine([(1.0, x)] + [(-float(hi_box[i, j]), z) for i, z in zs.items()]),
                    hi=0.0,
                )
            delta.append(e)
            xp.append(x)
        labels = []
        for r in range(Y.shape[1]):
            e = b.affine([(float(Y[i, r]), z) for i, z in zs.items()])
            if data.task != "regression" and not e.is_const:  # a 0/1 label: one binary
                u = b.var(0.0, 1.0, f"slot{s}_y{r}", binary=True)
                b.constrain(b.affine([(1.0, u), (-1.0, e)]), 0.0, 0.0)
                e = u
            labels.append(e)
        slots.points[s], slots.delta[s] = zs, delta
        slots.inputs[s], slots.labels[s] = xp, labels
    if not fixed:
        for i in scope:
            sel = b.var(0.0, 1.0, f"sel{i}", binary=True)  # sel_i = sum_s z_si <= 1
            b.constrain(
                b.affine([(1.0, sel)] + [(-1.0, slots.points[s][i]) for s in range(S)]), 0.0, 0.0
            )
            slots.select[i] = sel
        for s in range(1, S):  # symmetry: slot s holds a point of larger index than slot s - 1
            b.constrain(
                b.affine(
                    [(float(i), z) for i, z in slots.points[s].items()]
                    + [(-float(i), z) for i, z in slots.points[s - 1].items()]
                ),
                lo=1.0,
            )
    return slots


def slot_form_applies(problem: Problem) -> bool:
    """Linear model, hinge or MSE loss, features of at most k < |scope| points perturbed in a
    bounded box, labels clean, no discrete/paired threat: the slot form applies."""
    t = problem.threat
    n = problem.data.n_train
    if not (
        problem.arch.n_layers == 1
        and t.perturbs_features
        and t.k is not None
        and int(t.k) < len(t.scope(n))
        and t.label_k == 0
        and not t.discrete
        and not t.paired
    ):
        return False
    lo, hi = t.feature_box(problem.data.X_train)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return False
    loss = problem.recipe.loss
    return loss == "hinge" or (
        loss == "mse" and (problem.data.task == "regression" or problem.arch.n_outputs == 1)
    )


def slot_form_pays(problem: Problem, steps: int) -> bool:
    """Whether the slot form has fewer bilinear products than the per-point form: both pay a
    forward (and for MSE a gradient) product per poisonable point and feature in a batch, the
    per-point form for every point of the scope in the batch, the slot form for each of the k
    slots in every batch that holds a point of the scope."""
    t = problem.threat
    scope = set(t.scope(problem.data.n_train).tolist())
    k = int(t.k) if t.k is not None else len(scope)
    per_point = slot = 0
    for idx in problem.batches()[:steps]:
        m = len(scope.intersection(int(i) for i in idx))
        per_point += m
        slot += k if m else 0
    return slot < per_point


def _slot_gradient(
    b: Builder,
    problem: Problem,
    layers: Layers,
    idx: np.ndarray,
    slots: SlotPoison,
    clean: PoisonVars,
    tag: str,
) -> list[Expr]:
    """Batch-mean gradient of a linear model in the slot form: every point of the batch with its
    clean input, its contribution switched off when it is chosen (``(1 - sel_i) dL/do_i``), plus
    each slot whose point is in the batch with its poisoned input. Only the slots' forward and
    gradient products are bilinear: k d q per step instead of |scope| d q. ``clean``: the
    clean training set as constants (:func:`~mibpcert.encode.poison.clean_points`)."""
    (ws, bs), (_, d) = problem.arch.slices()[0], problem.arch.layer_shapes[0]
    grad_terms: list[list[Expr]] = [[] for _ in range(problem.arch.n_params)]

    def add(delta: list[Expr], x: list[Expr], name: str) -> None:
        delta = [dl if dl.is_const or b.is_binary_combo(dl) else b.materialize(dl) for dl in delta]
        for r, dl in enumerate(delta):
            for c, xc in enumerate(x):
                grad_terms[ws.start + r * d + c].append(b.mul(dl, xc, f"gW{name}_{r}_{c}"))
            grad_terms[bs.start + r].append(dl)

    for i in idx:
        i = int(i)
        x = clean.inputs[i]
        (_, out), _ = forward_exprs(b, layers, x, f"{tag}{i}")
        delta = _output_gradient(b, problem, i, out, clean)
        sel = slots.select.get(i)
        if sel is not None:  # the point's clean contribution counts unless a slot holds it
            keep = b.affine([(-1.0, sel)], 1.0)
            delta = [b.mul(keep, dl, f"keep{tag}{i}_{r}") for r, dl in enumerate(delta)]
        add(delta, x, f"{tag}{i}")
    in_batch = {int(i) for i in idx}
    for s, zs in slots.points.items():
        inside = [z for i, z in zs.items() if i in in_batch]
        if not inside:
            continue
        name = f"{tag}slot{s}"
        (_, out), _ = forward_exprs(b, layers, slots.inputs[s], name)
        delta = _slot_output_gradient(b, problem, out, slots.labels[s], name)
        if len(inside) < len(zs):  # mini-batch: the slot counts when its point is in the batch
            w = b.var(0.0, 1.0, f"w{name}", binary=True)
            b.constrain(b.affine([(1.0, w)] + [(-1.0, z) for z in inside]), 0.0, 0.0)
            delta = [b.mul(w, dl, f"in{name}_{r}") for r, dl in enumerate(delta)]
        add(delta, slots.inputs[s], name)
    B = float(len(idx))
    return [b.affine([(1.0 / B, e) for e in terms]) for terms in grad_terms]


def _slot_output_gradient(
    b: Builder, problem: Problem, out: list[Expr], label: list[Expr], tag: str
) -> list[Expr]:
    """dloss/do of a slot's point: hinge (one output or one-vs-rest) or MSE, with the label
    given as one-hot binaries (the class-1 indicator for one output) or regression targets."""
    if problem.data.task == "regression":
        q = len(out)
        return [b.affine([(2.0 / q, o), (-2.0 / q, t)]) for o, t in zip(out, label, strict=True)]
    signs = [b.affine([(2.0, u)], -1.0) for u in label]  # +-1 label signs
    if problem.recipe.loss == "mse":  # one output, targets +-1
        return [b.affine([(2.0, out[0]), (-2.0, signs[0])])]
    return [
        _hinge_grad(b, y, o, f"{tag}_{r}") for r, (y, o) in enumerate(zip(signs, out, strict=True))
    ]


def moment_form_applies(problem: Problem) -> bool:
    """Linear model, MSE, full batch, no discrete/paired threat, labels clean when features
    change: the full-batch gradient is ``(2/(q n)) (M theta_r - c_r)`` with data moments
    ``M = sum x~ x~^T`` and ``c = sum x~ y`` that do not change between steps."""
    t = problem.threat
    n = problem.data.n_train
    full = problem.recipe.batch_size is None or problem.recipe.batch_size >= n
    return (
        problem.arch.n_layers == 1
        and problem.recipe.loss == "mse"
        and full
        and not t.discrete
        and not t.paired
        and not (t.perturbs_features and t.label_k > 0)
        and not np.isinf(t.eps)
    )


def moment_form_pays(problem: Problem, steps: int) -> bool:
    """Whether the moment form has fewer bilinear products than the per-point form: per point
    ``T |scope| d`` (poisoned input times weight, every step) against per slot
    ``d (d + 1) / 2 + d q`` once plus ``q d (d + 1)`` per step."""
    t = problem.threat
    if not t.perturbs_features:
        return True  # labels only: the moment form is linear in theta
    d, q = problem.arch.n_inputs, problem.arch.n_outputs
    scope = len(t.scope(problem.data.n_train))
    slots = scope if t.k is None else min(int(t.k), scope)
    per_point = steps * scope * d * q
    moments = slots * (d * (d + 1) // 2 + d * q) + steps * q * d * (d + 1)
    return moments < per_point


def _moments(b: Builder, problem: Problem):
    """``(M, c, poison)``: the data moments as expressions (M (d+1, d+1), c (d+1, q))."""
    data, t = problem.data, problem.threat
    X0 = data.X_train
    n, d = X0.shape
    Xt = np.hstack([X0, np.ones((n, 1))])
    if data.task == "regression":
        Y0 = data.y_train.reshape(n, -1).astype(np.float64)
    else:
        Y0 = (2.0 * data.y_train - 1.0).reshape(-1, 1)
    q = Y0.shape[1]
    A, C0 = Xt.T @ Xt, Xt.T @ Y0
    M = [[b.const(float(A[a, c])) for c in range(d + 1)] for a in range(d + 1)]
    cv = [[b.const(float(C0[a, r])) for r in range(q)] for a in range(d + 1)]
    if not t.perturbs_features:  # labels only: c is affine in the label variables
        pv = poison_vars(b, problem, np.arange(n))
        for i in range(n):
            if data.task == "regression":
                ys = pv.targets[i]
                diff = [b.affine([(1.0, e)], -float(Y0[i, r])) for r, e in enumerate(ys)]
            elif i in pv.flips:  # y' - y = -2 y f
                diff = [b.affine([(-2.0 * float(Y0[i, 0]), pv.flips[i])])]
            else:
                continue
            for a in range(d + 1):
                for r in range(q):
                    if not diff[r].is_const or diff[r].const != 0.0:
                        cv[a][r] = b.affine([(1.0, cv[a][r]), (float(Xt[i, a]), diff[r])])
        cv = [
            [b.materialize(e, f"c{a}_{r}") for r, e in enumerate(row)] for a, row in enumerate(cv)
        ]
        return M, cv, pv
    slots = _slots(b, problem)
    for s, zs in slots.points.items():
        delta, xp = slots.delta[s], slots.inputs[s]
        # M += [[x'x'^T - sum z x x^T, d], [d^T, 0]] with x' = x_s + d_s
        for a in range(d):
            for c in range(a, d):
                if delta[a].is_const and delta[c].is_const:
                    continue
                clean = [(-float(X0[i, a] * X0[i, c]), z) for i, z in zs.items()]
                prod = b.square(xp[a]) if a == c else b.mul(xp[a], xp[c], f"M{s}_{a}_{c}")
                M[a][c] = b.affine([(1.0, M[a][c]), (1.0, prod), *clean])
                if c != a:
                    M[c][a] = M[a][c]
            M[a][d] = b.affine([(1.0, M[a][d]), (1.0, delta[a])])
            M[d][a] = M[a][d]
        # c += d_s y_s (clean labels of the chosen point)
        for r in range(q):
            u = slots.labels[s][r]  # y_s: a regression target or a +-1 sign (exact product)
            ys = b.materialize(u) if data.task == "regression" else b.affine([(2.0, u)], -1.0)
            for a in range(d):
                if not delta[a].is_const:
                    cv[a][r] = b.affine([(1.0, cv[a][r]), (1.0, b.mul(delta[a], ys))])
    M = [
        [b.materialize(e, f"M{a}_{c}") if a <= c else None for c, e in enumerate(row)]
        for a, row in enumerate(M)
    ]
    M = [[M[a][c] if a <= c else M[c][a] for c in range(d + 1)] for a in range(d + 1)]
    cv = [[b.materialize(e, f"c{a}_{r}") for r, e in enumerate(row)] for a, row in enumerate(cv)]
    return M, cv, slots
