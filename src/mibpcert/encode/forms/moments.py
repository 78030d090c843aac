"""The moment form: a full-batch linear model with the MSE loss.

The full-batch gradient is ``(2/(q n)) (M theta_r - c_r)`` with the data moments
``M = sum x~ x~^T`` and ``c = sum x~ y`` (x~ = [x; 1]); the attack changes the moments once for the
whole run (through the k slots of :class:`~mibpcert.encode.forms.slots.SlotPoison` for feature
threats, the label variables for label threats, or both: ``c`` is affine in the labels, and a
slot adds ``d_s y'_s`` with its point's poisoned label), and no step needs a poisoned input.
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains.builder import Builder, Expr
from mibpcert.encode.forms.base import Form, FormState
from mibpcert.encode.forms.slots import SlotsForm, build_slots
from mibpcert.encode.poison import clean_points
from mibpcert.ops.targets import class_sign
from mibpcert.problem import Problem


def moment_gradient(b: Builder, problem: Problem, M, cv, theta: list[Expr]) -> list[Expr]:
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


def build_moments(b: Builder, problem: Problem):
    """``(M, c, poison)``: the data moments as expressions (M (d+1, d+1), c (d+1, q))."""
    data, t = problem.data, problem.threat
    X0 = data.X_train
    n, d = X0.shape
    Xt = np.hstack([X0, np.ones((n, 1))])
    if data.task == "regression":
        Y0 = data.y_train.reshape(n, -1).astype(np.float64)
    else:
        Y0 = class_sign(data.y_train).reshape(-1, 1)
    q = Y0.shape[1]
    A, C0 = Xt.T @ Xt, Xt.T @ Y0
    M = [[b.const(float(A[a, c])) for c in range(d + 1)] for a in range(d + 1)]
    cv = [[b.const(float(C0[a, r])) for r in range(q)] for a in range(d + 1)]
    pv = None
    if t.label_k > 0 or not t.perturbs_features:  # c is affine in the label variables
        pv = clean_points(b, problem, labels=True)  # constant inputs, the label variables
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
    if not t.perturbs_features:
        cv = [
            [b.materialize(e, f"c{a}_{r}") for r, e in enumerate(row)] for a, row in enumerate(cv)
        ]
        return M, cv, pv
    slots = build_slots(b, problem, pv)  # with label changes: the slot takes its label var
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
        # c += d_s y'_s (the chosen point's label, poisoned under label changes)
        for r in range(q):
            u = slots.labels[s][r]  # y'_s: a regression target or a 0/1 class indicator
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


_SLOTS = SlotsForm()


class MomentsForm(Form):
    """Data moments changed once by the attack (see the module docstring)."""

    name = "moments"
    requirement = "a full-batch linear model with MSE loss and no discrete or paired threat"

    def applies(self, problem: Problem) -> bool:
        """Linear model, MSE, full batch, no discrete/paired threat, bounded radius."""
        return _applies(problem)

    def cost(self, problem: Problem, steps: int) -> int:
        """Per slot ``d (d + 1) / 2 + d q`` products once (the moments) plus ``q d (d + 1)`` per
        step (``M theta``); none for a label threat (the moments are then linear in the labels
        and ``M`` is constant)."""
        t = problem.threat
        if not t.perturbs_features:
            return 0
        d, q = problem.arch.n_inputs, problem.arch.n_outputs
        scope = len(t.scope(problem.data.n_train))
        slots = scope if t.k is None else min(int(t.k), scope)
        return slots * (d * (d + 1) // 2 + d * q) + steps * q * d * (d + 1)

    def binaries(self, problem: Problem) -> int:
        """Slot assignment (k per point in scope) and selection (one per point) binaries, and
        with label changes the slots' label products, as in the slot form."""
        t = problem.threat
        scope = len(t.scope(problem.data.n_train))
        if not t.perturbs_features or t.k is None or int(t.k) >= scope:
            return 0  # every point in scope moves: fixed slots, no binaries
        return _SLOTS.binaries(problem)

    def pays(self, problem: Problem, steps: int) -> bool:
        """Always for a label threat (the program is then linear in theta), else when it has
        fewer bilinear products than the per-point form."""
        if not problem.threat.perturbs_features:
            return True
        return super().pays(problem, steps)

    def prepare(self, b: Builder, problem: Problem) -> FormState:
        M, cv, poison = build_moments(b, problem)
        return FormState(poison, {"M": M, "c": cv})

    def gradient(
        self, b: Builder, problem: Problem, state: FormState, theta: list[Expr], idx, tag: str
    ) -> list[Expr]:
        return moment_gradient(b, problem, state.extra["M"], state.extra["c"], theta)


def _applies(problem: Problem) -> bool:
    """Linear model, MSE, full batch, no discrete/paired threat: the full-batch gradient is
    ``(2/(q n)) (M theta_r - c_r)`` with data moments ``M = sum x~ x~^T`` and ``c = sum x~ y``
    that do not change between steps."""
    t = problem.threat
    n = problem.data.n_train
    full = problem.recipe.batch_size is None or problem.recipe.batch_size >= n
    return (
        problem.arch.n_layers == 1
        and problem.recipe.loss == "mse"
        and full
        and not t.discrete
        and not t.paired
        and not np.isinf(t.eps)
    )
