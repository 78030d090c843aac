"""Cross-entropy on C logits: ``logsumexp(o) - o_c``, gradient ``softmax(o) - e_c``.

Class label c. The interval version bounds each softmax component by its own bound and the
opposite bounds of every other component; the program version relaxes ``p = softmax(o)`` to those
bounds plus ``sum_k p_k = 1`` (sound, loose), so programs with this loss are sound relaxations.
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


def _log_softmax(*args, **kwargs):
    """``scipy.special.log_softmax``, imported on first use (keeps ``import mibpcert`` light)."""
    from scipy.special import log_softmax as f

    return f(*args, **kwargs)


def _softmax(*args, **kwargs):
    """``scipy.special.softmax``, imported on first use (keeps ``import mibpcert`` light)."""
    from scipy.special import softmax as f

    return f(*args, **kwargs)


def value(out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample ``logsumexp(o) - o_c``."""
    return -_log_softmax(out, axis=1)[np.arange(len(t)), t]


def grad(out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample ``softmax(o) - e_c``."""
    g = _softmax(out, axis=1)
    g[np.arange(len(t)), t] -= 1.0
    return g


# ----------------------------------------------------------------------------- interval


def softmax_interval(o: Interval) -> Interval:
    """Bounds on softmax(o) (n, C): component i uses its own bound and the opposite bounds of
    every other component, p_i >= 1 / (1 + sum_{j != i} exp(hi_j - lo_i)) and symmetric.

    exp and the sums are padded by 4 (C + 2) eps relative (libm error and C-term sums).
    """
    C = o.shape[1]
    pad = 4.0 * (C + 2) * UNIT
    off = ~np.eye(C, dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):
        up_arg = np.nextafter(o.hi[:, None, :] - o.lo[:, :, None], np.inf)  # (n, i, j)
        dn_arg = np.nextafter(o.lo[:, None, :] - o.hi[:, :, None], -np.inf)
        s_up = np.where(off, np.exp(up_arg), 0.0).sum(axis=2) * (1.0 + pad) + TINY
        s_dn = np.where(off, np.exp(dn_arg), 0.0).sum(axis=2) * (1.0 - pad)
        lo = (1.0 / (1.0 + s_up)) * (1.0 - pad)
        hi = (1.0 / (1.0 + s_dn)) * (1.0 + pad) + TINY
    lo = np.where(np.isnan(lo), 0.0, np.clip(lo, 0.0, 1.0))
    hi = np.where(np.isnan(hi), 1.0, np.clip(hi, 0.0, 1.0))
    return Interval(lo, hi)


def grad_interval(o: Interval, labels: LabelSet) -> Interval:
    """d/do [logsumexp(o) - o_c] = softmax(o) - e_c, hull over the allowed classes c."""
    mask = labels.mask
    p = softmax_interval(o)
    e_hi = mask.astype(np.float64)
    single = mask.sum(axis=1, keepdims=True) == 1
    e_lo = np.where(single, e_hi, 0.0)
    return round_out(p.lo - e_hi, p.hi - e_lo)


# ----------------------------------------------------------------------------- program


def grad_program(b: Builder, out: list[Expr], label: PointLabel, tags: list[str]) -> list[Expr]:
    """``p_k - e_k`` with ``p`` relaxed to the softmax bounds of the logits' intervals and
    ``sum_k p_k = 1``, and ``e`` the label's one-hot vector (affine in binaries)."""
    C = len(out)
    sm = softmax_interval(
        Interval(np.array([[e.lo for e in out]]), np.array([[e.hi for e in out]]))
    )
    ps = [b.var(float(sm.lo[0, k]), float(sm.hi[0, k]), f"p{tags[k]}") for k in range(C)]
    b.constrain(b.add(*ps), 1.0 - 1e-12, 1.0 + 1e-12)
    return [b.affine([(1.0, p), (-1.0, e)]) for p, e in zip(ps, label.onehot, strict=True)]


# ----------------------------------------------------------------------------- affine sets


def grad_affine_set(o: AffineForm, rng: Interval, labels: LabelSet, sym: Symbols) -> AffineForm:
    """``softmax(o) - e_c`` by the mean-value form around the centre ``o_c``: ``p(o_c) + J (o -
    o_c)`` with ``J`` the softmax Jacobian at ``o_c``; the error is at most
    ``sum_j max|J_ij(xi) - J_ij| |o_j - o_cj|`` with ``J(xi)`` bounded by interval arithmetic
    over the hull of ``rng`` and ``o_c`` (``J = diag(p) - p p^T``). The allowed labels' hull is
    a local error."""
    oc = o.c
    n, C = oc.shape
    box = Interval(np.minimum(rng.lo, oc), np.maximum(rng.hi, oc))
    pc = _softmax(oc, axis=1)
    J = np.einsum("ni,ij->nij", pc, np.eye(C)) - pc[:, :, None] * pc[:, None, :]
    P = softmax_interval(box)
    off_lo = -(P.hi[:, :, None] * P.hi[:, None, :])
    off_hi = -(P.lo[:, :, None] * P.lo[:, None, :])
    x_mid = np.clip(0.5, P.lo, P.hi)
    d_hi = x_mid * (1.0 - x_mid)
    d_lo = np.minimum(P.lo * (1.0 - P.lo), P.hi * (1.0 - P.hi))
    eye = np.eye(C, dtype=bool)[None]
    J_lo = np.where(eye, d_lo[:, :, None], off_lo) - 8 * UNIT
    J_hi = np.where(eye, d_hi[:, :, None], off_hi) + 8 * UNIT
    dev = np.maximum(np.abs(J_hi - J), np.abs(J - J_lo))
    R = sym.radius(o)
    with np.errstate(invalid="ignore"):
        err = np.einsum("nij,nj->ni", dev, R)
    err = np.where(np.isfinite(err), err, np.inf)
    G = np.einsum("nij,njs->nis", J, o.G)
    absJ = np.abs(J)
    rounding = 2.0 * (C + 3) * UNIT * (
        np.einsum("nij,nj->ni", absJ, np.abs(o.G).sum(axis=-1)) + np.abs(pc)
    ) + 8 * (C + 2) * UNIT * np.abs(pc) + (C + 1) * (o.n_symbols + 1) * TINY
    e = np.einsum("nij,nj->ni", absJ, o.e) + err + rounding
    lin = AffineForm(pc, G, e * (1.0 + 2.0 * (C + 3) * UNIT) + TINY)
    mask = labels.mask
    e_hi = mask.astype(np.float64)
    single = mask.sum(axis=1, keepdims=True) == 1
    e_lo = np.where(single, e_hi, 0.0)
    label = AffineForm.hull(Interval(e_lo, e_hi), sym.size)
    return aff.widen(aff.shift(lin, -label.c), label.e)
