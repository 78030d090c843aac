"""Affine parameter sets (``--sets affine``): soundness of the set itself, consistency, tightness.

For a sampled attack its symbols ``u*`` are known, so ordinary training must satisfy
``|theta_t - c_t - G_t u*| <= rho_t`` at every step -- much stronger than lying in the bounding
box, which is checked too.
"""

from __future__ import annotations

import numpy as np
import pytest

from mibpcert import Config
from mibpcert.bounds.affine_pass import AffineSet
from mibpcert.data import load_dataset
from mibpcert.domains import affine as aff
from mibpcert.domains.affine import AffineForm, Symbols, SymbolSet
from mibpcert.domains.interval import Interval
from mibpcert.errors import ConfigError, UnsupportedError
from mibpcert.methods import get_method
from mibpcert.model import Architecture, TrainingRecipe, init_params
from mibpcert.pipeline import build_problem, certify_problem, method_options
from mibpcert.problem import Problem
from mibpcert.threat import DiscreteFeature, ThreatModel


def _problem(
    threat: ThreatModel, n=24, arch="2-6-1", loss="hinge", epochs=4, lr=0.3, **recipe
):
    data = load_dataset("moons", n_train=n, n_test=30, seed=3)
    a = Architecture.parse(arch)
    return Problem(data, a, TrainingRecipe(loss=loss, lr=lr, epochs=epochs, **recipe), threat,
                   init_params(a, 1))


def _check_samples(p: Problem, bounds, n_samples: int = 60, seed: int = 0) -> float:
    """The largest ``|theta_t - c_t - G_t u*| - rho_t`` over sampled attacks (must be <= 0);
    also every trajectory lies in the boxes."""
    rng = np.random.default_rng(seed)
    traj = bounds.affine
    worst = -np.inf
    for s in range(n_samples):
        X, y = p.threat.sample(
            p.data.X_train, p.data.y_train, rng, p.data.task, p.data.n_classes,
            vertex_prob=0.8 if s % 2 else 0.3,
        )
        thetas = p.train_poisoned(X, y).thetas
        worst = max(worst, float(traj.residuals(thetas, traj.symbols.coordinates(X))[1:].max()))
        assert bounds.contains(thetas).all(), "an attack left the boxes"
    # the linearised worst cases of the set itself: u = +-sign(G_t[j]) for a few (t, j)
    for t in range(1, traj.c.shape[0]):
        for j in np.argsort(-np.abs(traj.G[t]).sum(axis=1))[:3]:
            for sgn in (1.0, -1.0):
                u = sgn * np.sign(traj.G[t, j])
                X = p.data.X_train.copy()
                X[traj.symbols.point, traj.symbols.feature] = (
                    traj.symbols.mid + traj.symbols.rad * u
                )
                if p.threat.k is not None and traj.symbols.k is not None:
                    continue  # sign attacks move every point; k-of-n covered by sampling
                thetas = p.train_poisoned(X, p.data.y_train).thetas
                worst = max(worst, float(traj.residuals(thetas, u)[1:].max()))
    return worst


CASES = {
    "all points": (dict(eps=0.05), {}),
    "subset": (dict(eps=0.08, points=tuple(range(0, 24, 3))), {}),
    "label flips": (dict(eps=0.02, label_k=3), {}),
    "discrete": (
        dict(eps=0.03, discrete=(DiscreteFeature(1, (-0.5, 0.0, 0.5, 1.0)),)),
        {},
    ),
    "mini-batches": (dict(eps=0.05), dict(batch_size=8, epochs=2)),
    "clip": (dict(eps=0.1), dict(clip=0.3)),
    "bce": (dict(eps=0.05), dict(loss="bce")),
    "mse": (dict(eps=0.05), dict(loss="mse")),
    "deep": (dict(eps=0.03), dict(arch="2-5-4-1")),
}


@pytest.mark.parametrize("method", ["interval", "agt"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_sampled_attacks_stay_in_the_affine_sets(method, case):
    threat, kw = CASES[case]
    p = _problem(ThreatModel(**threat), **kw)
    bounds = get_method(method, sets="affine").bound(p)
    assert bounds.affine is not None and bounds.sets == "affine"
    assert _check_samples(p, bounds) <= 0.0


def test_k_of_n_sets_hold_sampled_attacks():
    """agt: the symbols' set allows any k points to move (top-k ranges)."""
    p = _problem(ThreatModel(eps=0.2, k=3))
    bounds = get_method("agt", sets="affine").bound(p)
    assert bounds.affine.symbols.k == 3
    assert _check_samples(p, bounds, n_samples=120) <= 0.0
    full = get_method("interval", sets="affine").bound(p)  # interval lets every point move
    assert np.all(bounds.widths()[-1] <= full.widths()[-1] + 1e-12)
    assert bounds.widths()[-1].max() < full.widths()[-1].max()


def test_multiclass_cross_entropy_and_regression():
    data = load_dataset("iris", standardize=True)
    a = Architecture.parse("4-5-3")
    p = Problem(data, a, TrainingRecipe(loss="ce", lr=0.2, epochs=3),
                ThreatModel(eps=0.05, label_k=2, label_mode="any"), init_params(a, 0))
    b = get_method("interval", sets="affine").bound(p)
    assert _check_samples(p, b, n_samples=40) <= 0.0
    data = load_dataset("diabetes", standardize=True, n_train=30, n_test=10)
    a = Architecture.parse("10-3-1")
    p = Problem(data, a, TrainingRecipe(loss="mse", lr=0.05, epochs=3),
                ThreatModel(eps=0.02, label_k=4, label_eps=0.1), init_params(a, 0))
    b = get_method("agt", sets="affine").bound(p)
    assert _check_samples(p, b, n_samples=40) <= 0.0


def test_shrinking_rho_by_one_percent_is_caught():
    """Linear regression, target shifts only: one step is linear in the targets, so the set is
    tight and the attack that moves every target towards the sign of a parameter's sensitivity
    reaches its remainder; the set with ``0.99 rho`` excludes that attack."""
    data = load_dataset("diabetes", standardize=True, n_train=20, n_test=5)
    a = Architecture.parse("10-1")
    p = Problem(data, a, TrainingRecipe(loss="mse", lr=0.1, epochs=1),
                ThreatModel(label_k=20, label_eps=0.5), init_params(a, 0))
    b = get_method("interval", sets="affine").bound(p)
    traj = b.affine
    Xt = np.hstack([data.X_train, np.ones((20, 1))])
    caught = 0
    for j in range(a.n_params):
        # theta_1 = theta_0 - lr (2/n) sum x~ (o - t): moving t by +label_eps sign(x~_ij) raises it
        for sgn in (1.0, -1.0):
            y = data.y_train + sgn * 0.5 * np.sign(Xt[:, j])
            theta = p.train_poisoned(data.X_train, y).thetas
            res = np.abs(theta[1] - traj.c[1])[j]
            assert res <= traj.rho[1, j]  # sound
            caught += res > 0.99 * traj.rho[1, j]
    assert caught >= a.n_params  # every parameter's bound is reached within 1 %


def test_eps_zero_collapses_onto_ordinary_training():
    p = _problem(ThreatModel(eps=0.0), epochs=5)
    b = get_method("interval", sets="affine").bound(p)
    nominal = p.train_nominal().thetas
    assert b.affine.symbols.size == 0
    np.testing.assert_allclose(b.affine.c, nominal, atol=1e-12)
    assert b.affine.rho.max() < 1e-12 and b.widths().max() < 1e-12
    assert b.contains(nominal).all()


def test_affine_is_never_looser_than_box_and_tighter_here():
    """The package default (Two-Moons 100, 2-10-1, hinge, 10 epochs) at eps = 0.001: the hinge
    pattern stays decided, and the affine set ends several times narrower than the box."""
    cfg = Config()
    cfg.threat.eps = 0.001
    p = build_problem(cfg)
    box = get_method("interval").bound(p)
    aff_b = get_method("interval", sets="affine").bound(p)
    assert np.all(aff_b.widths() <= box.widths() + 1e-15)
    assert aff_b.widths()[-1].max() < 0.25 * box.widths()[-1].max()


def test_symbol_ranges_are_exact_for_box_and_k_of_n():
    X = np.zeros((4, 2))
    s = SymbolSet.from_box(X, X - 1.0, X + 1.0, np.arange(4), None)
    G = np.array([[1.0, -2.0, 0.5, 0.0, 3.0, 0.0, 0.0, 1.0]])
    lo, hi = s.range(G)
    assert hi[0] == pytest.approx(7.5) and lo[0] == pytest.approx(-7.5)
    s2 = SymbolSet.from_box(X, X - 1.0, X + 1.0, np.arange(4), 2)
    lo, hi = s2.range(G)
    # per-point contributions 3, 0.5, 3, 1: the two largest
    assert hi[0] == pytest.approx(6.0) and lo[0] == pytest.approx(-6.0)
    # brute force over every choice of 2 points and every vertex
    best = 0.0
    for a_ in range(4):
        for b_ in range(a_ + 1, 4):
            for signs in np.ndindex(2, 2, 2, 2):
                u = np.zeros(8)
                for q, pt in enumerate((a_, b_)):
                    u[2 * pt : 2 * pt + 2] = np.array(signs[2 * q : 2 * q + 2]) * 2 - 1
                best = max(best, float(G[0] @ u))
    assert best == pytest.approx(hi[0])


def test_form_products_enclose_sampled_values():
    """contract / relu / hinge on random forms: every sampled symbol value lands inside."""
    rng = np.random.default_rng(1)
    attack = SymbolSet.from_box(np.zeros((3, 2)), -np.ones((3, 2)), np.ones((3, 2)),
                                np.arange(3), None)
    sym = Symbols(attack, 2)
    S = sym.size

    def rand_form(shape):
        return AffineForm(rng.normal(size=shape), rng.normal(size=(*shape, S)) * 0.3,
                          np.abs(rng.normal(size=shape)) * 0.1)

    a, W = rand_form((4, 3)), rand_form((5, 3))
    z = aff.contract("ni,oi->no", a, W, sym)
    from mibpcert.ops import relu
    rz = relu.affine_set(z, sym.bounds(z))
    for _ in range(300):
        s = rng.uniform(-1, 1, S)
        da = rng.uniform(-1, 1, a.shape) * a.e
        dW = rng.uniform(-1, 1, W.shape) * W.e
        av = a.c + a.G @ s + da
        Wv = W.c + W.G @ s + dW
        zv = av @ Wv.T
        dev = np.abs(zv - z.c - z.G @ s)
        assert np.all(dev <= z.e)
        rv = np.maximum(zv, 0.0)
        assert np.all(np.abs(rv - rz.c - rz.G @ s) <= rz.e + 1e-15)


def test_sets_option_through_config_and_reports(tmp_path):
    from mibpcert import run

    cfg = Config()
    cfg.data.n_train, cfg.data.n_test, cfg.training.epochs = 20, 20, 3
    cfg.threat.eps, cfg.method.sets = 0.01, "affine"
    res = run(cfg, out_dir=tmp_path)
    assert res.to_dict()["soundness"]["sets"] == "affine"
    with np.load(tmp_path / "affine_sets.npz") as z:
        assert z["G"].shape == (4, 41, 40) and z["rho"].shape == (4, 41)
    assert res.metrics["certified_accuracy"] >= run(_box(cfg)).metrics["certified_accuracy"]


def _box(cfg: Config) -> Config:
    import copy

    c = copy.deepcopy(cfg)
    c.method.sets = "box"
    return c


def test_methods_without_sets_say_so():
    assert get_method("exact", sets="affine").sets == "affine"  # exact: affine step bounds
    with pytest.raises(ConfigError, match="unknown parameter sets"):
        get_method("interval", sets="zonotope")
    cfg = Config()
    cfg.method.sets = "affine"
    cfg.threat.eps, cfg.threat.k = float("inf"), 2
    cfg.training.clip = 0.1
    with pytest.raises(UnsupportedError, match="bounded inputs"):
        certify_problem(build_problem(cfg), "interval", options=method_options(cfg))


def test_affine_set_box_is_outward():
    attack = SymbolSet.from_box(np.zeros((2, 1)), -np.ones((2, 1)), np.ones((2, 1)),
                                np.arange(2), None)
    st = AffineSet(np.array([1.0]), np.array([[0.1, 0.2]]), np.array([0.05]))
    box = st.box(attack)
    assert isinstance(box, Interval)
    assert box.lo[0] < 1.0 - 0.35 and box.hi[0] > 1.0 + 0.35


def _mibp(**kw):
    return get_method("mibp", workers=1, relax="milp", solver="highs", sets="affine", **kw)


@pytest.mark.parametrize(
    "threat, recipe",
    [
        (dict(eps=0.05), {}),
        (dict(eps=0.1, k=3), {}),
        (dict(eps=0.05, label_k=2), {}),
        (dict(eps=0.05, discrete=(DiscreteFeature(1, (0.0, 0.5)),)), dict(epochs=1)),
        (dict(eps=0.05), dict(batch_size=4, epochs=1)),
    ],
)
def test_mibp_affine_sets_hold_sampled_attacks(threat, recipe):
    p = _problem(ThreatModel(**threat), n=10, arch="2-4-1", **{"epochs": 2, **recipe})
    bounds = _mibp().bound(p)
    assert bounds.affine is not None and bounds.affine.symbols.k == threat.get("k")
    assert _check_samples(p, bounds, n_samples=60) <= 0.0
    assert not bounds.warnings
    free = get_method("interval", sets="affine").bound(p)
    assert bounds.widths()[-1].max() <= free.widths()[-1].max() + 1e-9
    assert all(i["remainder_max"] <= i["remainder_max_solver_free"] + 1e-12
               for i in bounds.step_info)


def test_mibp_affine_tightens_the_solver_free_remainder():
    """Label flips make hinge gradients jump (a local error of the solver-free step); the
    program's binaries decide them per attack, so the remainder ends narrower than the
    solver-free one, and attacks still hold."""
    p = _problem(ThreatModel(eps=0.05, label_k=2), n=10, arch="2-4-1", epochs=2)
    bounds = _mibp().bound(p)
    tighter = [i["remainder_max"] < 0.9 * i["remainder_max_solver_free"] for i in bounds.step_info]
    assert any(tighter)
    assert _check_samples(p, bounds, n_samples=80) <= 0.0


def test_mibp_affine_resume_continues_the_sets(tmp_path):
    p2 = _problem(ThreatModel(eps=0.05), n=8, arch="2-3-1", epochs=1)
    p3 = _problem(ThreatModel(eps=0.05), n=8, arch="2-3-1", epochs=2)
    _mibp(out_dir=tmp_path).bound(p2)
    resumed = _mibp(out_dir=tmp_path, resume=True).bound(p3)
    fresh = _mibp().bound(p3)
    np.testing.assert_allclose(resumed.affine.rho, fresh.affine.rho, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(resumed.lower, fresh.lower, rtol=1e-9, atol=1e-12)
    with pytest.raises(Exception, match="different problem"):
        get_method("mibp", workers=1, relax="milp", solver="highs", out_dir=tmp_path,
                   resume=True).bound(p3)


def test_sweeps_and_plots_take_affine_sets(tmp_path):
    pytest.importorskip("matplotlib")
    from mibpcert.certify.plots import plot_dir
    from mibpcert.certify.report import load_report
    from mibpcert.sweep import run_sweep

    spec = {
        "data": {"n_train": 20, "n_test": 20},
        "training": {"epochs": 2},
        "method": {"sets": "affine"},
        "sweep": {"methods": ["interval", "agt"], "eps": [0.01]},
    }
    rows = run_sweep(spec, tmp_path)
    assert len(rows) == 2 and all(r["nominal_inside"] for r in rows)
    for r in rows:
        report = load_report(tmp_path / r["dir"])
        assert report["soundness"]["sets"] == "affine"
        assert (tmp_path / r["dir"] / "affine_sets.npz").exists()
    assert plot_dir(tmp_path)
