"""Solver-neutral formulations: per-step MIBP (``step``), test-time margins (``margin``)."""

from mibpcert.encode.formulation import RELAX_MODES, Formulation, LinearObjective

__all__ = ["RELAX_MODES", "Formulation", "LinearObjective"]
