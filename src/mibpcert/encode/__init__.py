"""Solver-neutral programs composed from the program versions of :mod:`mibpcert.ops`.

* :mod:`~mibpcert.encode.step` -- one training step over a parameter box (method ``mibp``);
* :mod:`~mibpcert.encode.unroll` and :mod:`~mibpcert.encode.forms` -- every training step in one
  program, in the form that fits the problem (method ``exact``);
* :mod:`~mibpcert.encode.objectives` -- test objectives over the trained parameters;
* :mod:`~mibpcert.encode.margin` -- a test point's margins over the final box (test-time MIP);
* :mod:`~mibpcert.encode.poison` -- the attacker's choices as variables;
* :mod:`~mibpcert.encode.network` -- parameters and forward pass.
"""

from mibpcert.domains.program import RELAX_MODES, Formulation, LinearObjective

__all__ = ["RELAX_MODES", "Formulation", "LinearObjective"]
