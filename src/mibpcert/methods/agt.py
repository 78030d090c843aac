"""Method ``agt``: abstract gradient training with bounded-count poisoning (Sosnin et al.).

For every step and every sample i of the batch, two per-sample gradient boxes are computed over
the current parameter box (:func:`mibpcert.bounds.network.sample_gradients`):

* ``g_i``: the clean point with its clean label;
* ``h_i``: every input/label the attacker may give point i (feature box, discrete domains,
  label set), a superset of the clean one.

At most K points of a batch can differ from the clean data (K below), each then having a
gradient in ``h_i`` instead of ``g_i``. Hence, per parameter coordinate,

    sum_i grad_i <= sum_i g_i^U + (sum of the K largest  max(h_i^U - g_i^U, 0))
    sum_i grad_i >= sum_i g_i^L + (sum of the K smallest min(h_i^L - g_i^L, 0))

divided by the batch size b. The adversary's choice of points is relaxed per coordinate. The
result is intersected with the interval method's bound ``sum_i h_i / b`` (also sound), so
``agt`` is never looser than ``interval`` on the same box.

With ``budget_scope = "batch"`` (k and label_k per batch, every step poisoned afresh: the AGT
library's threat model) the same bound holds step by step, so the method bounds both scopes.

Budget K per batch: feature changes ``Kf = min(k, |scope in batch|)`` (all points in scope when
``k`` is None), label changes ``Kl = min(label_k, b)``; K = Kf + Kl (independent budgets) or
max(Kf, Kl) (``paired``), capped at b. The threat model's k is global (any k of the n points), so
a batch never holds more than min(k, b) of them: this per-batch bound is sound for mini-batches
too (but does not exploit that the same k points recur in every epoch).

With per-sample gradient clipping (``TrainingRecipe.clip``), every g_i and h_i is clipped to
[-clip, clip]: an unbounded adversary (``eps = inf``) then still yields finite bounds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mibpcert.bounds import network
from mibpcert.bounds.parameters import ParameterBounds
from mibpcert.domains.interval import UNIT, Interval, add, divide, sum_axis
from mibpcert.methods.base import (
    BoxMethod,
    StepCallback,
    box_loop,
    box_relaxation_notes,
)
from mibpcert.methods.interval import interval_gradient, removed_gradient
from mibpcert.ops import sgd
from mibpcert.problem import Problem
from mibpcert.threat.labels import LabelSet


def poisoned_budget(problem: Problem, idx: np.ndarray) -> int:
    """Largest number of points of batch ``idx`` that an attack can make differ from clean."""
    t = problem.threat
    b = len(idx)
    kf = 0
    if t.perturbs_features:
        in_scope = int(np.isin(idx, t.scope(problem.data.n_train)).sum())
        kf = in_scope if t.k is None else min(int(t.k), in_scope)
    kl = min(int(t.label_k), b)
    k = max(kf, kl) if t.paired else kf + kl
    return min(k, b)


_DIFF_UP = 1.0 + 4.0 * UNIT
"""A computed difference ``d = fl(h - g) > 0`` times this (rounded) is at least the exact
``h - g``: ``|h - g - d| <= u |h - g|`` gives ``h - g <= d (1 + 2 u)``, and ``fl(d (1 + 8 u))
>= d (1 + 8 u) (1 - u) > d (1 + 2 u)``; a subnormal difference is exact."""


def _differences(clean: Interval, poisoned: Interval) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample computed upward differences ``max(fl(h^U - g^U), 0)`` and downward
    ``min(fl(h^L - g^L), 0)`` (NaN: unbounded). The sign of a difference is exact, and the
    exact value is within :data:`_DIFF_UP` times the computed one: :meth:`TopK.bound` widens
    the selected ones by that factor (multiplication by it is monotone, so the top ``k`` of the
    widened differences are the widened top ``k``)."""
    with np.errstate(invalid="ignore"):
        d_up = np.maximum(poisoned.hi - clean.hi, 0.0)
        d_dn = np.minimum(poisoned.lo - clean.lo, 0.0)
    if np.isnan(d_up).any():
        d_up[np.isnan(d_up)] = np.inf
    if np.isnan(d_dn).any():
        d_dn[np.isnan(d_dn)] = -np.inf
    return d_up, d_dn


class TopK:
    """The ``k`` largest upward and ``k`` most negative downward differences per coordinate,
    kept over a batch streamed in fragments (the top k of a union is the top k of the parts'
    top k)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.up: np.ndarray | None = None
        self.dn: np.ndarray | None = None

    def add(self, clean: Interval, poisoned: Interval) -> None:
        d_up, d_dn = _differences(clean, poisoned)
        up = d_up if self.up is None else np.concatenate([self.up, d_up])
        dn = d_dn if self.dn is None else np.concatenate([self.dn, d_dn])
        n, k = len(up), self.k
        if n > k:
            up = np.partition(up, n - k, axis=0)[n - k :]
            dn = np.partition(dn, k - 1, axis=0)[:k]
        self.up, self.dn = up, dn

    def bound(self) -> Interval:
        """Bounds on the sum of the kept differences (``[sum of dn, sum of up]``), each widened
        to cover its exact value (:data:`_DIFF_UP`)."""
        with np.errstate(invalid="ignore", over="ignore"):
            return sum_axis(Interval(self.dn * _DIFF_UP, self.up * _DIFF_UP), axis=0)


def topk_sum_bound(clean: Interval, poisoned: Interval, k: int) -> Interval:
    """Bound on ``sum_i grad_i`` (axis 0) when at most ``k`` samples use ``poisoned`` bounds
    (one fragment of what :meth:`AGTMethod._gradient_sum` streams)."""
    n = clean.shape[0]
    if k == 0:
        return sum_axis(clean, axis=0)
    if k >= n:
        return sum_axis(poisoned, axis=0)
    top = TopK(k)
    top.add(clean, poisoned)
    return add(sum_axis(clean, axis=0), top.bound())


def agt_gradient(
    problem: Problem,
    theta: Interval,
    idx: np.ndarray,
    X_poison: Interval,
    labels_poison: LabelSet,
) -> Interval:
    """Box of the batch-mean gradient of batch ``idx`` over the parameter box ``theta`` with at
    most :func:`poisoned_budget` points poisoned (or, for the removal threat, up to
    ``remove_k`` deleted: AGT's unlearning bound)."""
    if problem.threat.removes:
        return removed_gradient(problem, theta, idx)
    k = poisoned_budget(problem, idx)
    total = AGTMethod._gradient_sum(problem, theta, idx, k, X_poison, labels_poison)
    return divide(total, float(len(idx)))


class AGTMethod(BoxMethod):
    """Abstract gradient training (Sosnin et al., TMLR 2025) over the interval domain."""

    name = "agt"

    def provenance(self) -> str:
        return "interval arithmetic with outward rounding, top-k poisoning budget"

    def check(self, problem: Problem) -> list[str]:
        notes = box_relaxation_notes(problem, budgets=True)
        t = problem.threat
        first = problem.batches()[0]
        if 0 < poisoned_budget(problem, first) < len(first):
            notes.append(
                "the attacker's choice of the k poisoned points is relaxed per parameter "
                "coordinate (top-k differences)."
            )
        if (
            not t.per_batch
            and problem.recipe.batch_size is not None
            and problem.recipe.batch_size < problem.data.n_train
        ):
            notes.append(
                "the global budget is bounded per batch as min(budget, batch size) (sound, "
                "looser across epochs)."
            )
        if np.isinf(t.eps) and not problem.recipe.clips and t.feature_bounds is None:
            notes.append("eps = inf without gradient clipping gives unbounded (infinite) boxes.")
        return notes

    def bound(self, problem: Problem, on_step: StepCallback | None = None) -> ParameterBounds:
        X_poison = problem.input_box()
        labels_poison = problem.label_set()

        def grad_fn(theta: Interval, step: int, idx: np.ndarray):
            grad = agt_gradient(problem, theta, idx, X_poison, labels_poison)
            return grad, {"poisoned_budget": poisoned_budget(problem, idx)}

        return box_loop(
            self.name, problem, grad_fn, self.check(problem), on_step, self.sets, problem.threat.k
        )

    @staticmethod
    def _gradient_sum(
        problem: Problem,
        theta: Interval,
        idx: np.ndarray,
        k: int,
        X_poison: Interval,
        labels_poison: LabelSet,
    ) -> Interval:
        """Bound on the sum of the batch's per-sample gradients with at most k poisoned: the
        batch is streamed in :func:`~mibpcert.bounds.network.fragments`, summing the clean and
        the poisoned boxes and keeping the top-k differences (:class:`TopK`)."""
        arch, loss = problem.arch, problem.recipe.loss
        clip = problem.recipe.clipping(arch)
        clean_labels = problem.clean_label_set()
        acc = network.accumulate
        clean_sum = full = None
        top = TopK(k)
        for sl in network.fragments(len(idx), arch.n_params):
            rows = idx[sl]
            clean = None
            if k < len(idx):
                X = Interval.point(problem.data.X_train[rows])
                clean = network.sample_gradients(arch, theta, X, clean_labels[rows], loss, clip)
                clean_sum = acc(clean_sum, sum_axis(clean, axis=0))
                if k == 0:
                    continue
            poisoned = network.sample_gradients(
                arch, theta, X_poison[rows], labels_poison[rows], loss, clip
            )
            full = acc(full, sum_axis(poisoned, axis=0))
            if clean is not None:
                top.add(clean, poisoned)
        if k == 0:
            return clean_sum
        if k >= len(idx):
            return full
        return add(clean_sum, top.bound()).intersect(full)


ReferenceStep = Callable[
    [Interval, int, np.ndarray, Interval | None], tuple[Interval, Interval | None]
]


def reference_gradient(problem: Problem) -> Callable[[Interval, int, np.ndarray], Interval]:
    """``grad(box, step, batch)``: the interval gradient box over ``box``, intersected with the
    ``agt`` one when the threat model counts poisoned points (k-of-n or label budgets). Both are
    sound, so their intersection is."""
    X_box, labels = problem.input_box(), problem.label_set()
    budgets = problem.threat.counts_points(problem.data.n_train)

    def grad(box: Interval, t: int, idx: np.ndarray) -> Interval:
        g = interval_gradient(problem, box, idx, X_box, labels)
        if budgets:
            g = g.intersect(agt_gradient(problem, box, idx, X_box, labels))
        return g

    return grad


def reference_step(problem: Problem) -> ReferenceStep:
    """``step(box, step, batch, velocity) -> (next box, next velocity box)``: the SGD update of
    :func:`reference_gradient`'s box (``velocity``: the momentum velocity's box, ``None``
    without momentum or before the first step). ``mibp`` and ``exact`` are never looser than
    it."""
    grad = reference_gradient(problem)
    rec = problem.recipe
    args = rec.sgd_args()

    def step(
        box: Interval, t: int, idx: np.ndarray, velocity: Interval | None = None
    ) -> tuple[Interval, Interval | None]:
        return sgd.step_interval(box, velocity, grad(box, t, idx), rec.lr_at(t), **args)

    return step
