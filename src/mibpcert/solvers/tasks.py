"""Picklable solve tasks: one formulation, several objectives, one backend (run by executors).

Every method's solves go through :class:`SolveTask` and :func:`solve_task`: the per-step solves of
``mibp`` (:func:`solve_many`), the test-time margin programs, and the ``exact`` method's
programs (with a start solution and a progress callback).
"""

from __future__ import annotations

from dataclasses import dataclass

from mibpcert.domains.program import Formulation, LinearObjective
from mibpcert.parallel import TaskFailure
from mibpcert.solvers.results import ProgressCallback

CHUNKS = 8
"""Objectives of one formulation are split into this many independent solver sessions."""


@dataclass(frozen=True)
class SolveTask:
    """Objectives over one formulation, solved in one session of ``backend``.

    ``time_limit``: seconds per solve; ``return_x``: keep every incumbent's variable values;
    ``start``: a (partial) start solution offered to every solve.
    """

    formulation: Formulation
    objectives: list[LinearObjective]
    backend: str
    time_limit: float | None
    return_x: bool = False
    start: dict | None = None


def solve_task(task: SolveTask, progress: ProgressCallback | None = None) -> list:
    """Build the model once and solve every objective of the task (runs in a worker);
    ``progress(seconds, primal, dual)`` is called while each solve runs."""
    from mibpcert.solvers import get_backend

    backend = get_backend(task.backend)
    with backend.session(task.formulation, time_limit=task.time_limit) as session:
        return [
            session.solve(
                obj,
                time_limit=task.time_limit,
                return_x=task.return_x,
                start=task.start,
                progress=progress,
            )
            for obj in task.objectives
        ]


def failed_results(objectives: list[LinearObjective], message: str) -> list:
    """One ``status="error"`` result (no bound, ``lost``) per objective of a task that failed."""
    from mibpcert.solvers.results import SolveResult

    return [SolveResult.failure(obj, f"task failed: {message}", lost=True) for obj in objectives]


def run_tasks(tasks: list[SolveTask], executor) -> list[list]:
    """Run ``tasks`` with ``executor``; a task that failed on every attempt (a
    :class:`~mibpcert.parallel.TaskFailure`) gives :func:`failed_results` for its objectives."""
    out = []
    for task, res in zip(tasks, executor.map(solve_task, tasks), strict=True):
        if isinstance(res, TaskFailure):
            res = failed_results(task.objectives, res.message)
        out.append(res)
    return out


def solve_many(
    formulation: Formulation,
    objectives: list[LinearObjective],
    backend: str,
    time_limit: float | None,
    executor,
    return_x: bool = False,
) -> list:
    """Solve ``objectives`` over ``formulation`` with ``executor``; results in objective order.

    Objectives are dealt round-robin into ``CHUNKS`` chunks (each chunk builds the model once and
    warm-starts its later solves). The chunking does not depend on the executor, so every
    executor, whatever its number of workers, returns bit-identical results. A chunk whose task
    failed on every attempt (worker died, or the task raised) gives ``status="error"`` results
    without a bound for its objectives (see :func:`failed_results`). ``return_x``: every result
    also carries its solution's variable values (``SolveResult.x``).
    """
    n = max(1, min(CHUNKS, len(objectives)))
    chunks = [objectives[k::n] for k in range(n)]
    tasks = [SolveTask(formulation, c, backend, time_limit, return_x) for c in chunks if c]
    out: list = [None] * len(objectives)
    for c, res in enumerate(run_tasks(tasks, executor)):
        for k, r in enumerate(res):
            out[c + k * n] = r
    return out
