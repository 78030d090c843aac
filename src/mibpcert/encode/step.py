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
from mibpcert.encode.network import Layers, forward_exprs, parameter_exprs
from mibpcert.encode.poison import PoisonVars, poison_vars
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
    poison: PoisonVars  # the batch's poisoned inputs and labels

    def attack(self, x: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The poisoned training set encoded by the variable values ``x`` (e.g. an incumbent):
        the batch's inputs and labels replaced, everything else as in ``(X, y)``."""
        return self.poison.attack(x, X, y)

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
    return notes


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
    b: Builder, problem: Problem, i: int, out: list[Expr], pv: PoisonVars
) -> list[Expr]:
    """dloss/do for training point i (unscaled by the batch size)."""
    loss = problem.recipe.loss
    data = problem.data
    if data.task == "regression":
        q = len(out)
        target = pv.targets[i]
        return [b.affine([(2.0 / q, o), (-2.0 / q, t)]) for o, t in zip(out, target, strict=True)]
    c = int(data.y_train[i])
    C = int(data.n_classes)
    if len(out) == 1:  # binary, one output: label sign y' = y (1 - 2 f) or 0/1 label c'
        y = 2.0 * c - 1.0
        flip = pv.flips.get(i)
        if loss in ("hinge", "mse"):
            o = out[0]
            ysig = b.const(y) if flip is None else b.affine([(-2.0 * y, flip)], y)
            if loss == "mse":
                return [b.affine([(2.0, o), (-2.0, ysig)])]
            return [_hinge_grad(b, ysig, o, f"{i}")]
        p = _sigmoid_relaxation(b, out[0], f"sig{i}")
        label = b.const(float(c)) if flip is None else b.affine([(1.0 - 2.0 * c, flip)], float(c))
        return [b.affine([(1.0, p), (-1.0, label)])]
    onehot = pv.label_onehot(b, i, c, C)
    if loss == "hinge":  # one-vs-rest: output k has target +1 for the label's class, else -1
        return [
            _hinge_grad(b, b.affine([(2.0, e)], -1.0), o, f"{i}_{k}")
            for k, (o, e) in enumerate(zip(out, onehot, strict=True))
        ]
    # cross-entropy
    sm = ops.softmax(Interval(np.array([[e.lo for e in out]]), np.array([[e.hi for e in out]])))
    ps = [b.var(float(sm.lo[0, k]), float(sm.hi[0, k]), f"p{i}_{k}") for k in range(C)]
    b.constrain(b.add(*ps), 1.0 - 1e-12, 1.0 + 1e-12)
    return [b.affine([(1.0, p), (-1.0, e)]) for p, e in zip(ps, onehot, strict=True)]


def _hinge_grad(b: Builder, ysig: Expr, o: Expr, tag: str) -> Expr:
    """d max(0, 1 - y o) / do = -y [y o <= 1] for a label sign y (affine in binaries); either
    value is allowed at the kink y o = 1."""
    margin = b.mul(ysig, o, f"m{tag}")
    s = b.indicator_le(margin, 1.0, f"hinge{tag}")
    return b.scale(b.mul(ysig, s, f"ys{tag}"), -1.0)


def gradient_exprs(
    b: Builder, problem: Problem, layers: Layers, idx: np.ndarray, pv: PoisonVars, tag: str = ""
) -> list[Expr]:
    """The batch-mean gradient of every parameter (flat order) over the batch ``idx``, as
    affine expressions; ``pv`` holds the poisoned points (``tag`` keeps names unique when
    several steps share one model)."""
    arch = problem.arch
    slices = arch.slices()
    grad_terms: list[list[Expr]] = [[] for _ in range(arch.n_params)]
    for i in idx:
        i = int(i)
        name = f"{tag}{i}"
        acts, masks = forward_exprs(b, layers, pv.inputs[i], name)
        delta = _output_gradient(b, problem, i, acts[-1], pv)
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
                        b.mul(dl, ap, f"gW{name}_{L}_{r}_{c}")
                    )
                grad_terms[bs.start + r].append(dl)
            if L > 0:
                back = [
                    b.affine(
                        [
                            (1.0, b.mul(W[r][c], delta[r], f"Wd{name}_{L}_{r}_{c}"))
                            for r in range(len(delta))
                        ]
                    )
                    for c in range(len(a_prev))
                ]
                delta = [
                    b.mul(masks[L - 1][c], back[c], f"d{name}_{L}_{c}") for c in range(len(a_prev))
                ]
    B = float(len(idx))
    return [b.affine([(1.0 / B, e) for e in terms]) for terms in grad_terms]


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
    pv = poison_vars(b, problem, idx)
    grads = [
        b.materialize(g, f"G_{names[j]}")
        for j, g in enumerate(gradient_exprs(b, problem, layers, idx, pv))
    ]
    theta_vars = np.array([t.idx[0] for t in theta])
    grad_vars = []
    for gexpr in grads:
        if gexpr.is_const:  # a constant gradient (e.g. no sample touches it): pin a variable
            gexpr = b.var(gexpr.const, gexpr.const)
        grad_vars.append(gexpr.idx[0])
    return StepEncoding(b.f, theta_vars, np.array(grad_vars), lr, names, np.asarray(idx), pv)
