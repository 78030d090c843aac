"""What every method proves about the parameters: a sound box for every step, and with affine
sets (``--sets affine``) the set ``c_t + G_t u + r``, ``|r| <= rho_t``, of every step."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mibpcert.domains.affine import SymbolSet
from mibpcert.domains.interval import Interval


@dataclass
class AffineTrajectory:
    """The affine parameter set of every step: ``theta_t`` lies in
    ``{c[t] + G[t] u + r : u in symbols' set, |r| <= rho[t]}`` for every attack, whose symbols
    ``u`` are :meth:`SymbolSet.coordinates` of its poisoned inputs."""

    symbols: SymbolSet
    c: np.ndarray  # (T + 1, m)
    G: np.ndarray  # (T + 1, m, K)
    rho: np.ndarray  # (T + 1, m)

    def residuals(self, thetas: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``|theta_t - c_t - G_t u| - rho_t`` for a trajectory ``thetas`` (T + 1, m) reached
        with symbols ``u``: every entry must be ``<= 0``."""
        lin = np.einsum("tmk,k->tm", self.G, u)
        return np.abs(thetas - self.c - lin) - self.rho

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the report file ``affine_sets.npz``."""
        s = self.symbols
        return {
            "c": self.c,
            "G": self.G,
            "rho": self.rho,
            "symbol_point": s.point,
            "symbol_feature": s.feature,
            "symbol_mid": s.mid,
            "symbol_rad": s.rad,
            "symbol_clean": s.clean,
            "k": np.asarray(-1 if s.k is None else s.k),
        }


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
    #: the affine parameter sets (``sets = "affine"``), else ``None``
    affine: AffineTrajectory | None = None

    @property
    def sets(self) -> str:
        """``"affine"`` or ``"box"``: what the method carried between steps."""
        return "box" if self.affine is None else "affine"

    def truncated(self, t: int) -> ParameterBounds:
        """The bounds of steps 0..t only (the run stopped after step ``t``)."""
        from dataclasses import replace

        aff = self.affine
        if aff is not None:
            aff = AffineTrajectory(aff.symbols, aff.c[: t + 1], aff.G[: t + 1], aff.rho[: t + 1])
        return replace(
            self,
            lower=self.lower[: t + 1],
            upper=self.upper[: t + 1],
            step_seconds=self.step_seconds[:t],
            step_info=self.step_info[:t],
            affine=aff,
        )

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
