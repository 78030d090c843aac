"""The representations the operations of :mod:`mibpcert.ops` act on, without any operation's math.

* :mod:`~mibpcert.domains.interval` -- outward-rounded intervals and their arithmetic;
* :mod:`~mibpcert.domains.program` -- solver-neutral programs (:class:`Formulation`,
  :class:`LinearObjective`) and their McCormick relaxations;
* :mod:`~mibpcert.domains.builder` -- bounded affine expressions over a program
  (:class:`Builder`, :class:`Expr`), the primitives the program versions are written in.

The numpy domain is numpy itself. Nothing here imports another part of mibpcert but
:mod:`mibpcert.errors` and :mod:`mibpcert.vocab`.
"""

from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval, round_out
from mibpcert.domains.program import Formulation, LinearObjective

__all__ = ["Builder", "Expr", "Formulation", "Interval", "LinearObjective", "round_out"]
