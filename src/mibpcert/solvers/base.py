"""The solver layer's interfaces: a :class:`Backend` per solver and its reusable :class:`Session`.

A :class:`Backend` translates a :class:`~mibpcert.domains.program.Formulation` into one solver's
model **once** (:meth:`Backend.session`); the returned :class:`Session` then solves any number of
:class:`~mibpcert.domains.program.LinearObjective` over it, changing only the objective between
solves (the MIBP method needs ``2m`` solves per model). Results: :mod:`mibpcert.solvers.results`
(soundness contract of :class:`SolveResult`); the status vocabulary is
:class:`~mibpcert.vocab.Status`.

Nothing here imports a solver; backends are found with :func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mibpcert.errors import ConfigError, UnsupportedError
from mibpcert.solvers.arrays import (
    ModelArrays,
    dense_objective,
    formulation_arrays,
    objective_arrays,
)
from mibpcert.solvers.results import ProgressCallback, SolveResult, Trace, relative_gap
from mibpcert.vocab import BOUND_VALID_STATUSES, Status

if TYPE_CHECKING:
    from mibpcert.domains.program import Formulation, LinearObjective

CAPABILITIES = frozenset({"lp", "milp", "bilinear"})

__all__ = [
    "CAPABILITIES",
    "Backend",
    "ModelArrays",
    "ProgressCallback",
    "Session",
    "SolveResult",
    "Status",
    "Trace",
    "dense_objective",
    "formulation_arrays",
    "objective_arrays",
    "relative_gap",
    "solve_capable",
]


class Session(ABC):
    """A solver model built once from a formulation; solve it for many objectives.

    Use as a context manager or call :meth:`close` to free the solver's memory.
    """

    def __init__(
        self,
        backend: Backend,
        formulation: Formulation,
        threads: int,
        time_limit: float | None,
        gap: float,
        verbose: bool,
        options: dict[str, Any] | None = None,
        log_file: str | None = None,
    ) -> None:
        self.backend = backend
        #: append the solver's log to this file (never to stdout; ``None``: no log)
        self.log_file = log_file
        self.arrays = formulation_arrays(formulation)
        self.threads = threads
        self.time_limit = time_limit
        self.gap = gap
        self.verbose = verbose
        #: native solver options applied after mibpcert's defaults (see :meth:`Backend.session`)
        self.options = dict(options or {})
        self.is_mip = bool(self.arrays.binary.any() or self.arrays.products)
        self.n_solves = 0
        self.closed = False
        #: the objective of the last solve (what :meth:`resume` continues)
        self._last_objective: LinearObjective | None = None
        t0 = time.perf_counter()
        self._build()
        #: seconds spent translating the formulation into the solver's model
        self.build_seconds = time.perf_counter() - t0

    @abstractmethod
    def _build(self) -> None:
        """Create the solver model from ``self.arrays`` (called once, from ``__init__``)."""

    @abstractmethod
    def _solve(
        self,
        objective: LinearObjective,
        time_limit: float | None,
        return_x: bool,
        start: dict[int, float] | None,
        trace: Trace,
    ) -> SolveResult:
        """Set ``objective``, solve, and report (``seconds`` is filled in by :meth:`solve`).

        ``start``: a (partial) start solution ``{variable index: value}`` to offer the solver
        (set ``start_used`` on the result); ``trace``: record progress points into it."""

    @abstractmethod
    def _free(self) -> None:
        """Release the solver's model and environment."""

    def solve(
        self,
        objective: LinearObjective,
        time_limit: float | None = None,
        *,
        return_x: bool = False,
        start: Mapping[int, float] | None = None,
        progress: ProgressCallback | None = None,
    ) -> SolveResult:
        """Optimise ``objective`` over the session's model; only the objective is changed.

        Args:
            objective: the linear objective and its sense.
            time_limit: seconds for this solve; ``None`` uses the session's time limit.
            return_x: also return the incumbent's variable values in ``SolveResult.x``.
            start: a start solution offered to the solver, ``{variable index: value}``; it may
                be partial (the solver completes it: SCIP's ``completesol`` heuristic, Gurobi's
                partial MIP start, HiGHS's sparse ``setSolution``). It only helps the search:
                dual bounds never depend on it.
            progress: called as ``progress(seconds, primal, dual)`` while the solve runs (the
                points are also returned in ``SolveResult.trace``).

        Solver failures are reported as ``status="error"`` with ``dual_bound=None`` (never
        raised); licence problems raise :class:`~mibpcert.errors.UnsupportedError`.
        """
        if self.closed:
            raise RuntimeError(f"{self.backend.name} session is closed")
        limit = self.time_limit if time_limit is None else _check_time_limit(time_limit)
        objective_arrays(objective, self.arrays.n_vars)  # validate before touching the solver
        start_map = None
        if start is not None:
            start_map = {int(j): float(v) for j, v in start.items()}
            bad = [j for j in start_map if not 0 <= j < self.arrays.n_vars]
            if bad:
                raise ValueError(f"start solution: variable index {bad[0]} out of range")
        self._last_objective = objective
        return self._timed(
            objective,
            lambda trace: self._solve(objective, limit, return_x, start_map, trace),
            progress,
        )

    def resume(
        self,
        time_limit: float | None = None,
        *,
        return_x: bool = False,
        progress: ProgressCallback | None = None,
    ) -> SolveResult:
        """Continue the last :meth:`solve` for up to ``time_limit`` more seconds.

        A search stopped by its time limit goes on from where it stopped (its tree, cuts and
        incumbent kept) where the backend can do so (SCIP); otherwise, or when the last solve
        did not stop on its time limit, the last objective is solved again from the start with
        the new limit. ``SolveResult.resumed`` says which. The dual bound of either is a proof
        for the whole model, as for :meth:`solve`.

        Raises:
            RuntimeError: the session is closed or has not solved anything yet.
        """
        if self.closed:
            raise RuntimeError(f"{self.backend.name} session is closed")
        objective = self._last_objective
        if objective is None:
            raise RuntimeError("nothing to resume: call solve() first")
        limit = self.time_limit if time_limit is None else _check_time_limit(time_limit)

        def attempt(trace: Trace) -> SolveResult:
            result = self._resume(objective, limit, return_x, trace)
            if result is None:
                result = self._solve(objective, limit, return_x, None, trace)
                result.resumed = False
            else:
                result.resumed = True
            return result

        return self._timed(objective, attempt, progress)

    def _resume(
        self,
        objective: LinearObjective,
        time_limit: float | None,
        return_x: bool,
        trace: Trace,
    ) -> SolveResult | None:
        """Continue the stopped search for ``time_limit`` more seconds; ``None`` when this
        backend (or the state of its last solve) cannot, so that :meth:`resume` solves again."""
        return None

    def _timed(self, objective: LinearObjective, attempt, progress) -> SolveResult:
        """Time ``attempt(trace)``, turn solver failures into a failed result, count it."""
        trace = Trace(progress)
        t0 = time.perf_counter()
        try:
            result = attempt(trace)
        except (UnsupportedError, ConfigError):
            raise
        except Exception as exc:  # a failed solve proves nothing; report it
            result = SolveResult.failure(
                objective, f"{type(exc).__name__}: {exc}", self.backend.name
            )
        result.seconds = time.perf_counter() - t0
        trace.record(result.seconds, result.primal, result.dual_bound)
        result.trace = trace.points
        self.n_solves += 1
        return result

    def close(self) -> None:
        """Free the solver model (idempotent)."""
        if not self.closed:
            self.closed = True
            self._free()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # never raise from a finaliser
            pass

    # helpers for subclasses ------------------------------------------------------------------

    def _result(
        self,
        objective: LinearObjective,
        status: str,
        primal: float | None,
        dual: float | None,
        nodes: int,
        message: str,
        x: np.ndarray | None = None,
    ) -> SolveResult:
        """Assemble a :class:`SolveResult`, enforcing the dual-bound conventions.

        ``dual`` is the solver's bound in the objective's sense (``+-inf`` allowed). It is
        dropped for statuses that prove nothing and for trivial bounds (``-inf`` when
        minimising, ``+inf`` when maximising); an infeasible model gets the infinite bound that
        proves everything. An ``optimal`` MIP whose requested relative gap ``self.gap > 0`` left
        a real gap is reported as ``gap_limit``.
        """
        sense = objective.sense
        if status == Status.INFEASIBLE:
            primal, dual = None, (math.inf if sense == "min" else -math.inf)
        elif status not in BOUND_VALID_STATUSES:
            dual = None
        elif dual is not None:
            dual = float(dual)
            trivial = -math.inf if sense == "min" else math.inf
            if math.isnan(dual) or dual == trivial:
                dual = None
        if primal is not None:
            primal = float(primal)
            if math.isnan(primal) or (math.isinf(primal) and status != Status.UNBOUNDED):
                primal = None
        gap = relative_gap(primal, dual)
        if (
            status == Status.OPTIMAL
            and self.is_mip
            and self.gap > 0
            and gap is not None
            and gap > 1e-9
            and primal is not None
            and dual is not None
            and abs(primal - dual) > 1e-9
        ):
            status = Status.GAP_LIMIT
        return SolveResult(
            status=Status(status),
            primal=primal,
            dual_bound=dual,
            gap=gap,
            seconds=0.0,
            nodes=int(nodes),
            message=message,
            objective_name=objective.name,
            sense=sense,
            backend=self.backend.name,
            x=x,
            tolerance=self.backend.feasibility_tolerance,
        )


def _check_time_limit(time_limit: float | None) -> float | None:
    if time_limit is None:
        return None
    t = float(time_limit)
    if not t > 0 or math.isnan(t):
        raise ConfigError(f"time_limit must be positive seconds or None, got {time_limit!r}")
    return None if math.isinf(t) else t


class Backend(ABC):
    """One solver, detected without importing it.

    Subclasses set ``name``, ``module`` (the import name), ``package`` (the pip requirement),
    ``capabilities`` and ``feasibility_tolerance``, and ``session_class``, and implement
    :meth:`_import`.
    """

    name: ClassVar[str]
    module: ClassVar[str]
    install_hint: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]
    #: the solver's primal feasibility tolerance with our settings: the size of constraint
    #: violations a reported optimum may hide; use it (scaled) to pad dual bounds.
    feasibility_tolerance: ClassVar[float] = 1e-6
    #: the :class:`Session` subclass this backend builds
    session_class: ClassVar[type[Session]]
    #: native options behind each backend-neutral tuning name (see :meth:`tuning`)
    tunings: ClassVar[dict[str, dict[str, Any]]] = {}

    def tuning(self, *names: str) -> dict[str, Any]:
        """Native options for backend-neutral tuning ``names``, merged; a name this backend has
        no setting for contributes nothing (the solver keeps its default).

        ``"no_root_cuts"``: no cutting-plane rounds at the root node. Measured with SCIP on
        the ``exact`` count objectives (misclassified test points), where the root cut loop
        tails off for seconds at a bound that branching then closes quickly (docs/methods.md
        §11.2). Tunings change search effort only, never tolerances, so they leave dual bounds
        as sound as the defaults.
        """
        out: dict[str, Any] = {}
        for name in names:
            out.update(self.tunings.get(name, {}))
        return out

    def available(self) -> bool:
        """Whether the solver's Python package is installed (does not import it)."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def check(self) -> None:
        """Import the solver and check that it can run.

        Raises:
            UnsupportedError: the package is missing, fails to import, or has no usable licence.
        """
        if not self.available():
            raise UnsupportedError(
                f"solver {self.name!r} is not installed; {self.install_hint}, "
                "or choose another solver with --solver"
            )
        try:
            self._import()
        except UnsupportedError:
            raise
        except Exception as exc:  # any import failure means unusable
            raise UnsupportedError(
                f"solver {self.name!r} is installed but fails to load: {type(exc).__name__}: {exc}"
            ) from exc

    @abstractmethod
    def _import(self) -> Any:
        """Import and return the solver module; raise on licence problems."""

    def _make_session(
        self,
        formulation: Formulation,
        threads: int,
        time_limit: float | None,
        gap: float,
        verbose: bool,
        options: dict[str, Any],
        log_file: str | None = None,
    ) -> Session:
        """Build a :class:`Session` of ``session_class`` (arguments already validated)."""
        return self.session_class(
            self, formulation, threads, time_limit, gap, verbose, options, log_file
        )

    def session(
        self,
        formulation: Formulation,
        threads: int = 1,
        time_limit: float | None = None,
        gap: float = 0.0,
        verbose: bool = False,
        options: Mapping[str, Any] | None = None,
        log_file: str | None = None,
    ) -> Session:
        """Build the solver model for ``formulation`` once and return a reusable session.

        Args:
            formulation: the model (no objective).
            threads: solver threads (ignored by single-threaded solvers).
            time_limit: default seconds per solve; ``None`` for no limit.
            gap: relative MIP gap at which a solve may stop (``0.0``: prove optimality).
            verbose: show the solver's log on the console (stdout).
            log_file: append the solver's log to this file instead (nothing on stdout).
            options: native solver options set after mibpcert's defaults (SCIP parameters,
                HiGHS options, Gurobi parameters), e.g. ``{"solver": "ipm"}`` for HiGHS. An
                expert hook: options that loosen tolerances also loosen the dual bounds.

        Raises:
            UnsupportedError: solver missing/unlicensed, or the formulation needs a capability
                the solver lacks (see :func:`solve_capable`).
            ConfigError: invalid ``threads``, ``time_limit``, ``gap`` or ``options``.
        """
        if int(threads) < 1:
            raise ConfigError(f"threads must be >= 1, got {threads!r}")
        gap = float(gap)
        if not 0.0 <= gap < math.inf:
            raise ConfigError(f"gap must be a non-negative relative gap, got {gap!r}")
        time_limit = _check_time_limit(time_limit)
        self.check()
        solve_capable(self, formulation)
        return self._make_session(
            formulation,
            int(threads),
            time_limit,
            gap,
            bool(verbose),
            dict(options or {}),
            None if log_file is None else str(log_file),
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {sorted(self.capabilities)}>"


def solve_capable(backend: Backend, formulation: Formulation) -> None:
    """Raise :class:`~mibpcert.errors.UnsupportedError` if ``backend`` cannot solve ``formulation``.

    Bilinear products need ``"bilinear"``, binaries need ``"milp"``.
    """
    caps = backend.capabilities
    if formulation.products and "bilinear" not in caps:
        raise UnsupportedError(
            f"solver {backend.name!r} cannot solve bilinear programs (this model has "
            f"{len(formulation.products)} products x = a*b); use --relax milp or --relax lp "
            f"(McCormick relaxations) with {backend.name}, or --solver scip"
        )
    if formulation.n_binaries and "milp" not in caps:
        raise UnsupportedError(
            f"solver {backend.name!r} solves LPs only (this model has "
            f"{formulation.n_binaries} binaries); use --relax lp, or --solver highs or scip"
        )
