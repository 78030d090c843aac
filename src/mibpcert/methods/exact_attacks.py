"""The attacks of method ``exact``: starts for the solver and incumbents that replay.

* :func:`start_attack`: the coordinate search (box corners, labels) and, from its result, the
  interior gradient attack (:func:`~mibpcert.attacks.gradient_attack`); the better one becomes
  the solver's start;
* :func:`solver_attack`: the solver's incumbent as a poisoned set, projected onto the threat
  model to the last bit and replayed; if it replays worse than the solver's value (a point at a
  hinge/ReLU kink), repaired (:func:`~mibpcert.attacks.repair_attack`).

Every value here is a replayed one: the report's primal is the best replayed attack, never a
solver value that does not replay.
"""

from __future__ import annotations

import time
from typing import Protocol

from mibpcert.attacks import (
    Attack,
    TestObjective,
    coordinate_search,
    gradient_attack,
    project_attack,
    repair_attack,
)
from mibpcert.attacks.gradient import reaches, worse_for_model
from mibpcert.attacks.replay import replay, threat_violations
from mibpcert.encode.unroll import TrainingProgram
from mibpcert.problem import Problem
from mibpcert.vocab import Outcome


class AttackSettings(Protocol):
    heuristic: bool
    interior_attack: bool
    repair: bool
    seed: int

    def heuristic_budget(self) -> float: ...


def best_of(objective: TestObjective, attacks) -> Attack:
    """The attack worst for the model among ``attacks`` (``None`` entries skipped)."""
    out = None
    for a in attacks:
        if a is not None and (out is None or worse_for_model(objective, a.value, out.value)):
            out = a
    assert out is not None
    return out


def start_attack(
    method: AttackSettings, problem: Problem, objective: TestObjective, share: float = 1.0
) -> dict[str, Attack]:
    """The heuristic attacks (``heuristic`` and, if enabled, ``gradient``), each within
    ``share`` of the heuristic budget."""
    out: dict[str, Attack] = {}
    if not method.heuristic:
        return out
    budget = share * method.heuristic_budget()
    h = coordinate_search(problem, objective, budget, seed=method.seed)
    out["heuristic"] = h
    if method.interior_attack and problem.threat.perturbs_features:
        out["gradient"] = gradient_attack(problem, objective, [h], budget, seed=method.seed)
    return out


def solver_attack(
    problem: Problem,
    prog: TrainingProgram,
    x,
    objective: TestObjective,
    target: float | None = None,
    repair_budget: float = 0.0,
    seed: int = 0,
) -> Attack | None:
    """The incumbent ``x``'s poisoning, projected onto the threat model and replayed; with a
    ``repair_budget`` and the solver's value ``target``, repaired if it replays worse."""
    if x is None:
        return None
    data = problem.data
    X, y = prog.poison.attack(x, data.X_train, data.y_train)
    X, y = project_attack(problem, X, y)
    bad = threat_violations(problem, X, y)
    if bad:  # the projection keeps every budget; anything left is a bug: drop the attack
        return None
    attack = Attack(X, y, replay(problem, X, y, objective), "solver", {"threat_violations": bad})
    if repair_budget > 0 and target is not None:
        attack = repair_attack(problem, objective, attack, target, repair_budget, seed)
    return attack


def outcome(
    objective: TestObjective,
    status: str,
    solver_primal: float | None,
    best: float,
    certified: float | None,
    closed_gap: float = 1e-4,
) -> str:
    """:class:`~mibpcert.vocab.Outcome` of one program: ``closed`` (the best replayed attack
    meets the certified bound within the relative gap ``closed_gap``), ``replay_differs`` (the
    solver claims a value no replayed attack reaches), else ``open``."""
    from mibpcert.solvers.results import relative_gap

    if certified is not None:
        gap = relative_gap(best, certified)
        if gap is not None and gap <= closed_gap:
            return Outcome.CLOSED
    if (
        status == "optimal"
        and solver_primal is not None
        and not reaches(objective, best, solver_primal)
    ):
        return Outcome.REPLAY_DIFFERS
    return Outcome.OPEN


def opening_attacks(
    method: AttackSettings, problem: Problem, objective: TestObjective
) -> tuple[dict[str, Attack], float]:
    """The clean data as an attack, plus the start attacks (:func:`start_attack`), and the
    seconds the start attacks took."""
    data = problem.data
    clean = objective.value(problem, problem.train_nominal().final)
    attacks = {"clean": Attack(data.X_train, data.y_train, clean, "clean")}
    t0 = time.perf_counter()
    attacks.update(start_attack(method, problem, objective))
    return attacks, time.perf_counter() - t0


def single_answer(
    problem: Problem,
    objective: TestObjective,
    attacks: dict[str, Attack],
    *,
    status: str,
    solver_primal: float | None,
    solver_dual: float | None,
    replayed: float | None,
    interval_bound: float,
    certified: float,
    proof: str,
    seconds: dict[str, float],
    repaired: bool,
    trace: list[dict],
) -> tuple[dict, dict]:
    """The metrics and the report section of an ``mse`` / ``misclassified`` answer
    (``attacks`` holds ``best`` and ``clean``; ``seconds``: ``solve``, ``heuristic``,
    ``repair``; ``trace``: the progress points)."""
    from mibpcert.solvers.results import relative_gap

    best = attacks["best"]
    agree = (  # whether the solver's incumbent replays to the solver's value
        None
        if replayed is None or solver_primal is None
        else bool(abs(replayed - solver_primal) <= 1e-6 * (1.0 + abs(solver_primal)))
    )
    metrics = {
        "objective": objective.kind,
        "status": status,
        "outcome": outcome(objective, status, solver_primal, best.value, certified),
        "primal": best.value,  # the best replayed attack: every reported value replays
        "solver_primal": solver_primal,
        "dual_bound": certified,
        "solver_dual_bound": solver_dual,
        "interval_bound": interval_bound,
        "gap": relative_gap(best.value, certified),
        "replayed": replayed,
        "heuristic": attacks["heuristic"].value if "heuristic" in attacks else None,
        "gradient": attacks["gradient"].value if "gradient" in attacks else None,
        "best_attack": best.value,
        "clean_value": attacks["clean"].value,
        "certified_by": proof,
    }
    if objective.kind == "misclassified":
        n_test = len(problem.data.X_test)
        metrics["accuracy_lower_bound"] = 1.0 - certified / n_test
        metrics["attacked_accuracy"] = 1.0 - best.value / n_test
    section = {
        **metrics,
        "solve_seconds": seconds["solve"],
        "heuristic_seconds": seconds["heuristic"],
        "repair_seconds": seconds["repair"],
        "repaired": bool(repaired),
        "replay_agrees": agree,
        "trace": trace,
        "attacks": {k: a.summary(problem) for k, a in attacks.items()},
    }
    return metrics, section
