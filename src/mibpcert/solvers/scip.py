"""SCIP backend (PySCIPOpt): LP, MILP and nonconvex bilinear programs (spatial branch-and-bound).

Products ``z = a * b`` become nonlinear equality constraints ``z - a*b = 0``, which SCIP bounds
with McCormick-type relaxations and spatial branching, so its dual bound is global.

Notes on SCIP's behaviour (PySCIPOpt 6 / SCIP 10):

* ``getDualbound()`` and ``getPrimalbound()`` are in the original objective's sense and include
  the objective constant: for a maximisation the dual bound is an *upper* bound. For an
  infeasible model both are ``+infinity`` when minimising and ``-infinity`` when maximising.
  SCIP's infinity is ``1e20``; it is converted to ``math.inf``.
* The objective can only change in SCIP's problem stage, so every re-solve first calls
  ``freeTransform()``. That drops the search tree but keeps the incumbents in original space,
  and SCIP tries them as start solutions under the new objective (still feasible: only the
  objective changed).
* SCIP is single-threaded here; ``threads`` is ignored.
* Start solutions are added as *partial* solutions in the problem stage; SCIP's ``completesol``
  heuristic fixes the given values and solves for the rest after presolve.
* Progress points come from an event handler on ``BESTSOLFOUND``, ``DUALBOUNDIMPROVED`` and
  ``NODESOLVED`` events (``getSolvingTime``, ``getPrimalbound``, ``getDualbound``).
* The ``lpface`` primal heuristic can overrun ``limits/time`` by an order of magnitude (a sub-MIP
  that does not check the clock; seen on knapsacks with coefficients ~1e9: 20 s for a 3 s limit),
  so it is disabled. It only finds incumbents and never changes a dual bound.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mibpcert.errors import ConfigError
from mibpcert.solvers.base import (
    Backend,
    Session,
    SolveResult,
    Status,
    Trace,
    objective_arrays,
)

if TYPE_CHECKING:
    from mibpcert.domains.program import LinearObjective

#: PySCIPOpt ``Model.getStatus()`` strings -> :class:`Status`.
SCIP_STATUS: dict[str, str] = {
    "optimal": Status.OPTIMAL,
    "infeasible": Status.INFEASIBLE,
    "unbounded": Status.UNBOUNDED,
    "inforunbd": Status.UNBOUNDED,  # only after a re-solve without dual reductions; no bound
    "timelimit": Status.TIME_LIMIT,
    "gaplimit": Status.GAP_LIMIT,
    "nodelimit": Status.NODE_LIMIT,
    "totalnodelimit": Status.NODE_LIMIT,
    "stallnodelimit": Status.NODE_LIMIT,
    "userinterrupt": Status.INTERRUPTED,
    "memlimit": Status.INTERRUPTED,
    "sollimit": Status.INTERRUPTED,
    "bestsollimit": Status.INTERRUPTED,
    "restartlimit": Status.INTERRUPTED,
    "primallimit": Status.INTERRUPTED,
    "duallimit": Status.INTERRUPTED,
    "unknown": Status.ERROR,
}

_NO_TIME_LIMIT = 1e20


class SCIPBackend(Backend):
    """PySCIPOpt; the default backend, global for bilinear MIPs, no licence needed."""

    name = "scip"
    module = "pyscipopt"
    install_hint = "pip install pyscipopt"
    capabilities = frozenset({"lp", "milp", "bilinear"})
    feasibility_tolerance = 1e-6  # numerics/feastol (default)
    tunings = {"no_root_cuts": {"separating/maxroundsroot": 0}}

    def _import(self) -> Any:
        import pyscipopt

        return pyscipopt


class SCIPSession(Session):
    """One SCIP model; each :meth:`solve` frees the transformed problem and swaps the objective."""

    def _build(self) -> None:
        scip = self.backend._import()
        from pyscipopt.scip import Expr, ExprCons, Term

        self._Expr, self._Term = Expr, Term
        a = self.arrays
        model = scip.Model()
        if not self.verbose:
            model.hideOutput()
        if self.log_file:
            model.setLogfile(self.log_file)
        model.setParam("limits/gap", self.gap)
        model.setParam("heuristics/lpface/freq", -1)
        for key, value in self.options.items():
            try:
                model.setParam(key, value)
            except Exception as exc:  # PySCIPOpt raises KeyError/LookupError/TypeError
                raise ConfigError(f"invalid SCIP parameter {key}={value!r}: {exc}") from exc
        self._inf = float(model.infinity())

        def finite(v: float) -> float | None:
            return None if math.isinf(v) else float(v)

        self._vars = [
            model.addVar(
                name=a.names[j],
                vtype="B" if a.binary[j] else "C",
                lb=finite(a.lb[j]),
                ub=finite(a.ub[j]),
            )
            for j in range(a.n_vars)
        ]
        self._terms = [Term(v) for v in self._vars]
        terms = self._terms
        for r in range(a.n_rows):
            lo, hi = finite(a.row_lo[r]), finite(a.row_hi[r])
            if lo is None and hi is None:
                continue
            idx, coef = a.row(r)
            expr = Expr({terms[i]: c for i, c in zip(idx.tolist(), coef.tolist(), strict=True)})
            model.addCons(ExprCons(expr, lhs=lo, rhs=hi))
        for z, x, y in a.products:
            expr = Expr({terms[z]: 1.0, Term(self._vars[x], self._vars[y]): -1.0})
            model.addCons(ExprCons(expr, lhs=0.0, rhs=0.0))
        self._events = _make_event_handler(scip)
        model.includeEventhdlr(self._events, "mibpcert_trace", "records primal/dual bounds")
        self._model = model
        self._transformed = False
        self._dual_reductions_off = False
        self._last_native = ""

    def _value(self, v: float) -> float:
        """SCIP's +-1e20 -> +-inf."""
        v = float(v)
        if v >= self._inf:
            return math.inf
        if v <= -self._inf:
            return -math.inf
        return v

    def _optimize(self, resume: bool = False) -> str:
        """Free the previous transformed problem (if any), solve, return the native status;
        ``resume``: go on with the transformed problem's stopped search instead."""
        model = self._model
        self._last_native = ""
        if resume:
            model.optimize()
            self._last_native = str(model.getStatus())
            return self._last_native
        if self._transformed:
            model.freeTransform()
        if self._dual_reductions_off:
            model.setParam("misc/allowstrongdualreds", True)
            model.setParam("misc/allowweakdualreds", True)
            self._dual_reductions_off = False
        self._transformed = True  # also if optimize() fails half-way
        model.optimize()
        self._last_native = str(model.getStatus())
        return self._last_native

    def _traced(self, trace: Trace, resume: bool = False, offset: float = 0.0) -> str:
        """:meth:`_optimize` with the event handler recording into ``trace`` (its times less
        ``offset``, the solving seconds before a resumed search went on)."""
        self._events.trace, self._events.offset = trace, offset
        try:
            return self._optimize(resume)
        finally:
            self._events.trace, self._events.offset = None, 0.0

    def _solve(
        self,
        objective: LinearObjective,
        time_limit: float | None,
        return_x: bool,
        start: dict[int, float] | None,
        trace: Trace,
    ) -> SolveResult:
        model = self._model
        if self._transformed:  # the objective can only change in the problem stage
            model.freeTransform()
            self._transformed = False
        self._last_native = ""  # the problem stage: nothing to go on with
        idx, coef = objective_arrays(objective, self.arrays.n_vars)
        terms = self._terms
        expr = self._Expr({terms[i]: c for i, c in zip(idx.tolist(), coef.tolist(), strict=True)})
        if objective.constant:
            expr = expr + float(objective.constant)
        model.setObjective(expr, sense="minimize" if objective.sense == "min" else "maximize")
        model.setParam("limits/time", _NO_TIME_LIMIT if time_limit is None else time_limit)
        start_used = None
        if start:
            # a start fixes the attack, a small share of the variables: let SCIP's completesol
            # heuristic fill in the rest however many are unknown (default: give up at 85 %)
            model.setParam("heuristics/completesol/maxunknownrate", 1.0)
            sol = model.createPartialSol()
            for j, v in start.items():
                model.setSolVal(sol, self._vars[j], v)
            start_used = bool(model.addSol(sol, free=True))
        native = self._traced(trace)
        message = f"scip: {native}"
        if native == "inforunbd":
            # Dual reductions in presolve can hide which one; re-solve once without them
            # (restored before the next solve).
            model.freeTransform()
            self._transformed = False
            model.setParam("misc/allowstrongdualreds", False)
            model.setParam("misc/allowweakdualreds", False)
            native = self._optimize()
            self._dual_reductions_off = True
            message = f"scip: inforunbd, then {native} without dual reductions"
            if native == "inforunbd":
                message += " (infeasible or unbounded: nothing proven)"
        result = self._outcome(objective, native, message, return_x)
        result.start_used = start_used
        return result

    def _resume(
        self,
        objective: LinearObjective,
        time_limit: float | None,
        return_x: bool,
        trace: Trace,
    ) -> SolveResult | None:
        """SCIP goes on with a search its time limit stopped (tree, cuts, incumbent kept)."""
        model = self._model
        if not self._transformed or self._last_native != "timelimit":
            return None
        spent = float(model.getSolvingTime())
        model.setParam("limits/time", _NO_TIME_LIMIT if time_limit is None else spent + time_limit)
        native = self._traced(trace, resume=True, offset=spent)
        return self._outcome(objective, native, f"scip: {native} (resumed)", return_x)

    def _outcome(
        self, objective: LinearObjective, native: str, message: str, return_x: bool
    ) -> SolveResult:
        """The result of the model's current state after a solve ended with ``native``."""
        model = self._model
        status = SCIP_STATUS.get(native, Status.ERROR)
        has_sol = model.getNSols() > 0
        primal = self._value(model.getPrimalbound()) if has_sol else None
        if status == Status.UNBOUNDED:
            primal = -math.inf if objective.sense == "min" else math.inf
        dual = self._value(model.getDualbound())
        x = None
        if return_x and has_sol:
            sol = model.getBestSol()
            x = np.array([model.getSolVal(sol, v) for v in self._vars], dtype=np.float64)
        nodes = int(model.getNTotalNodes())
        return self._result(objective, status, primal, dual, nodes, message, x)

    def _free(self) -> None:
        model = getattr(self, "_model", None)
        self._model = None
        self._vars = []
        self._terms = []
        if model is not None:
            model.freeProb()


def _make_event_handler(scip: Any) -> Any:
    """An event handler that records (time, primal, dual) into its ``trace`` while solving."""
    events = (
        scip.SCIP_EVENTTYPE.BESTSOLFOUND
        | scip.SCIP_EVENTTYPE.DUALBOUNDIMPROVED
        | scip.SCIP_EVENTTYPE.NODESOLVED
    )

    class TraceEvents(scip.Eventhdlr):
        trace: Trace | None = None
        offset: float = 0.0  # solving seconds before a resumed search went on

        def eventinit(self) -> None:
            self.model.catchEvent(events, self)

        def eventexit(self) -> None:
            self.model.dropEvent(events, self)

        def eventexec(self, event: Any) -> None:
            if self.trace is None:
                return
            m = self.model
            inf = m.infinity()
            primal = float(m.getPrimalbound()) if m.getNSols() > 0 else None
            dual = float(m.getDualbound())
            self.trace.record(
                float(m.getSolvingTime()) - self.offset,
                None if primal is None or abs(primal) >= inf else primal,
                None if abs(dual) >= inf else dual,
            )

    return TraceEvents()


SCIPBackend.session_class = SCIPSession
