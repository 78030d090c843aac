"""Poisoning and every training step as one program, no box between steps (method ``exact``).

Variables: the attack (built once by the chosen form, :mod:`mibpcert.encode.forms`, and shared
by every step), and for every step t = 0..T-1 the batch-mean gradient of the step's batch (the
form's :meth:`~mibpcert.encode.forms.Form.gradient`) and the parameters
``theta_{t+1} = theta_t - lr_t G_t`` (:mod:`mibpcert.ops.sgd`), a variable tied to theta_t.
theta_0 is the (constant) initialisation, so the first step has no bilinear products. The test
objectives are in :mod:`mibpcert.encode.objectives`.

Bounds (they make big-M constants and McCormick envelopes valid, and they are what makes the
program solvable): theta_{t+1} is bounded by the interval step (and the AGT step under k-of-n or
label budgets) from theta_t's bounds, and optionally tightened by an LP pass: minimise and
maximise every coordinate of theta_{t+1} over the McCormick LP relaxation of the program built
so far (HiGHS), dual bounds padded. Each bound is proven for every feasible point of the exact
program, so tightening never cuts an attack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval
from mibpcert.encode import forms
from mibpcert.encode.network import Layers, layers_of
from mibpcert.encode.step import check_supported
from mibpcert.ops import sgd
from mibpcert.problem import Problem

TightenFn = Callable[[Builder, list[Expr]], tuple[np.ndarray, np.ndarray, dict]]
"""``tighten(builder, exprs) -> (lower, upper, info)``: proven bounds of the variables ``exprs``
over (a relaxation of) the builder's program."""

BoxStep = Callable[[Interval, int, np.ndarray], Interval]
"""``box_step(box, step, batch)``: a sound box of theta_{t+1} given theta_t in ``box``."""


@dataclass
class TrainingProgram:
    """The unrolled training program (no objective yet)."""

    builder: Builder
    poison: Any  # the form's attack variables: attack(x, X, y), assignment(X0, y0, X, y)
    thetas: list[list[Expr]]  # theta_0 .. theta_T, flat parameter order
    lower: np.ndarray  # (T+1, m) bounds of theta_t used in the program
    upper: np.ndarray
    step_info: list[dict] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    form: str = "points"  # the name of the form that encodes the steps

    @property
    def n_steps(self) -> int:
        return len(self.thetas) - 1

    def layers(self, problem: Problem, t: int = -1) -> Layers:
        return layers_of(problem.arch, self.thetas[t])


def encode_training(
    problem: Problem,
    steps: int | None = None,
    box_step: BoxStep | None = None,
    tighten: TightenFn | None = None,
    on_step: Callable[[int, int], None] | None = None,
    form: str = "auto",
) -> TrainingProgram:
    """Unroll the first ``steps`` training steps (default: all) into one program.

    ``form``: the encoding of the steps (:data:`~mibpcert.encode.forms.FORMS`); ``auto`` picks
    the smallest that applies (:func:`~mibpcert.encode.forms.choose`).

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
    encoding = forms.choose(problem, T, form)
    state = encoding.prepare(b, problem)
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
        grads = encoding.gradient(b, problem, state, theta, idx, f"s{t}_")
        box = (
            box_step(Interval(lower[t], upper[t]), t, idx)
            if box_step is not None
            else Interval(np.full(m, -np.inf), np.full(m, np.inf))
        )
        nxt = [
            b.materialize(
                sgd.program(b, th, g, lr, problem.recipe.weight_decay),
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
    return TrainingProgram(b, state.poison, thetas, lower, upper, info, seconds, encoding.name)
