"""Method ``interval`` (FullCert): interval arithmetic through the whole training loop.

Each step bounds the forward pass, the loss gradient, the backward pass and the SGD update with the
transformers of :mod:`mibpcert.bounds`, treating every sample, the parameters and their gradient as
independent intervals. Widths therefore only grow: width(theta') = width(theta) + lr width(g).
"""

from __future__ import annotations

import numpy as np

from mibpcert.bounds import network
from mibpcert.bounds.parameters import ParameterBounds
from mibpcert.bounds.removal import removal_mean
from mibpcert.domains.interval import Interval
from mibpcert.methods.base import (
    BoxMethod,
    StepCallback,
    box_loop,
    box_relaxation_notes,
)
from mibpcert.problem import Problem
from mibpcert.threat.labels import LabelSet


def interval_gradient(
    problem: Problem,
    theta: Interval,
    idx: np.ndarray,
    X: Interval | None = None,
    labels: LabelSet | None = None,
) -> Interval:
    """Box of the batch-mean gradient on batch ``idx`` over the parameter box ``theta`` (every
    point perturbable)."""
    X = problem.input_box() if X is None else X
    labels = problem.label_set() if labels is None else labels
    recipe = problem.recipe
    if problem.threat.removes:
        return removed_gradient(problem, theta, idx)
    return network.batch_gradient(
        problem.arch, theta, X[idx], labels[idx], recipe.loss, recipe.clipping(problem.arch)
    )


def removed_gradient(problem: Problem, theta: Interval, idx: np.ndarray) -> Interval:
    """Box of the batch-mean gradient when up to ``remove_k`` points may be deleted
    (:func:`mibpcert.bounds.removal.removal_mean`)."""
    t = problem.threat
    per = network.sample_gradients(
        problem.arch,
        theta,
        Interval.point(problem.data.X_train[idx]),
        problem.clean_label_set()[idx],
        problem.recipe.loss,
        problem.recipe.clipping(problem.arch),
    )
    removable = np.isin(idx, t.scope(problem.data.n_train))
    return removal_mean(per, removable, t.remove_k)


class IntervalMethod(BoxMethod):
    """FullCert-style interval bound propagation through training."""

    name = "interval"

    def provenance(self) -> str:
        return "interval arithmetic with outward rounding"

    def check(self, problem: Problem) -> list[str]:
        return box_relaxation_notes(problem, budgets=False)

    def bound(self, problem: Problem, on_step: StepCallback | None = None) -> ParameterBounds:
        X = problem.input_box()
        labels = problem.label_set()

        def grad_fn(theta: Interval, step: int, idx: np.ndarray):
            return interval_gradient(problem, theta, idx, X, labels), None

        return box_loop(
            self.name, problem, grad_fn, self.check(problem), on_step, self.sets, None
        )
