"""Soundness of every interval transformer in ``mibpcert.bounds``.

For each operation: draw random intervals (degenerate, straddling 0, wide, narrow, tiny and huge
magnitudes mixed in one array), sample many points inside them (endpoints and vertices included),
evaluate the exact operation and check that every result lies inside the transformer's output.
Arithmetic operations are checked against exact rational arithmetic (``fractions.Fraction``);
transcendental ones (sigmoid, softmax and the loss gradients) against numpy in float64, whose
error is far below the transformers' padding.
"""

from __future__ import annotations

import math
import zlib
from fractions import Fraction

import numpy as np
import pytest
from scipy.special import expit
from scipy.special import softmax as np_softmax

from mibpcert.bounds import network, ops
from mibpcert.domains.interval import Interval, round_out
from mibpcert.model import trainer
from mibpcert.model.losses import encode_targets
from mibpcert.model.losses import loss_grad as point_loss_grad
from mibpcert.model.network import Architecture, init_params
from mibpcert.model.network import forward as point_forward
from mibpcert.threat import LabelSet

N_SAMPLES = 200

# ----------------------------------------------------------------------------- helpers


def _to_frac(a):
    """Object array of exact Fractions (infinite values stay floats; comparable with Fractions)."""
    conv = np.frompyfunc(lambda v: Fraction(v) if math.isfinite(v) else v, 1, 1)
    return conv(np.asarray(a, dtype=np.float64))


def random_interval(rng, shape, kinds=(0, 1, 2, 3, 4, 5), max_exp=6.0) -> Interval:
    """Elementwise mix of interval kinds:

    0 degenerate, 1 straddling 0, 2 wide, 3 narrow away from 0, 4 tiny magnitudes (underflow),
    5 one endpoint exactly 0.
    """
    shape = tuple(np.atleast_1d(shape)) if np.ndim(shape) else (int(shape),)
    mag = 10.0 ** rng.uniform(-max_exp, max_exp, shape)
    c = rng.choice([-1.0, 1.0], shape) * mag
    kind = rng.choice(np.asarray(kinds), shape)
    r = np.zeros(shape)
    r = np.where(kind == 1, np.abs(c) * rng.uniform(1.0, 3.0, shape), r)
    r = np.where(kind == 2, mag * rng.uniform(10.0, 1000.0, shape), r)
    r = np.where(kind == 3, np.abs(c) * 10.0 ** rng.uniform(-12, -1, shape), r)
    lo, hi = c - r, c + r
    tiny = kind == 4
    t_lo = rng.uniform(-1.0, 1.0, shape) * 1e-300
    lo = np.where(tiny, t_lo, lo)
    hi = np.where(tiny, t_lo + rng.uniform(0.0, 1.0, shape) * 1e-300, hi)
    zero_end = kind == 5
    lo = np.where(zero_end & (c > 0), 0.0, lo)
    hi = np.where(zero_end & (c > 0), c, hi)
    lo = np.where(zero_end & (c <= 0), c, lo)
    hi = np.where(zero_end & (c <= 0), 0.0, hi)
    assert np.all(lo <= hi)
    return Interval(lo, hi)


def sample_inside(rng, iv: Interval, n: int = N_SAMPLES) -> np.ndarray:
    """(n, *shape) points of ``iv``: all-lo, all-hi, then random mixtures of endpoints (vertices)
    and uniform interior values."""
    shape = iv.shape
    lo = np.broadcast_to(iv.lo, (n, *shape))
    hi = np.broadcast_to(iv.hi, (n, *shape))
    u = np.clip(lo + (hi - lo) * rng.random((n, *shape)), lo, hi)
    pick = rng.random((n, *shape))
    vertex_rate = rng.random((n,) + (1,) * len(shape))
    out = np.where(pick < vertex_rate / 2, lo, np.where(pick < vertex_rate, hi, u))
    out[0] = iv.lo
    if n > 1:
        out[1] = iv.hi
    return out


def assert_encloses_exact(res: Interval, exact, what: str = "") -> None:
    """Every exact (Fraction) value lies in ``res`` (broadcast over leading sample axes)."""
    lo = _to_frac(res.lo)
    hi = _to_frac(res.hi)
    ok = (lo <= exact) & (exact <= hi)
    ok = np.asarray(ok, dtype=bool)
    assert ok.all(), f"{what}: exact value outside bounds at {np.argwhere(~ok)[:3].tolist()}"


def assert_encloses(res: Interval, values: np.ndarray, what: str = "") -> None:
    """Every float value lies in ``res`` (``values`` has leading sample axes)."""
    assert res.is_valid(), f"{what}: lo > hi"
    assert not np.isnan(res.lo).any() and not np.isnan(res.hi).any(), f"{what}: NaN bound"
    ok = (res.lo <= values) & (values <= res.hi)
    if not ok.all():
        idx = tuple(np.argwhere(~ok)[0])
        lo = np.broadcast_to(res.lo, values.shape)[idx]
        hi = np.broadcast_to(res.hi, values.shape)[idx]
        raise AssertionError(f"{what}: value {values[idx]!r} outside [{lo!r}, {hi!r}] at {idx}")


SEEDS = [0, 1, 2, 3]

# ----------------------------------------------------------------------------- interval basics


def test_interval_point_and_contains():
    x = np.array([[1.0, -2.0], [0.0, 3.5]])
    iv = Interval.point(x)
    assert iv.shape == (2, 2)
    assert np.all(iv.width == 0)
    assert iv.contains(x).all()
    assert not iv.contains(x + 1e-9).any()
    assert iv.contains(x + 1e-9, tol=1e-8).all()
    assert iv.is_valid()
    assert not Interval(1.0, 0.0).is_valid()


def test_interval_intersect_and_mid():
    a, b = Interval([0.0, -1.0], [2.0, 1.0]), Interval([1.0, -3.0], [3.0, 0.5])
    c = a.intersect(b)
    assert np.array_equal(c.lo, [1.0, -1.0]) and np.array_equal(c.hi, [2.0, 0.5])
    assert np.array_equal(a.mid, [1.0, 0.0])
    big = Interval(-1e308, 1e308)
    assert np.isfinite(big.mid)


def test_round_out_moves_every_endpoint_outward():
    rng = np.random.default_rng(5)
    x = rng.normal(size=50) * 10.0 ** rng.uniform(-300, 300, 50)
    iv = round_out(x, x)
    assert np.all(iv.lo < x) and np.all(x < iv.hi)
    # at least one ulp (as nextafter), at most a few (the fast steps up/down)
    assert np.all(iv.lo <= np.nextafter(x, -np.inf)) and np.all(iv.hi >= np.nextafter(x, np.inf))
    ulp4 = 5 * np.spacing(np.abs(x))
    assert np.all(iv.hi - x <= ulp4) and np.all(x - iv.lo <= ulp4)
    iv2 = round_out(x, x, err=np.abs(x) * 1e-3)
    assert np.all(iv2.lo <= x - np.abs(x) * 1e-3) and np.all(iv2.hi >= x + np.abs(x) * 1e-3)


def test_outward_rounding_on_inexact_sum_of_points():
    a, b = Interval.point(0.1), Interval.point(0.2)
    res = ops.add(a, b)
    fl = 0.1 + 0.2
    exact = Fraction(0.1) + Fraction(0.2)
    assert Fraction(fl) != exact  # the float sum is inexact
    assert res.lo < fl < res.hi
    assert Fraction(float(res.lo)) <= exact <= Fraction(float(res.hi))
    # subtraction and products of points are widened too
    d = ops.sub(Interval.point(1.0), Interval.point(1e-17))
    assert d.lo < 1.0 - 1e-17 <= d.hi and Fraction(float(d.lo)) < 1 - Fraction(1e-17)
    p = ops.mul(Interval.point(0.1), Interval.point(0.3))
    assert Fraction(float(p.lo)) <= Fraction(0.1) * Fraction(0.3) <= Fraction(float(p.hi))
    assert p.lo < p.hi


def test_sum_of_point_one_ten_thousand_times_is_enclosed():
    x = Interval.point(np.full(10_000, 0.1))
    res = ops.sum_axis(x, axis=0)
    exact = Fraction(0.1) * 10_000
    assert Fraction(float(res.lo)) <= exact <= Fraction(float(res.hi))
    naive = 0.0
    for _ in range(10_000):
        naive += 0.1
    # the sequential float sum drifts away from the exact value, the bounds still hold it
    assert Fraction(naive) != exact
    assert res.lo <= naive <= res.hi
    # and the enclosure is tight: relative width well below 1e-9
    assert 0 < res.hi - res.lo < 1e-9 * 1000.0


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_nan_endpoints_widen_to_infinity():
    res = ops.add(Interval(np.inf, np.inf), Interval(-np.inf, -np.inf))
    assert res.lo == -np.inf and res.hi == np.inf
    res = ops.sub(Interval([np.inf, 1.0], [np.inf, 2.0]), Interval([np.inf, 0.0], [np.inf, 1.0]))
    assert res.lo[0] == -np.inf and res.hi[0] == np.inf
    assert np.isfinite(res.lo[1]) and res.lo[1] <= 0.0 and res.hi[1] >= 2.0
    iv = round_out(np.array([np.nan, 1.0]), np.array([np.nan, 2.0]))
    assert iv.lo[0] == -np.inf and iv.hi[0] == np.inf
    assert iv.lo[1] < 1.0 and iv.hi[1] > 2.0
    assert not np.isnan(iv.lo).any() and not np.isnan(iv.hi).any()


def test_zero_times_inf_is_zero():
    for other in (Interval(-np.inf, np.inf), Interval(np.inf, np.inf), Interval(-np.inf, 0.0)):
        res = ops.mul(Interval(0.0, 0.0), other)
        assert np.isfinite(res.lo) and np.isfinite(res.hi)
        assert res.lo <= 0.0 <= res.hi
        assert res.hi - res.lo < 1e-300
    # a zero endpoint against an unbounded one: only the nonzero endpoint products count
    res = ops.mul(Interval(0.0, 2.0), Interval(1.0, np.inf))
    assert res.lo <= 0.0 and res.hi == np.inf and np.isfinite(res.lo)
    res = ops.prod_sum(Interval([0.0, 1.0], [0.0, 1.0]), Interval([-np.inf, 2.0], [np.inf, 2.0]), 0)
    assert np.isfinite(res.lo) and np.isfinite(res.hi) and res.lo <= 2.0 <= res.hi


# ----------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize("seed", SEEDS)
def test_add_sub_mul_exact(seed):
    rng = np.random.default_rng(seed)
    a = random_interval(rng, 40)
    b = random_interval(rng, 40)
    xa, xb = _to_frac(sample_inside(rng, a, 60)), _to_frac(sample_inside(rng, b, 60))
    assert_encloses_exact(ops.add(a, b), xa + xb, "add")
    assert_encloses_exact(ops.sub(a, b), xa - xb, "sub")
    assert_encloses_exact(ops.mul(a, b), xa * xb, "mul")
    # every combination of endpoints, not only the aligned ones
    for ea in (a.lo, a.hi):
        for eb in (b.lo, b.hi):
            fa, fb = _to_frac(ea), _to_frac(eb)
            assert_encloses_exact(ops.mul(a, b), fa * fb, "mul vertices")
            assert_encloses_exact(ops.sub(a, b), fa - fb, "sub vertices")


@pytest.mark.parametrize("seed", SEEDS)
def test_mul_broadcasts(seed):
    rng = np.random.default_rng(seed)
    a = random_interval(rng, (5, 1))
    b = random_interval(rng, (1, 7))
    res = ops.mul(a, b)
    assert res.shape == (5, 7)
    xa, xb = _to_frac(sample_inside(rng, a, 40)), _to_frac(sample_inside(rng, b, 40))
    assert_encloses_exact(res, xa * xb, "mul broadcast")


@pytest.mark.parametrize("seed", SEEDS)
def test_scale_and_divide_exact(seed):
    rng = np.random.default_rng(seed)
    a = random_interval(rng, 30)
    xa = _to_frac(sample_inside(rng, a, 60))
    for c in (0.1, -0.37, 0.0, 3.0, -1e-5, 1e5):
        assert_encloses_exact(ops.scale(a, c), Fraction(c) * xa, f"scale {c}")
    carr = rng.normal(size=30) * 10.0 ** rng.uniform(-3, 3, 30)
    assert_encloses_exact(ops.scale(a, carr), _to_frac(carr) * xa, "scale array")
    for n in (1.0, 3.0, 7.0, 0.3, 1e-3):
        assert_encloses_exact(ops.divide(a, n), xa / Fraction(n), f"divide {n}")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("axis", [0, 1])
def test_sum_axis_exact(seed, axis):
    rng = np.random.default_rng(seed)
    a = random_interval(rng, (9, 6))
    res = ops.sum_axis(a, axis=axis)
    assert res.shape == ((6,) if axis == 0 else (9,))
    xa = _to_frac(sample_inside(rng, a, 60))
    assert_encloses_exact(res, xa.sum(axis=axis + 1), "sum_axis")


def test_sum_axis_many_terms_with_cancellation():
    rng = np.random.default_rng(11)
    x = rng.normal(size=5000) * 10.0 ** rng.uniform(-8, 8, 5000)
    x = np.concatenate([x, -x[::-1] * (1 + 1e-15)])  # sum nearly cancels
    rng.shuffle(x)
    res = ops.sum_axis(Interval.point(x), axis=0)
    exact = sum(Fraction(v) for v in x)
    assert Fraction(float(res.lo)) <= exact <= Fraction(float(res.hi))


@pytest.mark.parametrize("seed", SEEDS)
def test_prod_sum_exact(seed):
    rng = np.random.default_rng(seed)
    a = random_interval(rng, (4, 1, 5))
    b = random_interval(rng, (1, 3, 5))
    res = ops.prod_sum(a, b, axis=2)
    assert res.shape == (4, 3)
    xa, xb = _to_frac(sample_inside(rng, a, 50)), _to_frac(sample_inside(rng, b, 50))
    assert_encloses_exact(res, (xa * xb).sum(axis=3), "prod_sum")


def _exact_term_ranges(a: Interval, b: Interval):
    """Exact (Fraction) ends of ``sum_k [a_ik] [b_kj]``: per term the min/max corner product."""
    ends_a, ends_b = (a.lo, a.hi), (b.lo, b.hi)
    corners = [_to_frac(x)[:, :, None] * _to_frac(y)[None, :, :] for x in ends_a for y in ends_b]
    lo = np.minimum.reduce(corners).sum(axis=1)
    hi = np.maximum.reduce(corners).sum(axis=1)
    return lo, hi


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kinds", [(0, 1, 2, 3, 4, 5), (1,), (0, 3), (1, 3, 5)])
def test_matmul_is_the_exact_term_range(seed, kinds):
    """BLAS matmul of masked ends: encloses the exact sum of exact term ranges (every sign class,
    both-straddling terms, zero ends, underflow) and is within its error bound of it."""
    rng = np.random.default_rng(seed)
    n, k, m = 5, 7, 4
    a = random_interval(rng, (n, k), kinds=kinds, max_exp=4)
    b = random_interval(rng, (k, m), kinds=kinds, max_exp=4)
    res = ops.matmul(a, b)
    assert res.shape == (n, m)
    lo, hi = _exact_term_ranges(a, b)
    assert_encloses_exact(res, lo, "matmul lower end")
    assert_encloses_exact(res, hi, "matmul upper end")
    mag = np.maximum(np.abs(a.lo), np.abs(a.hi)) @ np.maximum(np.abs(b.lo), np.abs(b.hi))
    slack = 1e-13 * mag + 1e-290
    assert np.all(np.abs(res.lo - lo.astype(float)) <= slack), "matmul lower end not tight"
    assert np.all(np.abs(res.hi - hi.astype(float)) <= slack), "matmul upper end not tight"
    # the same ranges as the elementwise prod_sum
    ref = ops.prod_sum(a.reshape(n, k, 1), b.reshape(1, k, m), axis=1)
    assert np.all(np.abs(res.lo - ref.lo) <= slack) and np.all(np.abs(res.hi - ref.hi) <= slack)


def test_matmul_non_finite_ends_fall_back_to_prod_sum():
    a = Interval(np.array([[0.0, -np.inf], [1.0, 2.0]]), np.array([[0.0, 1.0], [np.inf, 3.0]]))
    b = Interval(np.array([[-1.0, 2.0], [0.5, -2.0]]), np.array([[1.0, 2.0], [0.5, 1.0]]))
    res = ops.matmul(a, b)
    ref = ops.prod_sum(a.reshape(2, 2, 1), b.reshape(1, 2, 2), axis=1)
    assert np.array_equal(res.lo, ref.lo) and np.array_equal(res.hi, ref.hi)
    assert not np.isnan(res.lo).any() and not np.isnan(res.hi).any()


@pytest.mark.parametrize("seed", SEEDS)
def test_mul_with_a_nonnegative_factor_is_the_exact_range(seed):
    """The nonnegative-factor path (ReLU activations) gives the min/max corner product, rounded
    outward by one step: enclosing and tight."""
    rng = np.random.default_rng(seed)
    g = random_interval(rng, (6, 3, 1), max_exp=3)
    a = random_interval(rng, (6, 1, 4), kinds=(0, 1, 2, 3, 5), max_exp=3)
    a = Interval(np.maximum(a.lo, 0.0), np.maximum(a.hi, 0.0))
    for x, y in ((g, a), (a, g)):
        res = ops.mul(x, y)
        assert res.shape == (6, 3, 4)
        corners = [
            _to_frac(np.broadcast_to(p, res.shape)) * _to_frac(np.broadcast_to(q, res.shape))
            for p in (x.lo, x.hi)
            for q in (y.lo, y.hi)
        ]
        lo, hi = np.minimum.reduce(corners), np.maximum.reduce(corners)
        assert_encloses_exact(res, lo, "mul lower end")
        assert_encloses_exact(res, hi, "mul upper end")
        ref = round_out(lo.astype(float), hi.astype(float))
        assert np.allclose(res.lo, ref.lo, rtol=1e-15, atol=0) and np.allclose(
            res.hi, ref.hi, rtol=1e-15, atol=0
        )


@pytest.mark.parametrize("seed", SEEDS)
def test_affine_exact(seed):
    rng = np.random.default_rng(seed)
    n, i, o = 3, 4, 5
    a = random_interval(rng, (n, i), max_exp=3)
    W = random_interval(rng, (o, i), max_exp=3)
    b = random_interval(rng, (o,), max_exp=3)
    res = ops.affine(a, W, b)
    assert res.shape == (n, o)
    xa = _to_frac(sample_inside(rng, a, 50))
    xW = _to_frac(sample_inside(rng, W, 50))
    xb = _to_frac(sample_inside(rng, b, 50))
    exact = (xa[:, :, None, :] * xW[:, None, :, :]).sum(axis=3) + xb[:, None, :]
    assert_encloses_exact(res, exact, "affine")
    # the float computation of a point inside is inside too
    fa, fW, fb = a.lo, W.hi, b.lo
    assert_encloses(res, fa @ fW.T + fb, "affine float")


# ----------------------------------------------------------------------------- activations


@pytest.mark.parametrize("seed", SEEDS)
def test_relu_and_relu_deriv(seed):
    rng = np.random.default_rng(seed)
    z = random_interval(rng, (6, 8))
    # some degenerate zeros: both sub-gradient conventions must be covered there
    z = Interval(np.where(np.arange(8) == 0, 0.0, z.lo), np.where(np.arange(8) == 0, 0.0, z.hi))
    xs = sample_inside(rng, z)
    r = ops.relu(z)
    assert_encloses(r, np.maximum(xs, 0.0), "relu")
    assert np.all(r.lo >= 0)
    d = ops.relu_deriv(z)
    assert set(np.unique(d.lo)) <= {0.0, 1.0} and set(np.unique(d.hi)) <= {0.0, 1.0}
    assert_encloses(d, (xs > 0).astype(float), "relu' with relu'(0) = 0")
    assert_encloses(d, (xs >= 0).astype(float), "relu' with relu'(0) = 1")
    assert np.all(d.lo[:, 0] == 0) and np.all(d.hi[:, 0] == 1)
    # where the sign is fixed the derivative is exact
    pos, neg = z.lo > 0, z.hi < 0
    assert np.all(d.lo[pos] == 1) and np.all(d.hi[neg] == 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_mask_mul(seed):
    rng = np.random.default_rng(seed)
    g = random_interval(rng, (5, 9))
    kind = rng.integers(0, 3, (5, 9))  # 0: [0,0], 1: [1,1], 2: [0,1]
    d = Interval((kind == 1).astype(float), (kind >= 1).astype(float))
    res = ops.mask_mul(g, d)
    xg = sample_inside(rng, g)
    xd = sample_inside(rng, d)  # endpoints are 0 or 1; interior values only where d = [0, 1]
    xd = np.where(xd >= 0.5, 1.0, 0.0)
    assert_encloses(res, xg * xd, "mask_mul")
    assert_encloses(res, xg * d.lo, "mask_mul lo")
    assert_encloses(res, xg * d.hi, "mask_mul hi")
    assert np.all(res.lo[kind == 0] == 0) and np.all(res.hi[kind == 0] == 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_clip(seed):
    rng = np.random.default_rng(seed)
    g = random_interval(rng, (7, 5), max_exp=2)
    for gamma in (1e-3, 0.5, 1.0, 50.0):
        res = ops.clip(g, gamma)
        xs = sample_inside(rng, g)
        assert_encloses(res, np.clip(xs, -gamma, gamma), f"clip {gamma}")
        assert np.all(res.lo >= -gamma) and np.all(res.hi <= gamma)


# ----------------------------------------------------------------------------- loss gradients


def _random_mask(rng, n, C):
    mask = rng.random((n, C)) < 0.5
    mask[np.arange(n), rng.integers(0, C, n)] = True  # at least one class per point
    return mask


def _logit_interval(rng, shape, scale=5.0):
    """Logit intervals of different widths around values of different sizes."""
    c = rng.normal(size=shape) * scale * 10.0 ** rng.uniform(-2, 1, shape)
    r = np.abs(rng.normal(size=shape)) * 10.0 ** rng.uniform(-4, 1, shape)
    r = np.where(rng.random(shape) < 0.2, 0.0, r)
    return Interval(c - r, c + r)


def _check_classification_grad(rng, loss, o, mask, res):
    """Every point of o and every allowed label gives a gradient inside ``res``."""
    xs = sample_inside(rng, o)
    n, C = mask.shape
    for cls in range(C):
        rows = mask[:, cls]
        if not rows.any():
            continue
        y = np.full(n, cls)
        t = encode_targets(loss, y, "classification")
        for s in range(len(xs)):
            g = point_loss_grad(loss, xs[s], t)
            ok = (res.lo <= g) & (g <= res.hi)
            assert ok[rows].all(), f"{loss}: class {cls} sample {s} outside bounds"


@pytest.mark.parametrize("seed", SEEDS)
def test_hinge_grad(seed):
    rng = np.random.default_rng(seed)
    n = 30
    o = _logit_interval(rng, (n, 1), scale=1.0)
    # kinks: y o = 1 exactly (o = +-1) as degenerate intervals and as endpoints
    lo, hi = o.lo.copy(), o.hi.copy()
    lo[:4, 0] = [1.0, -1.0, 0.5, -1.0]
    hi[:4, 0] = [1.0, -1.0, 1.0, 2.0]
    o = Interval(lo, hi)
    mask = _random_mask(rng, n, 2)
    mask[:2] = [[False, True], [True, False]]
    res = ops.hinge_grad(o, mask)
    assert res.shape == (n, 1)
    _check_classification_grad(rng, "hinge", o, mask, res)
    # at y o = 1 both sub-gradients (-y and 0) are covered
    assert res.lo[0, 0] <= -1.0 and res.hi[0, 0] >= 0.0
    assert res.lo[1, 0] <= 0.0 and res.hi[1, 0] >= 1.0
    assert np.all(res.lo >= -1.0) and np.all(res.hi <= 1.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_sigmoid(seed):
    rng = np.random.default_rng(seed)
    o = _logit_interval(rng, (40, 3), scale=20.0)
    o = Interval(
        np.concatenate([o.lo, [[-800.0, 0.0, 36.0]]]), np.concatenate([o.hi, [[800.0, 0.0, 40.0]]])
    )
    res = ops.sigmoid(o)
    xs = sample_inside(rng, o)
    assert_encloses(res, expit(xs), "sigmoid")
    assert np.all(res.lo >= 0) and np.all(res.hi <= 1)
    assert res.lo[-1, 1] < 0.5 < res.hi[-1, 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_bce_grad(seed):
    rng = np.random.default_rng(seed)
    n = 30
    o = _logit_interval(rng, (n, 1), scale=10.0)
    mask = _random_mask(rng, n, 2)
    res = ops.bce_grad(o, mask)
    _check_classification_grad(rng, "bce", o, mask, res)
    assert np.all(res.lo >= -1.0 - 1e-15) and np.all(res.hi <= 1.0 + 1e-15)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("C", [2, 3, 5])
def test_softmax(seed, C):
    rng = np.random.default_rng(seed)
    o = _logit_interval(rng, (25, C), scale=10.0)
    res = ops.softmax(o)
    xs = sample_inside(rng, o)
    assert_encloses(res, np_softmax(xs, axis=-1), "softmax")
    assert np.all(res.lo >= 0) and np.all(res.hi <= 1)
    # degenerate logits give tight bounds
    pt = ops.softmax(Interval.point(o.lo))
    assert np.all(pt.hi - pt.lo <= 1e-12)


def test_softmax_extreme_logits():
    o = Interval(
        np.array([[-1000.0, 0.0, 1000.0], [700.0, 700.0, -700.0]]),
        np.array([[1000.0, 0.0, 1000.0], [710.0, 710.0, -700.0]]),
    )
    res = ops.softmax(o)
    assert not np.isnan(res.lo).any() and not np.isnan(res.hi).any()
    xs = sample_inside(np.random.default_rng(0), o)
    assert_encloses(res, np_softmax(xs, axis=-1), "softmax extreme")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("C", [2, 3, 4])
def test_ce_grad(seed, C):
    rng = np.random.default_rng(seed)
    n = 20
    o = _logit_interval(rng, (n, C), scale=5.0)
    mask = _random_mask(rng, n, C)
    mask[0] = True
    mask[1] = False
    mask[1, 0] = True
    res = ops.ce_grad(o, mask)
    assert res.shape == (n, C)
    _check_classification_grad(rng, "ce", o, mask, res)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("q", [1, 3])
def test_mse_grad_regression(seed, q):
    rng = np.random.default_rng(seed)
    n = 20
    o = random_interval(rng, (n, q), max_exp=3)
    t = random_interval(rng, (n, q), max_exp=3)
    res = ops.mse_grad(o, t)
    xo, xt = sample_inside(rng, o), sample_inside(rng, t)
    g = np.stack([point_loss_grad("mse", xo[s], xt[s]) for s in range(len(xo))])
    assert_encloses(res, g, "mse_grad")
    exact = Fraction(2, q) * (_to_frac(xo) - _to_frac(xt))
    assert_encloses_exact(res, exact, "mse_grad exact")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "loss,C", [("hinge", 2), ("hinge", 3), ("hinge", 4), ("bce", 2), ("ce", 3), ("mse", 2)]
)
def test_loss_grad_classification_dispatch(seed, loss, C):
    rng = np.random.default_rng(seed)
    n = 20
    out = 1 if C == 2 else C
    o = _logit_interval(rng, (n, out), scale=2.0)
    mask = _random_mask(rng, n, C)
    res = ops.loss_grad(loss, o, LabelSet(mask=mask))
    assert res.shape == (n, out)
    _check_classification_grad(rng, loss, o, mask, res)
    # a mask with only the true label is never wider than one with every label
    full = ops.loss_grad(loss, o, LabelSet(mask=np.ones_like(mask)))
    assert np.all(full.lo <= res.lo) and np.all(full.hi >= res.hi)


@pytest.mark.parametrize("seed", SEEDS)
def test_loss_grad_regression_dispatch(seed):
    rng = np.random.default_rng(seed)
    o = random_interval(rng, (15, 2), max_exp=2)
    t = random_interval(rng, (15, 2), max_exp=2)
    res = ops.loss_grad("mse", o, LabelSet(targets=t))
    xo, xt = sample_inside(rng, o), sample_inside(rng, t)
    g = np.stack([point_loss_grad("mse", xo[s], xt[s]) for s in range(len(xo))])
    assert_encloses(res, g, "loss_grad mse regression")
    with pytest.raises(ValueError, match="unknown loss"):
        ops.loss_grad("l1", o, LabelSet(targets=t))


# ----------------------------------------------------------------------------- update


@pytest.mark.parametrize("seed", SEEDS)
def test_sgd_update_exact(seed):
    rng = np.random.default_rng(seed)
    theta = random_interval(rng, 25, max_exp=3)
    grad = random_interval(rng, 25, max_exp=3)
    for lr in (0.1, 0.05, 1.0, 1e-4, 3.7):
        res = ops.sgd_update(theta, grad, lr)
        xt, xg = _to_frac(sample_inside(rng, theta, 40)), _to_frac(sample_inside(rng, grad, 40))
        assert_encloses_exact(res, xt - Fraction(lr) * xg, f"sgd lr={lr}")
        # widths add up: width(theta') >= width(theta) + lr width(g)
        assert np.all(res.width >= theta.width + lr * grad.width * (1 - 1e-12))


# ----------------------------------------------------------------------------- network level

NET_CASES = [
    ((3, 2), "ce", "classification"),
    ((3, 2), "mse", "regression"),
    ((2, 5, 1), "hinge", "classification"),
    ((2, 5, 1), "bce", "classification"),
    ((2, 5, 1), "mse", "classification"),
    ((3, 4, 4, 2), "ce", "classification"),
    ((3, 4, 4, 2), "mse", "regression"),
    ((3, 4, 4, 1), "hinge", "classification"),
]


def _net_boxes(rng, arch, n, theta_rad, x_rad):
    theta_c = init_params(arch, seed=int(rng.integers(1000)))
    r = theta_rad * rng.random(arch.n_params) * (rng.random(arch.n_params) < 0.8)
    theta = Interval(theta_c - r, theta_c + r)
    Xc = rng.normal(size=(n, arch.n_inputs)) * 10.0 ** rng.uniform(-1, 1, (n, 1))
    xr = x_rad * rng.random((n, arch.n_inputs)) * (rng.random((n, 1)) < 0.8)
    return theta, Interval(Xc - xr, Xc + xr)


def _labels(rng, arch, loss, task, n, point=False):
    if task == "regression":
        c = rng.normal(size=(n, arch.n_outputs))
        r = 0.3 * rng.random((n, arch.n_outputs)) * (rng.random((n, 1)) < 0.7)
        return LabelSet(targets=Interval(c - r * (not point), c + r * (not point)))
    C = 2 if arch.n_outputs == 1 else arch.n_outputs
    mask = np.zeros((n, C), dtype=bool)
    mask[np.arange(n), rng.integers(0, C, n)] = True
    if not point:
        mask |= rng.random((n, C)) < 0.3
    return LabelSet(mask=mask)


def _sample_labels(rng, labels, loss, task):
    if task == "regression":
        t = labels.targets
        return encode_targets(loss, sample_inside(rng, t, 3)[rng.integers(3)], task)
    mask = labels.mask
    y = np.array([rng.choice(np.flatnonzero(row)) for row in mask])
    return encode_targets(loss, y, task)


def _hidden_layers(arch, theta, X):
    """Pre-activations and activations of every layer at a point."""
    pre, acts, a = [], [X], X
    layers = arch.unflatten(theta)
    for k, (W, b) in enumerate(layers):
        z = a @ W.T + b
        pre.append(z)
        a = np.maximum(z, 0.0) if k < len(layers) - 1 else z
        acts.append(a)
    return pre, acts


@pytest.mark.parametrize("sizes,loss,task", NET_CASES)
@pytest.mark.parametrize("clip", [None, 0.3])
def test_network_bounds_contain_trainer_at_sampled_points(sizes, loss, task, clip):
    rng = np.random.default_rng(zlib.crc32(repr((sizes, loss, task, clip)).encode()))
    arch = Architecture(sizes)
    n = 6
    for theta_rad, x_rad in ((0.0, 0.0), (0.05, 0.1), (0.3, 0.5)):
        theta, X = _net_boxes(rng, arch, n, theta_rad, x_rad)
        point = theta_rad == 0.0 and x_rad == 0.0
        labels = _labels(rng, arch, loss, task, n, point=point)
        fwd = network.forward(arch, theta, X)
        assert len(fwd.pre) == arch.n_layers and len(fwd.acts) == arch.n_layers + 1
        g_out = ops.loss_grad(loss, fwd.output, labels)
        per = network.per_sample_gradients(arch, theta, fwd, g_out)
        per_c = network.sample_gradients(arch, theta, X, labels, loss, clip)
        batch = network.batch_gradient(arch, theta, X, labels, loss, clip)
        assert per.shape == (n, arch.n_params) and batch.shape == (arch.n_params,)
        thetas = sample_inside(rng, theta, 60)
        Xs = sample_inside(rng, X, 60)
        for s in range(len(thetas)):
            th, x = thetas[s], Xs[s]
            t = _sample_labels(rng, labels, loss, task)
            pre, acts = _hidden_layers(arch, th, x)
            out = point_forward(arch, th, x)
            assert_encloses(fwd.output, out, "forward output")
            for k in range(arch.n_layers):
                assert_encloses(fwd.pre[k], pre[k], f"pre-activation {k}")
                assert_encloses(fwd.acts[k + 1], acts[k + 1], f"activation {k + 1}")
            ps, _ = trainer.per_sample_gradients(arch, th, x, t, loss)
            assert_encloses(per, ps, "per-sample gradient")
            if clip is not None:
                assert_encloses(per_c, np.clip(ps, -clip, clip), "clipped per-sample gradient")
            bg, _ = trainer.batch_gradient(arch, th, x, t, loss, clip)
            assert_encloses(batch, bg, f"batch gradient (clip={clip})")
        if point:
            # a point box with one label per sample gives a (nearly) point gradient
            assert np.all(batch.width <= 1e-12 * (1 + np.abs(batch.lo)))


def test_network_forward_point_box_is_tight():
    rng = np.random.default_rng(3)
    arch = Architecture((3, 4, 4, 2))
    theta = init_params(arch, 1)
    X = rng.normal(size=(10, 3))
    fwd = network.forward(arch, Interval.point(theta), Interval.point(X))
    out = point_forward(arch, theta, X)
    assert_encloses(fwd.output, out[None], "point forward")
    assert np.all(fwd.output.width <= 1e-13 * (1 + np.abs(out)))


def test_fast_outward_steps_are_never_tighter_than_nextafter():
    """``up``/``down`` (the outward rounding of every interval end) move at least one ulp, as
    ``numpy.nextafter`` does, and at most a few, on random, binade-edge, huge, tiny, subnormal
    and zero values of both signs."""
    from mibpcert.domains.interval import down, round_out, up

    rng = np.random.default_rng(0)
    powers = np.ldexp(1.0, np.arange(-1074, 1024))
    edges = np.concatenate([powers, np.nextafter(powers, 0), np.nextafter(powers, np.inf)])
    x = np.concatenate([
        rng.normal(size=20000) * 10.0 ** rng.integers(-300, 300, 20000), edges, [0.0, 5e-324],
        [np.finfo(float).tiny, np.finfo(float).max / 2], rng.uniform(-1, 1, 1000) * 1e-310,
    ])  # fmt: skip
    x = np.concatenate([x, -x])
    x = x[np.isfinite(x)]
    assert np.all(up(x) >= np.nextafter(x, np.inf)) and np.all(up(x) > x)
    assert np.all(down(x) <= np.nextafter(x, -np.inf)) and np.all(down(x) < x)
    big = np.abs(x) > 1e-290
    assert np.all(up(x[big]) <= x[big] + 5 * np.spacing(np.abs(x[big])))  # a few ulps only
    r = round_out(np.array([np.inf, -np.inf, np.nan]), np.array([np.inf, -np.inf, np.nan]))
    assert r.lo.tolist() == [np.finfo(float).max, -np.inf, -np.inf]
    assert r.hi.tolist() == [np.inf, -np.finfo(float).max, np.inf]
