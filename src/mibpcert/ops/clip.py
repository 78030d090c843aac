"""Per-sample gradient clipping, in the domains that support it.

* elementwise to ``[-c, c]`` (``clip = c``): monotone, so its interval version is exact;
* by the l2 norm (:class:`Clipping` with ``norm = C``): each sample's gradient, per parameter
  tensor (``layer``) or over all parameters (``global``), is scaled by ``min(1, C / |g|_2)``
  (AGT's and Opacus's per-sample clipping). Over a box ``[l, u]`` of one group the trainer's
  float norm lies in ``[N_min, N_max]`` (``N_max`` from ``max(l^2, u^2)``, ``N_min`` from the
  squared distance of each coordinate's interval to 0; both padded for rounding), so its factor
  lies in ``[s_lo, s_hi] = [f(N_max), f(N_min)]`` (``f(n) = C/n`` for ``n > C``, else 1,
  decreasing); the clipped coordinate is in ``[l, u] x [s_lo, s_hi]`` and in ``[-C, C]`` (both
  rounded outward).

Elementwise clipping comes first when both are set. The program domain has no version: the
per-step and whole-training programs do not encode clipping (methods that need it say so); the
affine sets take the elementwise version only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.domains.affine import AffineForm, Symbols
from mibpcert.domains.interval import UNIT, Interval, mul


@dataclass(frozen=True)
class Clipping:
    """Per-sample gradient clipping: elementwise to ``[-value, value]`` and/or by the l2 norm
    ``norm`` of each group ``[start, stop)`` of the flat parameter vector."""

    value: float | None = None
    norm: float | None = None
    groups: tuple[tuple[int, int], ...] = ()


def _parts(c: float | Clipping) -> tuple[float | None, float | None, tuple]:
    if isinstance(c, Clipping):
        return c.value, c.norm, c.groups
    return c, None, ()


def forward(g: np.ndarray, c: float | Clipping) -> np.ndarray:
    """Clip the per-sample gradients ``g`` (n, m) (the trainer's arithmetic)."""
    value, norm, groups = _parts(c)
    if value is not None:
        g = np.clip(g, -value, value)
    if norm is None:
        return g
    g = np.array(g, dtype=np.float64, copy=True)
    for a, b in groups:
        n = np.sqrt(np.sum(g[:, a:b] * g[:, a:b], axis=1))
        with np.errstate(divide="ignore"):
            factor = np.where(n > norm, norm / np.where(n > 0, n, 1.0), 1.0)
        g[:, a:b] = g[:, a:b] * factor[:, None]
    return g


def interval(g: Interval, c: float | Clipping) -> Interval:
    """Clipping of per-sample gradient boxes (n, m); sound for the trainer's float result."""
    value, norm, groups = _parts(c)
    if value is not None:
        g = Interval(np.clip(g.lo, -value, value), np.clip(g.hi, -value, value))
    if norm is None:
        return g
    lo, hi = g.lo.copy(), g.hi.copy()
    for a, b in groups:
        lg, ug = g.lo[:, a:b], g.hi[:, a:b]
        k = b - a
        gam = 2.0 * (k + 2) * UNIT
        big = np.maximum(lg * lg, ug * ug).sum(axis=1)
        small = np.where((lg <= 0) & (ug >= 0), 0.0, np.minimum(lg * lg, ug * ug)).sum(axis=1)
        with np.errstate(over="ignore", invalid="ignore"):
            n_max = np.sqrt(big * (1 + 2 * gam)) * (1 + 2 * UNIT)
            n_min = np.maximum(np.sqrt(small * (1 - 2 * gam)) * (1 - 2 * UNIT), 0.0)
            s_lo = np.where(n_max > norm, norm / n_max * (1 - 2 * UNIT), 1.0)
            s_hi = np.where(n_min > norm, norm / np.where(n_min > 0, n_min, 1.0), 1.0)
        s_lo = np.where(np.isfinite(n_max), np.minimum(s_lo, 1.0), 0.0)
        s_hi = np.minimum(s_hi * (1 + 2 * UNIT), 1.0)
        prod = mul(Interval(lg, ug), Interval(s_lo[:, None], s_hi[:, None]))
        cap = norm * (1 + 4 * (k + 4) * UNIT)
        lo[:, a:b] = np.maximum(prod.lo, -cap)
        hi[:, a:b] = np.minimum(prod.hi, cap)
    return Interval(lo, hi)


def affine_set(g: AffineForm, c: float | Clipping, sym: Symbols) -> AffineForm:
    """Clipping of a form: unchanged where every value lies in ``[-c, c]``; elsewhere the hull of
    the clipped values (a local error). Norm clipping: the hull of :func:`interval`."""
    value, norm, _ = _parts(c)
    if norm is not None:
        box = interval(sym.bounds(g), c)
        return AffineForm.hull(box, sym.size)
    c = value
    box = sym.bounds(g)
    inside = (box.lo >= -c) & (box.hi <= c)
    hull = AffineForm.hull(interval(box, c), sym.size)
    return AffineForm(
        np.where(inside, g.c, hull.c),
        np.where(inside[..., None], g.G, hull.G),
        np.where(inside, g.e, hull.e),
    )
