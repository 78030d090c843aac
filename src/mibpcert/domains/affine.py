"""The affine domain: sets ``c + G s + e`` over symbols shared by every step, with outward rounding.

A value of an :class:`AffineForm` is ``c + G s + d`` for some symbol vector ``s`` in the symbol set
and some ``|d| <= e`` (elementwise). The symbols are

* the **attack symbols** ``u`` (:class:`SymbolSet`): one per training point in scope and moving
  feature, ``x'_il = mid_il + rad_il u_il`` with ``u`` in ``[-1, 1]`` -- the *same* poisoned
  dataset drives every step, so these symbols are shared by every step and every sample;
* the **remainder symbols** ``r`` in ``[-1, 1]^m``: the parameters' remainder of the current
  step (``theta_t = c_t + G_t u + diag(rho_t) r``), shared by every sample of the step;
* the **local error** ``d``, private to each element (a nonlinearity's error, a rounding error):
  it is never correlated, so sums add its bounds.

The symbols of one step are ``s = [u | r]`` (``S = K + m`` columns of ``G``). The range of ``G u``
over the attack set is computed exactly for the threat sets here (:meth:`SymbolSet.range`):
``sum |G|`` when every point in scope may move, the ``k`` largest per-point contributions for any
``k`` of them.

Floating point: every operation adds a bound on its own rounding error to ``e`` (an a-priori
``gamma_N`` bound, as in :mod:`mibpcert.domains.interval`) and rounds ``e`` up, so the real set
always contains the exact result. A box is the special case ``G = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.domains.interval import TINY, UNIT, Interval

# ----------------------------------------------------------------------------- symbols


@dataclass(frozen=True)
class SymbolSet:
    """The attack symbols ``u``: which training point and feature each one moves, and the set
    ``A`` they range over.

    Attributes:
        point: (K,) training index of each symbol.
        feature: (K,) feature of each symbol.
        mid, rad: (K,) ``x'[point, feature] = mid + rad * u``.
        clean: (K,) the clean data's coordinate ``u0 = (x - mid) / rad`` (0 unless the feature
            box is clipped by feature bounds).
        n_points: points in scope (symbols are grouped by point, ``d`` per point).
        k: at most ``k`` points differ from the clean data (``None``: all of them may).
    """

    point: np.ndarray
    feature: np.ndarray
    mid: np.ndarray
    rad: np.ndarray
    clean: np.ndarray
    n_points: int
    per_point: int
    k: int | None = None

    @property
    def size(self) -> int:
        return int(self.point.size)

    @classmethod
    def from_box(
        cls, X: np.ndarray, lo: np.ndarray, hi: np.ndarray, scope: np.ndarray, k: int | None
    ) -> SymbolSet:
        """Symbols for every point of ``scope`` and every feature (a feature that cannot move
        gets radius 0), from the per-point feature box ``[lo, hi]`` of the clean inputs ``X``."""
        scope = np.asarray(scope, dtype=np.int64)
        d = X.shape[1]
        point = np.repeat(scope, d)
        feature = np.tile(np.arange(d), len(scope))
        lo_s, hi_s = lo[point, feature], hi[point, feature]
        mid = 0.5 * lo_s + 0.5 * hi_s
        rad = np.maximum(np.nextafter(hi_s - mid, np.inf), np.nextafter(mid - lo_s, np.inf))
        rad = np.where(hi_s > lo_s, rad, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            clean = np.where(rad > 0, (X[point, feature] - mid) / rad, 0.0)
        clean = np.clip(clean, -1.0, 1.0)
        kk = None if k is None or k >= len(scope) else int(k)
        return cls(point, feature, mid, rad, clean, len(scope), d, kk)

    def coordinates(self, X: np.ndarray) -> np.ndarray:
        """The symbols ``u`` of the poisoned inputs ``X`` (n, d) (for sampling checks)."""
        x = X[self.point, self.feature]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.rad > 0, (x - self.mid) / self.rad, 0.0)

    def range(self, G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` of ``G u`` over the attack set, for ``G`` of shape ``(..., K)``; rounded
        outward."""
        if self.size == 0:
            z = np.zeros(G.shape[:-1])
            return z, z
        absG = np.abs(G)
        mag = absG.sum(axis=-1)
        pad = 2.0 * (self.size + 2) * UNIT * mag + (self.size + 1) * TINY
        if self.k is None:
            return -(mag + pad), mag + pad
        g = G.reshape(*G.shape[:-1], self.n_points, self.per_point)
        a = absG.reshape(g.shape)
        u0 = self.clean.reshape(self.n_points, self.per_point)
        base = (g * u0).sum(axis=(-1, -2))
        gain = (a - g * u0).sum(axis=-1)  # (..., P): best increase by moving point p
        loss = (a + g * u0).sum(axis=-1)
        if self.k == 0:
            top_gain = top_loss = np.zeros(base.shape)
        else:
            top_gain = -np.partition(-gain, self.k - 1, axis=-1)[..., : self.k].sum(axis=-1)
            top_loss = -np.partition(-loss, self.k - 1, axis=-1)[..., : self.k].sum(axis=-1)
        pad = pad * 2.0
        return base - top_loss - pad, base + top_gain + pad


# ----------------------------------------------------------------------------- forms


def _up(x: np.ndarray, terms: int = 1) -> np.ndarray:
    """``x >= 0`` computed with ``terms`` roundings, moved up to bound the exact value."""
    return x * (1.0 + 2.0 * (terms + 2) * UNIT) + terms * TINY


@dataclass(frozen=True)
class AffineForm:
    """``c + G s + d``, ``|d| <= e``, elementwise over arrays of one shape (see the module)."""

    c: np.ndarray
    G: np.ndarray  # shape + (S,)
    e: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.c.shape

    @property
    def n_symbols(self) -> int:
        return self.G.shape[-1]

    @classmethod
    def constant(cls, c: np.ndarray, n_symbols: int) -> AffineForm:
        c = np.asarray(c, dtype=np.float64)
        return cls(c, np.zeros((*c.shape, n_symbols)), np.zeros(c.shape))

    @classmethod
    def hull(cls, box: Interval, n_symbols: int) -> AffineForm:
        """The box ``[lo, hi]`` as a form with no symbols (centre and local error)."""
        mid = 0.5 * box.lo + 0.5 * box.hi
        e = np.maximum(box.hi - mid, mid - box.lo)
        e = np.where(np.isfinite(e), _up(e), np.inf)
        mid = np.where(np.isfinite(mid), mid, 0.0)
        return cls(mid, np.zeros((*mid.shape, n_symbols)), e)

    def __getitem__(self, idx) -> AffineForm:
        if not isinstance(idx, tuple):
            idx = (idx,)
        return AffineForm(self.c[idx], self.G[(*idx, slice(None))], self.e[idx])

    def reshape(self, *shape) -> AffineForm:
        c = self.c.reshape(*shape)
        return AffineForm(c, self.G.reshape(*c.shape, self.n_symbols), self.e.reshape(c.shape))


@dataclass(frozen=True)
class Symbols:
    """The symbols of one step: the attack symbols, then ``m`` remainder symbols."""

    attack: SymbolSet
    n_remainder: int

    @property
    def size(self) -> int:
        return self.attack.size + self.n_remainder

    def range(self, G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` of ``G s`` over every symbol value (outward)."""
        K = self.attack.size
        lo, hi = self.attack.range(G[..., :K])
        r = np.abs(G[..., K:]).sum(axis=-1)
        r = _up(r, self.n_remainder)
        return lo - r, hi + r

    def bounds(self, f: AffineForm) -> Interval:
        """The interval hull of ``f``'s values, rounded outward."""
        lo, hi = self.range(f.G)
        e = f.e
        return Interval(
            np.nextafter(np.nextafter(f.c + lo, -np.inf) - e, -np.inf),
            np.nextafter(np.nextafter(f.c + hi, np.inf) + e, np.inf),
        )

    def radius(self, f: AffineForm) -> np.ndarray:
        """A bound on ``|G s + d|`` (the deviation from the centre)."""
        lo, hi = self.range(f.G)
        return _up(np.maximum(np.abs(lo), np.abs(hi)) + f.e, 2)


# ----------------------------------------------------------------------------- arithmetic


def add(a: AffineForm, b: AffineForm) -> AffineForm:
    """``a + b`` (broadcasting)."""
    c = a.c + b.c
    G = a.G + b.G
    err = UNIT * (np.abs(c) + np.abs(G).sum(axis=-1))
    return AffineForm(c, G, _up(a.e + b.e + err, 2))


def scale(a: AffineForm, k: float | np.ndarray) -> AffineForm:
    """``k a`` for constants ``k`` (broadcasting over ``a``'s shape)."""
    k = np.asarray(k, dtype=np.float64)
    c = k * a.c
    G = k[..., None] * a.G if k.ndim else k * a.G
    err = UNIT * (np.abs(c) + np.abs(G).sum(axis=-1))
    return AffineForm(c, G, _up(np.abs(k) * a.e + err, 2))


def shift(a: AffineForm, k: np.ndarray) -> AffineForm:
    """``a + k`` for constants ``k``."""
    c = a.c + k
    return AffineForm(c, a.G, _up(a.e + UNIT * np.abs(c), 1))


def widen(a: AffineForm, extra: np.ndarray) -> AffineForm:
    """``a`` with its local error increased by ``extra >= 0``."""
    return AffineForm(a.c, a.G, _up(a.e + extra, 1))


def _spec(spec: str) -> tuple[str, str, str]:
    ins, out = spec.split("->")
    x, y = ins.split(",")
    return x, y, out


def contract(spec: str, a: AffineForm, b: AffineForm, sym: Symbols) -> AffineForm:
    """The bilinear map ``einsum(spec, a, b)`` of two forms (``spec`` over their array axes,
    e.g. ``"oi,ni->no"``).

    Linear part ``einsum(c_a, G_b) + einsum(G_a, c_b)``; the product of the two deviations is
    bounded by ``einsum(R_a, R_b)`` (``R`` = :meth:`Symbols.radius`) and goes to the local error,
    with ``|c_a| e_b + e_a |c_b|`` and the rounding errors.
    """
    x, y, out = _spec(spec)
    sizes = {**dict(zip(x, a.shape, strict=True)), **dict(zip(y, b.shape, strict=True))}
    summed = set(x + y) - set(out)
    N = int(np.prod([sizes[s] for s in summed])) if summed else 1
    c = np.einsum(spec, a.c, b.c)
    G = np.einsum(f"{x},{y}s->{out}s", a.c, b.G) + np.einsum(f"{x}s,{y}->{out}s", a.G, b.c)
    aca, acb = np.abs(a.c), np.abs(b.c)
    Ra, Rb = sym.radius(a), sym.radius(b)
    local = np.einsum(spec, aca, b.e) + np.einsum(spec, a.e, acb) + np.einsum(spec, Ra, Rb)
    g = 2.0 * (N + 2) * UNIT
    mag_c = np.einsum(spec, aca, acb)
    mag_G = np.einsum(spec, aca, np.abs(b.G).sum(axis=-1)) + np.einsum(
        spec, np.abs(a.G).sum(axis=-1), acb
    )
    err = g * (mag_c + mag_G) + 2 * N * (a.n_symbols + 1) * TINY
    return AffineForm(c, G, _up(local + err, 3 * N))


def mean(a: AffineForm, axis: int = 0) -> AffineForm:
    """The mean over array axis ``axis >= 0`` (the batch mean): the shared symbols sum exactly,
    the local errors add."""
    n = a.shape[axis]
    c = a.c.sum(axis=axis) / n
    G = a.G.sum(axis=axis) / n
    mag = (np.abs(a.c).sum(axis=axis) + np.abs(a.G).sum(axis=(axis, a.G.ndim - 1))) / n
    err = 2.0 * (n + 3) * UNIT * mag + (n + 1) * (a.n_symbols + 1) * TINY
    return AffineForm(c, G, _up(a.e.sum(axis=axis) / n + err, n + 2))


def concat(forms: list[AffineForm], axis: int = -1) -> AffineForm:
    """Forms joined along an array axis (``axis`` counts array axes, not the symbol axis)."""
    ax = axis if axis >= 0 else forms[0].c.ndim + axis
    return AffineForm(
        np.concatenate([f.c for f in forms], axis=ax),
        np.concatenate([f.G for f in forms], axis=ax),
        np.concatenate([f.e for f in forms], axis=ax),
    )


__all__ = [
    "AffineForm",
    "SymbolSet",
    "Symbols",
    "add",
    "concat",
    "contract",
    "mean",
    "scale",
    "shift",
    "widen",
]
