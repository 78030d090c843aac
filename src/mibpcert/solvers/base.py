"""Solver-neutral parts of the solver layer: status vocabulary, results, backend and session APIs.

A :class:`Backend` translates a :class:`~mibpcert.encode.formulation.Formulation` into one solver's
model **once** (:meth:`Backend.session`); the returned :class:`Session` then solves any number of
:class:`~mibpcert.encode.formulation.LinearObjective` over it, changing only the objective between
solves (the MIBP method needs ``2m`` solves per model).

Soundness contract of :class:`SolveResult` (see DESIGN.md section 3):

* ``dual_bound`` is the solver's *proven* bound on the optimum in the objective's own sense, a
  lower bound when minimising and an upper bound when maximising. It is never the incumbent.
* ``dual_bound`` is ``None`` when nothing was proven: errors, numerical trouble, a solve that never
  started, an unbounded model, or a solver that stopped before it had any finite bound.
* An infeasible model proves every bound: ``dual_bound`` is ``+inf`` when minimising and ``-inf``
  when maximising (the optimum over an empty set).
* Use :meth:`SolveResult.bound` to move the dual bound outward by the solver's tolerances before
  treating it as a certificate.

Nothing here imports a solver; backends are found with :func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mibpcert.errors import ConfigError, UnsupportedError

if TYPE_CHECKING:
    from mibpcert.encode.formulation import Formulation, LinearObjective

CAPABILITIES = frozenset({"lp", "milp", "bilinear"})


class Status:
    """Solve status vocabulary shared by every backend (plain ``str`` values, JSON friendly)."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    TIME_LIMIT = "time_limit"
    GAP_LIMIT = "gap_limit"
    NODE_LIMIT = "node_limit"
    INTERRUPTED = "interrupted"
    NUMERICAL = "numerical"
    ERROR = "error"
    NOT_SOLVED = "not_solved"

    ALL: ClassVar[frozenset[str]] = frozenset(
        {
            "optimal",
            "infeasible",
            "unbounded",
            "time_limit",
            "gap_limit",
            "node_limit",
            "interrupted",
            "numerical",
            "error",
            "not_solved",
        }
    )
    #: statuses after which the solver's dual bound is kept (branch-and-bound bounds stay valid
    #: when a search stops early); all others report ``dual_bound=None`` except ``infeasible``.
    BOUND_VALID: ClassVar[frozenset[str]] = frozenset(
        {"optimal", "time_limit", "gap_limit", "node_limit", "interrupted"}
    )


@dataclass
class SolveResult:
    """The outcome of one solve; see the module docstring for the meaning of ``dual_bound``.

    Attributes:
        status: one of the :class:`Status` values.
        primal: objective value of the best feasible point found (the incumbent), or ``None``.
            Never use it as a bound.
        dual_bound: proven bound on the optimum in the objective's sense (lower for ``min``,
            upper for ``max``); ``+inf``/``-inf`` for an infeasible min/max model; ``None`` when
            nothing was proven.
        gap: ``|primal - dual_bound| / max(|primal|, 1e-10)``, ``0.0`` when they are equal,
            ``None`` when either is missing or infinite.
        seconds: wall-clock seconds of this solve (objective change included).
        nodes: branch-and-bound nodes (0 for an LP or when the solver does not report them).
        message: the solver's native status and any notes.
        objective_name: the ``name`` of the objective that was solved.
        sense: ``"min"`` or ``"max"``, the objective's sense.
        backend: name of the backend that produced the result.
        x: values of all variables at the incumbent when requested (``return_x=True``), else
            ``None``.
        trace: ``(seconds, primal, dual)`` points over the solve, as the solver reported its
            progress (in the objective's sense; ``None`` where not known yet); the last point is
            the final answer. Backends without progress events give only the final point.
        start_used: whether a start solution was given and the solver accepted it (``None``
            when no start was given).
    """

    status: str
    primal: float | None
    dual_bound: float | None
    gap: float | None
    seconds: float
    nodes: int
    message: str
    objective_name: str
    sense: str = "min"
    backend: str = ""
    x: np.ndarray | None = None
    trace: list[tuple[float, float | None, float | None]] = field(default_factory=list)
    start_used: bool | None = None

    @classmethod
    def failure(cls, objective: LinearObjective, message: str, backend: str = "") -> SolveResult:
        """The result of a solve that failed: status ``error``, nothing proven."""
        return cls(
            status=Status.ERROR,
            primal=None,
            dual_bound=None,
            gap=None,
            seconds=0.0,
            nodes=0,
            message=message,
            objective_name=objective.name,
            sense=objective.sense,
            backend=backend,
        )

    def bound(self, pad_abs: float = 0.0, pad_rel: float = 0.0) -> float | None:
        """The dual bound moved outward by ``pad_abs + pad_rel * |dual_bound|``, or ``None``.

        Outward means down for ``min`` and up for ``max``, so the padded value is still a valid
        bound when the solver's answer is off by up to its tolerances. Infinite bounds (an
        infeasible model) are returned unchanged.
        """
        if pad_abs < 0 or pad_rel < 0:
            raise ValueError(f"padding must be non-negative, got pad_abs={pad_abs}, {pad_rel=}")
        d = self.dual_bound
        if d is None or math.isnan(d):
            return None
        if math.isinf(d):
            return d
        pad = pad_abs + pad_rel * abs(d)
        return d - pad if self.sense == "min" else d + pad

    @property
    def proven(self) -> bool:
        """Whether the solve ended with a usable dual bound (``bound()`` is not ``None``)."""
        return self.dual_bound is not None and not math.isnan(self.dual_bound)


ProgressCallback = Callable[[float, "float | None", "float | None"], None]
"""Called as ``progress(seconds, primal, dual)`` whenever a solve's bounds change."""


class Trace:
    """Collects a solve's ``(seconds, primal, dual)`` progress points (bounds in the objective's
    sense, ``None`` while unknown) and forwards each new point to an optional callback."""

    def __init__(self, callback: ProgressCallback | None = None) -> None:
        self.points: list[tuple[float, float | None, float | None]] = []
        self.callback = callback

    def record(self, seconds: float, primal: float | None, dual: float | None) -> None:
        def clean(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else float(v)

        point = (float(seconds), clean(primal), clean(dual))
        if self.points and self.points[-1][1:] == point[1:]:
            return  # nothing changed
        self.points.append(point)
        if self.callback is not None:
            self.callback(*point)


def relative_gap(primal: float | None, dual: float | None) -> float | None:
    """``|primal - dual| / max(|primal|, 1e-10)`` (Gurobi's definition); ``None`` if undefined."""
    if primal is None or dual is None or not (math.isfinite(primal) and math.isfinite(dual)):
        return None
    diff = abs(primal - dual)
    if diff == 0.0:
        return 0.0
    return diff / max(abs(primal), 1e-10)


# --------------------------------------------------------------------------------------------
# Formulation -> arrays (shared by every backend)


@dataclass(frozen=True)
class ModelArrays:
    """A validated :class:`Formulation` as arrays: bounds, binaries and a CSR row matrix.

    Duplicate indices within a row are summed. Rows keep their order; ``row_lo``/``row_hi`` may
    be infinite.
    """

    lb: np.ndarray
    ub: np.ndarray
    binary: np.ndarray
    names: list[str]
    row_start: np.ndarray
    row_index: np.ndarray
    row_value: np.ndarray
    row_lo: np.ndarray
    row_hi: np.ndarray
    products: list[tuple[int, int, int]]

    @property
    def n_vars(self) -> int:
        """Number of variables."""
        return len(self.lb)

    @property
    def n_rows(self) -> int:
        """Number of linear rows."""
        return len(self.row_lo)

    def row(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and coefficients of row ``r``."""
        s, e = self.row_start[r], self.row_start[r + 1]
        return self.row_index[s:e], self.row_value[s:e]


def _merge_duplicates(idx: np.ndarray, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the coefficients of repeated indices; return sorted unique indices."""
    if len(idx) <= 1:
        return idx, coef
    uniq, inv = np.unique(idx, return_inverse=True)
    if len(uniq) == len(idx):
        order = np.argsort(idx, kind="stable")
        return idx[order], coef[order]
    out = np.zeros(len(uniq))
    np.add.at(out, inv, coef)
    return uniq, out


def _rows_csr(rows: list, n: int) -> tuple[np.ndarray, ...]:
    """Validated CSR arrays ``(index, value, start, lo, hi)`` of ``rows`` over ``n`` variables:
    within a row, indices sorted and duplicates summed (in their order of appearance)."""
    R = len(rows)
    row_lo = np.fromiter((r[2] for r in rows), dtype=np.float64, count=R)
    row_hi = np.fromiter((r[3] for r in rows), dtype=np.float64, count=R)
    idx_parts = [np.asarray(r[0], dtype=np.int64).ravel() for r in rows]
    coef_parts = [np.asarray(r[1], dtype=np.float64).ravel() for r in rows]
    lens = np.fromiter((len(a) for a in idx_parts), dtype=np.int64, count=R)
    coef_lens = np.fromiter((len(a) for a in coef_parts), dtype=np.int64, count=R)
    if (lens != coef_lens).any():
        r = int(np.flatnonzero(lens != coef_lens)[0])
        raise ValueError(f"row {r}: index and coefficient arrays differ in shape")
    idx = np.concatenate(idx_parts) if R else np.zeros(0, dtype=np.int64)
    coef = np.concatenate(coef_parts) if R else np.zeros(0)
    rid = np.repeat(np.arange(R), lens)
    bad = (idx < 0) | (idx >= n)
    if bad.any():
        raise ValueError(f"row {int(rid[np.argmax(bad)])}: variable index out of range [0, {n})")
    bad = ~np.isfinite(coef)
    if bad.any():
        raise ValueError(f"row {int(rid[np.argmax(bad)])}: non-finite coefficient")
    bad = np.isnan(row_lo) | np.isnan(row_hi) | (row_lo > row_hi)
    if bad.any():
        r = int(np.argmax(bad))
        raise ValueError(f"row {r}: invalid bounds [{row_lo[r]}, {row_hi[r]}]")
    order = np.lexsort((idx, rid))  # by row, then index; stable for repeated indices
    rid, idx, coef = rid[order], idx[order], coef[order]
    first = np.ones(len(idx), dtype=bool)
    first[1:] = (rid[1:] != rid[:-1]) | (idx[1:] != idx[:-1])
    groups = np.flatnonzero(first)
    value = np.add.reduceat(coef, groups) if len(groups) else coef
    counts = np.bincount(rid[groups], minlength=R)
    start = np.zeros(R + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    return idx[groups], value.astype(np.float64), start, row_lo, row_hi


def formulation_arrays(f: Formulation) -> ModelArrays:
    """Validate ``f`` and return it as :class:`ModelArrays`.

    Raises:
        ValueError: inconsistent lengths, unknown variable types, bad bounds, indices out of
            range, non-finite coefficients or products with a binary factor.
    """
    n = f.n_vars
    if not (len(f.ub) == len(f.vtype) == len(f.names) == n):
        raise ValueError("formulation lb/ub/vtype/names have different lengths")
    lb = np.asarray(f.lb, dtype=np.float64).reshape(n)
    ub = np.asarray(f.ub, dtype=np.float64).reshape(n)
    bad_type = sorted({t for t in f.vtype if t not in ("C", "B")})
    if bad_type:
        raise ValueError(f"unknown variable types {bad_type}; use 'C' or 'B'")
    binary = np.array([t == "B" for t in f.vtype], dtype=bool)
    if np.isnan(lb).any() or np.isnan(ub).any() or (lb > ub).any():
        j = int(np.flatnonzero(np.isnan(lb) | np.isnan(ub) | (lb > ub))[0])
        raise ValueError(f"variable {f.names[j]!r} has invalid bounds [{lb[j]}, {ub[j]}]")
    if binary.any() and ((lb[binary] < 0) | (ub[binary] > 1)).any():
        j = int(np.flatnonzero(binary & ((lb < 0) | (ub > 1)))[0])
        raise ValueError(f"binary variable {f.names[j]!r} has bounds outside [0, 1]")

    row_index, row_value, row_start, row_lo, row_hi = _rows_csr(f.rows, n)
    products = []
    for z, a, b in f.products:
        for v in (z, a, b):
            if not 0 <= v < n:
                raise ValueError(f"product ({z}, {a}, {b}): variable index out of range")
        if binary[a] or binary[b]:
            raise ValueError(
                f"product {f.names[z]!r} = {f.names[a]!r} * {f.names[b]!r} has a binary factor; "
                "such products must be linearised by the encoder"
            )
        products.append((int(z), int(a), int(b)))
    return ModelArrays(
        lb=lb,
        ub=ub,
        binary=binary,
        names=list(f.names),
        row_start=row_start,
        row_index=row_index,
        row_value=row_value,
        row_lo=row_lo,
        row_hi=row_hi,
        products=products,
    )


def objective_arrays(objective: LinearObjective, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated, duplicate-free ``(idx, coef)`` of ``objective`` over ``n`` variables."""
    if objective.sense not in ("min", "max"):
        raise ValueError(f"objective {objective.name!r}: sense must be 'min' or 'max'")
    if not math.isfinite(objective.constant):
        raise ValueError(f"objective {objective.name!r}: non-finite constant")
    idx = np.asarray(objective.idx, dtype=np.int64).ravel()
    coef = np.asarray(objective.coef, dtype=np.float64).ravel()
    if idx.shape != coef.shape:
        raise ValueError(f"objective {objective.name!r}: idx and coef differ in shape")
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"objective {objective.name!r}: variable index out of range [0, {n})")
    if not np.isfinite(coef).all():
        raise ValueError(f"objective {objective.name!r}: non-finite coefficient")
    return _merge_duplicates(idx, coef)


def dense_objective(objective: LinearObjective, n: int) -> np.ndarray:
    """The objective's cost vector of length ``n`` (duplicates summed)."""
    idx, coef = objective_arrays(objective, n)
    out = np.zeros(n)
    out[idx] = coef
    return out


# --------------------------------------------------------------------------------------------
# Backends and sessions


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
    ) -> None:
        self.backend = backend
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
        trace = Trace(progress)
        t0 = time.perf_counter()
        try:
            result = self._solve(objective, limit, return_x, start_map, trace)
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
        elif status not in Status.BOUND_VALID:
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
            status=status,
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
    ) -> Session:
        """Build a :class:`Session` of ``session_class`` (arguments already validated)."""
        return self.session_class(self, formulation, threads, time_limit, gap, verbose, options)

    def session(
        self,
        formulation: Formulation,
        threads: int = 1,
        time_limit: float | None = None,
        gap: float = 0.0,
        verbose: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> Session:
        """Build the solver model for ``formulation`` once and return a reusable session.

        Args:
            formulation: the model (no objective).
            threads: solver threads (ignored by single-threaded solvers).
            time_limit: default seconds per solve; ``None`` for no limit.
            gap: relative MIP gap at which a solve may stop (``0.0``: prove optimality).
            verbose: show the solver's log.
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
            formulation, int(threads), time_limit, gap, bool(verbose), dict(options or {})
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
