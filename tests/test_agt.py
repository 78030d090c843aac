"""Method ``agt``: k = 0 collapse, sampling soundness, nesting inside ``interval``, top-k."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mibpcert.data import load_dataset
from mibpcert.domains.interval import Interval
from mibpcert.methods import get_method
from mibpcert.methods.agt import poisoned_budget, topk_sum_bound
from mibpcert.model import Architecture, TrainingRecipe, init_params
from mibpcert.model.losses import predict_classes
from mibpcert.model.network import forward
from mibpcert.pipeline import certify_problem
from mibpcert.problem import Problem
from mibpcert.threat import DiscreteFeature, ThreatModel


def _moons(n_train=30, n_test=40, seed=0):
    return load_dataset("moons", n_train=n_train, n_test=n_test, seed=seed)


def _problem(
    threat, arch="2-6-1", loss="hinge", batch_size=None, epochs=4, lr=0.1, clip=None, data=None
):
    data = data or _moons()
    a = Architecture.parse(arch)
    rec = TrainingRecipe(loss=loss, lr=lr, epochs=epochs, batch_size=batch_size, clip=clip)
    return Problem(data, a, rec, threat, init_params(a, 1))


@pytest.mark.parametrize("batch_size", [None, 8])
@pytest.mark.parametrize("threat", [ThreatModel(), ThreatModel(eps=0.1, k=0)])
def test_k0_collapses_onto_ordinary_training(threat, batch_size):
    p = _problem(threat, batch_size=batch_size, arch="2-8-8-1", loss="bce")
    res = certify_problem(p, "agt")
    nominal = p.train_nominal().thetas
    assert res.bounds.contains(nominal).all()
    scale = np.maximum(1.0, np.abs(nominal))
    assert np.max(res.bounds.widths() / scale) < 1e-12
    m = res.metrics
    assert m["certified_accuracy"] == m["nominal_accuracy"]


SOUNDNESS_CASES = [
    dict(threat=ThreatModel(eps=0.05, k=3)),
    dict(threat=ThreatModel(eps=0.05, k=3), batch_size=8),
    dict(threat=ThreatModel(label_k=2)),
    dict(threat=ThreatModel(eps=0.05, k=2, label_k=2, paired=True), batch_size=10),
    dict(threat=ThreatModel(eps=0.05, k=2, label_k=1), loss="ce", arch="2-6-2"),
    dict(threat=ThreatModel(eps=np.inf, k=2), clip=0.5),
    dict(threat=ThreatModel(eps=0.05, points=(0, 1, 2, 3, 4, 5), k=2, test_eps=0.01)),
    dict(
        threat=ThreatModel(eps=0.05, k=2, discrete=(DiscreteFeature(1, (0.0,)),)),
        arch="2-4-4-1",
        loss="bce",
    ),
]


@pytest.mark.parametrize("case", SOUNDNESS_CASES, ids=[f"case{i}" for i in range(8)])
def test_sampling_soundness(case):
    rng = np.random.default_rng(7)
    p = _problem(**case)
    res = certify_problem(p, "agt")
    cert = res.test.certified_class
    data = p.data
    X_lo, X_hi = p.threat.test_box(data.X_test)
    assert res.nominal_inside
    for _ in range(40):
        X, y = p.threat.sample(
            data.X_train, data.y_train, rng, n_classes=data.n_classes, vertex_prob=0.7
        )
        traj = p.train_poisoned(X, y)
        inside = res.bounds.contains(traj.thetas)
        assert inside.all(), f"left the box at step {int(np.argmin(inside))}"
        X_test = rng.uniform(X_lo, X_hi)
        pred = predict_classes(forward(p.arch, traj.final, X_test))
        ok = cert >= 0
        assert np.array_equal(pred[ok], cert[ok])


def test_k_equals_n_matches_interval_and_smaller_k_nests_inside():
    full = ThreatModel(eps=0.05)
    p = _problem(full, epochs=5)
    agt = get_method("agt").bound(p)
    itv = get_method("interval").bound(p)
    np.testing.assert_array_equal(agt.lower, itv.lower)
    np.testing.assert_array_equal(agt.upper, itv.upper)
    for k in (1, 5, 29):
        pk = _problem(ThreatModel(eps=0.05, k=k), epochs=5)
        agt_k = get_method("agt").bound(pk)
        assert np.all(agt_k.lower >= itv.lower) and np.all(agt_k.upper <= itv.upper)
        assert np.all(agt_k.lower >= agt.lower) and np.all(agt_k.upper <= agt.upper)
    # strictly tighter somewhere for small k
    assert np.any(
        get_method("agt").bound(_problem(ThreatModel(eps=0.05, k=1))).widths()[-1]
        < itv.widths()[-1]
    )


def test_topk_bound_is_exact_max_over_subsets():
    rng = np.random.default_rng(3)
    n, m = 6, 5
    for _ in range(20):
        c_lo = rng.normal(size=(n, m))
        c_hi = c_lo + rng.uniform(0, 1, size=(n, m))
        p_lo = c_lo - rng.uniform(0, 2, size=(n, m))
        p_hi = c_hi + rng.uniform(0, 2, size=(n, m))
        clean, poisoned = Interval(c_lo, c_hi), Interval(p_lo, p_hi)
        for k in range(0, n + 1):
            b = topk_sum_bound(clean, poisoned, k)
            best_hi = np.full(m, -np.inf)
            best_lo = np.full(m, np.inf)
            for r in range(k + 1):
                for S in itertools.combinations(range(n), r):
                    sel = np.zeros(n, dtype=bool)
                    sel[list(S)] = True
                    best_hi = np.maximum(best_hi, np.where(sel[:, None], p_hi, c_hi).sum(0))
                    best_lo = np.minimum(best_lo, np.where(sel[:, None], p_lo, c_lo).sum(0))
            assert np.all(b.hi >= best_hi) and np.all(b.lo <= best_lo)
            np.testing.assert_allclose(b.hi, best_hi, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(b.lo, best_lo, rtol=1e-12, atol=1e-12)


def test_topk_bound_encloses_the_exact_sum_with_inexact_differences():
    """Differences ``h - g`` that floats cannot hold exactly (magnitudes 1e-8 .. 1e8): the bound
    still contains the exact (rational) worst case over every subset of at most k points."""
    from fractions import Fraction

    rng = np.random.default_rng(7)
    n, m = 5, 4
    for _ in range(10):
        c_lo = rng.normal(size=(n, m)) * 10.0 ** rng.uniform(-8, 8, (n, m))
        c_hi = c_lo + np.abs(c_lo) * rng.uniform(0, 1e-3, (n, m))
        p_lo = c_lo - np.abs(rng.normal(size=(n, m))) * 10.0 ** rng.uniform(-8, 8, (n, m))
        p_hi = c_hi + np.abs(rng.normal(size=(n, m))) * 10.0 ** rng.uniform(-8, 8, (n, m))
        clean, poisoned = Interval(c_lo, c_hi), Interval(p_lo, p_hi)
        fr = np.frompyfunc(Fraction, 1, 1)
        for k in range(1, n):
            b = topk_sum_bound(clean, poisoned, k)
            for S in itertools.combinations(range(n), k):
                sel = np.zeros(n, dtype=bool)
                sel[list(S)] = True
                hi = fr(np.where(sel[:, None], p_hi, c_hi)).sum(axis=0)
                lo = fr(np.where(sel[:, None], p_lo, c_lo)).sum(axis=0)
                for j in range(m):
                    assert Fraction(b.hi[j]) >= hi[j] and Fraction(b.lo[j]) <= lo[j]


def test_poisoned_budget_counts():
    data = _moons(n_train=20)
    idx = np.arange(10)
    cases = [
        (ThreatModel(eps=0.1, k=3), 3),
        (ThreatModel(eps=0.1, k=3, label_k=2), 5),
        (ThreatModel(eps=0.1, k=3, label_k=2, paired=True), 3),
        (ThreatModel(eps=0.1, points=(0, 15, 16)), 1),
        (ThreatModel(eps=0.1), 10),
        (ThreatModel(label_k=50 // 5), 10),
        (ThreatModel(), 0),
    ]
    for threat, expected in cases:
        p = _problem(threat, data=data)
        assert poisoned_budget(p, idx) == expected, threat


def test_initial_parameters_from_npz_are_used_exactly(tmp_path):
    a = Architecture.parse("2-5-1")
    theta = np.random.default_rng(0).normal(size=a.n_params)
    np.savez(tmp_path / "init.npz", theta=theta)
    from mibpcert import Config, run

    cfg = Config()
    cfg.model.arch = "2-5-1"
    cfg.model.init_file = str(tmp_path / "init.npz")
    cfg.method.name = "agt"
    cfg.threat.k = 5
    res = run(cfg)
    assert np.array_equal(res.bounds.lower[0], theta)
    assert np.array_equal(res.bounds.upper[0], theta)
    assert np.array_equal(res.nominal.thetas[0], theta)
