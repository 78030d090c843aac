"""HiGHS backend (highspy): LP and MILP, no bilinear products (use a McCormick relaxation).

Notes on HiGHS's behaviour (highspy 1.15):

* The model is passed once as a row-wise :class:`highspy.HighsLp`; a re-solve changes only the
  costs that differ from the previous objective, the offset and the sense. LPs are re-solved
  from the previous basis (hot start).
* ``mip_rel_gap`` defaults to ``1e-4`` and ``mip_abs_gap`` to ``1e-6``: both are set from the
  session's ``gap`` (absolute gap ``1e-9`` when ``gap == 0``) so that ``optimal`` means optimal.
* ``info.mip_dual_bound`` is in the objective's own sense (an upper bound when maximising) and
  includes the offset. For an LP it is meaningless; the dual bound of an LP is the optimal
  objective value and nothing is proven when the LP stops early.
* For an infeasible model ``mip_dual_bound`` is ``+inf`` in either sense; the session reports the
  conventional ``+inf`` (min) / ``-inf`` (max) itself.
* HiGHS runs on one process-wide task scheduler sized on first use; a ``run()`` whose
  ``threads`` option differs from it fails silently (model status ``kNotset``). Sessions record
  the scheduler's size and call ``Highs.resetGlobalScheduler(True)`` before a run that needs
  another size (sessions are not meant to run concurrently in threads of one process).
"""

from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from mibpcert.errors import ConfigError
from mibpcert.solvers.base import Backend, Session, SolveResult, Status, Trace, dense_objective

if TYPE_CHECKING:
    from mibpcert.domains.program import LinearObjective

#: ``HighsModelStatus`` member names -> :class:`Status`.
HIGHS_STATUS: dict[str, str] = {
    "kOptimal": Status.OPTIMAL,
    "kModelEmpty": Status.OPTIMAL,  # no columns: the objective is its constant
    "kInfeasible": Status.INFEASIBLE,
    "kUnbounded": Status.UNBOUNDED,
    "kUnboundedOrInfeasible": Status.UNBOUNDED,  # only after a re-solve without presolve
    "kTimeLimit": Status.TIME_LIMIT,
    "kIterationLimit": Status.NODE_LIMIT,
    "kSolutionLimit": Status.NODE_LIMIT,  # mip_max_nodes / leaves / improving solutions
    "kInterrupt": Status.INTERRUPTED,
    "kHighsInterrupt": Status.INTERRUPTED,
    "kObjectiveBound": Status.INTERRUPTED,
    "kObjectiveTarget": Status.INTERRUPTED,
    "kMemoryLimit": Status.INTERRUPTED,
    "kSolveError": Status.NUMERICAL,
    "kUnknown": Status.NUMERICAL,
    "kNotset": Status.NOT_SOLVED,
    "kLoadError": Status.ERROR,
    "kModelError": Status.ERROR,
    "kPresolveError": Status.ERROR,
    "kPostsolveError": Status.ERROR,
}

@contextmanager
def _stdout_silenced(active: bool = True):
    """Point file descriptor 1 at ``/dev/null`` while the block runs (HiGHS writes its banner
    from C++ straight to stdout when a ``Highs`` object is created, before any option can turn
    it off); Python's own buffered stdout is flushed first, so nothing of it is lost."""
    if not active:
        yield
        return
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout at all
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


_FEASIBLE_SOLUTION = 2  # info.primal_solution_status: kSolutionStatusFeasible

#: threads of HiGHS's process-wide scheduler as last set by a session (None: not yet used)
_scheduler_threads: int | None = None


class HiGHSBackend(Backend):
    """highspy; fast LPs (McCormick relaxations) and MILPs, no licence needed."""

    name = "highs"
    module = "highspy"
    install_hint = "pip install highspy"
    capabilities = frozenset({"lp", "milp"})
    feasibility_tolerance = 1e-6  # mip_feasibility_tolerance (primal LP tolerance is 1e-7)

    def _import(self) -> Any:
        import highspy

        return highspy


class HiGHSSession(Session):
    """One ``highspy.Highs`` instance; each :meth:`solve` changes costs, offset and sense."""

    def _build(self) -> None:
        hs = self.backend._import()
        self._hs = hs
        a = self.arrays
        lp = hs.HighsLp()
        lp.num_col_ = a.n_vars
        lp.num_row_ = a.n_rows
        lp.col_cost_ = np.zeros(a.n_vars)
        lp.col_lower_ = a.lb
        lp.col_upper_ = a.ub
        lp.row_lower_ = a.row_lo
        lp.row_upper_ = a.row_hi
        lp.offset_ = 0.0
        lp.sense_ = hs.ObjSense.kMinimize
        mat = lp.a_matrix_
        mat.format_ = hs.MatrixFormat.kRowwise
        mat.num_col_ = a.n_vars
        mat.num_row_ = a.n_rows
        mat.start_ = a.row_start.astype(np.int32)
        mat.index_ = a.row_index.astype(np.int32)
        mat.value_ = a.row_value
        lp.a_matrix_ = mat
        if a.binary.any():
            kint, kcont = hs.HighsVarType.kInteger, hs.HighsVarType.kContinuous
            lp.integrality_ = [kint if b else kcont for b in a.binary]

        with _stdout_silenced(not self.verbose):  # HiGHS prints a banner when it is created
            h = hs.Highs()
        self._set(h, "output_flag", bool(self.verbose or self.log_file))
        if self.log_file:
            self._set(h, "log_file", self.log_file)
            self._set(h, "log_to_console", bool(self.verbose))
        self._set(h, "threads", int(self.threads))
        self._set(h, "mip_rel_gap", float(self.gap))
        self._set(h, "mip_abs_gap", 1e-9 if self.gap == 0 else 1e-6)
        for key, value in self.options.items():
            if key in ("time_limit", "threads"):
                raise ConfigError(f"set HiGHS {key!r} through the session arguments")
            self._set(h, key, value)
        status = h.passModel(lp)
        if status == hs.HighsStatus.kError:
            raise RuntimeError("HiGHS rejected the model (passModel returned an error)")
        self._h = h
        self._cost = np.zeros(a.n_vars)
        self._is_lp = not a.binary.any()

    def _set(self, h: Any, option: str, value: Any) -> None:
        if h.setOptionValue(option, value) == self._hs.HighsStatus.kError:
            raise ConfigError(f"invalid HiGHS option {option}={value!r}")

    def _solve(
        self,
        objective: LinearObjective,
        time_limit: float | None,
        return_x: bool,
        start: dict[int, float] | None,
        trace: Trace,
    ) -> SolveResult:
        hs, h = self._hs, self._h
        cost = dense_objective(objective, self.arrays.n_vars)
        changed = np.flatnonzero(cost != self._cost).astype(np.int32)
        if len(changed):
            h.changeColsCost(len(changed), changed, cost[changed])
            self._cost = cost
        h.changeObjectiveOffset(float(objective.constant))
        h.changeObjectiveSense(
            hs.ObjSense.kMinimize if objective.sense == "min" else hs.ObjSense.kMaximize
        )
        # HiGHS compares time_limit with the instance's run clock, which keeps counting across
        # run() calls: set the limit relative to the time already spent.
        self._set(
            h, "time_limit", math.inf if time_limit is None else h.getRunTime() + float(time_limit)
        )
        start_used = None
        if start:
            idx = np.fromiter(start.keys(), dtype=np.int32, count=len(start))
            val = np.fromiter(start.values(), dtype=np.float64, count=len(start))
            start_used = h.setSolution(len(idx), idx, val) == hs.HighsStatus.kOk
        t_run = h.getRunTime()
        token = None
        if not self._is_lp:

            def on_mip(event: Any) -> None:
                out = event.data_out
                trace.record(
                    float(out.running_time) - t_run,
                    float(out.mip_primal_bound),
                    float(out.mip_dual_bound),
                )

            try:
                token = h.cbMipInterrupt.subscribe(on_mip)
            except AttributeError:  # older highspy: no progress events, final point only
                token = None
        try:
            native = self._run()
        finally:
            if token is not None:
                h.cbMipInterrupt.unsubscribe(token)
        message = f"highs: {native}"
        if native == "kUnboundedOrInfeasible":
            # presolve could not tell which one; re-solve once without it
            self._set(h, "presolve", "off")
            try:
                native = self._run()
            finally:
                self._set(h, "presolve", "choose")
            message = f"highs: kUnboundedOrInfeasible, then {native} without presolve"
            if native == "kUnboundedOrInfeasible":
                message += " (infeasible or unbounded: nothing proven)"
        status = HIGHS_STATUS.get(native, Status.ERROR)
        info = h.getInfo()
        has_sol = int(info.primal_solution_status) == _FEASIBLE_SOLUTION
        primal = float(info.objective_function_value) if has_sol else None
        if status == Status.UNBOUNDED:
            primal = -math.inf if objective.sense == "min" else math.inf
        if self._is_lp:
            dual = primal if status == Status.OPTIMAL else None
            nodes = 0
        else:
            dual = float(info.mip_dual_bound)
            nodes = int(info.mip_node_count)
        if native == "kModelEmpty":
            primal = dual = float(objective.constant)
        x = None
        if return_x and has_sol:
            x = np.asarray(h.getSolution().col_value, dtype=np.float64)
        result = self._result(objective, status, primal, dual, max(nodes, 0), message, x)
        result.start_used = start_used
        return result

    def _run(self) -> str:
        global _scheduler_threads
        if _scheduler_threads is not None and _scheduler_threads != self.threads:
            self._hs.Highs.resetGlobalScheduler(True)
        _scheduler_threads = self.threads
        self._h.run()
        return self._h.getModelStatus().name

    def _free(self) -> None:
        h = getattr(self, "_h", None)
        self._h = None
        if h is not None:
            h.clear()


HiGHSBackend.session_class = HiGHSSession
