"""``exact`` split by the poisoned points: one program per choice of ``k`` points of a k-of-n
feature threat.

Under "the features of at most ``k`` points move" the attack set is the union over the
``k``-subsets ``S`` of the scope of "only the points of ``S`` move" (an attack moving fewer
points lies in every piece that holds them). Label changes (``label_k``, not paired) ride along
unchanged in every piece: their budget is independent of the features', so "features of at most
``k`` points and labels of any ``label_k`` points" is the union over ``S`` of "features of ``S``
only and labels of any ``label_k`` points". So

    max over attacks = max_S (max over attacks on the points of S),

and a sound bound of each piece gives a sound bound of the whole. Each piece is a program
without assignment binaries whose poisoned inputs range over their own points' boxes only: its
interval and LP-tightened step boxes, its McCormick relaxations and its branch and bound are all
far tighter than the slot form's, where a slot's input ranges over every point's box until the
assignment is fixed. There are ``C(|scope|, k)`` pieces: at most :data:`MAX_PIECES`.

Per piece, in order of its interval bound (largest first):

* **pruned**: its interval bound (from its own interval/AGT final box; for a piece that stays
  open, also from its LP-tightened one) is no better for the
  attacker than the best replayed attack so far: nothing to solve;
* otherwise it is solved with a **cutoff row** ``objective >= c`` (``c`` = the best attack so
  far; for a count, ``best + 1``). For the feasible set ``S`` and the cutoff set
  ``S' = S ∩ {obj >= c}``, ``max_S obj <= max(c, max_S' obj)``, so the piece's bound is
  ``max(c, padded dual of S')``, with ``c`` padded like a dual bound (an infeasible ``S'``
  proves ``max_S obj <= c``); its incumbent is replayed and raises the best attack;
* pieces still open after a round get the time left in the next one; a search its time limit
  stopped after the root node goes on (:meth:`~mibpcert.solvers.base.Session.resume`) while
  its cutoff is unchanged, otherwise the piece is solved afresh;
* a piece left unsolved when the budget runs out keeps its interval bound (proven, reported).

The certificate is the largest piece bound, combined with the interval bound of the whole
problem; the time limit is the budget of all pieces together (build, tightening and solve).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mibpcert.attacks import Attack, TestObjective
from mibpcert.attacks.gradient import worse_for_model as worse_than
from mibpcert.encode.objectives import single_objective
from mibpcert.methods.exact_attacks import (
    best_of,
    opening_attacks,
    single_answer,
    solver_attack,
)
from mibpcert.methods.exact_margins import Answer
from mibpcert.problem import Problem
from mibpcert.solvers.tasks import SolveTask, open_session
from mibpcert.vocab import Provenance, Status

if TYPE_CHECKING:
    from mibpcert.encode.unroll import TrainingProgram


class SplitSettings(Protocol):
    """The settings and helpers of method ``exact`` the pieces use."""

    solver: str
    seed: int
    heuristic: bool
    interior_attack: bool
    program_time: float | None

    def tunings(self, kind: str) -> tuple[str, ...]: ...

    def heuristic_budget(self) -> float: ...

    def repair_budget(self) -> float: ...

    def _tolerance(self) -> float: ...

    def _program(
        self, problem: Problem, on_step, time_limit=None, tighten_time=None, box_step=None
    ): ...

    def _interval_bound(self, problem: Problem, prog: TrainingProgram, kind: str) -> float: ...

    def _box_step(self, problem: Problem): ...

    def _step_box(self, problem: Problem, step=None): ...

    def _box_bound(self, problem: Problem, box, kind: str) -> float: ...


#: at most this many pieces (k-subsets of the scope); beyond, one program is smaller to hand over
MAX_PIECES = 200
SPLITS = ("auto", "points", "none")
#: at most this many stopped piece searches are held open to go on with in the next round
MAX_HELD = 24
#: piece statuses of pieces the budget left without a solve (their interval bound is kept)
UNSOLVED = ("unsolved", "unbuilt")


def split_applies(problem: Problem) -> bool:
    """A k-of-n feature threat, with or without label changes (paired and discrete threats
    excluded), with ``k`` below the scope's size and at most :data:`MAX_PIECES` k-subsets: the
    union-of-pieces identity above holds exactly."""
    t = problem.threat
    scope = len(t.scope(problem.data.n_train))
    return (
        t.perturbs_features
        and t.k is not None
        and 1 <= int(t.k) < scope
        and not t.paired
        and not t.discrete
        and math.comb(scope, int(t.k)) <= MAX_PIECES
    )


def piece(problem: Problem, points: int | tuple[int, ...]) -> Problem:
    """The problem in which only the features of training point(s) ``points`` may move (every
    other part of the threat model, label changes included, unchanged)."""
    pts = (int(points),) if isinstance(points, int | np.integer) else tuple(map(int, points))
    return problem.with_threat(replace(problem.threat, points=pts, k=None))


def piece_subsets(problem: Problem) -> list[tuple[int, ...]]:
    """The pieces of :func:`run_split`: every ``k``-subset of the threat's scope."""
    scope = [int(i) for i in problem.threat.scope(problem.data.n_train)]
    return list(itertools.combinations(scope, int(problem.threat.k)))


def _row(points: tuple[int, ...], **fields) -> dict:
    """A piece's report row: ``points`` (and ``point`` for one-point pieces) and ``fields``."""
    head = {"point": points[0]} if len(points) == 1 else {}
    return {**head, "points": list(points), **fields}


def run_split(method: SplitSettings, problem: Problem, prog: TrainingProgram, kind: str) -> Answer:
    """The misclassified/MSE answer of ``method`` by pieces (see the module docstring);
    ``prog`` is the whole problem's program (its final box gives the whole interval bound)."""
    objective = TestObjective(kind)
    count = kind == "misclassified"
    tol = method._tolerance()
    attacks, h_seconds = opening_attacks(method, problem, objective)
    best = best_of(objective, attacks.values())
    whole_interval = method._interval_bound(problem, prog, kind)
    budget = method.program_time
    deadline = None if budget is None else time.perf_counter() + float(budget)

    def left() -> float | None:
        return None if deadline is None else deadline - time.perf_counter()

    subsets = piece_subsets(problem)
    share = None if budget is None else float(budget) / (2 * len(subsets))
    rows, built = [], []
    for pts in subsets:  # every piece's interval bound; the open ones LP-tightened
        r = left()
        if r is not None and r <= 0:
            rows.append(_row(pts, interval_bound=None, bound=None, status="unbuilt"))
            continue
        sub = piece(problem, pts)
        tb = time.perf_counter()
        step = method._box_step(sub)  # once per piece (with affine sets it is not free)
        ib = method._box_bound(sub, method._step_box(sub, step), kind)  # no program, no LP
        row = _row(pts, interval_bound=ib, bound=ib, status="pruned")
        rows.append(row)
        if worse_than(objective, ib, best.value):  # open: LP-tighten it, to be solved
            sub_prog = method._program(
                sub, None, time_limit=share, tighten_time=share, box_step=step
            )
            ib = min(ib, method._interval_bound(sub, sub_prog, kind))
            row["interval_bound"] = row["bound"] = ib
            built.append((row, sub, sub_prog))
        row["seconds"] = time.perf_counter() - tb
    built.sort(key=lambda e: -e[0]["interval_bound"])
    solver_best: tuple[float, Attack | None] | None = None  # the solver's value, its replay
    statuses: dict[str, int] = {}
    spent = {"solve": 0.0, "repair": 0.0}

    tunings = method.tunings(kind)
    sessions: dict[int, dict] = {}  # id(piece row) -> its open solver session and cutoff

    def solve(row: dict, sub: Problem, sub_prog: TrainingProgram, tl: float | None) -> None:
        """Solve piece ``row`` (or go on with its search where its last solve stopped on the
        time limit and the cutoff has not moved since)."""
        nonlocal best, solver_best
        cut = best.value + 1.0 if count else best.value
        held = sessions.get(id(row))
        ts = time.perf_counter()
        if (
            held is not None
            and held["cut"] == cut
            and row["status"] == Status.TIME_LIMIT
            and held["nodes"] > 1  # a search stopped in its root node does better afresh
        ):
            res = held["session"].resume(tl, return_x=True)
        else:
            if held is not None:  # its cutoff moved, or its search stopped in the root
                sessions.pop(id(row))["session"].close()
            b = sub_prog.builder.fork()
            obj = single_objective(b, sub, sub_prog.layers(sub), kind)
            b.f.add_row(obj.idx, obj.coef, cut - obj.constant, math.inf)  # objective >= cut
            if len(sessions) >= MAX_HELD:  # free the longest-held search (memory)
                sessions.pop(next(iter(sessions)))["session"].close()
            session = open_session(SolveTask(b.f, [obj], method.solver, tl, tunings=tunings))
            held = sessions[id(row)] = {"session": session, "cut": cut, "nodes": 0}
            res = session.solve(obj, tl, return_x=True)
        held["nodes"] = res.nodes
        spent["solve"] += time.perf_counter() - ts
        statuses[res.status] = statuses.get(res.status, 0) + 1
        row["status"] = res.status
        row["solves"] = row.get("solves", 0) + 1
        row["resumed"] = row.get("resumed", 0) + int(bool(res.resumed))
        row["solve_seconds"] = row.get("solve_seconds", 0.0) + time.perf_counter() - ts
        if res.status != Status.TIME_LIMIT:  # nothing to go on with
            sessions.pop(id(row))["session"].close()
        dual = res.certified()
        if dual is not None:  # max over the piece <= max(cutoff, dual of the cutoff set)
            floor = cut - 1.0 if count else cut + tol + tol * abs(cut)  # count: an integer
            d = math.floor(dual) if count and math.isfinite(dual) else dual
            row["bound"] = min(row["bound"], max(floor, d))  # every round's proof holds
        tr = time.perf_counter()
        inc = solver_attack(
            sub, sub_prog, res.x, objective, res.primal, method.repair_budget(), method.seed
        )
        spent["repair"] += time.perf_counter() - tr
        if res.primal is not None and (
            solver_best is None or worse_than(objective, res.primal, solver_best[0])
        ):
            solver_best = (res.primal, inc)
        if inc is not None:
            inc = Attack(inc.X, inc.y, inc.value, "solver", inc.extra)
            best = best_of(objective, [best, inc])
            if "solver" not in attacks or worse_than(objective, inc.value, attacks["solver"].value):
                attacks["solver"] = inc

    def still_open(row: dict) -> bool:
        proved = row["status"] in (Status.OPTIMAL, Status.INFEASIBLE)
        return not proved and worse_than(objective, row["bound"], best.value)

    trace: list[dict] = []
    t_start = time.perf_counter()

    def pieces_bound() -> float:  # the largest piece bound (the whole one if any is unbuilt)
        bounds = [row["bound"] for row in rows]
        return whole_interval if any(v is None for v in bounds) else max(bounds)

    def record() -> None:  # progress of the whole answer: best attack, bound so far
        dual = float(min(pieces_bound(), whole_interval))
        trace.append({"t": time.perf_counter() - t_start, "primal": best.value, "dual": dual})

    record()
    rounds = 0
    try:
        while True:  # rounds over the open pieces, the time left shared among them
            todo = [e for e in built if still_open(e[0])]
            r = left()
            if not todo or (r is not None and r <= 0.05) or (r is None and rounds):
                break
            rounds += 1
            for n_done, (row, sub, sub_prog) in enumerate(todo):
                if not still_open(row):
                    continue  # pruned by a better attack found meanwhile
                r = left()
                if r is not None and r <= 0.05:
                    break
                solve(row, sub, sub_prog, None if r is None else max(0.1, r / (len(todo) - n_done)))
                record()
    finally:
        for held in sessions.values():
            held["session"].close()
    for row, _, _ in built:
        if row["status"] == "pruned" and still_open(row):
            row["status"] = "unsolved"  # the budget ran out before it was solved
            statuses[Status.NOT_SOLVED] = statuses.get(Status.NOT_SOLVED, 0) + 1
    solve_seconds, repair_seconds = spent["solve"], spent["repair"]
    split_bound = pieces_bound()
    certified = float(min(split_bound, whole_interval))
    used_solver = any(
        row["bound"] is not None
        and row["interval_bound"] is not None
        and row["bound"] < row["interval_bound"]
        for row in rows
    )
    proof = (
        Provenance.EXACT if used_solver and split_bound <= whole_interval else (Provenance.INTERVAL)
    )
    attacks["best"] = best
    proved_all = all(row["interval_bound"] is not None and not still_open(row) for row in rows)
    status = Status.OPTIMAL if proved_all else Status.TIME_LIMIT
    solver_primal = None if solver_best is None else solver_best[0]
    replayed = None if solver_best is None or solver_best[1] is None else solver_best[1].value
    metrics, section = single_answer(
        problem,
        objective,
        attacks,
        status=status,
        solver_primal=solver_primal,
        solver_dual=None,  # no single program
        replayed=replayed,
        interval_bound=whole_interval,
        certified=certified,
        proof=proof,
        seconds={"solve": solve_seconds, "heuristic": h_seconds, "repair": repair_seconds},
        repaired="solver" in attacks and bool(attacks["solver"].extra.get("repaired")),
        trace=trace,
    )
    section.update(
        {
            "solve_proved_nothing": not used_solver
            and any(row["status"] != "pruned" for row in rows),
            "split": {
                "pieces": len(rows),
                "pruned": sum(1 for row in rows if row["status"] == "pruned"),
                "solved": sum(1 for row in rows if row["status"] not in UNSOLVED + ("pruned",)),
                "unsolved": sum(1 for row in rows if row["status"] in UNSOLVED),
                "rounds": rounds,
                "per_point": rows,
            },
        }
    )
    return Answer(section, metrics, attacks=attacks, statuses=statuses)
