"""Method ``mibp``: per-step MIBP bounds against brute force, nesting, soundness, resume."""

from __future__ import annotations

import numpy as np
import pytest

from mibpcert.data import load_dataset
from mibpcert.domains.interval import Interval
from mibpcert.encode.step import encode_step
from mibpcert.methods import get_method
from mibpcert.methods.interval import interval_gradient
from mibpcert.model import Architecture, TrainingRecipe, init_params
from mibpcert.model.losses import encode_targets, predict_classes
from mibpcert.model.network import forward
from mibpcert.model.trainer import batch_gradient
from mibpcert.ops import sgd
from mibpcert.parallel import InProcess
from mibpcert.pipeline import certify_problem
from mibpcert.problem import Problem
from mibpcert.solvers import get_backend
from mibpcert.solvers.tasks import solve_many
from mibpcert.threat import DiscreteFeature, ThreatModel
from mibpcert.vocab import RelaxMode

pytest.importorskip("pyscipopt")
pytest.importorskip("highspy")


def _problem(threat, arch="2-3-1", n=6, loss="hinge", epochs=2, lr=0.5, batch_size=None, seed=0):
    data = load_dataset("moons", n_train=n, n_test=30, seed=seed)
    a = Architecture.parse(arch)
    rec = TrainingRecipe(loss=loss, lr=lr, epochs=epochs, batch_size=batch_size)
    return Problem(data, a, rec, threat, init_params(a, seed))


def _box_around(theta, width, rng):
    return Interval(
        theta - width * rng.uniform(0.2, 1, theta.size),
        theta + width * rng.uniform(0.2, 1, theta.size),
    )


def _sampled_next(problem, box, step, rng, samples=400):
    """theta' = theta - lr g(theta, D') for random theta in box (vertices too) and attacks D'."""
    idx = problem.batches()[step]
    lr = problem.recipe.lr_at(step)
    data = problem.data
    out = []
    for s in range(samples):
        if s % 3 == 0:
            theta = np.where(rng.random(box.lo.size) < 0.5, box.lo, box.hi)
        else:
            theta = rng.uniform(box.lo, box.hi)
        X, y = problem.threat.sample(
            data.X_train, data.y_train, rng, data.task, data.n_classes, vertex_prob=0.7
        )
        t = encode_targets(problem.recipe.loss, y, data.task)
        g, _ = batch_gradient(problem.arch, theta, X[idx], t[idx], problem.recipe.loss)
        out.append(theta - lr * g)
    return np.array(out)


def _step_bounds(problem, box, step, relax, solver="scip"):
    enc = encode_step(problem, step, box)
    objs = enc.objectives()
    res = solve_many(enc.formulation.relaxed(relax), objs, solver, 60.0, InProcess())
    lo = np.array([res[2 * j].bound(1e-6, 1e-6) for j in range(len(enc.theta_vars))])
    hi = np.array([res[2 * j + 1].bound(1e-6, 1e-6) for j in range(len(enc.theta_vars))])
    statuses = {r.status for r in res}
    return lo, hi, statuses


THREATS = [
    ThreatModel(eps=0.1),
    ThreatModel(eps=0.2, k=2),
    ThreatModel(label_k=1),
    ThreatModel(eps=0.1, k=1, label_k=1, paired=True),
]


@pytest.mark.parametrize("threat", THREATS, ids=["eps", "k-of-n", "label", "paired"])
def test_exact_step_bound_contains_samples_and_is_nested(threat):
    rng = np.random.default_rng(0)
    p = _problem(threat)
    box = _box_around(p.theta0, 0.05, rng)
    samples = _sampled_next(p, box, 0, rng)
    exact_lo, exact_hi, st = _step_bounds(p, box, 0, "exact")
    assert st == {"optimal"}
    milp_lo, milp_hi, _ = _step_bounds(p, box, 0, "milp", solver="highs")
    lp_lo, lp_hi, _ = _step_bounds(p, box, 0, "lp", solver="highs")
    itv = sgd.interval(box, interval_gradient(p, box, p.batches()[0]), p.recipe.lr_at(0))
    # every sampled step lands inside the exact bound
    assert np.all(samples >= exact_lo) and np.all(samples <= exact_hi)
    # nesting exact within milp within lp within interval (up to the padding)
    tol = 1e-5
    assert np.all(exact_lo >= milp_lo - tol) and np.all(exact_hi <= milp_hi + tol)
    assert np.all(milp_lo >= lp_lo - tol) and np.all(milp_hi <= lp_hi + tol)
    assert np.all(lp_lo >= itv.lo - tol) and np.all(lp_hi <= itv.hi + tol)
    # the exact bound is close to what sampling reaches (tiny problem): the gap is small
    gap = np.maximum(samples.min(0) - exact_lo, exact_hi - samples.max(0))
    width = itv.hi - itv.lo
    assert np.all(gap <= 0.5 * width + 1e-6)


def test_eps0_collapses_onto_ordinary_training():
    p = _problem(ThreatModel(), epochs=3)
    res = certify_problem(p, "mibp", options={"workers": 1, "relax": "exact"})
    nominal = p.train_nominal().thetas
    assert res.bounds.contains(nominal).all()
    assert np.max(res.bounds.widths()) < 1e-4
    assert res.metrics["certified_accuracy"] == res.metrics["nominal_accuracy"]


@pytest.mark.parametrize("relax", ["exact", "milp", "lp"])
def test_sampling_soundness_over_steps(relax):
    rng = np.random.default_rng(1)
    p = _problem(ThreatModel(eps=0.05, k=2, test_eps=0.01), n=8, epochs=3)
    solver = "scip" if relax == "exact" else "highs"
    res = certify_problem(
        p, "mibp", options={"workers": 1, "relax": relax, "solver": solver}, test_mip=True
    )
    itv = get_method("interval").bound(p)
    assert np.all(res.bounds.lower >= itv.lower) and np.all(res.bounds.upper <= itv.upper)
    cert = res.test.certified_class
    data = p.data
    X_lo, X_hi = p.threat.test_box(data.X_test)
    for _ in range(60):
        X, y = p.threat.sample(data.X_train, data.y_train, rng, n_classes=2, vertex_prob=0.7)
        traj = p.train_poisoned(X, y)
        assert res.bounds.contains(traj.thetas).all()
        pred = predict_classes(forward(p.arch, traj.final, rng.uniform(X_lo, X_hi)))
        ok = cert >= 0
        assert np.array_equal(pred[ok], cert[ok])


def test_mibp_tighter_than_interval_over_training():
    p = _problem(ThreatModel(eps=0.05), n=8, epochs=4, arch="2-4-1")
    res = get_method("mibp", workers=1, relax="lp", solver="highs").bound(p)
    itv = get_method("interval").bound(p)
    assert np.all(res.widths()[-1] <= itv.widths()[-1] + 1e-9)
    assert res.widths()[-1].sum() < 0.9 * itv.widths()[-1].sum()


def test_resume_gives_the_same_final_box(tmp_path):
    p = _problem(ThreatModel(eps=0.05), n=6, epochs=4)
    full = get_method("mibp", workers=1, relax="milp", solver="highs").bound(p)

    class Stop(Exception):
        pass

    def stop_after_two(done, total):
        if done == 2:
            raise Stop

    m = get_method("mibp", workers=1, relax="milp", solver="highs", out_dir=tmp_path)
    with pytest.raises(Stop):
        m.bound(p, on_step=stop_after_two)
    resumed = get_method(
        "mibp", workers=1, relax="milp", solver="highs", out_dir=tmp_path, resume=True
    ).bound(p)
    np.testing.assert_array_equal(resumed.lower, full.lower)
    np.testing.assert_array_equal(resumed.upper, full.upper)
    assert len(resumed.step_seconds) == 4


def test_resume_refuses_a_foreign_checkpoint(tmp_path):
    from mibpcert.errors import MibpcertError

    p = _problem(ThreatModel(eps=0.05), n=6, epochs=2)
    get_method("mibp", workers=1, relax="lp", solver="highs", out_dir=tmp_path).bound(p)
    q = _problem(ThreatModel(eps=0.1), n=6, epochs=2)
    with pytest.raises(MibpcertError, match="different problem"):
        get_method(
            "mibp", workers=1, relax="lp", solver="highs", out_dir=tmp_path, resume=True
        ).bound(q)


def test_backend_capabilities_are_declared():
    assert "bilinear" in get_backend("scip").capabilities
    assert "bilinear" not in get_backend("highs").capabilities


@pytest.mark.parametrize(
    "threat", [ThreatModel(eps=0.2), ThreatModel(eps=0.2, k=1, label_k=1)], ids=["eps", "k+label"]
)
def test_exact_bound_is_attained_by_its_replayed_incumbent(threat):
    """The solver's optimum is a real (theta, D'): replaying it with the ordinary trainer gives
    the same updated parameter (within 1e-6), so the bound is exact, not just sound."""
    rng = np.random.default_rng(2)
    p = _problem(threat, arch="2-2-1", n=5)
    box = _box_around(p.theta0, 0.1, rng)
    enc = encode_step(p, 0, box)
    backend = get_backend("scip")
    idx, lr = p.batches()[0], p.recipe.lr_at(0)
    checked = 0
    with backend.session(enc.formulation, time_limit=60) as session:
        for j in range(0, len(enc.theta_vars), 2):
            for sense in ("min", "max"):
                r = session.solve(enc.objective(j, sense), return_x=True)
                assert r.status == "optimal" and r.x is not None
                # the incumbent satisfies the constraints up to the solver's feasibility
                # tolerance: project it onto the box and the threat set before replaying
                theta = np.clip(r.x[enc.theta_vars], box.lo, box.hi)
                X, y = enc.attack(r.x, p.data.X_train, p.data.y_train)
                assert np.all(np.abs(X - p.data.X_train) <= 0.2 + 1e-6)
                lo, hi = p.threat.feature_box(p.data.X_train)
                X = np.clip(X, lo, hi)
                t = encode_targets("hinge", y, "classification")
                g, _ = batch_gradient(p.arch, theta, X[idx], t[idx], "hinge")
                replayed = theta[j] - lr * g[j]
                bound = r.bound(1e-6, 1e-6)
                if sense == "min":
                    assert replayed >= bound
                else:
                    assert replayed <= bound
                assert abs(replayed - r.dual_bound) <= 1e-6 + 1e-6 * abs(r.dual_bound)
                checked += 1
    assert checked >= 4


def test_resume_extends_a_finished_run_with_more_epochs(tmp_path):
    short = _problem(ThreatModel(eps=0.05), n=6, epochs=2)
    long = _problem(ThreatModel(eps=0.05), n=6, epochs=4)
    opts = dict(workers=1, relax="lp", solver="highs", out_dir=tmp_path)
    get_method("mibp", **opts).bound(short)
    calls = []
    extended = get_method("mibp", resume=True, **opts).bound(
        long, on_step=lambda d, t: calls.append(d)
    )
    fresh = get_method("mibp", workers=1, relax="lp", solver="highs").bound(long)
    np.testing.assert_array_equal(extended.lower, fresh.lower)
    np.testing.assert_array_equal(extended.upper, fresh.upper)
    assert calls[0] == 2  # resumed after the two finished steps


def test_mibp_never_looser_than_agt_under_a_budget():
    p = _problem(ThreatModel(eps=0.1, k=1), n=8, epochs=3)
    res = get_method("mibp", workers=1, relax="lp", solver="highs").bound(p)
    agt = get_method("agt").bound(p)
    assert np.all(res.lower >= agt.lower) and np.all(res.upper <= agt.upper)


def _soundness(p, relax, solver, rng, attacks=40):
    res = get_method("mibp", workers=1, relax=relax, solver=solver).bound(p)
    data = p.data
    for _ in range(attacks):
        X, y = p.threat.sample(
            data.X_train, data.y_train, rng, data.task, data.n_classes, vertex_prob=0.7
        )
        traj = p.train_poisoned(X, y)
        inside = res.contains(traj.thetas)
        assert inside.all(), f"left the box at step {int(np.argmin(inside))}"
    return res


LOSS_CASES = {
    "bce-label": dict(
        data=("moons", {}), arch="2-3-1", loss="bce", threat=ThreatModel(eps=0.05, label_k=1)
    ),
    "ce-3class-any": dict(
        data=("iris", {"standardize": True}),
        arch="4-3-3",
        loss="ce",
        threat=ThreatModel(eps=0.05, label_k=1, label_mode="any"),
    ),
    "mse-regression": dict(
        data=("diabetes", {"standardize": True}),
        arch="10-2-1",
        loss="mse",
        threat=ThreatModel(eps=0.02, k=2, label_k=1, label_eps=0.1),
    ),
    "hinge-discrete": dict(
        data=("moons", {}),
        arch="2-3-1",
        loss="hinge",
        threat=ThreatModel(eps=0.05, k=2, discrete=(DiscreteFeature(1, (0.0, 0.5)),)),
    ),
    "minibatch": dict(
        data=("moons", {}),
        arch="2-3-1",
        loss="hinge",
        batch_size=4,
        threat=ThreatModel(eps=0.05, k=1),
    ),
}


@pytest.mark.parametrize("case", list(LOSS_CASES), ids=list(LOSS_CASES))
@pytest.mark.parametrize("relax", ["lp", "milp"])
def test_sampling_soundness_losses_and_threats(case, relax):
    c = LOSS_CASES[case]
    name, kw = c["data"]
    data = load_dataset(name, n_train=8, n_test=10, seed=0, **kw)
    a = Architecture.parse(c["arch"])
    rec = TrainingRecipe(loss=c["loss"], lr=0.2, epochs=2, batch_size=c.get("batch_size"))
    p = Problem(data, a, rec, c["threat"], init_params(a, 0))
    res = _soundness(p, relax, "highs", np.random.default_rng(5))
    assert not res.warnings


def test_process_pool_gives_the_same_boxes_as_in_process():
    p = _problem(ThreatModel(eps=0.05), n=6, epochs=2)
    one = get_method("mibp", workers=1, relax="lp", solver="highs").bound(p)
    two = get_method("mibp", workers=2, relax="lp", solver="highs").bound(p)
    np.testing.assert_array_equal(one.lower, two.lower)
    np.testing.assert_array_equal(one.upper, two.upper)


@pytest.mark.parametrize("relax", ["milp", "exact"])
def test_lp_pass_settles_objectives_without_losing_tightness(relax):
    """With the LP pass, the objectives it settles skip the milp/exact solve; the boxes equal
    those of solving every objective in ``relax`` (all solves optimal on this tiny case)."""
    p = _problem(ThreatModel(eps=0.1, k=2), n=6, epochs=3)
    solver = "scip" if relax == "exact" else "highs"
    opts = {"workers": 1, "relax": relax, "solver": solver, "time_limit": 60.0}
    first = get_method("mibp", lp_first=True, **opts).bound(p)
    every = get_method("mibp", lp_first=False, **opts).bound(p)
    settled = [info["lp_settled"] for info in first.step_info]
    key = f"{RelaxMode(relax)}_solves"  # "exact" is the old name of "bilinear"
    solved = [info[key] for info in first.step_info]
    n_obj = [info["n_objectives"] for info in first.step_info]
    assert all(s + n == k for s, n, k in zip(settled, solved, n_obj, strict=True))
    assert sum(settled) > 0 and sum(solved) > 0  # both branches of the rule are exercised
    assert all(info[key] == info["n_objectives"] for info in every.step_info)
    assert all(set(info["statuses"]) == {"optimal"} for info in first.step_info + every.step_info)
    np.testing.assert_allclose(first.lower, every.lower, atol=1e-5)
    np.testing.assert_allclose(first.upper, every.upper, atol=1e-5)
