"""One executor interface for independent tasks (per-parameter solves, per-point solves).

``InProcess`` runs tasks in this process; ``ProcessPool`` fans them out over local worker
processes (spawned, so no solver state is inherited). Results come back in task order, whichever
executor runs them. Methods and certification call :func:`make_executor`; nothing here imports a
solver.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Protocol


class Executor(Protocol):
    """Runs ``fn(task)`` for every task and returns the results in order."""

    workers: int

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> list[Any]: ...

    def close(self) -> None: ...


class InProcess:
    """Runs every task here, one after another."""

    workers = 1

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> list[Any]:
        return [fn(t) for t in tasks]

    def close(self) -> None:
        pass

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ProcessPool:
    """A pool of ``workers`` spawned processes, created lazily and reused until ``close``."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> list[Any]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))
        return list(self._pool.map(fn, tasks))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def make_executor(workers: int | None = None) -> InProcess | ProcessPool:
    """``InProcess`` for one worker, else a ``ProcessPool`` (``None``: all cores)."""
    n = default_workers() if workers is None else int(workers)
    return InProcess() if n <= 1 else ProcessPool(n)
