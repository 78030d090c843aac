"""Test-time certification as a MIP: the worst margin of one test point over the parameter box.

For test input x (or its box under ``test_eps``) and candidate class c, the program has the
parameters in the final box, the forward pass (bilinear weight x activation products, big-M ReLU)
and the outputs; the objectives minimise o_c - o_j for every j != c (binary single output:
y o with y = +1 for class 1, -1 for class 0). The point is certified for c when every padded dual
bound is > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.bounds.interval import Interval
from mibpcert.encode.builder import Builder
from mibpcert.encode.formulation import Formulation, LinearObjective
from mibpcert.encode.network import forward_exprs, parameter_exprs
from mibpcert.model.network import Architecture


@dataclass
class MarginEncoding:
    formulation: Formulation
    objectives: list[LinearObjective]


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
    objectives = []
    if len(out) == 1:
        sign = 1.0 if cls == 1 else -1.0
        o = out[0]
        objectives.append(
            LinearObjective(
                np.array(o.idx),
                sign * np.array(o.coef),
                sign * o.const,
                "min",
                f"margin class {cls}",
            )
        )
    else:
        for j in range(len(out)):
            if j == cls:
                continue
            d = b.affine([(1.0, out[cls]), (-1.0, out[j])])
            objectives.append(
                LinearObjective(np.array(d.idx), np.array(d.coef), d.const, "min", f"o{cls} - o{j}")
            )
    return MarginEncoding(b.f, objectives)
