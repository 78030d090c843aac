"""Linearised one-replay attacks: inside the threat model, never beyond a certificate, and exact
where the training step is linear in the poisoned features."""

from __future__ import annotations

import numpy as np
import pytest

from mibpcert.attacks import attack_targets, linearized_attack, threat_violations
from mibpcert.attacks.linearized import feature_sensitivities
from mibpcert.data import load_dataset
from mibpcert.errors import UnsupportedError
from mibpcert.methods import get_method
from mibpcert.model import Architecture, TrainingRecipe, init_params
from mibpcert.problem import Problem
from mibpcert.threat import ThreatModel


def _problem(threat, epochs=1, n=8, seed=0):
    data = load_dataset("moons", n_train=n, n_test=20, seed=seed)
    a = Architecture.parse("2-3-1")
    rec = TrainingRecipe(loss="hinge", lr=0.5, epochs=epochs)
    return Problem(data, a, rec, threat, init_params(a, seed))


def _thetas(tr):
    return tr.final


@pytest.mark.parametrize(
    "threat",
    [ThreatModel(eps=0.1), ThreatModel(eps=0.1, points=(1, 3, 4)), ThreatModel(eps=0.1, k=2)],
    ids=["all", "subset", "k-of-n"],
)
def test_attacks_stay_inside_the_threat_model(threat):
    p = _problem(threat)
    _, S = feature_sensitivities(p, _thetas)
    X0 = p.data.X_train
    for q in range(S.shape[0]):
        for sense in ("min", "max"):
            X = linearized_attack(p, S[q], sense)
            assert threat_violations(p, X, p.data.y_train, tol=1e-12) == []
            changed = np.flatnonzero(np.any(X != X0, axis=1))
            if threat.k is not None:
                assert len(changed) <= threat.k
            if threat.points is not None:
                assert set(changed) <= set(threat.points)


def test_one_step_attacks_reach_the_exact_step_bound():
    """One full-batch step from a fixed init: the update is piecewise linear in the features, so
    the sign attack reaches the exact MIBP bound wherever no hinge/ReLU switches inside the box;
    and it never passes the bound (the bound is sound)."""
    p = _problem(ThreatModel(eps=0.02), epochs=1)
    bounds = get_method("mibp", workers=1, relax="exact", solver="scip").bound(p)
    clean, hi = attack_targets(p, _thetas, "max")
    _, lo = attack_targets(p, _thetas, "min")
    tol = 1e-6
    assert np.all(hi <= bounds.upper[-1] + tol) and np.all(lo >= bounds.lower[-1] - tol)
    assert np.all(lo <= clean) and np.all(clean <= hi)
    reached = (np.abs(hi - bounds.upper[-1]) <= tol) & (np.abs(lo - bounds.lower[-1]) <= tol)
    moved = bounds.upper[-1] - bounds.lower[-1] > 1e-4
    assert moved.sum() >= 8
    assert np.mean(reached[moved]) >= 0.9


def test_attacks_reproduce_by_replay_and_eps0_moves_nothing():
    p = _problem(ThreatModel(eps=0.05), epochs=3)
    _, S = feature_sensitivities(p, _thetas)
    X = linearized_attack(p, S[0], "max")
    clean, reached = attack_targets(p, _thetas, "max")
    replayed = p.train_poisoned(X, p.data.y_train).final[0]
    assert reached[0] == max(replayed, clean[0])
    p0 = _problem(ThreatModel(eps=0.0), epochs=3)
    f0, S0 = feature_sensitivities(p0, _thetas)
    assert not S0.any()
    assert np.array_equal(attack_targets(p0, _thetas, "max")[1], f0)


def test_unsupported_threats_and_bad_arguments():
    with pytest.raises(UnsupportedError, match="continuous feature threats"):
        feature_sensitivities(_problem(ThreatModel(label_k=1)), _thetas)
    p = _problem(ThreatModel(eps=0.1))
    with pytest.raises(ValueError, match="sense"):
        linearized_attack(p, np.zeros_like(p.data.X_train), "up")
    with pytest.raises(ValueError, match="shape"):
        linearized_attack(p, np.zeros(3), "max")
    with pytest.raises(ValueError, match="senses"):
        attack_targets(p, _thetas, ["max"])
