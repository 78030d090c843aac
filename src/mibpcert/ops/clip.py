"""Per-sample gradient clipping to ``[-c, c]`` (elementwise), in the domains that support it.

Clipping is monotone, so its interval version is exact. The program domain has no version: the
per-step and whole-training programs do not encode clipping (methods that need it say so).
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains.interval import Interval


def forward(g: np.ndarray, c: float) -> np.ndarray:
    """``clip(g, -c, c)``."""
    return np.clip(g, -c, c)


def interval(g: Interval, c: float) -> Interval:
    """Elementwise clipping to [-c, c] (monotone, exact)."""
    return Interval(np.clip(g.lo, -c, c), np.clip(g.hi, -c, c))
