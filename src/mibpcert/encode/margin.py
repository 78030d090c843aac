"""Test-time certification as a MIP: the worst margin of one test point over the parameter box.

For test input x (or its box under ``test_eps``) and candidate class c, the program has the
parameters in the final box, the forward pass (bilinear weight x activation products, big-M ReLU)
and the outputs; the objectives minimise the margins of c (:func:`mibpcert.ops.margin.program`).
The point is certified for c when every padded dual bound is > 0 (:meth:`MarginEncoding.decode`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.domains.builder import Builder
from mibpcert.domains.interval import Interval
from mibpcert.domains.program import Formulation, LinearObjective
from mibpcert.encode.network import forward_exprs, parameter_exprs
from mibpcert.encode.objectives import objective
from mibpcert.model.network import Architecture
from mibpcert.ops import margin


@dataclass
class MarginEncoding:
    """The margin program of one test point and candidate class."""

    formulation: Formulation
    objectives: list[LinearObjective]

    @staticmethod
    def decode(bounds: list[float | None]) -> float | None:
        """The certified lower bound on the candidate's margin from the (padded) dual bounds of
        :attr:`objectives` (``None`` when some solve proved nothing)."""
        return None if any(b is None for b in bounds) else float(min(bounds))


def encode_margins(
    arch: Architecture, box: Interval, x_lo: np.ndarray, x_hi: np.ndarray, cls: int
) -> MarginEncoding:
    """Objectives ``min (o_cls - o_j)`` (one per j != cls) over the box and the input box."""
    b = Builder()
    _, layers = parameter_exprs(b, arch, box)
    x = [
        b.const(float(lo)) if lo == hi else b.var(float(lo), float(hi), f"x{j}")
        for j, (lo, hi) in enumerate(zip(x_lo, x_hi, strict=True))
    ]
    acts, _ = forward_exprs(b, layers, x, "t")
    out = acts[-1]
    margins = margin.program(b, out, cls)
    if len(out) == 1:
        names = [f"margin class {cls}"]
    else:
        names = [f"o{cls} - o{j}" for j in margin.others(len(out), cls)]
    objectives = [objective(mg, "min", name) for mg, name in zip(margins, names, strict=True)]
    return MarginEncoding(b.f, objectives)
