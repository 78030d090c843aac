"""Gurobi backend (gurobipy): LP, MILP and nonconvex bilinear programs (``NonConvex=2``).

Needs a Gurobi licence. The licence bundled with the pip package is size-limited (2000
variables / constraints, 200 variables once a bilinear constraint is present); a model over the
limit raises :class:`~mibpcert.errors.UnsupportedError` with :data:`LICENCE_MESSAGE`.

Notes on Gurobi's behaviour (gurobipy 13):

* ``ObjBound`` and ``ObjVal`` are in the objective's own sense (``ObjBound`` is an upper bound
  when maximising) and include ``ObjCon``. A nonconvex bilinear model is solved as a MIP
  (``IsMIP == 1``). For a continuous model the dual bound is taken only at optimality.
* ``MIPGap`` defaults to ``1e-4``; it is set from the session's ``gap``.
* A model over the size-limited licence fails in ``optimize()`` with error 10010
  (``SIZE_LIMIT_EXCEEDED``), not while it is built.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mibpcert.errors import ConfigError, UnsupportedError
from mibpcert.solvers.base import Backend, Session, SolveResult, Status, Trace, dense_objective

if TYPE_CHECKING:
    from mibpcert.domains.program import LinearObjective

LICENCE_MESSAGE = (
    "Gurobi's pip licence is limited to 2000 variables/constraints (200 with bilinear terms); "
    "install a full licence or use --solver scip"
)
_SIZE_LIMIT_EXCEEDED = 10010
_NO_LICENSE = 10009

#: ``GRB.Status`` names -> :class:`Status`.
GUROBI_STATUS: dict[str, str] = {
    "LOADED": Status.NOT_SOLVED,
    "INPROGRESS": Status.NOT_SOLVED,
    "OPTIMAL": Status.OPTIMAL,
    "INFEASIBLE": Status.INFEASIBLE,
    "UNBOUNDED": Status.UNBOUNDED,
    "INF_OR_UNBD": Status.UNBOUNDED,  # only after a re-solve with DualReductions=0
    "TIME_LIMIT": Status.TIME_LIMIT,
    "WORK_LIMIT": Status.TIME_LIMIT,
    "NODE_LIMIT": Status.NODE_LIMIT,
    "ITERATION_LIMIT": Status.NODE_LIMIT,
    "INTERRUPTED": Status.INTERRUPTED,
    "SOLUTION_LIMIT": Status.INTERRUPTED,
    "USER_OBJ_LIMIT": Status.INTERRUPTED,
    "CUTOFF": Status.INTERRUPTED,
    "MEM_LIMIT": Status.INTERRUPTED,
    "NUMERIC": Status.NUMERICAL,
    "SUBOPTIMAL": Status.NUMERICAL,
    "LOCALLY_OPTIMAL": Status.ERROR,  # local NLP result: proves nothing
    "LOCALLY_INFEASIBLE": Status.ERROR,
}


def _licence_error(exc: Exception) -> UnsupportedError | None:
    """An :class:`UnsupportedError` for licence failures of ``exc`` (a GurobiError), else None."""
    errno = getattr(exc, "errno", None)
    if errno == _SIZE_LIMIT_EXCEEDED:
        return UnsupportedError(f"{LICENCE_MESSAGE} (Gurobi: {exc})")
    if errno == _NO_LICENSE:
        return UnsupportedError(
            f"no usable Gurobi licence (Gurobi: {exc}); install a licence or use --solver scip"
        )
    return None


class GurobiBackend(Backend):
    """gurobipy; needs a licence (the pip package's own one only fits tiny models)."""

    name = "gurobi"
    module = "gurobipy"
    install_hint = "pip install 'mibpcert[gurobi]'"
    capabilities = frozenset({"lp", "milp", "bilinear"})
    feasibility_tolerance = 1e-6  # FeasibilityTol (default)

    def _import(self) -> Any:
        import gurobipy

        return gurobipy

    def check(self) -> None:
        """Import gurobipy and start an environment (fails without any licence)."""
        super().check()
        gp = self._import()
        try:
            env = gp.Env(empty=True)
            env.setParam("OutputFlag", 0)
            env.start()
            env.dispose()
        except gp.GurobiError as exc:
            raise _licence_error(exc) or UnsupportedError(
                f"Gurobi cannot start: {exc}; use --solver scip"
            ) from exc


class GurobiSession(Session):
    """One Gurobi model in its own environment; each :meth:`solve` sets Obj, ObjCon, ModelSense."""

    def _build(self) -> None:
        gp = self.backend._import()
        import scipy.sparse as sp

        self._gp = gp
        grb = gp.GRB
        a = self.arrays
        env = gp.Env(empty=True)
        try:
            if self.log_file:  # console output first off, so setting LogFile prints nothing
                env.setParam("LogToConsole", 1 if self.verbose else 0)
            env.setParam("OutputFlag", 1 if self.verbose or self.log_file else 0)
            if self.log_file:
                env.setParam("LogFile", self.log_file)
            env.start()
            model = gp.Model(env=env)
            model.Params.Threads = int(self.threads)
            model.Params.MIPGap = float(self.gap)
            if a.products:
                model.Params.NonConvex = 2
            for key, value in self.options.items():
                try:
                    model.setParam(key, value)
                except gp.GurobiError as exc:
                    raise ConfigError(f"invalid Gurobi parameter {key}={value!r}: {exc}") from exc
            vtype = np.where(a.binary, grb.BINARY, grb.CONTINUOUS)
            lb = np.where(np.isinf(a.lb), -grb.INFINITY, a.lb)
            ub = np.where(np.isinf(a.ub), grb.INFINITY, a.ub)
            x = model.addMVar(a.n_vars, lb=lb, ub=ub, vtype=vtype)
            if a.n_rows:
                mat = sp.csr_matrix(
                    (a.row_value, a.row_index, a.row_start), shape=(a.n_rows, a.n_vars)
                )
                eq = a.row_lo == a.row_hi
                le = ~eq & np.isfinite(a.row_hi)
                ge = ~eq & np.isfinite(a.row_lo)
                for mask, sense, rhs in (
                    (eq, grb.EQUAL, a.row_lo),
                    (le, grb.LESS_EQUAL, a.row_hi),
                    (ge, grb.GREATER_EQUAL, a.row_lo),
                ):
                    if mask.any():
                        model.addMConstr(mat[mask], x, sense, rhs[mask])
            if a.products:
                xs = x.tolist()
                for z, u, v in a.products:
                    model.addQConstr(xs[z] - xs[u] * xs[v] == 0.0)
            model.update()
            if (
                a.n_vars > 2000
                or model.NumConstrs + model.NumQConstrs > 2000
                or (a.products and a.n_vars > 200)
            ):
                # over the pip licence's limits: find out now (a licence error is raised by
                # optimize(), not while building) rather than at the first solve
                model.Params.TimeLimit = 0.0
                model.optimize()
        except Exception as exc:
            env.dispose()
            err = _licence_error(exc)
            if err is not None:
                raise err from exc
            raise
        self._env, self._model, self._x = env, model, x

    def _optimize(self, callback: Any = None) -> str:
        gp, model = self._gp, self._model
        try:
            model.optimize(callback)
        except gp.GurobiError as exc:
            err = _licence_error(exc)
            if err is not None:
                raise err from exc
            raise
        return _status_name(gp, model.Status)

    def _solve(
        self,
        objective: LinearObjective,
        time_limit: float | None,
        return_x: bool,
        start: dict[int, float] | None,
        trace: Trace,
    ) -> SolveResult:
        gp, model, x = self._gp, self._model, self._x
        grb = gp.GRB
        values = np.full(self.arrays.n_vars, grb.UNDEFINED)
        for j, v in (start or {}).items():
            values[j] = v
        x.Start = values  # also clears an earlier solve's start

        def callback(m: Any, where: int) -> None:
            if where == grb.Callback.MIP:
                best = m.cbGet(grb.Callback.MIP_OBJBST)
                bound = m.cbGet(grb.Callback.MIP_OBJBND)
                trace.record(
                    m.cbGet(grb.Callback.RUNTIME),
                    None if abs(best) >= grb.INFINITY else best,
                    None if abs(bound) >= grb.INFINITY else bound,
                )

        x.Obj = dense_objective(objective, self.arrays.n_vars)
        model.ObjCon = float(objective.constant)
        model.ModelSense = grb.MINIMIZE if objective.sense == "min" else grb.MAXIMIZE
        model.Params.TimeLimit = grb.INFINITY if time_limit is None else float(time_limit)
        native = self._optimize(callback)
        message = f"gurobi: {native}"
        if native == "INF_OR_UNBD":
            model.Params.DualReductions = 0
            try:
                native = self._optimize()
            finally:
                model.Params.DualReductions = 1
            message = f"gurobi: INF_OR_UNBD, then {native} with DualReductions=0"
        status = GUROBI_STATUS.get(native, Status.ERROR)
        has_sol = model.SolCount > 0
        primal = float(model.ObjVal) if has_sol else None
        if status == Status.UNBOUNDED:
            primal = -math.inf if objective.sense == "min" else math.inf
        is_mip = bool(model.IsMIP)
        dual: float | None = None
        if is_mip:
            try:
                dual = float(model.ObjBound)
            except gp.GurobiError:
                dual = None
        elif status == Status.OPTIMAL:
            dual = primal
        nodes = int(model.NodeCount) if is_mip else 0
        xv = np.asarray(x.X, dtype=np.float64) if return_x and has_sol else None
        result = self._result(objective, status, primal, dual, nodes, message, xv)
        return result  # start_used stays None: Gurobi does not say whether it used the start

    def _free(self) -> None:
        model = getattr(self, "_model", None)
        env = getattr(self, "_env", None)
        self._model = self._x = None
        if model is not None:
            model.dispose()
        if env is not None:
            env.dispose()


def _status_name(gp: Any, code: int) -> str:
    """The ``GRB.Status`` attribute name of status ``code``."""
    for name in dir(gp.GRB.Status):
        if not name.startswith("_") and getattr(gp.GRB.Status, name) == code:
            return name
    return f"UNKNOWN({code})"


GurobiBackend.session_class = GurobiSession
