"""The ``margin`` objective of method ``exact``: one program per open test point.

A point whose interval bound from the final box is already > 0 is certified without a solve; a
point the heuristic attacks (margin <= 0, replayed) is not certified without one; every other
point gets the program of its margins, solved over the executor with the heuristic's attack as
a start. ``test_points`` forces the solve of the named points.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mibpcert.attacks import Attack, TestObjective
from mibpcert.certify.testtime import class_margin_lower_bounds
from mibpcert.domains.interval import Interval
from mibpcert.encode.margin import MarginEncoding
from mibpcert.encode.objectives import margin_objectives
from mibpcert.encode.unroll import TrainingProgram
from mibpcert.methods.exact_attacks import best_of, outcome, solver_attack, start_attack
from mibpcert.parallel import TaskFailure
from mibpcert.problem import Problem
from mibpcert.solvers.results import relative_gap
from mibpcert.solvers.tasks import SolveTask, check_failures, failed_results, solve_task
from mibpcert.vocab import Provenance, Verdict


@dataclass
class Answer:
    """What one objective kind produced: the report section, metrics, verdicts, attacks."""

    section: dict
    metrics: dict
    point_verdicts: dict[int, dict] = field(default_factory=dict)
    attacks: dict[str, Attack] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)


class MarginSettings(Protocol):
    """The settings of method ``exact`` the margin objective reads."""

    test_points: list[int] | None
    heuristic: bool
    interior_attack: bool
    repair: bool
    seed: int
    solver: str
    program_time: float | None
    on_point: Callable[[int, int], None] | None

    def heuristic_budget(self) -> float: ...

    def repair_budget(self) -> float: ...


def run_margins(
    method: MarginSettings, problem: Problem, prog: TrainingProgram, executor
) -> Answer:
    """Decide every (open) test point of the margin objective with its own program: points the
    interval bound certifies, or the heuristic attacks, need no solve (unless ``test_points``
    names them)."""
    data = problem.data
    explicit = method.test_points is not None
    points = method.test_points if explicit else list(range(len(data.X_test)))
    box = Interval(prog.lower[-1], prog.upper[-1])
    lb_all = class_margin_lower_bounds(
        problem.arch, box, Interval.point(data.X_test[points]), int(data.n_classes)
    )
    nominal = problem.train_nominal().final
    verdicts: dict[int, dict] = {}
    attacks: dict[str, Attack] = {}
    starts: dict[int, dict | None] = {}
    todo: list[int] = []
    for row, p in enumerate(points):
        objective = TestObjective("margin", p)
        c = int(data.y_test[p])
        v = {
            "point": p,
            "label": c,
            "interval_bound": float(lb_all[row, c]),
            "clean_value": objective.value(problem, nominal),
        }
        verdicts[p] = v
        if v["interval_bound"] > 0 and not explicit:
            v.update(
                verdict=Verdict.CERTIFIED,
                certified_by=Provenance.INTERVAL,
                dual_bound=v["interval_bound"],
            )
            continue
        best = Attack(data.X_train, data.y_train, v["clean_value"], "clean")
        start = None
        found = start_attack(method, problem, objective)
        if found:
            v["heuristic"] = found["heuristic"].value
            if "gradient" in found:
                v["gradient"] = found["gradient"].value
            s = best_of(objective, found.values())
            start = prog.poison.assignment(data.X_train, data.y_train, s.X, s.y)
            best = best_of(objective, [best, s])
        v["best_attack"] = best.value
        if best.value <= 0.0:
            attacks[f"attack_point{p}"] = best
        if best.value <= 0.0 and not explicit:
            v.update(verdict=Verdict.NOT_CERTIFIED, certified_by=None)
            continue
        starts[p] = start
        todo.append(p)
    tasks = []
    for p in todo:
        b = prog.builder.fork()
        objs = margin_objectives(b, problem, prog.layers(problem), p)
        tasks.append(
            SolveTask(b.f, objs, method.solver, method.program_time, True, starts[p])
        )

    done = 0
    if method.on_point is not None:
        method.on_point(0, len(tasks))

    def on_result(_i: int, _res) -> None:
        nonlocal done
        done += 1
        if method.on_point is not None:
            method.on_point(done, len(tasks))

    results = executor.map(solve_task, tasks, on_result=on_result)
    results = [
        failed_results(task.objectives, res.message) if isinstance(res, TaskFailure) else res
        for task, res in zip(tasks, results, strict=True)
    ]
    failed = check_failures(
        [r for res in results for r in res], "exact margin programs", method.allow_degraded
    )
    statuses: Counter = Counter()
    for p, res in zip(todo, results, strict=True):
        v = verdicts[p]
        objective = TestObjective("margin", p)
        primals = [r.primal for r in res if r.primal is not None]
        for r in res:
            statuses[r.status] += 1
        dual = MarginEncoding.decode([r.certified() for r in res])
        worst = min(
            range(len(res)), key=lambda k: np.inf if res[k].primal is None else res[k].primal
        )
        sa = solver_attack(
            problem,
            prog,
            res[worst].x,
            objective,
            res[worst].primal,
            method.repair_budget(),
            method.seed,
        )
        certified = v["interval_bound"] if dual is None else max(dual, v["interval_bound"])
        v.update(
            status=",".join(sorted({r.status for r in res})),
            solver_primal=min(primals) if primals else None,
            solver_dual_bound=dual,
            dual_bound=certified,
            replayed=None if sa is None else sa.value,
            seconds=float(sum(r.seconds for r in res)),
            trace=[{"t": t, "primal": pr, "dual": d} for t, pr, d in res[worst].trace],
        )
        if sa is not None and sa.value < v.get("best_attack", np.inf):
            v["best_attack"] = sa.value
            if sa.value <= 0.0:
                attacks[f"attack_point{p}"] = sa
        v["primal"] = v["best_attack"]  # replayed, never the solver's own value
        v["gap"] = relative_gap(v["best_attack"], certified)
        v["outcome"] = outcome(
            objective, res[worst].status, res[worst].primal, v["best_attack"], certified
        )
        v["repaired"] = bool(sa is not None and sa.extra.get("repaired"))
        if certified > 0.0:
            exact = dual is not None and dual >= v["interval_bound"]
            v.update(
                verdict=Verdict.CERTIFIED,
                certified_by=Provenance.EXACT if exact else Provenance.INTERVAL,
            )
        elif v["best_attack"] <= 0.0:
            v.update(verdict=Verdict.NOT_CERTIFIED, certified_by=None)
        else:
            v.update(verdict=Verdict.UNKNOWN, certified_by=None)
    counts = Counter(v["verdict"] for v in verdicts.values())
    metrics = {
        "objective": "margin",
        "test_points": points,
        "primal": [verdicts[p].get("primal") for p in points],
        "solver_primal": [verdicts[p].get("solver_primal") for p in points],
        "outcome": [verdicts[p].get("outcome") for p in points],
        "dual_bound": [verdicts[p].get("dual_bound") for p in points],
        "gap": [verdicts[p].get("gap") for p in points],
        "replayed": [verdicts[p].get("replayed") for p in points],
        "heuristic": [verdicts[p].get("heuristic") for p in points],
        "exact_certified": counts.get(Verdict.CERTIFIED, 0),
        "exact_not_certified": counts.get(Verdict.NOT_CERTIFIED, 0),
        "exact_unknown": counts.get(Verdict.UNKNOWN, 0),
        "exact_solved": len(todo),
        "failed_solves": failed,
    }
    section = {
        **metrics,
        "statuses": dict(statuses),
        "points": [verdicts[p] for p in points],
    }
    return Answer(section, metrics, verdicts, attacks, dict(statuses))
