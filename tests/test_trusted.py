"""Trusted data (``[threat] n_trusted``): a seeded subset of the training set the attacker cannot
touch, trained on with the untrusted points by every method."""

from __future__ import annotations

import numpy as np
import pytest

from mibpcert import Config
from mibpcert.errors import ConfigError
from mibpcert.methods import get_method
from mibpcert.pipeline import build_problem, certify_problem, trusted_points


def _cfg(n_trusted: int, **threat) -> Config:
    cfg = Config()
    cfg.data.n_train, cfg.data.n_test = 16, 20
    cfg.model.arch, cfg.training.epochs = "2-4-1", 3
    cfg.threat.eps, cfg.threat.n_trusted = 0.1, n_trusted
    for k, v in threat.items():
        setattr(cfg.threat, k, v)
    return cfg


def test_trusted_points_are_outside_the_scope_and_seeded():
    cfg = _cfg(6)
    p = build_problem(cfg)
    trusted = trusted_points(cfg, 16)
    assert len(trusted) == 6 and len(set(trusted.tolist())) == 6
    assert np.array_equal(trusted, trusted_points(cfg, 16))  # the same every time
    scope = set(p.threat.scope(16).tolist())
    assert scope.isdisjoint(trusted.tolist()) and len(scope) == 10
    rng = np.random.default_rng(0)
    for _ in range(20):  # sampled attacks never move a trusted point
        X, y = p.threat.sample(p.data.X_train, p.data.y_train, rng, vertex_prob=0.9)
        assert np.array_equal(X[trusted], p.data.X_train[trusted])


@pytest.mark.parametrize(
    "method,opts,threat",
    [
        ("interval", {}, {}),
        ("agt", {}, {"k": 3}),
        ("interval", {"sets": "affine"}, {}),
        ("mibp", {"solver": "highs", "relax": "milp", "executor": "inprocess"}, {"k": 2}),
    ],
    ids=["interval", "agt-k", "interval-affine", "mibp-milp-k"],
)
def test_trusted_bounds_are_sound_and_tighter(method, opts, threat):
    p = build_problem(_cfg(8, **threat))
    b = get_method(method, **opts).bound(p)
    rng = np.random.default_rng(1)
    for _ in range(30):
        X, y = p.threat.sample(p.data.X_train, p.data.y_train, rng, vertex_prob=0.7)
        assert b.contains(p.train_poisoned(X, y).thetas).all()
    full = get_method(method, **opts).bound(build_problem(_cfg(0, **threat)))
    assert float(b.widths()[-1].sum()) < float(full.widths()[-1].sum())


def test_eps_zero_with_trusted_collapses():
    p = build_problem(_cfg(5, eps=0.0))
    b = get_method("agt").bound(p)
    assert b.contains(p.train_nominal().thetas).all() and float(b.widths().max()) < 1e-9


def test_trusted_errors():
    with pytest.raises(ConfigError, match="n_trusted must be an integer in 0..15"):
        build_problem(_cfg(16))
    with pytest.raises(ConfigError, match="--paired"):
        build_problem(_cfg(4, label_k=1))
    p = build_problem(_cfg(4, k=2, label_k=1, paired=True))  # paired label changes: fine
    assert len(p.threat.scope(16)) == 12


def test_exact_with_trusted_points():
    pytest.importorskip("pyscipopt")
    cfg = _cfg(10, k=1)
    cfg.model.arch, cfg.training.epochs = "2-1", 2
    r = certify_problem(build_problem(cfg), "exact", options=dict(objective="misclassified"))
    assert r.section["outcome"] == "closed"
    trusted = set(trusted_points(cfg, 16).tolist())
    assert "best" in r.section["attacks"]
    for name, attack in r.section["attacks"].items():  # best, heuristic, solver (if any)...
        assert set(attack["features_changed"]).isdisjoint(trusted), name
    # k = 1: one program per poisoned point, and never one for a trusted point
    pieces = {row["point"] for row in r.section["split"]["per_point"]}
    assert pieces == set(range(16)) - trusted
