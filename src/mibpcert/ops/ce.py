"""Cross-entropy on C logits: ``logsumexp(o) - o_c``, gradient ``softmax(o) - e_c``.

Class label c. The interval version bounds each softmax component by its own bound and the
opposite bounds of every other component; the program version relaxes ``p = softmax(o)`` to those
bounds plus ``sum_k p_k = 1`` (sound, loose), so programs with this loss are sound relaxations.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax

from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import TINY, UNIT, Interval, round_out
from mibpcert.ops.targets import PointLabel
from mibpcert.threat.labels import LabelSet

# ----------------------------------------------------------------------------- numpy


def value(out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample ``logsumexp(o) - o_c``."""
    return -log_softmax(out, axis=1)[np.arange(len(t)), t]


def grad(out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample ``softmax(o) - e_c``."""
    g = softmax(out, axis=1)
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
