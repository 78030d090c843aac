"""The one shape of every method: what it checks, what it returns, and the shared box loop.

Every method has ``check(problem)`` (raise for what it cannot bound, return notes on what it
relaxes), ``run(problem)`` returning a :class:`MethodResult` (parameter boxes, per-point verdicts
and attacks if the method makes any, solver statistics, provenance), ``bound(problem)`` (the
boxes alone) and ``test_mip()`` (how open test points of its final box are re-checked, if at
all). The pipeline treats every method alike.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mibpcert.bounds.parameters import ParameterBounds
from mibpcert.config import DEFAULT_TIME_LIMIT
from mibpcert.domains.interval import Interval
from mibpcert.ops import sgd
from mibpcert.problem import Problem
from mibpcert.vocab import RelaxMode

StepCallback = Callable[[int, int], None]
"""Called as ``on_step(done, total)`` after every finished training step."""

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "BoxMethod",
    "Method",
    "MethodResult",
    "StepCallback",
    "TestMIP",
    "SETS",
    "attack_symbols",
    "box_loop",
    "box_relaxation_notes",
    "check_affine_sets",
    "step_statuses",
]


@dataclass(frozen=True)
class TestMIP:
    """How the open test points of a method's final box are re-checked by a margin MIP each."""

    __test__ = False  # not a pytest test class

    solver: str
    relax: RelaxMode
    time_limit: float | None  # seconds per margin solve
    workers: int | None = None
    executor: str = "process"
    ray_address: str | None = None
    #: continue when too many margin solves fail (else :class:`SolveFailureError`)
    allow_degraded: bool = False


@dataclass
class MethodResult:
    """What every method returns.

    Attributes:
        bounds: sound parameter boxes of every step (with the method's notes and step info).
        provenance: how the bounds were proven (the report's ``soundness.bounds``).
        point_verdicts: per test point, verdicts the method proved itself (``exact`` margins),
            merged into the test-time certificate.
        attacks: attacks found, by name (replayed with the ordinary trainer).
        metrics: the method's own metrics, merged into the report's metrics.
        section: the method's own report section (reported under the method's name).
        summary: extra rows of the readable summary.
        statuses: count of every solver status of the run's solves.
        worst_case_mse_bound: a sound bound on the worst-case test MSE proven by the method
            (kept where it beats interval propagation from the final box).
    """

    bounds: ParameterBounds
    provenance: str
    point_verdicts: dict[int, dict] = field(default_factory=dict)
    attacks: dict[str, Any] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    section: dict | None = None
    summary: list[tuple[str, str]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    worst_case_mse_bound: float | None = None


def step_statuses(step_info: list[dict]) -> dict[str, int]:
    """Solver statuses summed over the steps' info rows."""
    total: Counter = Counter()
    for row in step_info:
        total.update(row.get("statuses", {}) or {})
    return dict(total)


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
    if t.removes:
        notes.append(
            f"deletions of up to {t.remove_k} points: per batch and coordinate the deleted "
            "points are chosen separately for every number r of them (sound, looser)."
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


GradientFunction = Callable[[Interval, int, np.ndarray], tuple[Interval, dict | None]]
"""``grad_fn(box, step, batch_indices) -> (box of the batch-mean gradient, info or None)``."""


SETS = ("box", "affine")
"""What a method carries between steps: a box, or an affine set over the attack symbols."""


def check_sets(sets: str) -> str:
    from mibpcert.errors import ConfigError

    if sets not in SETS:
        raise ConfigError(f"unknown parameter sets {sets!r}; use one of {', '.join(SETS)}.")
    return sets


def attack_symbols(problem: Problem, k: int | None):
    """The attack symbols of the problem's threat model: every point in scope and feature, with
    at most ``k`` points moved (``None``: all of them); the features' boxes as the threat
    model gives them (discrete domains by their range)."""
    from mibpcert.domains.affine import SymbolSet
    from mibpcert.errors import UnsupportedError

    t = problem.threat
    X = problem.data.X_train
    lo, hi = t.feature_box(X)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise UnsupportedError(
            "affine parameter sets need bounded inputs: eps = inf requires feature_bounds."
        )
    scope = t.scope(len(X)) if t.perturbs_features else np.zeros(0, dtype=np.int64)
    return SymbolSet.from_box(X, lo, hi, scope, k if t.perturbs_features else None)


def check_affine_sets(problem: Problem, sets: str, method: str) -> None:
    """Affine sets do not carry a velocity yet, and tie every step to one attack: refuse
    momentum and per-batch budgets with them."""
    from mibpcert.errors import UnsupportedError

    if sets == "affine" and problem.prefix is not None and problem.threat.perturbs_features:
        raise UnsupportedError(
            f"method {method!r} with --sets affine takes its attack symbols on the trained "
            "layers' inputs, which a frozen prefix (--freeze / --prefix) maps nonlinearly; "
            "use --sets box."
        )
    if sets == "affine" and problem.threat.removes:
        raise UnsupportedError(
            f"method {method!r} with --sets affine does not bound the removal threat "
            "(remove_k); use --sets box."
        )
    if sets == "affine" and problem.threat.per_batch:
        raise UnsupportedError(
            f"method {method!r} with --sets affine ties every step to one poisoned training "
            "set, so it cannot bound --budget-scope batch (each step poisoned afresh); use "
            "--sets box, or --budget-scope global."
        )
    if sets == "affine" and problem.recipe.has_momentum:
        raise UnsupportedError(
            f"method {method!r} with --sets affine does not carry the momentum velocity yet; "
            "use --sets box (the velocity then gets its own box), or drop --momentum."
        )


def box_loop(
    name: str,
    problem: Problem,
    grad_fn: GradientFunction,
    notes: list[str],
    on_step: StepCallback | None = None,
    sets: str = "box",
    k: int | None = None,
) -> ParameterBounds:
    """Bound every step's batch-mean gradient with ``grad_fn`` over the current box and apply
    the SGD update (:func:`mibpcert.ops.sgd.step_interval`; with momentum the velocity is state
    with its own box); collect the boxes.

    ``sets="affine"``: carry an affine set over the attack symbols (at most ``k`` points moved)
    beside the box; every step's box is the box step intersected with the affine set's
    bounding box, and each set's step starts from the intersected box (both hold the true
    parameters).
    """
    check_affine_sets(problem, sets, name)
    from mibpcert.bounds import affine_pass
    from mibpcert.bounds.parameters import AffineTrajectory

    batches = problem.batches()
    T, m = len(batches), problem.arch.n_params
    lower = np.empty((T + 1, m))
    upper = np.empty((T + 1, m))
    lower[0] = upper[0] = problem.theta0
    theta = Interval.point(problem.theta0)
    velocity = None
    recipe = problem.recipe
    sgd_args = recipe.sgd_args()
    seconds: list[float] = []
    info: list[dict] = []
    affine = None
    if check_sets(sets) == "affine":
        attack = attack_symbols(problem, k)
        affine_pass.check_size(problem.arch, max(len(b) for b in batches), attack)
        state = affine_pass.AffineSet.point(problem.theta0, attack.size)
        X_box, labels = problem.input_box(), problem.label_set()
        cs, Gs, rhos = [state.c], [state.G], [state.rho]
    for step, idx in enumerate(batches):
        t0 = time.perf_counter()
        before = theta
        grad, extra = grad_fn(theta, step, idx)
        theta, velocity = sgd.step_interval(theta, velocity, grad, recipe.lr_at(step), **sgd_args)
        if sets == "affine":
            state, row = affine_pass.step(
                problem.arch,
                state,
                attack,
                problem.data.X_train,
                idx,
                labels,
                problem.recipe.loss,
                problem.recipe.lr_at(step),
                problem.recipe.clipping(problem.arch),
                before,
                X_box,
                problem.recipe.weight_decay,
                problem.recipe.l1,
            )
            theta = theta.intersect(state.box(attack))
            cs.append(state.c)
            Gs.append(state.G)
            rhos.append(state.rho)
            extra = {**(extra or {}), **row}
        lower[step + 1], upper[step + 1] = theta.lo, theta.hi
        seconds.append(time.perf_counter() - t0)
        if extra is not None:
            info.append(extra)
        if on_step is not None:
            on_step(step + 1, T)
    if sets == "affine":
        affine = AffineTrajectory(attack, np.array(cs), np.array(Gs), np.array(rhos))
        notes = [
            *notes,
            "affine parameter sets over the attack symbols between steps, intersected with the "
            f"method's boxes ({attack.size} symbols"
            + ("" if attack.k is None else f", any {attack.k} points")
            + "; label changes and nonlinearity errors as local errors).",
        ]
    return ParameterBounds(name, lower, upper, notes, seconds, info, affine=affine)


class Method(Protocol):
    """A training-loop algorithm that bounds the parameters under the problem's threat model."""

    name: str

    def check(self, problem: Problem) -> list[str]:
        """Raise :class:`~mibpcert.errors.UnsupportedError` for what the method cannot bound;
        return notes on the relaxations it will apply."""
        ...

    def run(self, problem: Problem, on_step: StepCallback | None = None) -> MethodResult:
        """Everything the method proves and finds (see :class:`MethodResult`)."""
        ...

    def bound(self, problem: Problem, on_step: StepCallback | None = None) -> ParameterBounds:
        """Parameter boxes for every step."""
        ...

    def test_mip(self) -> TestMIP | None:
        """How open test points of the final box are re-checked by a MIP (``None``: not)."""
        ...


class BoxMethod:
    """A method whose whole result is its parameter boxes (``interval``, ``agt``, ``mibp``);
    ``sets``: what it carries between steps (:data:`SETS`)."""

    name: str
    sets: str = "box"

    def __init__(self, sets: str = "box") -> None:
        self.sets = check_sets(sets)

    def provenance(self) -> str:
        raise NotImplementedError

    def bound(self, problem: Problem, on_step: StepCallback | None = None) -> ParameterBounds:
        raise NotImplementedError

    def run(self, problem: Problem, on_step: StepCallback | None = None) -> MethodResult:
        bounds = self.bound(problem, on_step=on_step)
        provenance = self.provenance()
        if bounds.affine is not None:
            provenance += (
                "; affine parameter sets over the shared attack symbols (outward-rounded affine "
                "arithmetic), intersected with the boxes"
            )
        return MethodResult(bounds, provenance, statuses=step_statuses(bounds.step_info))

    def test_mip(self) -> TestMIP | None:
        return None
