"""What every method proves about the parameters: a sound box for every step."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mibpcert.domains.interval import Interval


@dataclass
class ParameterBounds:
    """Sound bounds on every parameter before every step: ``lower[t] <= theta_t <= upper[t]``.

    ``t`` runs over 0..T; row 0 is the initial parameters. ``notes`` list every relaxation the
    method applied (e.g. k-of-n treated as all points), so reports say what was proven.
    """

    method: str
    lower: np.ndarray
    upper: np.ndarray
    notes: list[str] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    step_info: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def box(self, t: int = -1) -> Interval:
        return Interval(self.lower[t], self.upper[t])

    @property
    def n_steps(self) -> int:
        return self.lower.shape[0] - 1

    def widths(self) -> np.ndarray:
        return self.upper - self.lower

    def contains(self, thetas: np.ndarray, tol: float = 0.0) -> np.ndarray:
        """Per-step flags: is trajectory row t inside box t (all parameters)?"""
        return np.all((self.lower - tol <= thetas) & (thetas <= self.upper + tol), axis=1)
