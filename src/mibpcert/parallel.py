"""One executor interface for independent tasks (per-parameter solves, per-point solves, cells).

Three executors, chosen with :func:`make_executor` (``kind``):

* ``"inprocess"`` (:class:`InProcess`): every task here, one after another;
* ``"process"`` (:class:`ProcessPool`, the default): a pool of local worker processes (joblib's
  loky executor: fresh interpreters, so no solver state is inherited, and no
  ``if __name__ == "__main__":`` guard is needed in a plain script, a notebook or ``python -c``);
  every worker ends within about a second when its parent process dies, even by SIGKILL
  (:func:`_watch_parent`);
* ``"ray"`` (:class:`RayExecutor`): Ray tasks on a local Ray runtime or on a cluster
  (``pip install 'mibpcert[ray]'``; Ray is imported only when such an executor is created).

Every executor returns the results **in task order**, so a computation split into fixed tasks
gives the same (bit for bit) result whichever executor runs it. A task that fails (its worker
process died, or the task function raised) is retried up to ``retries`` times; a task that still
fails is returned as a :class:`TaskFailure` in its place, never raised, so callers can fall back
to a sound bound. Nothing here imports a solver.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

from mibpcert.errors import ConfigError, UnsupportedError

EXECUTOR_KINDS = ("inprocess", "process", "ray")
"""The executor kinds :func:`make_executor` accepts."""

ResultCallback = Callable[[int, Any], None]
"""Called as ``on_result(index, result)`` when task ``index`` is finished (in finishing order)."""


@dataclass(frozen=True)
class TaskFailure:
    """Stands in for the result of a task that failed on every attempt.

    Attributes:
        message: what went wrong on the last attempt (worker died, or the exception raised).
    """

    message: str


class Executor(Protocol):
    """Runs ``fn(task)`` for every task and returns the results in order.

    A task that fails on every attempt yields a :class:`TaskFailure` in its place.
    """

    workers: int

    def map(
        self,
        fn: Callable[[Any], Any],
        tasks: Iterable[Any],
        on_result: ResultCallback | None = None,
    ) -> list[Any]: ...

    def close(self) -> None: ...


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 2000 else text[:2000] + " ..."


class _Base:
    workers: int = 1
    retries: int = 2

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InProcess(_Base):
    """Runs every task here, one after another.

    A task whose function raises is retried up to ``retries`` times, then becomes a
    :class:`TaskFailure` (``KeyboardInterrupt`` and other non-``Exception`` errors propagate).
    """

    def __init__(self, retries: int = 2) -> None:
        self.workers = 1
        self.retries = max(0, int(retries))

    def map(
        self,
        fn: Callable[[Any], Any],
        tasks: Iterable[Any],
        on_result: ResultCallback | None = None,
    ) -> list[Any]:
        out = []
        for i, task in enumerate(tasks):
            for attempt in range(self.retries + 1):
                try:
                    res = fn(task)
                    break
                except Exception as exc:
                    res = TaskFailure(f"attempt {attempt + 1}: {_describe(exc)}")
                    logging.getLogger(__name__).debug(
                        "task %d failed:\n%s", i, traceback.format_exc()
                    )
            out.append(res)
            if on_result is not None:
                on_result(i, res)
        return out


#: seconds between two checks of a worker's watchdog that its parent is still alive
PARENT_POLL = 0.25


def _parent_alive(parent: int) -> bool:
    if os.getppid() != parent:  # re-parented: the parent died
        return False
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - alive, owned by someone else
        return True
    return True


def _watch_parent(parent: int, poll: float = PARENT_POLL) -> None:
    """Worker initialiser: a daemon thread that ends this process as soon as ``parent`` is gone
    (the parent was killed, even by SIGKILL, which runs no clean-up of its own)."""

    def watch() -> None:
        while _parent_alive(parent):
            time.sleep(poll)
        os._exit(1)

    threading.Thread(target=watch, name="mibpcert-parent-watchdog", daemon=True).start()


class ProcessPool(_Base):
    """A pool of ``workers`` spawned processes, created lazily and reused until ``close``.

    Failures: when a worker process dies (killed, ``os._exit``, out of memory) the pool breaks
    and every task that had not finished is lost; the pool is recreated and only the lost tasks
    are run again. Since a broken pool cannot say which task killed it, the retries after a
    breakage run **one task at a time**, so every further failure is charged to the task that
    caused it. A task that raises is charged directly. Each task gets ``1 + retries`` attempts;
    one that fails them all becomes a :class:`TaskFailure`.
    """

    def __init__(self, workers: int, retries: int = 2) -> None:
        self.workers = max(1, int(workers))
        self.retries = max(0, int(retries))
        self._pool: Any = None

    def _get_pool(self):
        if self._pool is None:
            from joblib.externals.loky import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                self.workers, initializer=_watch_parent, initargs=(os.getpid(),)
            )
        return self._pool

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, kill_workers=True)
            self._pool = None

    def _run(self, fn, tasks, which, on_finish) -> dict[int, BaseException]:
        """Run ``tasks[i]`` for ``i in which`` concurrently; return the exceptions by index."""
        pool = self._get_pool()
        futures = {}
        errors: dict[int, BaseException] = {}
        for i in which:
            try:
                futures[pool.submit(fn, tasks[i])] = i
            except BrokenProcessPool as exc:
                errors[i] = exc
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=futures.__getitem__):
                i = futures[fut]
                exc = fut.exception()
                if exc is None:
                    on_finish(i, fut.result())
                else:
                    errors[i] = exc
        if any(isinstance(e, BrokenProcessPool) for e in errors.values()):
            self._drop_pool()
        return errors

    def map(
        self,
        fn: Callable[[Any], Any],
        tasks: Iterable[Any],
        on_result: ResultCallback | None = None,
    ) -> list[Any]:
        tasks = list(tasks)
        out: list[Any] = [None] * len(tasks)
        attempts = [0] * len(tasks)

        def finish(i: int, res: Any) -> None:
            out[i] = res
            if on_result is not None:
                on_result(i, res)

        def failed(i: int, exc: BaseException) -> bool:
            """Charge an attempt; True when the task may run again."""
            attempts[i] += 1
            if attempts[i] > self.retries:
                what = (
                    "its worker process died"
                    if isinstance(exc, BrokenProcessPool)
                    else _describe(exc)
                )
                finish(i, TaskFailure(f"failed {attempts[i]} time(s); last: {what}"))
                return False
            return True

        errors = self._run(fn, tasks, range(len(tasks)), finish)
        retry = [i for i in sorted(errors) if failed(i, errors[i])]
        broke = any(isinstance(e, BrokenProcessPool) for e in errors.values())
        while retry:
            if broke:  # one at a time: every failure is charged to its own task
                i = retry.pop(0)
                err = self._run(fn, tasks, [i], finish)
                if i in err and failed(i, err[i]):
                    retry.append(i)
            else:
                errors = self._run(fn, tasks, retry, finish)
                retry = [i for i in sorted(errors) if failed(i, errors[i])]
                broke = any(isinstance(e, BrokenProcessPool) for e in errors.values())
        return out

    def close(self, kill: bool = False) -> None:
        """End the workers (``kill``: at once, without waiting for running tasks)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, kill_workers=kill)
            self._pool = None

    def __exit__(self, exc_type, *exc) -> None:
        self.close(kill=exc_type is not None)  # an error or Ctrl-C: do not wait for the tasks


class RayExecutor(_Base):
    """Ray tasks, on a local Ray runtime (``workers`` CPUs) or on a cluster (``address``).

    Ray is imported here, not when mibpcert is imported. Without ``address`` a local runtime is
    started with ``workers`` CPUs (all cores when ``None``); with ``address`` (e.g. ``"auto"`` or
    ``"ray://head:10001"``) the executor connects to that cluster, whose nodes need mibpcert
    installed. If Ray is already initialised in this process it is used as it is. :meth:`close`
    shuts Ray down only if this executor started it.

    Failures: a task whose worker died is retried by Ray (``max_retries``), a task that raised
    is retried too (``retry_exceptions``); one that still fails becomes a :class:`TaskFailure`.
    """

    def __init__(self, workers: int | None = None, address: str | None = None, retries: int = 2):
        try:
            import ray
        except ImportError:
            raise UnsupportedError(
                "the Ray executor needs Ray: pip install 'mibpcert[ray]'"
            ) from None
        self._ray = ray
        self.retries = max(0, int(retries))
        self.address = address
        self._owns = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "ignore_reinit_error": True,
                "logging_level": logging.WARNING,
            }
            if address is None:
                kwargs["num_cpus"] = default_workers() if workers is None else max(1, int(workers))
            else:
                kwargs["address"] = address
            try:
                ray.init(**kwargs)
            except Exception as exc:
                where = f"the Ray cluster at {address!r}" if address else "a local Ray runtime"
                raise ConfigError(f"cannot start or reach {where}: {_describe(exc)}") from exc
            self._owns = True
        if workers is not None:
            self.workers = max(1, int(workers))
        else:
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(
        self,
        fn: Callable[[Any], Any],
        tasks: Iterable[Any],
        on_result: ResultCallback | None = None,
    ) -> list[Any]:
        ray = self._ray
        tasks = list(tasks)
        if not tasks:
            return []
        remote = ray.remote(max_retries=self.retries, retry_exceptions=True)(fn)
        refs = [remote.remote(t) for t in tasks]
        index = {ref: i for i, ref in enumerate(refs)}
        out: list[Any] = [None] * len(tasks)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = index[ref]
                try:
                    out[i] = ray.get(ref)
                except Exception as exc:
                    out[i] = TaskFailure(
                        f"failed {self.retries + 1} time(s); last: {_describe(exc)}"
                    )
                if on_result is not None:
                    on_result(i, out[i])
        return out

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_kind(kind: str) -> str:
    """``kind`` if it names an executor, else a :class:`ConfigError` listing the valid ones."""
    if kind not in EXECUTOR_KINDS:
        raise ConfigError(f"unknown executor {kind!r}; use one of {', '.join(EXECUTOR_KINDS)}.")
    return kind


def make_executor(
    workers: int | None = None,
    kind: str = "process",
    address: str | None = None,
    retries: int = 2,
) -> InProcess | ProcessPool | RayExecutor:
    """An executor of ``kind`` with ``workers`` workers (``None``: all cores).

    ``"process"`` with one worker runs in-process. ``address`` (Ray only) connects to a Ray
    cluster instead of starting a local runtime. ``retries``: further attempts of a failed task.
    """
    check_kind(kind)
    if workers is not None and int(workers) < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}.")
    if kind == "ray":
        return RayExecutor(workers, address, retries)
    n = default_workers() if workers is None else int(workers)
    if kind == "inprocess" or n <= 1:
        return InProcess(retries)
    return ProcessPool(n, retries)
