"""Per-sample gradient clipping to ``[-c, c]`` (elementwise), in the domains that support it.

Clipping is monotone, so its interval version is exact. The program domain has no version: the
per-step and whole-training programs do not encode clipping (methods that need it say so).
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains.affine import AffineForm, Symbols
from mibpcert.domains.interval import Interval


def forward(g: np.ndarray, c: float) -> np.ndarray:
    """``clip(g, -c, c)``."""
    return np.clip(g, -c, c)


def interval(g: Interval, c: float) -> Interval:
    """Elementwise clipping to [-c, c] (monotone, exact)."""
    return Interval(np.clip(g.lo, -c, c), np.clip(g.hi, -c, c))


def affine_set(g: AffineForm, c: float, sym: Symbols) -> AffineForm:
    """Clipping of a form: unchanged where every value lies in ``[-c, c]``; elsewhere the hull of
    the clipped values (a local error)."""
    box = sym.bounds(g)
    inside = (box.lo >= -c) & (box.hi <= c)
    hull = AffineForm.hull(interval(box, c), sym.size)
    return AffineForm(
        np.where(inside, g.c, hull.c),
        np.where(inside[..., None], g.G, hull.G),
        np.where(inside, g.e, hull.e),
    )
