"""Binary cross-entropy on one logit: ``softplus(o) - c o``, gradient ``sigmoid(o) - c``.

Target c in {0, 1}. The interval version bounds the monotone sigmoid with padding for libm
error; the program version relaxes ``p = sigmoid(o)`` soundly by its value range and slope
bounds on the output's interval (a polytope that contains the graph), so programs with this
loss are sound relaxations, not exact.
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains import affine as aff
from mibpcert.domains.affine import AffineForm, Symbols
from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import TINY, UNIT, Interval, round_out
from mibpcert.ops.targets import PointLabel
from mibpcert.threat.labels import LabelSet

# ----------------------------------------------------------------------------- numpy


def _expit(*args, **kwargs):
    """``scipy.special.expit``, imported on first use (keeps ``import mibpcert`` light)."""
    from scipy.special import expit as f

    return f(*args, **kwargs)


def value(out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample ``softplus(o) - c o``."""
    return np.logaddexp(0.0, out[:, 0]) - t[:, 0] * out[:, 0]


def grad(out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample ``sigmoid(o) - c``."""
    return _expit(out) - t


# ----------------------------------------------------------------------------- interval


def sigmoid_interval(o: Interval) -> Interval:
    """sigmoid(o), monotone; padded by 8 eps relative for libm error, clipped to [0, 1]."""
    s_lo, s_hi = _expit(o.lo), _expit(o.hi)
    lo = np.maximum(s_lo * (1.0 - 8 * UNIT) - TINY, 0.0)
    hi = np.minimum(s_hi * (1.0 + 8 * UNIT) + TINY, 1.0)
    return Interval(lo, hi)


def grad_interval(o: Interval, labels: LabelSet) -> Interval:
    """d/do [softplus(o) - c o] = sigmoid(o) - c, hull over the allowed c in {0, 1}."""
    mask = labels.mask
    s = sigmoid_interval(o)
    c_lo = np.where(mask[:, 0], 0.0, 1.0)[:, None]
    c_hi = np.where(mask[:, 1], 1.0, 0.0)[:, None]
    return round_out(s.lo - c_hi, s.hi - c_lo)


# ----------------------------------------------------------------------------- program


def sigmoid_program(b: Builder, o: Expr, name: str) -> Expr:
    """p = sigmoid(o) over o in [L, U]: range and slope bounds (padded for libm error)."""
    L, U = o.lo, o.hi
    s = sigmoid_interval(Interval(np.array([L, U]), np.array([L, U])))
    p = b.var(float(s.lo[0]), float(s.hi[1]), name)
    if not (np.isfinite(L) and np.isfinite(U)) or U - L <= 0:
        return p

    def dsig(v: float) -> float:
        e = 1.0 / (1.0 + np.exp(-v))
        return e * (1.0 - e)

    k_max = 0.25 if L <= 0 <= U else max(dsig(L), dsig(U))
    k_min = min(dsig(L), dsig(U))
    k_max *= 1.0 + 16 * UNIT
    k_min *= 1.0 - 16 * UNIT
    pL_lo, pU_hi = float(s.lo[0]), float(s.hi[1])
    pL_hi, pU_lo = float(s.hi[0]), float(s.lo[1])

    def pad(*terms: float) -> float:  # rounding of the right-hand sides below
        return 1e-12 + 8 * UNIT * sum(abs(t) for t in terms)

    # p <= sigma(L) + k_max (o - L);  p >= sigma(U) - k_max (U - o)
    b.constrain(b.affine([(1.0, p), (-k_max, o)]), hi=pL_hi - k_max * L + pad(pL_hi, k_max * L))
    b.constrain(b.affine([(1.0, p), (-k_max, o)]), lo=pU_lo - k_max * U - pad(pU_lo, k_max * U))
    # p >= sigma(L) + k_min (o - L);  p <= sigma(U) - k_min (U - o)
    b.constrain(b.affine([(1.0, p), (-k_min, o)]), lo=pL_lo - k_min * L - pad(pL_lo, k_min * L))
    b.constrain(b.affine([(1.0, p), (-k_min, o)]), hi=pU_hi - k_min * U + pad(pU_hi, k_min * U))
    return p


def grad_program(b: Builder, out: list[Expr], label: PointLabel, tags: list[str]) -> list[Expr]:
    """``p - c`` with ``p`` the relaxed sigmoid of the logit and ``c`` the label's 0/1 class."""
    p = sigmoid_program(b, out[0], f"sig{tags[0]}")
    return [b.affine([(1.0, p), (-1.0, label.cls(b))])]


# ----------------------------------------------------------------------------- affine sets


def _dsig(v: np.ndarray) -> np.ndarray:
    s = _expit(v)
    return s * (1.0 - s)


def grad_affine_set(o: AffineForm, rng: Interval, labels: LabelSet, sym: Symbols) -> AffineForm:
    """``sigmoid(o) - c`` by the mean-value form around the centre ``o_c``: ``sigmoid(o_c) +
    lam (o - o_c)`` with ``lam = sigmoid'(o_c)``; the error is at most ``max |sigmoid'(xi) - lam|
    |o - o_c|`` over ``xi`` in the hull of ``rng`` and ``o_c`` (sigmoid' is unimodal, largest at
    0). The allowed labels' hull is a local error."""
    oc = o.c
    lo, hi = np.minimum(rng.lo, oc), np.maximum(rng.hi, oc)
    sc = _expit(oc)
    lam = sc * (1.0 - sc)
    d_max = _dsig(np.clip(0.0, lo, hi)) * (1.0 + 32 * UNIT) + TINY
    d_min = np.minimum(_dsig(lo), _dsig(hi)) * (1.0 - 32 * UNIT)
    slope_err = np.maximum(np.maximum(d_max - lam, lam - d_min), 0.0)
    R = sym.radius(o)
    with np.errstate(invalid="ignore"):
        err = np.where(np.isfinite(R), slope_err * R, np.inf)
    err = err + 16 * UNIT * np.abs(sc) + TINY
    lin = aff.widen(aff.shift(aff.scale(o, lam), sc - lam * oc), err + 4 * UNIT * np.abs(lam * oc))
    mask = labels.mask
    c_lo = np.where(mask[:, 0], 0.0, 1.0)[:, None]
    c_hi = np.where(mask[:, 1], 1.0, 0.0)[:, None]
    label = AffineForm.hull(Interval(c_lo, c_hi), sym.size)
    return aff.widen(aff.shift(lin, -label.c), label.e)
