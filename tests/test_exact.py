"""Method ``exact``: the whole-training program against brute force, replay and interval."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest

from mibpcert import Config
from mibpcert.attacks import (
    TestObjective,
    coordinate_search,
    project_attack,
    replay,
    threat_violations,
)
from mibpcert.cli import main
from mibpcert.methods.exact import ExactMethod
from mibpcert.pipeline import build_problem, certify_problem


def _problem(**kw):
    cfg = Config()
    cfg.data.dataset = "moons"
    cfg.data.n_train = 5
    cfg.data.n_test = 8
    cfg.model.arch = "2-1"
    cfg.training.epochs = 2
    cfg.training.lr = 0.5
    for key, value in kw.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return build_problem(cfg)


def _diabetes(**kw):
    """Diabetes, standardised, linear 10-1 MSE regression; ``kw`` as for :func:`_problem`."""
    base = {
        "data__dataset": "diabetes",
        "data__standardize": True,
        "model__arch": "10-1",
        "training__loss": "mse",
    }
    return _problem(**{**base, **kw})


def _grid_attacks(problem, levels: int = 5):
    """Every choice of one point and one value per feature on a grid of its eps box."""
    X0, y0 = problem.data.X_train, problem.data.y_train
    lo, hi = problem.threat.feature_box(X0)
    for i in problem.threat.scope(len(X0)):
        grids = [np.linspace(lo[i, j], hi[i, j], levels) for j in range(X0.shape[1])]
        for vals in itertools.product(*grids):
            X = X0.copy()
            X[i] = vals
            yield X, y0


def _run(problem, **options):
    options.setdefault("workers", 1)
    options.setdefault("time_limit", 60)
    options.setdefault("heuristic_time", 0.3)
    return certify_problem(problem, "exact", options=options)


@pytest.mark.parametrize("n_test", [6, 30])  # 30 > 11 parameters: the spectral objective
def test_regression_mse_matches_grid_search_and_replays(n_test):
    p = _diabetes(
        data__n_train=5,
        data__n_test=n_test,
        training__epochs=2,
        training__lr=0.2,
        threat__eps=0.2,
        threat__k=1,
        threat__points=[0, 1, 2],
    )
    r = _run(p, objective="mse")
    ex = r.exact
    assert ex["status"] == "optimal"
    obj = TestObjective("mse")
    # the replayed incumbent is a valid attack and reproduces the solver's value
    assert ex["replay_agrees"] is True
    assert abs(ex["replayed"] - ex["primal"]) <= 1e-5 * (1 + abs(ex["primal"]))
    # no random attack beats the certified bound; the exact attack beats all of them
    rng = np.random.default_rng(0)
    best_sample = -np.inf
    for _ in range(300):
        X, y = p.threat.sample(p.data.X_train, p.data.y_train, rng, "regression", vertex_prob=0.8)
        v = replay(p, X, y, obj)
        best_sample = max(best_sample, v)
        assert v <= ex["dual_bound"] + 1e-9
    assert ex["best_attack"] >= best_sample - 1e-6
    assert ex["dual_bound"] <= ex["interval_bound"]
    assert ex["dual_bound"] >= ex["best_attack"] - 1e-9


def _evaluate(f, x: np.ndarray, start: int) -> np.ndarray:
    """Values of the variables from ``start`` on, each defined (in creation order) by one
    equality row or one product of earlier ones (``materialize`` / ``square``)."""
    x = x.copy()
    defs = {z: (a1, a2) for z, a1, a2 in f.products}
    rows = {}
    for idx, coef, lo, hi in f.rows:
        idx = np.asarray(idx)
        if lo == hi and idx.max() >= start:
            rows.setdefault(int(idx.max()), (idx, np.asarray(coef), lo))
    for j in range(start, f.n_vars):
        if j in defs:
            x[j] = x[defs[j][0]] * x[defs[j][1]]
        else:
            idx, coef, rhs = rows[j]
            k = int(np.flatnonzero(idx == j)[0])
            rest = sum(coef[q] * x[idx[q]] for q in range(len(idx)) if q != k)
            x[j] = (rhs - rest) / coef[k]
    return x


def test_spectral_mse_bounds_the_mse_on_the_parameter_box():
    """The spectral objective (squares of the test inputs' singular directions) is the test MSE
    up to its rounding padding: e >= f everywhere on the box, and e - f tiny; the residual
    form, evaluated the same way, is the MSE itself."""
    from mibpcert.domains.builder import Builder
    from mibpcert.domains.interval import Interval
    from mibpcert.domains.program import Formulation
    from mibpcert.encode.network import parameter_exprs
    from mibpcert.encode.objectives import residual_mse, spectral_mse

    p = _diabetes(data__n_train=5, data__n_test=40)
    theta0 = p.train_nominal().final
    box = Interval(theta0 - 0.3, theta0 + 0.5)
    rng = np.random.default_rng(1)
    obj = TestObjective("mse")
    for form in (spectral_mse, residual_mse):
        b = Builder(Formulation())
        theta, layers = parameter_exprs(b, p.arch, box)
        start = b.f.n_vars
        e = form(b, p, layers)
        n_squares = sum(1 for z, a1, a2 in b.f.products if a1 == a2)
        assert n_squares == (11 if form is spectral_mse else 40)
        for _ in range(40):
            th = box.lo + (box.hi - box.lo) * (rng.random(len(theta0)) < 0.5)  # corners
            th = np.where(rng.random(len(th)) < 0.3, box.lo + rng.random(len(th)) * 0.8, th)
            x = np.zeros(b.f.n_vars)
            x[[t.idx[0] for t in theta]] = th
            x = _evaluate(b.f, x, start)
            value = e.constant + float(np.dot(e.coef, x[e.idx]))
            true = obj.value(p, th)
            if form is spectral_mse:
                assert value >= true  # the padding covers every rounding
                assert value - true <= 1e-8 * (1 + true)
            else:
                assert value == pytest.approx(true, rel=1e-12, abs=1e-12)


def test_spectral_and_residual_mse_same_optimum():
    """Solved to optimality, the spectral and the residual objectives of one training program
    agree, and the spectral one has fewer products."""
    from mibpcert.encode.objectives import residual_mse, spectral_mse
    from mibpcert.encode.unroll import encode_training
    from mibpcert.solvers.tasks import SolveTask, solve_task

    p = _diabetes(
        data__n_train=5,
        data__n_test=25,
        training__epochs=2,
        training__lr=0.2,
        threat__eps=0.3,
        threat__k=1,
        threat__points=[0, 1],
    )
    prog = encode_training(p, form="points")
    values, sizes = [], []
    for form in (spectral_mse, residual_mse):
        b = prog.builder.fork()
        obj = form(b, p, prog.layers(p))
        (res,) = solve_task(SolveTask(b.f, [obj], "scip", 120.0, return_x=True))
        assert res.status == "optimal"
        values.append(res.primal)
        sizes.append(len(b.f.products))
    assert values[0] == pytest.approx(values[1], rel=1e-6)
    assert values[0] > TestObjective("mse").value(p, p.train_nominal().final) + 1e-6
    assert sizes[0] < sizes[1]


@pytest.mark.parametrize("loss,lr", [("hinge", 2.0), ("mse", 1.0)])
def test_linear_classifier_misclassified_matches_exhaustive_search(loss, lr):
    p = _problem(
        training__loss=loss,
        training__epochs=3,
        training__lr=lr,
        threat__eps=0.5,
        threat__k=1,
        data__n_train=4,
        data__n_test=12,
    )
    r = _run(p, objective="misclassified")
    ex = r.exact
    obj = TestObjective("misclassified")
    grid_best = max(replay(p, X, y, obj) for X, y in _grid_attacks(p, 7))
    assert ex["status"] == "optimal"
    # the bound holds for every grid attack; the exact attack is at least as good as the grid
    assert ex["dual_bound"] >= grid_best
    assert ex["best_attack"] >= grid_best
    # an integral count: optimal means attack == bound, and it matches the exhaustive search
    assert ex["best_attack"] == ex["dual_bound"] == grid_best
    assert ex["best_attack"] > ex["clean_value"], "the instance must be non-trivial"
    assert ex["dual_bound"] < ex["interval_bound"]


def test_margin_objective_per_point_mlp():
    p = _problem(
        model__arch="2-2-1",
        training__loss="hinge",
        training__epochs=2,
        training__lr=0.5,
        threat__eps=0.3,
        threat__k=1,
        data__n_train=5,
        data__n_test=4,
    )
    r = _run(p, objective="margin", test_points=[0, 1, 2, 3])
    ex = r.exact
    obj_rng = np.random.default_rng(1)
    samples = [
        p.threat.sample(p.data.X_train, p.data.y_train, obj_rng, vertex_prob=0.8)
        for _ in range(150)
    ]
    for pt in ex["points"]:
        obj = TestObjective("margin", pt["point"])
        vals = [replay(p, X, y, obj) for X, y in samples]
        # the certified lower bound on the margin holds for every sampled attack
        assert min(vals) >= pt["dual_bound"] - 1e-9
        assert pt["dual_bound"] >= pt["interval_bound"]
        assert pt["best_attack"] >= pt["dual_bound"] - 1e-9
        if pt["verdict"] == "certified":
            assert min(vals) > 0
        if pt["replayed"] is not None and pt["status"] == "optimal":
            assert abs(pt["replayed"] - pt["primal"]) <= 1e-4 * (1 + abs(pt["primal"]))
    # verdicts are folded into the test metrics
    n_cert = sum(row["certified_correct"] for row in r.test.points)
    assert r.metrics["certified_accuracy"] == n_cert / len(r.test.points)


def test_label_flips_exhaustive():
    p = _problem(
        training__loss="hinge",
        training__epochs=3,
        training__lr=1.0,
        threat__eps=0.0,
        threat__label_k=1,
        data__n_train=5,
        data__n_test=12,
    )
    r = _run(p, objective="misclassified")
    obj = TestObjective("misclassified")
    y0 = p.data.y_train
    vals = [replay(p, p.data.X_train, y0, obj)]
    for i in range(len(y0)):
        y = y0.copy()
        y[i] = 1 - y[i]
        vals.append(replay(p, p.data.X_train, y, obj))
    assert r.exact["status"] == "optimal"
    assert r.exact["best_attack"] == max(vals) == r.exact["dual_bound"]
    assert max(vals) > vals[0], "the instance must be non-trivial"


def test_multiclass_linear_hinge_label_changes():
    p = _problem(
        data__dataset="iris",
        data__n_train=None,
        data__standardize=True,
        model__arch="4-3",
        training__loss="hinge",
        training__epochs=4,
        training__lr=1.0,
        threat__eps=0.0,
        threat__label_k=1,
        threat__label_mode="any",
    )
    # a small training set keeps the exhaustive search cheap
    keep = np.arange(0, len(p.data.X_train), 10)
    data = dataclasses.replace(p.data, X_train=p.data.X_train[keep], y_train=p.data.y_train[keep])
    p = dataclasses.replace(p, data=data)
    r = _run(p, objective="misclassified")
    obj = TestObjective("misclassified")
    y0 = p.data.y_train
    vals = [replay(p, p.data.X_train, y0, obj)]
    for i in range(len(y0)):
        for c in range(3):
            if c != y0[i]:
                y = y0.copy()
                y[i] = c
                vals.append(replay(p, p.data.X_train, y, obj))
    assert r.exact["status"] == "optimal"
    assert r.exact["dual_bound"] == r.exact["best_attack"] == max(vals)
    assert max(vals) > vals[0], "the instance must be non-trivial"


@pytest.mark.parametrize("n_test", [6, 30])  # 30 > 11 parameters: the spectral objective
def test_eps_zero_collapses_to_ordinary_training(n_test):
    p = _diabetes(
        data__n_train=8,
        data__n_test=n_test,
        training__epochs=3,
        training__lr=0.1,
        threat__eps=0.0,
    )
    r = _run(p, objective="mse")
    clean = TestObjective("mse").value(p, p.train_nominal().final)
    ex = r.exact
    assert ex["primal"] == pytest.approx(clean, rel=1e-6, abs=1e-8)
    assert ex["dual_bound"] == pytest.approx(clean, rel=1e-5, abs=1e-6)
    assert ex["dual_bound"] >= clean
    widths = r.bounds.widths()
    assert widths.max() <= 1e-5


def test_parameter_boxes_sound_under_sampling():
    p = _problem(
        model__arch="2-2-1",
        training__loss="hinge",
        training__epochs=3,
        training__lr=0.5,
        threat__eps=0.2,
        threat__k=2,
        threat__label_k=1,
        data__n_train=6,
    )
    bounds = ExactMethod(workers=1).bound(p)
    rng = np.random.default_rng(3)
    for _ in range(200):
        X, y = p.threat.sample(p.data.X_train, p.data.y_train, rng, vertex_prob=0.7)
        assert bounds.contains(p.train_poisoned(X, y).thetas, tol=1e-9).all()
    # LP tightening never loosens the interval/agt boxes
    loose = ExactMethod(workers=1, tighten=False).bound(p)
    assert np.all(bounds.lower >= loose.lower - 1e-12)
    assert np.all(bounds.upper <= loose.upper + 1e-12)


@pytest.mark.parametrize(
    "form,labels", [("slots", {}), ("points", {}), ("slots", {"threat__label_k": 1})]
)
def test_parameter_boxes_sound_under_sampling_k_of_n_features(form, labels):
    """The slot form's (and the per-point form's) LP-tightened boxes hold every sampled
    k-of-n feature attack (with label flips beside it), with mini-batches."""
    p = _problem(
        training__loss="hinge",
        training__epochs=2,
        training__batch_size=3,
        threat__eps=0.3,
        threat__k=2,
        data__n_train=6,
        **labels,
    )
    bounds = ExactMethod(workers=1, form=form).bound(p)
    rng = np.random.default_rng(5)
    for _ in range(200):
        X, y = p.threat.sample(p.data.X_train, p.data.y_train, rng, vertex_prob=0.7)
        assert bounds.contains(p.train_poisoned(X, y).thetas, tol=1e-9).all()


def test_tightening_budget_stops_after_the_step_that_spends_it():
    p = _problem(training__loss="hinge", training__epochs=3, threat__eps=0.3, threat__k=1)
    full = ExactMethod(workers=1).bound(p)
    loose = ExactMethod(workers=1, tighten=False).bound(p)
    cut = ExactMethod(workers=1, tighten_time=1e-9).bound(p)
    # the first step is tightened (the budget is checked before a step), later ones keep their
    # interval/AGT boxes, propagated from the tightened ones: between the two extremes
    assert np.array_equal(cut.lower[1], full.lower[1]) and np.array_equal(
        cut.upper[1], full.upper[1]
    )
    assert np.all(cut.lower >= loose.lower - 1e-12) and np.all(cut.upper <= loose.upper + 1e-12)
    assert np.all(cut.lower <= full.lower + 1e-12) and np.all(cut.upper >= full.upper - 1e-12)
    assert np.any(cut.upper - cut.lower > full.upper - full.lower + 1e-9), "budget had no effect"
    r = _run(p, objective="misclassified", tighten_time=1e-9).exact
    assert r["tightened_steps"] == 1
    with pytest.raises(Exception, match="tighten_time must be > 0"):
        ExactMethod(tighten_time=0)


def test_heuristic_attack_is_valid_and_replays():
    p = _problem(threat__eps=0.3, threat__k=2, threat__label_k=1, data__n_train=6)
    obj = TestObjective("misclassified")
    a = coordinate_search(p, obj, time_budget=0.5, seed=0)
    assert threat_violations(p, a.X, a.y) == []
    assert a.value == replay(p, a.X, a.y, obj)
    ch = a.changes(p)
    assert len(ch["features_changed"]) <= 2 and len(ch["labels_changed"]) <= 1


def test_threat_violations_detects_budget_breaks():
    p = _problem(threat__eps=0.1, threat__k=1, data__n_train=5)
    X = p.data.X_train.copy()
    X[0, 0] += 0.1
    X[1, 1] -= 0.05
    assert any("points changed" in v for v in threat_violations(p, X, p.data.y_train))
    X = p.data.X_train.copy()
    X[0, 0] += 0.2
    assert any("outside" in v for v in threat_violations(p, X, p.data.y_train))


def test_target_shift_to_the_box_end_is_inside_the_threat_model():
    """A target set to the end of its box, fl(y0 + label_eps), is a valid attack even where
    fl(fl(y0 + label_eps) - y0) rounds above label_eps (what the coordinate search did on
    diabetes); one ulp beyond the box end is not."""
    p = _diabetes(
        data__n_train=30,
        threat__eps=0.1,
        threat__k=1,
        threat__label_k=1,
        threat__label_eps=0.1,
    )
    y0 = np.asarray(p.data.y_train, dtype=np.float64)
    ends = y0 + 0.1
    rounded_over = np.flatnonzero(np.abs(ends - y0) > 0.1)
    assert rounded_over.size, "the instance must have a target whose shift rounds above eps"
    i = int(rounded_over[0])
    y = y0.copy()
    y[i] = ends[i]
    assert threat_violations(p, p.data.X_train, y) == []
    y[i] = np.nextafter(ends[i], np.inf)
    assert any("target moved" in v for v in threat_violations(p, p.data.X_train, y))


def test_exact_rejects_bad_options():
    from mibpcert.errors import ConfigError, UnsupportedError

    p = _problem()
    with pytest.raises(ConfigError, match="objective 'mse' does not fit"):
        ExactMethod(objective="mse").check(p)
    with pytest.raises(ConfigError, match="unknown exact objective"):
        ExactMethod(objective="loss")
    with pytest.raises(ConfigError, match="test point 99"):
        ExactMethod(test_points=[99]).check(p)
    with pytest.raises(ConfigError, match="cannot solve bilinear"):
        ExactMethod(solver="highs").check(p)
    q = _problem(threat__test_eps=0.1)
    with pytest.raises(UnsupportedError, match="test_eps"):
        ExactMethod().check(q)
    with pytest.raises(ConfigError, match="unknown exact form"):
        ExactMethod(form="dense")
    # the slot form needs a k-of-n threat, the moment form a full-batch MSE model
    with pytest.raises(ConfigError, match="form 'slots' needs"):
        ExactMethod(form="slots").check(_problem(threat__eps=0.1))
    with pytest.raises(ConfigError, match="form 'moments' needs"):
        ExactMethod(form="moments").check(_problem(threat__eps=0.1, training__loss="hinge"))


def test_cli_exact_writes_attack_and_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "certify",
            "--method",
            "exact",
            "--objective",
            "misclassified",
            "--n-train",
            "5",
            "--n-test",
            "10",
            "--model",
            "2-1",
            "--steps",
            "2",
            "--lr",
            "0.5",
            "--eps",
            "0.3",
            "--k",
            "1",
            "--workers",
            "1",
            "--heuristic-time",
            "0.3",
            "--form",
            "points",
            "--time-limit",
            "60",
            "--out",
            str(out),
            "--json",
            "--no-progress",
        ]
    )
    assert rc == 0
    metrics = json.loads(capsys.readouterr().out)
    for key in ("primal", "dual_bound", "gap", "replayed", "heuristic"):
        assert key in metrics
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "exact"
    assert report["exact"]["trace"], "the solve's progress trace is recorded"
    assert report["exact"]["program"]["form"] == "points"  # --form overrides auto (slots)
    assert (out / "best.npz").exists() and (out / "best.csv").exists()
    saved = np.load(out / "best.npz")
    p = _problem(data__n_train=5, data__n_test=10, training__epochs=2, threat__eps=0.3)
    assert replay(p, saved["X"], saved["y"], TestObjective("misclassified")) == float(
        saved["value"]
    )


def test_no_tighten_no_heuristic_same_answer():
    p = _problem(training__loss="hinge", threat__eps=0.3, threat__k=1, data__n_train=4)
    a = _run(p, objective="misclassified").exact
    b = _run(p, objective="misclassified", tighten=False, heuristic=False).exact
    assert a["status"] == b["status"] == "optimal"
    assert a["dual_bound"] == b["dual_bound"]
    assert b["heuristic"] is None


@pytest.mark.parametrize(
    "threat",
    [
        {"threat__eps": 0.5, "threat__k": 1},
        {"threat__eps": 0.5},
        {"threat__eps": 0.0, "threat__label_k": 2},
        {"threat__eps": 0.5, "threat__k": 1, "threat__label_k": 1},  # features and labels
        {"threat__eps": 0.2, "threat__label_k": 1},  # every point in scope moves, one flips
    ],
)
def test_moment_form_equals_per_point_form(threat):
    """The full-batch linear MSE moment form is an exact reformulation: same optimum."""
    from mibpcert.encode.objectives import misclassified_objective
    from mibpcert.encode.unroll import encode_training
    from mibpcert.solvers.tasks import SolveTask, solve_task

    p = _problem(
        training__loss="mse",
        training__epochs=3,
        training__lr=1.0,
        data__n_train=6,
        data__n_test=12,
        threat__points=[0, 1, 2],
        **threat,
    )
    values = []
    for moments in (True, False):
        prog = encode_training(p, form="moments" if moments else "points")
        b = prog.builder.fork()
        obj = misclassified_objective(b, p, prog.layers(p))
        (res,) = solve_task(SolveTask(b.f, [obj], "scip", 120.0, return_x=True))
        assert res.status == "optimal"
        values.append(res.primal)
    clean = TestObjective("misclassified").value(p, p.train_nominal().final)
    assert values[0] == pytest.approx(values[1], abs=1e-5)
    assert values[0] > clean, "the instance must be non-trivial"


def test_moment_form_with_feature_and_target_changes_equals_per_point_form():
    """Regression with k-of-n feature changes and target shifts together: the moment form's
    slot adds ``d_s t'_s`` with its point's shifted target; same optimum as the per-point form,
    and its attack replays to it inside the threat model."""
    from mibpcert.encode.objectives import mse_objective
    from mibpcert.encode.unroll import encode_training
    from mibpcert.solvers.tasks import SolveTask, solve_task

    p = _problem(
        data__dataset="diabetes",
        data__standardize=True,
        data__n_train=6,
        data__n_test=4,
        model__arch="10-1",
        training__loss="mse",
        training__lr=0.2,
        training__epochs=1,  # SCIP closes the moment form of T = 2 slowly (weak LP, §11.2)
        threat__eps=0.3,
        threat__k=1,
        threat__label_k=1,
        threat__label_eps=0.5,
    )
    values = []
    for form in ("moments", "points"):
        prog = encode_training(p, form=form)
        b = prog.builder.fork()
        obj = mse_objective(b, p, prog.layers(p))
        (res,) = solve_task(SolveTask(b.f, [obj], "scip", 120.0, return_x=True))
        assert res.status == "optimal"
        values.append(res.primal)
        X, y = project_attack(p, *prog.poison.attack(res.x, p.data.X_train, p.data.y_train))
        assert not threat_violations(p, X, y)
        theta = p.train_poisoned(X, y).final
        assert TestObjective("mse").value(p, theta) == pytest.approx(res.primal, abs=1e-4)
    assert values[0] == pytest.approx(values[1], rel=1e-5, abs=1e-5)
    assert values[0] > TestObjective("mse").value(p, p.train_nominal().final) + 1e-6


_IRIS = {  # 3-class linear one-vs-rest hinge, one poisoned point
    "data__dataset": "iris",
    "model__arch": "4-3",
    "training__loss": "hinge",
    "threat__k": 1,
    "data__standardize": True,
}
_DIABETES = {  # linear MSE regression with mini-batches, one poisoned point
    "data__dataset": "diabetes",
    "data__standardize": True,
    "model__arch": "10-1",
    "training__loss": "mse",
    "threat__k": 1,
    "threat__eps": 0.3,
    "training__batch_size": 3,
    "training__lr": 0.2,
    "training__epochs": 1,
    "data__n_test": 4,
}


@pytest.mark.parametrize(
    "case",
    [
        {"training__loss": "hinge", "threat__k": 1},
        {"training__loss": "hinge", "threat__k": 2, "training__batch_size": 3},
        {"training__loss": "mse", "threat__k": 1, "training__batch_size": 2, "threat__eps": 0.3},
        {**_IRIS, "threat__eps": 1.0},
        _DIABETES,
        # label changes beside the feature budget: a slot takes its point's label variable
        {"training__loss": "hinge", "threat__k": 1, "threat__label_k": 1, "threat__eps": 0.3},
        {
            "training__loss": "hinge",
            "threat__k": 2,
            "threat__label_k": 1,
            "training__batch_size": 3,
            "threat__eps": 0.3,
        },
        {**_IRIS, "threat__eps": 0.2, "threat__label_k": 1, "threat__label_mode": "any"},
        {**_DIABETES, "threat__label_k": 1, "threat__label_eps": 0.5},
        {"training__loss": "mse", "threat__k": 1, "threat__label_k": 2, "threat__eps": 0.3},
    ],
)
def test_slot_form_equals_per_point_form(case):
    """The slot form of a linear model (k slots choose the poisoned points; the clean points'
    gradients need no bilinear product) is an exact reformulation: same optimum, and its attack
    replays to the optimum."""
    from mibpcert.encode.forms import FORMS
    from mibpcert.encode.objectives import misclassified_objective, mse_objective
    from mibpcert.encode.unroll import encode_training
    from mibpcert.solvers.tasks import SolveTask, solve_task

    kw = {
        "training__epochs": 2,
        "training__lr": 1.0,
        "data__n_train": 6,
        "data__n_test": 12,
        "threat__eps": 0.5,
        "threat__points": [0, 1, 2, 4],
    }
    kw.update(case)
    p = _problem(**kw)
    assert FORMS["slots"].applies(p)
    regression = p.data.task == "regression"
    obj_kind = "mse" if regression else "misclassified"
    values, sizes = [], []
    for slots in (True, False):
        prog = encode_training(p, form="slots" if slots else "points")
        b = prog.builder.fork()
        layers = prog.layers(p)
        obj = mse_objective(b, p, layers) if regression else misclassified_objective(b, p, layers)
        (res,) = solve_task(SolveTask(b.f, [obj], "scip", 120.0, return_x=True))
        assert res.status == "optimal"
        values.append(res.primal)
        sizes.append(len(b.f.products))
        if slots:  # the slot attack is a valid attack that reproduces the optimum
            X, y = project_attack(p, *prog.poison.attack(res.x, p.data.X_train, p.data.y_train))
            assert not threat_violations(p, X, y)
            theta = p.train_poisoned(X, y).final
            if regression:
                assert TestObjective("mse").value(p, theta) == pytest.approx(res.primal, abs=1e-4)
            else:  # the count is reproduced up to margins within the solver's tolerance of 0
                mg = TestObjective("misclassified").margins(p, theta)
                assert np.sum(mg <= 0.0) <= res.primal + 1e-6
                assert np.sum(mg <= 1e-5) >= res.primal - 1e-6
            start = prog.poison.assignment(p.data.X_train, p.data.y_train, X, y)
            assert start, "the attack maps back onto the slot variables"
    clean = TestObjective(obj_kind).value(p, p.train_nominal().final)
    assert values[0] == pytest.approx(values[1], abs=1e-5)
    assert values[0] > clean + 1e-6, "the instance must be non-trivial"
    # the cost model that picks the form by default agrees with the programs built
    assert FORMS["slots"].pays(p, len(p.batches())) == (sizes[0] < sizes[1])
