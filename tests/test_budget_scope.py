"""Per-batch poisoning budgets (``budget_scope = "batch"``, the AGT library's threat model):
validation, the per-step attack sampler, sound bounds of interval, agt and mibp against attacks
that poison every step afresh, eps = 0 collapse, refusals and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mibpcert.cli import main
from mibpcert.data import load_dataset
from mibpcert.errors import ThreatModelError, UnsupportedError
from mibpcert.methods import get_method
from mibpcert.model import Architecture, TrainingRecipe, init_params
from mibpcert.problem import Problem
from mibpcert.threat import ThreatModel

MIBP = dict(solver="highs", relax="milp", executor="inprocess", workers=1)


def _problem(threat: ThreatModel, batch_size=6, epochs=3) -> Problem:
    data = load_dataset("moons", n_train=16, n_test=20, seed=2)
    a = Architecture.parse("2-5-1")
    rec = TrainingRecipe(loss="hinge", lr=0.3, epochs=epochs, batch_size=batch_size)
    return Problem(data, a, rec, threat, init_params(a, 0))


def test_unknown_budget_scope_is_a_clear_error():
    with pytest.raises(ThreatModelError, match="unknown budget_scope 'epoch'"):
        _problem(ThreatModel(eps=0.1, budget_scope="epoch"))


def test_per_batch_sampler_poisons_every_step_within_its_budget():
    p = _problem(ThreatModel(eps=0.1, k=2, label_k=1, budget_scope="batch"))
    X0, y0 = p.data.X_train, p.data.y_train
    rng = np.random.default_rng(0)
    distinct = set()
    for _ in range(20):
        schedule = p.sample_attack(rng)
        assert len(schedule) == p.n_steps
        for (X, y), idx in zip(schedule, p.batches(), strict=True):
            moved = np.flatnonzero(np.any(X != X0, axis=1))
            flipped = np.flatnonzero(y != y0)
            assert set(moved) <= set(idx) and len(moved) <= 2
            assert set(flipped) <= set(idx) and len(flipped) <= 1
            assert np.all(np.abs(X - X0) <= 0.1 + 1e-12)
            distinct |= set(moved.tolist())
    # across steps the attack moves more than k = 2 distinct points: stronger than global
    assert len(distinct) > 2
    g = _problem(ThreatModel(eps=0.1, k=2))
    schedule = g.sample_attack(rng)
    assert all(s is schedule[0] for s in schedule)  # global: one poisoned set for every step


@pytest.mark.parametrize("batch_size", [None, 6])
@pytest.mark.parametrize(
    "method,opts,threat",
    [
        ("interval", {}, ThreatModel(eps=0.1, budget_scope="batch")),
        ("agt", {}, ThreatModel(eps=0.1, k=2, label_k=1, budget_scope="batch")),
        ("agt", {}, ThreatModel(eps=0.1, k=1, paired=True, label_k=1, budget_scope="batch")),
        ("mibp", MIBP, ThreatModel(eps=0.1, k=2, budget_scope="batch")),
    ],
    ids=["interval", "agt-k-labels", "agt-paired", "mibp-milp-k"],
)
def test_attacks_poisoning_every_step_stay_inside_the_bounds(method, opts, threat, batch_size):
    p = _problem(threat, batch_size=batch_size)
    b = get_method(method, **opts).bound(p)
    rng = np.random.default_rng(1)
    for s in range(40):
        thetas = p.train_schedule(p.sample_attack(rng, 0.8 if s % 2 else 0.3)).thetas
        assert b.contains(thetas).all(), "a per-batch attack left the boxes"


def test_eps_zero_collapses_with_per_batch_budgets():
    p = _problem(ThreatModel(eps=0.0, k=0, budget_scope="batch"))
    for method, opts in (("interval", {}), ("agt", {}), ("mibp", MIBP)):
        b = get_method(method, **opts).bound(p)
        assert b.contains(p.train_nominal().thetas).all()
        assert float(b.widths().max()) < 1e-9


def test_methods_tied_to_one_attack_refuse_per_batch_budgets():
    p = _problem(ThreatModel(eps=0.1, k=2, budget_scope="batch"))
    with pytest.raises(UnsupportedError, match="cannot bound --budget-scope batch"):
        get_method("exact", solver="highs").check(p)
    for method in ("interval", "agt"):
        with pytest.raises(UnsupportedError, match="cannot bound --budget-scope batch"):
            get_method(method, sets="affine").bound(p)


def test_budget_scope_from_the_cli_is_reported(tmp_path):
    rc = main([
        "certify", "--dataset", "moons", "--n-train", "20", "--n-test", "10", "--model", "2-4-1",
        "--epochs", "2", "--batch-size", "5", "--eps", "0.01", "--k", "2", "--budget-scope",
        "batch", "--method", "agt", "--out", str(tmp_path), "--no-progress", "--quiet",
    ])  # fmt: skip
    assert rc == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["soundness"]["budget_scope"] == "batch"
    assert rep["problem"]["threat"]["budget_scope"] == "batch"
