"""Method ``interval`` (FullCert): interval arithmetic through the whole training loop.

Each step bounds the forward pass, the loss gradient, the backward pass and the SGD update with the
transformers of :mod:`mibpcert.bounds`, treating every sample, the parameters and their gradient as
independent intervals. Widths therefore only grow: width(theta') = width(theta) + lr width(g).
"""

from __future__ import annotations

import time

import numpy as np

from mibpcert.bounds import network, ops
from mibpcert.bounds.interval import Interval
from mibpcert.methods.base import ParameterBounds, StepCallback
from mibpcert.problem import Problem


class IntervalMethod:
    """FullCert-style interval bound propagation through training."""

    name = "interval"

    def check(self, problem: Problem) -> list[str]:
        t = problem.threat
        n = problem.data.n_train
        notes = []
        if t.k is not None and 0 < t.k < len(t.scope(n)):
            notes.append(
                f"k-of-n feature poisoning (k={t.k}) is bounded as if every point in scope were "
                "perturbed (sound, looser)."
            )
        if 0 < t.label_k < n:
            notes.append(
                f"label changes on any {t.label_k} points are bounded as if every label could "
                "change (sound, looser)."
            )
        return notes

    def bound(self, problem: Problem, on_step: StepCallback | None = None) -> ParameterBounds:
        notes = self.check(problem)
        arch, recipe = problem.arch, problem.recipe
        X = problem.input_box()
        labels = problem.label_set()
        batches = problem.batches()
        T, m = len(batches), arch.n_params
        lower = np.empty((T + 1, m))
        upper = np.empty((T + 1, m))
        lower[0] = upper[0] = problem.theta0
        theta = Interval.point(problem.theta0)
        seconds = []
        for step, idx in enumerate(batches):
            t0 = time.perf_counter()
            g = network.batch_gradient(arch, theta, X[idx], labels[idx], recipe.loss, recipe.clip)
            theta = ops.sgd_update(theta, g, recipe.lr_at(step))
            lower[step + 1], upper[step + 1] = theta.lo, theta.hi
            seconds.append(time.perf_counter() - t0)
            if on_step is not None:
                on_step(step + 1, T)
        return ParameterBounds(self.name, lower, upper, notes, seconds)
