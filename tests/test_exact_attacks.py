"""Method ``exact``'s attacks: interior optima, incumbents that replay, attacks inside the
threat model to the last bit, and the form ``auto`` picks by program size."""

from __future__ import annotations

import numpy as np
import pytest

from mibpcert import Config
from mibpcert.attacks import (
    Attack,
    TestObjective,
    coordinate_search,
    gradient_attack,
    project_attack,
    repair_attack,
    threat_violations,
)
from mibpcert.data.datasets import Dataset
from mibpcert.encode import forms
from mibpcert.model import Architecture, TrainingRecipe
from mibpcert.pipeline import build_problem, certify_problem
from mibpcert.problem import Problem
from mibpcert.threat import ThreatModel


def _toy(k=None) -> Problem:
    """1-feature linear regression, 2 points moving by 0.5, 3 full-batch steps: the worst test
    MSE is interior (found by brute force below)."""
    ds = Dataset(
        "toy",
        np.array([[-0.6115], [0.2869]]),
        np.array([0.4222, 1.4788]),
        np.array([[-0.5054], [1.7431], [0.1762]]),
        np.array([-0.194, -0.6725, 0.5863]),
        "regression",
    )
    arch = Architecture.parse("1-1")
    rec = TrainingRecipe(loss="mse", lr=0.4184, epochs=3)
    return Problem(ds, arch, rec, ThreatModel(eps=0.5, k=k), np.array([0.3, -0.2]))


def _brute_force(p: Problem, n: int = 201) -> tuple[float, tuple[float, float]]:
    obj = TestObjective("mse")
    grid = np.linspace(-0.5, 0.5, n)
    best, arg = -np.inf, None
    for a in grid:
        for b in grid:
            X = p.data.X_train + np.array([[a], [b]])
            v = obj.value(p, p.train_poisoned(X, p.data.y_train).final)
            if v > best:
                best, arg = v, (a, b)
    return best, arg


def test_gradient_attack_reaches_the_brute_forced_interior_optimum():
    p = _toy()
    obj = TestObjective("mse")
    best, arg = _brute_force(p)
    assert all(abs(abs(c) - 0.5) > 1e-6 for c in arg), "the optimum must be interior"
    corner = coordinate_search(p, obj, 1.0, seed=0)
    assert corner.value < best - 0.05, "box corners miss the interior optimum"
    g = gradient_attack(p, obj, [corner], time_budget=3.0, seed=0)
    assert not threat_violations(p, g.X, g.y)
    replayed = obj.value(p, p.train_poisoned(g.X, g.y).final)
    assert replayed == g.value
    # the grid's step is 0.005: the continuous optimum is at least the grid's, within 1e-4
    assert g.value >= best - 1e-4


def test_gradient_attack_keeps_the_k_of_n_budget():
    p = _toy(k=1)
    obj = TestObjective("mse")
    g = gradient_attack(p, obj, None, time_budget=2.0, restarts=3, seed=1)
    assert not threat_violations(p, g.X, g.y)
    changed = np.any(np.abs(g.X - p.data.X_train) > 1e-9, axis=1)
    assert changed.sum() <= 1
    assert g.value > obj.value(p, p.train_nominal().final) + 1e-3


def test_projection_keeps_budgets_to_the_last_bit():
    """A k = 1 attack whose solver round-off also moved two other rows by ~4e-9 (formally
    outside the threat model) is projected onto it: only the large change survives."""
    p = _toy(k=1)
    X = p.data.X_train.copy()
    X[0, 0] += 0.3
    X[1, 0] += 4e-9
    assert threat_violations(p, X, p.data.y_train), "the raw attack breaks k = 1"
    Xp, yp = project_attack(p, X, p.data.y_train)
    assert not threat_violations(p, Xp, yp)
    assert Xp[0, 0] == X[0, 0] and Xp[1, 0] == p.data.X_train[1, 0]


def test_repair_never_worsens_and_reports_reaching():
    p = _toy()
    obj = TestObjective("mse")
    clean = Attack(p.data.X_train, p.data.y_train, obj.value(p, p.train_nominal().final), "x")
    best, _ = _brute_force(p, 51)
    out = repair_attack(p, obj, clean, best, time_budget=2.0)
    assert out.value >= clean.value
    assert out.extra["repaired"] is True
    assert not threat_violations(p, out.X, out.y)
    same = repair_attack(p, obj, clean, clean.value)  # already there: untouched
    assert same is clean


def _kink_problem():
    cfg = Config()
    cfg.data.dataset, cfg.data.standardize, cfg.data.n_train = "iris-binary", True, 20
    cfg.model.arch, cfg.training.loss, cfg.training.lr, cfg.training.epochs = "4-1", "hinge", 0.5, 3
    cfg.threat.eps, cfg.threat.k = 0.1, 1
    return build_problem(cfg)


def test_solver_incumbent_at_a_hinge_kink_is_repaired_to_replay(tmp_path):
    """iris-binary, n = 20, T = 3, k = 1: SCIP's optimal incumbent puts a training point on the
    hinge kink, so it replays to fewer misclassified points than the solver says; the repaired
    attack replays to the solver's value and every saved attack lies in the threat model."""
    pytest.importorskip("pyscipopt")
    p = _kink_problem()
    opts = dict(objective="misclassified", time_limit=60.0, workers=1, split="none")  # 1 program
    plain = certify_problem(p, "exact", options={**opts, "repair": False})
    s0 = plain.section
    assert s0["status"] == "optimal"
    fixed = certify_problem(p, "exact", options={**opts, "repair": True, "out_dir": tmp_path})
    s1 = fixed.section
    assert s1["status"] == "optimal"
    assert s1["replayed"] == pytest.approx(s1["solver_primal"], abs=1e-6)
    assert s1["primal"] >= s1["replayed"] and s1["outcome"] == "closed"
    if s0["replayed"] < s0["solver_primal"] - 0.5:  # the kink: the unrepaired incumbent
        assert s1["repaired"] is True
        assert s0["outcome"] in ("closed", "replay_differs")
    for name, files in s1["attack_files"].items():
        z = np.load(files["npz"])
        assert not threat_violations(p, z["X"], z["y"]), name
        value = TestObjective("misclassified").value(p, p.train_poisoned(z["X"], z["y"]).final)
        assert value == pytest.approx(float(z["value"])), name


def test_auto_picks_the_smallest_form():
    cfg = Config()
    cfg.data.dataset, cfg.data.standardize, cfg.data.n_train = "diabetes", True, 20
    cfg.model.arch, cfg.training.loss, cfg.training.lr = "10-1", "mse", 0.1
    cfg.threat.eps, cfg.threat.k = 0.1, 1
    for T in (2, 3):
        cfg.training.epochs = T
        p = build_problem(cfg)
        sizes = {n: f.size(p, T) for n, f in forms.FORMS.items() if f.applies(p)}
        assert set(sizes) == {"points", "slots", "moments"}
        assert sizes["slots"] < sizes["moments"] < sizes["points"]
        assert forms.choose(p, T).name == "slots"
    cfg.threat.label_k, cfg.threat.label_eps = 1, 0.5  # a target shift beside the features
    p = build_problem(cfg)
    sizes = {n: f.size(p, 3) for n, f in forms.FORMS.items() if f.applies(p)}
    assert set(sizes) == {"points", "slots", "moments"}  # all three take both kinds
    assert sizes["slots"] < sizes["moments"] < sizes["points"]
    assert forms.choose(p, 3).name == "slots"
    cfg.threat.label_k, cfg.threat.label_eps = 0, 0.0
    cfg.threat.k = None  # every point moves: slots do not apply, the smaller of the others
    p = build_problem(cfg)
    sizes = {n: f.size(p, 3) for n, f in forms.FORMS.items() if f.applies(p)}
    assert "slots" not in sizes
    assert forms.choose(p, 3).name == min(sizes, key=sizes.get)


def test_exact_with_affine_step_bounds_is_never_looser_and_sound():
    pytest.importorskip("pyscipopt")
    cfg = Config()
    cfg.data.n_train, cfg.data.n_test = 12, 20
    cfg.model.arch, cfg.training.epochs, cfg.threat.eps = "2-4-1", 3, 0.05
    p = build_problem(cfg)
    opts = dict(
        objective="misclassified", time_limit=10.0, workers=1, heuristic=False, tighten=False
    )
    box = certify_problem(p, "exact", options=opts)
    aff = certify_problem(p, "exact", options={**opts, "sets": "affine"})
    assert np.all(aff.bounds.lower >= box.bounds.lower - 1e-9)
    assert np.all(aff.bounds.upper <= box.bounds.upper + 1e-9)
    w_aff, w_box = aff.bounds.widths().sum(axis=1), box.bounds.widths().sum(axis=1)
    assert w_aff[-1] < w_box[-1] - 1e-4, "the affine boxes must tighten the step bounds"
    rng = np.random.default_rng(0)
    for _ in range(30):
        X, y = p.threat.sample(p.data.X_train, p.data.y_train, rng, vertex_prob=0.7)
        assert aff.bounds.contains(p.train_poisoned(X, y).thetas).all()
    assert aff.section["dual_bound"] <= box.section["dual_bound"] + 1e-9
