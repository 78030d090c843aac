"""Per-operation interval transformers: the one table of abstract semantics.

Each function maps intervals to an interval that encloses the exact (real-arithmetic) result of the
operation for every real input inside the arguments. Rounding is outward (see
:mod:`mibpcert.bounds.interval`). Transformers for the network (affine layers, ReLU, ReLU'), for the
loss gradients of every loss, and for the SGD update all live here; :mod:`mibpcert.bounds.network`
composes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from mibpcert.bounds.interval import TINY, UNIT, Interval, round_out

# ----------------------------------------------------------------------------- arithmetic


def add(a: Interval, b: Interval) -> Interval:
    """a + b."""
    return round_out(a.lo + b.lo, a.hi + b.hi)


def sub(a: Interval, b: Interval) -> Interval:
    """a - b."""
    return round_out(a.lo - b.hi, a.hi - b.lo)


def _products(a: Interval, b: Interval) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise (broadcast) min and max of the four endpoint products, each rounded to
    nearest. 0 * inf (unbounded times exactly zero) is 0."""
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.stack(np.broadcast_arrays(a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi))
    if np.isnan(p).any():
        p = np.where(np.isnan(p), 0.0, p)
    return p.min(axis=0), p.max(axis=0)


def mul(a: Interval, b: Interval) -> Interval:
    """Elementwise a * b (broadcasting)."""
    return round_out(*_products(a, b))


def scale(a: Interval, c: float | np.ndarray) -> Interval:
    """c * a for a constant (float) c."""
    c = np.asarray(c, dtype=np.float64)
    p, q = c * a.lo, c * a.hi
    return round_out(np.minimum(p, q), np.maximum(p, q))


def divide(a: Interval, n: float) -> Interval:
    """a / n for a positive constant n (e.g. the batch size)."""
    return round_out(a.lo / n, a.hi / n)


def _sum_bound(lo: np.ndarray, hi: np.ndarray, axis: int) -> Interval:
    """Sum of K rounded terms along ``axis`` with a rigorous error bound.

    For K terms each within one rounding of an exact value, |fl(sum) - sum| <= gamma_K * sum|t|
    with gamma_K = K u / (1 - K u) (Higham, Accuracy and Stability, 3.1); we add
    2 (K + 1) eps * S + K * tiny (S = computed sum of magnitudes), which exceeds it with margin,
    underflow included.
    """
    K = lo.shape[axis]
    with np.errstate(invalid="ignore", over="ignore"):
        s_lo = lo.sum(axis=axis)
        s_hi = hi.sum(axis=axis)
        mag = np.maximum(np.abs(lo), np.abs(hi)).sum(axis=axis)
        err = 2.0 * (K + 1) * UNIT * mag + K * TINY
    return round_out(s_lo, s_hi, err)


def sum_axis(a: Interval, axis: int) -> Interval:
    """Sum of the elements of ``a`` along ``axis``."""
    return _sum_bound(a.lo, a.hi, axis)


def prod_sum(a: Interval, b: Interval, axis: int) -> Interval:
    """sum over ``axis`` of the broadcast product a * b (dot products, matrix products)."""
    lo, hi = _products(a, b)
    return _sum_bound(lo, hi, axis)


def affine(a: Interval, W: Interval, b: Interval) -> Interval:
    """Affine layer ``a @ W.T + b`` for inputs a (n, i), weights W (o, i), bias b (o,).

    Each scalar product of two intervals is bounded by the min/max of its endpoint products (the
    exact product range), so weights and inputs may both be intervals.
    """
    z = prod_sum(a.reshape(a.shape[0], 1, a.shape[1]), W.reshape(1, *W.shape), axis=2)
    return add(z, b.reshape(1, -1))


# ----------------------------------------------------------------------------- activations


def relu(z: Interval) -> Interval:
    """max(z, 0) (exact: no rounding needed)."""
    return Interval(np.maximum(z.lo, 0.0), np.maximum(z.hi, 0.0))


def relu_deriv(z: Interval) -> Interval:
    """ReLU'(z) in {0, 1}: 1 where z > 0 on the whole interval, 0 where z < 0, [0, 1] otherwise.

    At z = 0 both sub-gradient conventions (0 and 1) are covered.
    """
    return Interval((z.lo > 0).astype(np.float64), (z.hi >= 0).astype(np.float64))


def mask_mul(g: Interval, d: Interval) -> Interval:
    """g * d for a 0/1 mask interval d (d in [0,0], [1,1] or [0,1]); exact."""
    lo = np.where(d.hi == 0, 0.0, np.where(d.lo == 1, g.lo, np.minimum(g.lo, 0.0)))
    hi = np.where(d.hi == 0, 0.0, np.where(d.lo == 1, g.hi, np.maximum(g.hi, 0.0)))
    return Interval(lo, hi)


# ----------------------------------------------------------------------------- loss gradients


@dataclass(frozen=True)
class LabelSet:
    """The labels each training point may carry.

    Classification: ``mask`` (n, C) of allowed classes. Regression: ``targets`` interval (n, q).
    """

    mask: np.ndarray | None = None
    targets: Interval | None = None

    def __getitem__(self, idx) -> LabelSet:
        return LabelSet(
            None if self.mask is None else self.mask[idx],
            None if self.targets is None else self.targets[idx],
        )


def hinge_grad(o: Interval, mask: np.ndarray) -> Interval:
    """d/do max(0, 1 - y o) = -y [y o < 1], hull over the allowed y in {-1 (class 0), +1}.

    Where y o may equal 1 the gradient is the hull {-y, 0} (any sub-gradient convention).
    With C > 1 outputs (one-vs-rest hinge) output k may have y_k = +1 when class k is allowed
    and y_k = -1 when another class is allowed; each output is bounded on its own.
    """
    C = o.shape[1]
    if C > 1:
        cols = []
        for k in range(C):
            others = np.delete(mask, k, axis=1).any(axis=1)
            cols.append(hinge_grad(o[:, k : k + 1], np.stack([others, mask[:, k]], axis=1)))
        return Interval(
            np.concatenate([c.lo for c in cols], axis=1),
            np.concatenate([c.hi for c in cols], axis=1),
        )
    lo = np.full(o.shape[0], np.inf)
    hi = np.full(o.shape[0], -np.inf)
    for cls, y in ((0, -1.0), (1, 1.0)):
        m_lo = np.minimum(y * o.lo[:, 0], y * o.hi[:, 0])
        m_hi = np.maximum(y * o.lo[:, 0], y * o.hi[:, 0])
        g_lo = np.where(m_lo > 1.0, 0.0, min(-y, 0.0))
        g_hi = np.where(m_lo > 1.0, 0.0, max(-y, 0.0))
        g_lo = np.where(m_hi < 1.0, -y, g_lo)
        g_hi = np.where(m_hi < 1.0, -y, g_hi)
        ok = mask[:, cls]
        lo = np.where(ok, np.minimum(lo, g_lo), lo)
        hi = np.where(ok, np.maximum(hi, g_hi), hi)
    return Interval(lo[:, None], hi[:, None])


def sigmoid(o: Interval) -> Interval:
    """sigmoid(o), monotone; padded by 8 eps relative for libm error, clipped to [0, 1]."""
    s_lo, s_hi = expit(o.lo), expit(o.hi)
    lo = np.maximum(s_lo * (1.0 - 8 * UNIT) - TINY, 0.0)
    hi = np.minimum(s_hi * (1.0 + 8 * UNIT) + TINY, 1.0)
    return Interval(lo, hi)


def bce_grad(o: Interval, mask: np.ndarray) -> Interval:
    """d/do [softplus(o) - c o] = sigmoid(o) - c, hull over the allowed c in {0, 1}."""
    s = sigmoid(o)
    c_lo = np.where(mask[:, 0], 0.0, 1.0)[:, None]
    c_hi = np.where(mask[:, 1], 1.0, 0.0)[:, None]
    return round_out(s.lo - c_hi, s.hi - c_lo)


def softmax(o: Interval) -> Interval:
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


def ce_grad(o: Interval, mask: np.ndarray) -> Interval:
    """d/do [logsumexp(o) - o_c] = softmax(o) - e_c, hull over the allowed classes c."""
    p = softmax(o)
    e_hi = mask.astype(np.float64)
    single = mask.sum(axis=1, keepdims=True) == 1
    e_lo = np.where(single, e_hi, 0.0)
    return round_out(p.lo - e_hi, p.hi - e_lo)


def mse_grad(o: Interval, t: Interval) -> Interval:
    """d/do mean_j (o_j - t_j)^2 = 2 (o - t) / q."""
    q = o.shape[1]
    return divide(scale(sub(o, t), 2.0), float(q)) if q > 1 else scale(sub(o, t), 2.0)


def loss_grad(loss: str, o: Interval, labels: LabelSet) -> Interval:
    """Per-sample gradient of ``loss`` with respect to the output, over every allowed label."""
    if loss == "hinge":
        return hinge_grad(o, labels.mask)
    if loss == "bce":
        return bce_grad(o, labels.mask)
    if loss == "ce":
        return ce_grad(o, labels.mask)
    if loss == "mse":
        if labels.targets is not None:
            return mse_grad(o, labels.targets)
        # binary classification with +-1 targets: hull of the allowed targets
        t_lo = np.where(labels.mask[:, 0], -1.0, 1.0)[:, None]
        t_hi = np.where(labels.mask[:, 1], 1.0, -1.0)[:, None]
        return mse_grad(o, Interval(t_lo, t_hi))
    raise ValueError(f"unknown loss {loss!r}")


def clip(g: Interval, gamma: float) -> Interval:
    """Elementwise clipping to [-gamma, gamma] (monotone, exact)."""
    return Interval(np.clip(g.lo, -gamma, gamma), np.clip(g.hi, -gamma, gamma))


# ----------------------------------------------------------------------------- update


def sgd_update(theta: Interval, grad: Interval, lr: float) -> Interval:
    """theta - lr * grad, the lower end with the upper gradient and vice versa."""
    return sub(theta, scale(grad, lr))
