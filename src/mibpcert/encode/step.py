"""One training step as a mixed-integer bilinear program (MIBP-Cert).

Variables: the parameters theta in the current box (shared by every sample: the coupling interval
arithmetic loses), the poisoned inputs/labels allowed by the threat model (with selection binaries
for k-of-n budgets), pre-activations, ReLU binaries, the loss gradient, the backward pass, and the
batch-mean gradient G. The update theta' = theta - lr G is linear, so min/max of theta'_j is a
linear objective over one feasible set (2m objectives per step).

The encoder composes the program versions of the operations; each operation's encoding is in
its module of :mod:`mibpcert.ops` (product rules: :mod:`mibpcert.domains.builder`):

* inputs and labels: :mod:`mibpcert.encode.poison` (l-inf ball, k-of-n selection binaries,
  discrete domains, label flips, regression shifts);
* forward pass: :mod:`~mibpcert.ops.affine` (bilinear weight x input) and
  :mod:`~mibpcert.ops.relu` (big-M with interval pre-activation bounds);
* loss gradient: :mod:`~mibpcert.ops.hinge` (big-M indicator of ``y o <= 1``),
  :mod:`~mibpcert.ops.mse`, :mod:`~mibpcert.ops.bce` (relaxed sigmoid),
  :mod:`~mibpcert.ops.ce` (relaxed softmax);
* backward pass: :func:`~mibpcert.ops.affine.backward_program` (``W^T delta`` and ``delta a^T``,
  bilinear unless a factor is binary or constant) and the ReLU mask (exact);
* update: :mod:`~mibpcert.ops.sgd`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.domains.affine import SymbolSet
from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import UNIT, Interval
from mibpcert.domains.program import Formulation, LinearObjective, fold_min_max
from mibpcert.encode.network import Layers, forward_exprs, parameter_exprs
from mibpcert.encode.poison import PoisonVars, poison_vars
from mibpcert.errors import UnsupportedError
from mibpcert.ops import affine, relu, sgd
from mibpcert.ops import loss as loss_ops
from mibpcert.ops.targets import PointLabel
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
    wd: float = 0.0  # weight decay: theta' = (1 - lr wd) theta - lr G (L1: added to the bounds)
    mu: float = 0.0  # momentum (the velocity's term is added to the bounds, as L1's)
    nesterov: bool = False

    @property
    def terms(self) -> tuple[float, float]:
        """Coefficients of ``(theta, G)`` in ``theta'`` (:func:`mibpcert.ops.sgd.momentum_terms`;
        the velocity and L1 terms lie outside the program)."""
        a, b, _, _ = sgd.momentum_terms(self.lr, self.wd, self.mu, self.nesterov)
        return a, b

    def attack(self, x: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The poisoned training set encoded by the variable values ``x`` (e.g. an incumbent):
        the batch's inputs and labels replaced, everything else as in ``(X, y)``."""
        return self.poison.attack(x, X, y)

    def objective(self, j: int, sense: str) -> LinearObjective:
        """``theta'_j = a theta_j + b G_j`` (:attr:`terms`), minimised or maximised."""
        return LinearObjective(
            idx=np.array([self.theta_vars[j], self.grad_vars[j]]),
            coef=np.array(self.terms),
            constant=0.0,
            sense=sense,  # type: ignore[arg-type]
            name=f"{sense} {self.names[j]}",
        )

    def objectives(self) -> list[LinearObjective]:
        """All 2m objectives: min and max of every updated parameter (objective ``2 j`` is the
        min of parameter j, ``2 j + 1`` its max)."""
        m = len(self.theta_vars)
        return [self.objective(j, s) for j in range(m) for s in ("min", "max")]

    def tie_affine_set(
        self,
        attack: SymbolSet,
        c: np.ndarray,
        G: np.ndarray,
        rho: np.ndarray,
        G_next: np.ndarray,
        basis: np.ndarray | None = None,
    ) -> list[LinearObjective]:
        """Tie the step's parameters to the attack symbols that build its poisoned inputs, and
        return the residual objectives of the next set.

        Adds one variable ``u_k`` in [-1, 1] per attack symbol, with ``rad_k u_k = x'_k -
        mid_k`` where the batch holds the symbol's point (elsewhere ``u_k`` is free), and one
        ranged row per parameter, ``c_j - rho_j <= theta_j - G_j u <= c_j + rho_j``: the
        parameters' affine set with the *same* attack as the inputs. The objectives (``2 j``
        min, ``2 j + 1`` max) are ``theta'_j - G_next_j u``: their bounds, less the next centre,
        are the next remainder.

        ``basis`` (K x r, orthonormal columns): the rows use ``z = basis^T u`` (r more variables
        and rows) and ``G basis`` instead of ``G``; the part of ``G`` outside the basis goes to
        the rows' ranges by its exact range over the attack set (sound), and ``G_next`` must lie
        in the basis' span (the caller projects it).
        """
        f = self.formulation
        K = attack.size
        rows_of = {int(i): row for i, row in self.poison.inputs.items()}
        u = np.empty(K, dtype=np.int64)
        for k in range(K):
            u[k] = f.add_var(-1.0, 1.0, "C", f"u{attack.point[k]}_{attack.feature[k]}")
            row = rows_of.get(int(attack.point[k]))
            if row is None or attack.rad[k] == 0:
                continue
            e = row[int(attack.feature[k])]
            # rad u - x' = -mid, with x' = const + sum coef * var
            f.add_row(
                [u[k], *e.idx],
                [float(attack.rad[k]), *(-a for a in e.coef)],
                e.const - float(attack.mid[k]),
                e.const - float(attack.mid[k]),
            )
        if basis is None:
            cols, coef, coef_next, extra = u, G, G_next, np.zeros(len(c))
        else:
            r = basis.shape[1]
            cols = np.empty(r, dtype=np.int64)
            for q in range(r):  # z_q = basis_q . u (|z_q| <= sum |basis_q|)
                bound = float(np.abs(basis[:, q]).sum()) * (1.0 + 4 * UNIT)
                cols[q] = f.add_var(-bound, bound, "C", f"z{q}")
                nz = basis[:, q] != 0
                f.add_row([cols[q], *u[nz]], [1.0, *(-basis[nz, q])], 0.0, 0.0)
            coef = G @ basis
            lo, hi = attack.range(G - coef @ basis.T)
            extra = np.maximum(np.abs(lo), np.abs(hi))
            # z = basis^T u holds in the program; the float coef = G basis differs from the real
            # one by at most 2 (K + 2) eps |G| |basis| per entry, times |z_q| <= sum |basis_q|
            zmax = np.abs(basis).sum(axis=0)
            extra = extra + 2 * (K + 2) * UNIT * ((np.abs(G) @ np.abs(basis)) @ zmax)
            coef_next = G_next @ basis
        for j, tv in enumerate(self.theta_vars):
            band = float(rho[j] + extra[j])
            keep = coef[j] != 0
            f.add_row(
                [int(tv), *cols[keep]],
                [1.0, *(-coef[j, keep])],
                float(np.nextafter(c[j] - band, -np.inf)),
                float(np.nextafter(c[j] + band, np.inf)),
            )
        objectives = []
        for j in range(len(self.theta_vars)):
            keep = coef_next[j] != 0
            idx = np.array([self.theta_vars[j], self.grad_vars[j], *cols[keep]])
            cf = np.array([*self.terms, *(-coef_next[j, keep])])
            for sense in ("min", "max"):
                objectives.append(
                    LinearObjective(idx, cf, 0.0, sense, f"{sense} residual {self.names[j]}")
                )
        return objectives

    #: fold the certified bounds of solved objectives into the next box (see
    #: :func:`~mibpcert.domains.program.fold_min_max`: objective ``2 j`` / ``2 j + 1`` is the min
    #: / max of parameter j)
    decode = staticmethod(fold_min_max)


def check_supported(problem: Problem) -> list[str]:
    """Raise :class:`UnsupportedError` for what the per-step encoding cannot express."""
    t = problem.threat
    notes = []
    if t.removes:
        raise UnsupportedError(
            "the removal threat (remove_k) divides by the number of kept points, which the "
            "step programs do not encode; use --method agt or interval."
        )
    if problem.recipe.clips:
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


def point_gradient(
    b: Builder, problem: Problem, out: list[Expr], label: PointLabel, tag: str
) -> list[Expr]:
    """dloss/do of one training point (unscaled by the batch size), for its program label."""
    return loss_ops.grad_program(
        problem.recipe.loss, b, out, label, loss_ops.output_tags(tag, len(out))
    )


def sample_gradient_terms(
    b: Builder,
    layers: Layers,
    delta: list[Expr],
    acts: list[list[Expr]],
    masks: list[list[Expr]],
    slices: list,
    grad_terms: list[list[Expr]],
    name: str,
) -> None:
    """Back-propagate one sample's output gradient ``delta`` through ``layers`` (forward pass
    ``acts``/``masks``), appending its contribution to every parameter's ``grad_terms``."""
    for L in range(len(layers) - 1, -1, -1):
        W, _ = layers[L]
        ws, bs = slices[L]
        a_prev = acts[L]
        gW, delta, back = affine.backward_program(
            b, delta, a_prev, W if L > 0 else None, f"{name}_{L}"
        )
        for r, dl in enumerate(delta):
            for c in range(len(a_prev)):
                grad_terms[ws.start + r * len(a_prev) + c].append(gW[r][c])
            grad_terms[bs.start + r].append(dl)
        if L > 0:
            delta = [
                relu.backward_program(b, masks[L - 1][c], back[c], f"d{name}_{L}_{c}")
                for c in range(len(a_prev))
            ]


def batch_mean(b: Builder, grad_terms: list[list[Expr]], batch_size: int) -> list[Expr]:
    """The batch-mean gradient of every parameter from its per-sample terms."""
    B = float(batch_size)
    return [b.affine([(1.0 / B, e) for e in terms]) for terms in grad_terms]


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
        label = pv.point_label(b, i, problem.data, len(acts[-1]))
        delta = point_gradient(b, problem, acts[-1], label, f"{i}")
        sample_gradient_terms(b, layers, delta, acts, masks, slices, grad_terms, name)
    return batch_mean(b, grad_terms, len(idx))


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
    return StepEncoding(
        b.f,
        theta_vars,
        np.array(grad_vars),
        lr,
        names,
        np.asarray(idx),
        pv,
        problem.recipe.weight_decay,
        problem.recipe.momentum,
        problem.recipe.nesterov,
    )
