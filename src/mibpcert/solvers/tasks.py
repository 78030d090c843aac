"""Picklable solve tasks: one formulation, several objectives, one backend (run by executors).

Every method's solves go through :class:`SolveTask` and :func:`solve_task`: the per-step solves of
``mibp`` (:func:`solve_many`), the test-time margin programs, and the ``exact`` method's
programs (with a start solution and a progress callback).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mibpcert.domains.program import Formulation, LinearObjective
from mibpcert.parallel import TaskFailure
from mibpcert.solvers.results import ProgressCallback
from mibpcert.vocab import Status

if TYPE_CHECKING:
    from mibpcert.solvers.base import Session

CHUNKS = 8
"""Objectives of one formulation are split into this many independent solver sessions."""

MAX_FAILED_SHARE = 0.25
"""A batch of solves (one training step of ``mibp``, or the test-time MIP) in which more than
this share failed (status ``error``: the solver raised, or the task holding the solve was lost
with its worker) stops the run with :class:`~mibpcert.errors.SolveFailureError`, unless the run
allows a degraded result (``allow_degraded``)."""


_SOLVER_LOG: str | None = None


@contextmanager
def solver_log(path: str | Path | None) -> Iterator[None]:
    """While the block runs, every :class:`SolveTask` created appends its solver's log to
    ``path`` (in whichever process or worker solves it); ``None``: no solver log. Solver output
    never goes to stdout either way. Raises :class:`~mibpcert.errors.ConfigError` at once when
    ``path`` cannot be written."""
    global _SOLVER_LOG
    if path is not None:
        path = Path(path).expanduser().resolve()
        try:
            with open(path, "a"):
                pass
        except OSError as exc:
            from mibpcert.errors import ConfigError

            raise ConfigError(
                f"cannot write the solver log {str(path)!r} ({exc.strerror or exc}); pass a "
                "--solver-log path in a writable directory."
            ) from None
    saved, _SOLVER_LOG = _SOLVER_LOG, None if path is None else str(path)
    try:
        yield
    finally:
        _SOLVER_LOG = saved


def _current_solver_log() -> str | None:
    return _SOLVER_LOG


@dataclass(frozen=True)
class SolveTask:
    """Objectives over one formulation, solved in one session of ``backend``.

    ``time_limit``: seconds per solve; ``return_x``: keep every incumbent's variable values;
    ``start``: a (partial) start solution offered to every solve; ``log_file``: where the
    solver's log goes (default: the path of the enclosing :func:`solver_log`, else none);
    ``tunings``: backend-neutral tuning names (:meth:`~mibpcert.solvers.base.Backend.tuning`).
    """

    formulation: Formulation
    objectives: list[LinearObjective]
    backend: str
    time_limit: float | None
    return_x: bool = False
    start: dict | None = None
    log_file: str | None = field(default_factory=_current_solver_log)
    tunings: tuple[str, ...] = ()


def open_session(task: SolveTask) -> Session:
    """The solver session of ``task`` (its backend, time limit, log file and tunings), left
    open for the caller to solve, :meth:`~mibpcert.solvers.base.Session.resume` and close."""
    from mibpcert.solvers import get_backend

    backend = get_backend(task.backend)
    return backend.session(
        task.formulation,
        time_limit=task.time_limit,
        log_file=task.log_file,
        options=backend.tuning(*task.tunings),
    )


def solve_task(task: SolveTask, progress: ProgressCallback | None = None) -> list:
    """Build the model once and solve every objective of the task (runs in a worker);
    ``progress(seconds, primal, dual)`` is called while each solve runs."""
    with open_session(task) as session:
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


def failed_solves(results: list) -> int:
    """How many of ``results`` failed (status ``error``; nothing proven)."""
    return sum(1 for r in results if r.status == Status.ERROR)


def check_failures(results: list, where: str, allow_degraded: bool = False) -> int:
    """The number of failed solves among ``results``; raises
    :class:`~mibpcert.errors.SolveFailureError` when they are more than
    :data:`MAX_FAILED_SHARE` of them and ``allow_degraded`` is false."""
    n_failed = failed_solves(results)
    if results and n_failed > MAX_FAILED_SHARE * len(results) and not allow_degraded:
        from mibpcert.errors import SolveFailureError

        first = next(r for r in results if r.status == Status.ERROR).message
        first = " ".join(first.split())
        if len(first) > 300:
            first = first[:300] + " ..."
        raise SolveFailureError(
            f"{where}: {n_failed} of {len(results)} solves failed (first: {first}); the solver "
            "proved nothing there, so the run stops instead of returning fallback bounds as a "
            "solver result. Run with --executor inprocess (or --workers 1) to see the error, or "
            "pass --allow-degraded (allow_degraded=True) to continue; the report is then "
            "marked degraded."
        )
    return n_failed


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
