"""Weight decay (L2) and L1 regularisation: the trainer, and sound bounds of interval, agt, mibp
(boxes and affine sets) and exact; eps = 0 collapse and sampled attacks, full and mini-batch."""

from __future__ import annotations

import numpy as np
import pytest

from mibpcert import Config
from mibpcert.data import load_dataset
from mibpcert.domains.interval import Interval
from mibpcert.errors import ModelError, UnsupportedError
from mibpcert.methods import get_method
from mibpcert.model import Architecture, TrainingRecipe, init_params
from mibpcert.ops import sgd
from mibpcert.pipeline import build_problem, certify_problem
from mibpcert.problem import Problem
from mibpcert.threat import ThreatModel

REG = dict(weight_decay=0.3, l1=0.02)


def _problem(
    threat: ThreatModel, arch="2-5-1", epochs=3, batch_size=None, zeros=True, **reg
) -> Problem:
    data = load_dataset("moons", n_train=16, n_test=20, seed=2)
    a = Architecture.parse(arch)
    rec = TrainingRecipe(loss="hinge", lr=0.4, epochs=epochs, batch_size=batch_size, **reg)
    theta0 = init_params(a, 0)
    if zeros:  # parameters at exactly 0: the L1 subgradient sign(0) = 0 matters
        theta0[::4] = 0.0
    return Problem(data, a, rec, threat, theta0)


def test_update_matches_its_definition_and_is_plain_sgd_without_regularisation():
    rng = np.random.default_rng(0)
    theta, g = rng.normal(size=50), rng.normal(size=50)
    theta[:5] = 0.0
    assert np.array_equal(sgd.update(theta, g, 0.1), theta - 0.1 * g)
    assert np.array_equal(sgd.update(theta, g, 0.1, 0.0, 0.0), theta - 0.1 * g)
    want = (1 - 0.1 * 0.3) * theta - 0.1 * g - 0.1 * 0.02 * np.sign(theta)
    np.testing.assert_allclose(sgd.update(theta, g, 0.1, 0.3, 0.02), want, rtol=0, atol=1e-15)
    # the interval version contains the trainer's float result for every point of a box
    box = Interval(theta - 0.01, theta + 0.01)
    gb = Interval(g - 0.02, g + 0.02)
    out = sgd.interval(box, gb, 0.1, 0.3, 0.02)
    for _ in range(200):
        t = rng.uniform(box.lo, box.hi)
        t[:5] = 0.0
        gg = rng.uniform(gb.lo, gb.hi)
        v = sgd.update(t, gg, 0.1, 0.3, 0.02)
        assert np.all((out.lo <= v) & (v <= out.hi))


def test_bad_regularisation_is_a_clear_error():
    for kw in (dict(weight_decay=-1.0), dict(l1=float("nan")), dict(l1=-0.1)):
        with pytest.raises(ModelError, match="must be a finite number >= 0"):
            TrainingRecipe(**kw)


@pytest.mark.parametrize(
    "method,opts",
    [
        ("interval", {}),
        ("agt", {}),
        ("interval", {"sets": "affine"}),
        ("mibp", {"solver": "highs", "relax": "lp", "executor": "inprocess"}),
    ],
    ids=["interval", "agt", "interval-affine", "mibp-lp"],
)
def test_eps_zero_collapses_onto_regularised_training(method, opts):
    """(Away from exact zeros: a box that straddles 0, even by rounding, takes both signs of
    the L1 subgradient; docs/methods.md states it.)"""
    p = _problem(ThreatModel(eps=0.0), zeros=False, **REG)
    b = get_method(method, **opts).bound(p)
    nominal = p.train_nominal().thetas
    assert b.contains(nominal).all()
    assert float(b.widths().max()) < 1e-6


def _sampled_inside(p: Problem, bounds, n: int = 40, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    traj = bounds.affine
    for s in range(n):
        X, y = p.threat.sample(
            p.data.X_train, p.data.y_train, rng, p.data.task, p.data.n_classes,
            vertex_prob=0.8 if s % 2 else 0.3,
        )  # fmt: skip
        thetas = p.train_poisoned(X, y).thetas
        assert bounds.contains(thetas).all(), "an attack left the boxes"
        if traj is not None:
            assert float(traj.residuals(thetas, traj.symbols.coordinates(X))[1:].max()) <= 0


@pytest.mark.parametrize("batch_size", [None, 6])
@pytest.mark.parametrize(
    "method,opts,threat",
    [
        ("interval", {}, ThreatModel(eps=0.1)),
        ("agt", {}, ThreatModel(eps=0.1, k=3, label_k=1)),
        ("interval", {"sets": "affine"}, ThreatModel(eps=0.1)),
        ("agt", {"sets": "affine"}, ThreatModel(eps=0.1, k=3)),
        ("mibp", {"solver": "highs", "relax": "milp", "executor": "inprocess"},
         ThreatModel(eps=0.1, k=3)),
        ("mibp", {"solver": "highs", "relax": "milp", "executor": "inprocess", "sets": "affine"},
         ThreatModel(eps=0.1)),
    ],
    ids=["interval", "agt-k", "interval-affine", "agt-affine-k", "mibp-milp-k", "mibp-affine"],
)  # fmt: skip
def test_sampled_attacks_stay_inside_regularised_bounds(method, opts, threat, batch_size):
    p = _problem(threat, batch_size=batch_size, **REG)
    b = get_method(method, **opts).bound(p)
    _sampled_inside(p, b)


def test_regularisation_changes_the_bounds_it_claims_to_bound():
    """The bounds follow the regularised trainer, not the plain one: without regularisation in
    the method the regularised trajectory leaves the boxes (so the tests above can fail)."""
    reg = _problem(ThreatModel(eps=0.01), **REG)
    plain = _problem(ThreatModel(eps=0.01))
    b_plain = get_method("interval").bound(plain)
    assert not b_plain.contains(reg.train_nominal().thetas).all()
    b_reg = get_method("interval").bound(reg)
    assert b_reg.contains(reg.train_nominal().thetas).all()


def test_mibp_l1_is_never_looser_than_interval_and_sound():
    p = _problem(ThreatModel(eps=0.1), **REG)
    m = get_method("mibp", solver="highs", relax="milp", executor="inprocess").bound(p)
    i = get_method("interval").bound(p)
    assert np.all(m.lower >= i.lower - 1e-12) and np.all(m.upper <= i.upper + 1e-12)
    assert float(m.widths()[-1].sum()) < float(i.widths()[-1].sum())
    _sampled_inside(p, m)


def test_exact_takes_weight_decay_and_refuses_l1():
    pytest.importorskip("pyscipopt")
    cfg = Config()
    cfg.data.n_train, cfg.data.n_test = 10, 20
    cfg.model.arch, cfg.training.epochs, cfg.threat.eps, cfg.threat.k = "2-1", 2, 0.1, 1
    cfg.training.weight_decay = 0.2
    p = build_problem(cfg)
    r = certify_problem(p, "exact", options=dict(objective="misclassified", time_limit=10.0))
    assert r.section["outcome"] == "closed"
    assert r.section["replayed"] == pytest.approx(r.section["solver_primal"], abs=1e-6)
    cfg.training.l1 = 0.01
    with pytest.raises(UnsupportedError, match="L1"):
        certify_problem(build_problem(cfg), "exact", options=dict(objective="misclassified"))


# ----------------------------------------------------------------------------- norm clipping


def test_norm_clipping_of_the_trainer_and_its_interval_version():
    from mibpcert.ops import clip as ops_clip

    arch = Architecture.parse("3-4-2")
    rng = np.random.default_rng(3)
    for scope in ("layer", "global"):
        spec = TrainingRecipe(clip_norm=0.7, clip_scope=scope).clipping(arch)
        g = rng.normal(size=(6, arch.n_params)) * rng.choice([0.05, 3.0], size=(6, 1))
        h = ops_clip.forward(g, spec)
        for a, b in spec.groups:
            n_before = np.linalg.norm(g[:, a:b], axis=1)
            n_after = np.linalg.norm(h[:, a:b], axis=1)
            assert np.all(n_after <= 0.7 * (1 + 1e-12))
            small = n_before <= 0.7
            assert np.array_equal(h[small, a:b], g[small, a:b])
        box = Interval(g - rng.uniform(0, 0.3, g.shape), g + rng.uniform(0, 0.3, g.shape))
        out = ops_clip.interval(box, spec)
        for _ in range(200):
            x = rng.uniform(box.lo, box.hi)
            ends = rng.random(x.shape) < 0.3  # box corners too
            x[ends] = np.where(rng.random(x.shape) < 0.5, box.lo, box.hi)[ends]
            y = ops_clip.forward(x, spec)
            assert np.all((out.lo <= y) & (y <= out.hi))
    assert len(TrainingRecipe(clip_norm=1.0).clipping(arch).groups) == 4  # W1, b1, W2, b2
    with pytest.raises(ModelError, match="clip_scope"):
        TrainingRecipe(clip_norm=1.0, clip_scope="tensor")
    with pytest.raises(ModelError, match="clip_norm"):
        TrainingRecipe(clip_norm=0.0)


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("batch_size", [None, 6])
@pytest.mark.parametrize(
    "method,opts,threat",
    [
        ("interval", {}, ThreatModel(eps=0.2)),
        ("agt", {}, ThreatModel(eps=0.2, k=3, label_k=1)),
        ("interval", {"sets": "affine"}, ThreatModel(eps=0.2)),
    ],
    ids=["interval", "agt-k", "interval-affine"],
)
def test_sampled_attacks_stay_inside_norm_clipped_bounds(method, opts, threat, batch_size, scope):
    p = _problem(threat, batch_size=batch_size, clip_norm=0.3, clip_scope=scope, **REG)
    b = get_method(method, **opts).bound(p)
    _sampled_inside(p, b)
    z = _problem(ThreatModel(eps=0.0), zeros=False, clip_norm=0.3, clip_scope=scope)
    bz = get_method(method, **opts).bound(z)
    assert bz.contains(z.train_nominal().thetas).all() and float(bz.widths().max()) < 1e-6


def test_norm_clipping_bounds_the_unbounded_attacker():
    """eps = inf on k points: without clipping agt's boxes are infinite; with the norm clipped
    every step moves a parameter by at most lr * C (plus decay), so the boxes are finite."""
    p = _problem(ThreatModel(eps=float("inf"), k=2), clip_norm=0.5, clip_scope="global")
    b = get_method("agt").bound(p)
    assert np.all(np.isfinite(b.lower)) and np.all(np.isfinite(b.upper))
    assert float(b.widths()[1].max()) <= 2 * 0.4 * 0.5 * (1 + 1e-9)
    _sampled_inside(p, b, n=20)


def test_mibp_refuses_norm_clipping():
    p = _problem(ThreatModel(eps=0.1), clip_norm=0.5)
    with pytest.raises(UnsupportedError, match="clipping"):
        get_method("mibp", solver="highs", relax="lp").bound(p)
