"""The per-point form: every training point carries its own poisoned input and label.

It applies to every problem. For a linear model with the MSE loss the gradient of the clean
points of a batch (constant input and target) is linear in theta; it enters as
``(2/q) (A theta_r - c_r)`` with the precomputed ``A = sum x~ x~^T`` (x~ = [x; 1]) instead of one
output variable per point and step.
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains.builder import Builder, Expr
from mibpcert.encode.forms.base import Form, FormState, per_point_cost
from mibpcert.encode.network import Layers, layers_of
from mibpcert.encode.poison import PoisonVars, poison_vars
from mibpcert.encode.step import gradient_exprs
from mibpcert.ops.targets import class_sign
from mibpcert.problem import Problem


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


def points_gradient(
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
        Y = class_sign(problem.data.y_train[clean]).reshape(-1, 1)
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


class PointsForm(Form):
    """One poisoned input (and label) per training point, shared by every step."""

    name = "points"
    requirement = "nothing: it applies to every problem"

    def applies(self, problem: Problem) -> bool:
        return True

    def cost(self, problem: Problem, steps: int) -> int:
        return per_point_cost(problem, steps)

    def binaries(self, problem: Problem) -> int:
        """One selection binary per point in scope under a k-of-n or paired budget."""
        t = problem.threat
        if not t.perturbs_features or (t.k is None and not t.paired):
            return 0
        return len(t.scope(problem.data.n_train))

    def pays(self, problem: Problem, steps: int) -> bool:
        return False

    def prepare(self, b: Builder, problem: Problem) -> FormState:
        return FormState(poison_vars(b, problem, np.arange(problem.data.n_train)))

    def gradient(
        self, b: Builder, problem: Problem, state: FormState, theta: list[Expr], idx, tag: str
    ) -> list[Expr]:
        layers = layers_of(problem.arch, theta)
        return points_gradient(b, problem, layers, theta, idx, state.poison, tag)
