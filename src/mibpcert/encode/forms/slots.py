"""The slot form: a linear model under a k-of-n feature threat, with or without label changes.

Instead of one poisoned input per training point, ``k`` slots each choose one point of the scope
(:class:`SlotPoison`); the clean points' gradients use their clean inputs (constants), switched
off when their point is chosen, so only the slots' forward and gradient products are bilinear:
``k d q`` per step instead of ``|scope| d q``. The slots are shared with the moment form.

Label changes (flips, multi-class changes or regression target shifts, independent of the
feature budget): every point's label is the threat's label variable (:func:`clean_points` with
``labels=True``), and a slot takes the label of the point it holds, ``l'_s = sum_i z_si l'_i``:
each ``z_si l'_i`` is a binary times a bounded variable, linearised exactly, so the form stays
an exact reformulation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mibpcert.data.datasets import Dataset
from mibpcert.domains.builder import Builder, Expr
from mibpcert.encode.forms.base import Form, FormState
from mibpcert.encode.network import Layers, forward_exprs, layers_of
from mibpcert.encode.poison import PoisonVars, clean_points
from mibpcert.encode.step import batch_mean, point_gradient
from mibpcert.ops import affine
from mibpcert.ops import loss as loss_ops
from mibpcert.ops.targets import PointLabel
from mibpcert.problem import Problem
from mibpcert.threat.model import CHANGE_TOL


@dataclass
class SlotPoison:
    """Feature poisoning of exactly ``k`` of the points in scope through ``k`` slots (linear
    models: the moment form and the slot form), with or without label changes beside it.

    Slot s chooses one point of the scope with binaries ``z_si`` (``sum_i z_si = 1``; a point
    fills at most one slot, ``sel_i = sum_s z_si``; slots hold points in increasing index order,
    which removes the k! symmetric copies) or, when every point in scope may change, belongs to
    one fixed point. Its poisoned input is ``x'_s = sum_i z_si x_i + d_s`` within the chosen
    point's box, its label the chosen point's label: the clean one, or with label changes the
    point's label variable in ``label_vars``. Choosing a point and leaving it unchanged
    (``d_s = 0``) is allowed, so "exactly k" loses no attack of "at most k".
    """

    points: dict[int, dict[int, Expr]]  # slot -> {training index: z_si (or constant 1)}
    delta: dict[int, list[Expr]]  # slot -> perturbation per feature
    inputs: dict[int, list[Expr]] = field(default_factory=dict)  # slot -> x'_s per feature
    labels: dict[int, list[Expr]] = field(default_factory=dict)  # slot -> one-hot / targets
    select: dict[int, Expr] = field(default_factory=dict)  # point -> sel_i (binary)
    label_vars: PoisonVars | None = None  # every point's (poisoned) label, with label changes

    def point_label(self, s: int, data: Dataset) -> PointLabel:
        """The label of slot ``s``'s point: its regression targets, or its 0/1 class
        indicators (one output: the class-1 indicator)."""
        if data.task == "regression":
            return PointLabel(targets=self.labels[s])
        return PointLabel(indicators=self.labels[s])

    def attack(self, x: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.array(X, dtype=np.float64, copy=True)
        for s, zs in self.points.items():
            for i, z in zs.items():
                if z.value(x) > 0.5:
                    X[i] = X[i] + np.array([e.value(x) for e in self.delta[s]])
        if self.label_vars is not None:  # its inputs are the clean constants: labels only
            return X, self.label_vars.attack(x, X, y)[1]
        return X, np.array(y, copy=True)

    def assignment(self, X0: np.ndarray, y0: np.ndarray, X: np.ndarray, y: np.ndarray) -> dict:
        out: dict[int, float] = {}

        def put(e: Expr, v: float) -> None:
            if e.is_var:
                out[e.idx[0]] = float(v)

        changed = [int(i) for i in np.flatnonzero(np.any(np.abs(X - X0) > CHANGE_TOL, axis=1))]
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
        if self.label_vars is not None:
            out.update(self.label_vars.assignment(X0, y0, X0, y))
        return out


def _label_columns(
    b: Builder, problem: Problem, Y: np.ndarray, labels: PoisonVars | None, i: int
) -> list[Expr]:
    """Point ``i``'s label as the slot form reads it: regression targets, or 0/1 class
    indicators (one output: the class-1 indicator), affine in binaries; clean without
    ``labels``."""
    if labels is None:
        return [b.const(float(v)) for v in Y[i]]
    data = problem.data
    if data.task == "regression":
        return labels.targets[i]
    c = int(data.y_train[i])
    if problem.arch.n_outputs == 1:
        f = labels.flips.get(i)
        return [b.const(float(c)) if f is None else b.affine([(1.0 - 2.0 * c, f)], float(c))]
    return labels.label_onehot(b, i, c, int(data.n_classes))


def build_slots(b: Builder, problem: Problem, labels: PoisonVars | None = None) -> SlotPoison:
    """The slots of a k-of-n feature threat (see :class:`SlotPoison`); ``labels``: every point's
    label variables under label changes (:func:`clean_points` with ``labels=True``), ``None``
    for clean labels."""
    data, t = problem.data, problem.threat
    X0 = data.X_train
    n, d = X0.shape
    scope = [int(i) for i in t.scope(n)]
    S = len(scope) if t.k is None else min(int(t.k), len(scope))
    lo_box, hi_box = t.feature_box(X0)
    fixed = S == len(scope)
    slots = SlotPoison({}, {}, label_vars=labels)
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
        cols = {i: _label_columns(b, problem, Y, labels, i) for i in zs}
        slot_labels = []
        for r in range(Y.shape[1]):  # l'_s = sum_i z_si l'_i: binary x bounded, exact
            e = b.add(*[b.mul(z, cols[i][r], f"slot{s}_pt{i}_y{r}") for i, z in zs.items()])
            if data.task != "regression" and not e.is_const:  # a 0/1 label: one binary
                u = b.var(0.0, 1.0, f"slot{s}_y{r}", binary=True)
                b.constrain(b.affine([(1.0, u), (-1.0, e)]), 0.0, 0.0)
                e = u
            slot_labels.append(e)
        slots.points[s], slots.delta[s] = zs, delta
        slots.inputs[s], slots.labels[s] = xp, slot_labels
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


def slot_gradient(
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
    clean inputs as constants, with the labels' variables under label changes
    (:func:`~mibpcert.encode.poison.clean_points`)."""
    (ws, bs), (_, d) = problem.arch.slices()[0], problem.arch.layer_shapes[0]
    grad_terms: list[list[Expr]] = [[] for _ in range(problem.arch.n_params)]
    data = problem.data

    def add(delta: list[Expr], x: list[Expr], name: str) -> None:
        gW, delta, _ = affine.backward_program(b, delta, x, None, name)
        for r, dl in enumerate(delta):
            for c in range(len(x)):
                grad_terms[ws.start + r * d + c].append(gW[r][c])
            grad_terms[bs.start + r].append(dl)

    for i in idx:
        i = int(i)
        x = clean.inputs[i]
        (_, out), _ = forward_exprs(b, layers, x, f"{tag}{i}")
        delta = point_gradient(b, problem, out, clean.point_label(b, i, data, len(out)), f"{i}")
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
        label = slots.point_label(s, data)
        delta = loss_ops.grad_program(
            problem.recipe.loss, b, out, label, [f"{name}_{r}" for r in range(len(out))]
        )
        if len(inside) < len(zs):  # mini-batch: the slot counts when its point is in the batch
            w = b.var(0.0, 1.0, f"w{name}", binary=True)
            b.constrain(b.affine([(1.0, w)] + [(-1.0, z) for z in inside]), 0.0, 0.0)
            delta = [b.mul(w, dl, f"in{name}_{r}") for r, dl in enumerate(delta)]
        add(delta, slots.inputs[s], name)
    return batch_mean(b, grad_terms, len(idx))


class SlotsForm(Form):
    """k slots choose the poisoned points (see the module docstring)."""

    name = "slots"
    requirement = (
        "a linear model with hinge or MSE loss under a k-of-n feature threat (k below the "
        "number of points in scope), label changes (if any) independent of it, and no discrete "
        "or paired threat"
    )

    def applies(self, problem: Problem) -> bool:
        """Linear model, hinge or MSE loss, features of at most k < |scope| points perturbed in a
        bounded box, no discrete/paired threat (label changes allowed)."""
        return _applies(problem)

    def cost(self, problem: Problem, steps: int) -> int:
        """Poisonable inputs with a bilinear forward product: the k slots of every batch that
        holds a point of the scope (times d q, as for :class:`PointsForm`)."""
        t = problem.threat
        scope = set(t.scope(problem.data.n_train).tolist())
        k = int(t.k) if t.k is not None else len(scope)
        d, q = problem.arch.n_inputs, problem.arch.n_outputs
        return (
            sum(k for idx in problem.batches()[:steps] if scope.intersection(int(i) for i in idx))
            * d
            * q
        )

    def binaries(self, problem: Problem) -> int:
        """Slot assignment (k per point in scope) and selection (one per point) binaries, and
        with label changes the ``k |scope| q`` exact products ``z_si l'_ir`` (one per slot,
        point and label column)."""
        t = problem.threat
        if not t.perturbs_features or t.k is None:
            return 0
        scope = len(t.scope(problem.data.n_train))
        k = min(int(t.k), scope)
        labels = k * scope * problem.arch.n_outputs if t.label_k > 0 else 0
        return (k + 1) * scope + labels

    def prepare(self, b: Builder, problem: Problem) -> FormState:
        labels = problem.threat.label_k > 0
        clean = clean_points(b, problem, labels=labels)  # constant inputs, shared by every step
        slots = build_slots(b, problem, clean if labels else None)
        return FormState(slots, {"clean": clean})

    def gradient(
        self, b: Builder, problem: Problem, state: FormState, theta: list[Expr], idx, tag: str
    ) -> list[Expr]:
        layers = layers_of(problem.arch, theta)
        return slot_gradient(b, problem, layers, idx, state.poison, state.extra["clean"], tag)


def _applies(problem: Problem) -> bool:
    """Linear model, hinge or MSE loss, features of at most k < |scope| points perturbed in a
    bounded box, no discrete/paired threat: the slot form applies."""
    t = problem.threat
    n = problem.data.n_train
    if not (
        problem.arch.n_layers == 1
        and t.perturbs_features
        and t.k is not None
        and int(t.k) < len(t.scope(n))
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
