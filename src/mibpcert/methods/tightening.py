"""LP bound tightening of the unrolled program's parameters (method ``exact``).

After each step is encoded, every new parameter is minimised and maximised over the McCormick LP
relaxation of the program built so far; the padded dual bounds narrow the parameter's variable
bounds. Every bound holds for every feasible point of the bilinear program, so tightening never
cuts an attack; it only makes later big-M constants and McCormick envelopes tighter.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import numpy as np

from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.program import LinearObjective, fold_min_max
from mibpcert.vocab import RelaxMode


def coordinate_objectives(exprs: list[Expr], which: list[int]) -> list[LinearObjective]:
    """``min`` and ``max`` of every variable ``exprs[j]``, ``j`` in ``which`` (objective ``2 k``
    minimises ``exprs[which[k]]``, ``2 k + 1`` maximises it)."""
    return [
        LinearObjective(np.array([exprs[j].idx[0]]), np.array([1.0]), 0.0, s, f"{s} {j}")
        for j in which
        for s in ("min", "max")
    ]


def lp_tightener(backend: str, time_limit: float | None, budget: float | None = None) -> Callable:
    """A :data:`~mibpcert.encode.unroll.TightenFn`: min and max of every new parameter over
    the McCormick LP relaxation of the program so far; padded dual bounds.

    ``time_limit``: seconds per LP solve. ``budget``: seconds for all steps together; once
    spent, later steps keep their interval/AGT bounds (sound: tightening only ever narrows
    proven bounds) and report ``skipped``.
    """
    from mibpcert.solvers.tasks import SolveTask, solve_task

    spent = [0.0]

    def tighten(b: Builder, exprs: list[Expr]) -> tuple[np.ndarray, np.ndarray, dict]:
        m = len(exprs)
        lo, hi = np.full(m, -np.inf), np.full(m, np.inf)
        if budget is not None and spent[0] >= budget:
            return lo, hi, {"skipped": True, "reason": f"tightening budget {budget:g} s spent"}
        which = [j for j, e in enumerate(exprs) if e.is_var]
        objectives = coordinate_objectives(exprs, which)
        t0 = time.perf_counter()
        # one session in this process: the LPs are re-solved from a hot start, and the bounds
        # do not depend on the executor
        results = solve_task(SolveTask(b.f.relaxed(RelaxMode.LP), objectives, backend, time_limit))
        statuses: Counter = Counter(r.status for r in results)
        found_lo, found_hi = np.full(len(which), -np.inf), np.full(len(which), np.inf)
        fold_min_max(
            list(range(len(objectives))), [r.certified() for r in results], found_lo, found_hi
        )
        lo[which], hi[which] = found_lo, found_hi
        spent[0] += time.perf_counter() - t0
        before = np.array([e.hi - e.lo for e in exprs])
        after = np.minimum(hi, [e.hi for e in exprs]) - np.maximum(lo, [e.lo for e in exprs])
        info = {
            "lp_solves": len(objectives),
            "lp_seconds": time.perf_counter() - t0,
            "statuses": dict(statuses),
            "max_width_before": float(before.max()) if m else 0.0,
            "max_width_after": float(np.maximum(after, 0.0).max()) if m else 0.0,
        }
        return lo, hi, info

    return tighten
