"""Solver backends: the only place in mibpcert that imports SCIP, HiGHS or Gurobi.

Importing this package imports no solver; each backend imports its solver lazily, inside methods.

================  ============================  ======================================
backend           package                       capabilities
================  ============================  ======================================
``scip``          ``pyscipopt`` (default)       lp, milp, bilinear (spatial B&B)
``highs``         ``highspy``                   lp, milp
``gurobi``        ``gurobipy`` (licence)        lp, milp, bilinear (NonConvex=2)
================  ============================  ======================================

Typical use::

    backend = get_backend("scip")
    with backend.session(formulation, time_limit=10) as s:
        for obj in objectives:
            r = s.solve(obj)
            b = r.certified()   # dual bound padded by the backend's tolerance, or None

Programs declare what they need (:attr:`~mibpcert.domains.program.Formulation.needs`: ``lp``,
``milp`` or ``bilinear``), backends what they can (``capabilities``); :func:`backend_for` picks
the first preferred backend that is installed and capable.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from mibpcert.errors import ConfigError, UnsupportedError
from mibpcert.solvers.base import CAPABILITIES, Backend, Session, solve_capable
from mibpcert.solvers.results import SolveResult
from mibpcert.vocab import Status

#: backend name -> (module, class); modules are imported on demand (they import no solver).
_REGISTRY: dict[str, tuple[str, str]] = {
    "scip": ("mibpcert.solvers.scip", "SCIPBackend"),
    "highs": ("mibpcert.solvers.highs", "HiGHSBackend"),
    "gurobi": ("mibpcert.solvers.gurobi", "GurobiBackend"),
}
BACKEND_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_backend(name: str, *, check: bool = False) -> Backend:
    """The backend called ``name`` (``"scip"``, ``"highs"`` or ``"gurobi"``).

    With ``check=False`` (default) the solver is not imported, so this works for backends that
    are not installed: ``get_backend("highs").available()`` tells whether HiGHS can be used, and
    ``check()`` / ``session()`` raise :class:`~mibpcert.errors.UnsupportedError` with install
    instructions when it cannot. ``check=True`` runs :meth:`Backend.check` at once.

    Raises:
        ConfigError: unknown backend name.
        UnsupportedError: with ``check=True``, the solver is missing, broken or unlicensed.
    """
    key = str(name).strip().lower()
    if key not in _REGISTRY:
        raise ConfigError(
            f"unknown solver {name!r}; choose one of {', '.join(BACKEND_NAMES)} (--solver)"
        )
    module, cls = _REGISTRY[key]
    backend: Backend = getattr(importlib.import_module(module), cls)()
    if check:
        backend.check()
    return backend


def backend_for(need: str, preferred: Sequence[str]) -> str:
    """The first backend of ``preferred`` that is installed and has the capability ``need``
    (``lp``, ``milp`` or ``bilinear``); nothing is imported.

    Raises:
        UnsupportedError: none of them can.
    """
    for name in preferred:
        backend = get_backend(name)
        if need in backend.capabilities and backend.available():
            return backend.name
    raise UnsupportedError(
        f"none of the solvers {', '.join(preferred)} can solve a {need} program here; install "
        "one that can (pip install highspy pyscipopt)"
    )


def available_backends() -> list[str]:
    """Names of the backends whose solver package is installed (nothing is imported)."""
    return [n for n in BACKEND_NAMES if get_backend(n).available()]


__all__ = [
    "BACKEND_NAMES",
    "CAPABILITIES",
    "Backend",
    "Session",
    "SolveResult",
    "Status",
    "available_backends",
    "backend_for",
    "get_backend",
    "solve_capable",
]
