"""What every method returns: the parameter box after every training step."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from mibpcert.bounds.parameters import ParameterBounds
from mibpcert.domains.interval import Interval
from mibpcert.problem import Problem

StepCallback = Callable[[int, int], None]
"""Called as ``on_step(done, total)`` after every finished training step."""


def box_relaxation_notes(problem: Problem, budgets: bool) -> list[str]:
    """Notes on how per-point boxes over-approximate the threat model (``interval``, ``agt``).

    ``budgets``: the method counts poisoned points (k, label_k) instead of letting every point
    change.
    """
    t = problem.threat
    n = problem.data.n_train
    notes = []
    if not budgets and t.perturbs_features and t.k is not None and t.k < len(t.scope(n)):
        notes.append(
            f"k-of-n feature poisoning (k={t.k}) is bounded as if every point in scope were "
            "perturbed (sound, looser)."
        )
    if not budgets and 0 < t.label_k < n:
        notes.append(
            f"label changes on any {t.label_k} points are bounded as if every label could "
            "change (sound, looser)."
        )
    if t.perturbs_features and t.discrete:
        notes.append(
            "discrete feature domains are bounded by their range [min, max] (sound, looser)."
        )
    if t.paired and t.label_k > 0:
        notes.append(
            "paired budgets: every point's label is treated as changeable, also outside the "
            "points whose features change (sound, looser)."
        )
    return notes


StepFunction = Callable[[Interval, int, np.ndarray], tuple[Interval, dict | None]]
"""``step_fn(box, step, batch_indices) -> (next box, info or None)``."""


def box_loop(
    name: str,
    problem: Problem,
    step_fn: StepFunction,
    notes: list[str],
    on_step: StepCallback | None = None,
) -> ParameterBounds:
    """Run ``step_fn`` over the training schedule from the initial parameters; collect boxes."""
    batches = problem.batches()
    T, m = len(batches), problem.arch.n_params
    lower = np.empty((T + 1, m))
    upper = np.empty((T + 1, m))
    lower[0] = upper[0] = problem.theta0
    theta = Interval.point(problem.theta0)
    seconds: list[float] = []
    info: list[dict] = []
    for step, idx in enumerate(batches):
        t0 = time.perf_counter()
        theta, extra = step_fn(theta, step, idx)
        lower[step + 1], upper[step + 1] = theta.lo, theta.hi
        seconds.append(time.perf_counter() - t0)
        if extra is not None:
            info.append(extra)
        if on_step is not None:
            on_step(step + 1, T)
    return ParameterBounds(name, lower, upper, notes, seconds, info)


class Method(Protocol):
    """A training-loop algorithm that bounds the parameters under the problem's threat model."""

    name: str

    def check(self, problem: Problem) -> list[str]:
        """Raise :class:`~mibpcert.errors.UnsupportedError` for what the method cannot bound;
        return notes on the relaxations it will apply."""
        ...

    def bound(self, problem: Problem, on_step: StepCallback | None = None) -> ParameterBounds:
        """Parameter boxes for every step."""
        ...
