"""What a solve returns: the result with its soundness contract, progress traces, gaps.

Soundness contract of :class:`SolveResult` (see DESIGN.md section 3):

* ``dual_bound`` is the solver's *proven* bound on the optimum in the objective's own sense, a
  lower bound when minimising and an upper bound when maximising. It is never the incumbent.
* ``dual_bound`` is ``None`` when nothing was proven: errors, numerical trouble, a solve that never
  started, an unbounded model, or a solver that stopped before it had any finite bound.
* An infeasible model proves every bound: ``dual_bound`` is ``+inf`` when minimising and ``-inf``
  when maximising (the optimum over an empty set).
* :meth:`SolveResult.certified` moves the dual bound outward by the backend's feasibility
  tolerance (:meth:`SolveResult.bound` by explicit paddings) before it is used as a certificate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mibpcert.vocab import Status

if TYPE_CHECKING:
    from mibpcert.domains.program import LinearObjective


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
        tolerance: the backend's feasibility tolerance (:attr:`Backend.feasibility_tolerance`),
            the padding :meth:`certified` applies.
        lost: the solve never reported because the task that held it failed (its worker died
            or the task raised, after retries).
        resumed: for :meth:`~mibpcert.solvers.base.Session.resume`: ``True`` when the solver
            continued its stopped search, ``False`` when it solved again from the start (``None``
            for a plain solve).
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
    tolerance: float = 0.0
    lost: bool = False
    resumed: bool | None = None

    @classmethod
    def failure(
        cls, objective: LinearObjective, message: str, backend: str = "", lost: bool = False
    ) -> SolveResult:
        """The result of a solve that failed: status ``error``, nothing proven (``lost``: the
        task that held it failed, so the solve never reported)."""
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
            lost=lost,
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

    def certified(self) -> float | None:
        """The dual bound padded by the backend's tolerance, ``tol + tol * |dual_bound|`` (the
        one padding policy of every method), or ``None`` when nothing was proven."""
        return self.bound(self.tolerance, self.tolerance)

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
