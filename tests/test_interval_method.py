"""The ``interval`` method end to end: collapse onto clean training, sampling soundness against
random attacks, and monotonicity in the threat model."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from mibpcert.data.datasets import Dataset, load_dataset
from mibpcert.methods import ParameterBounds, get_method
from mibpcert.model.losses import predict_classes
from mibpcert.model.network import Architecture, init_params
from mibpcert.model.network import forward as net_forward
from mibpcert.model.recipe import TrainingRecipe
from mibpcert.pipeline import certify_problem
from mibpcert.problem import Problem
from mibpcert.threat.model import DiscreteFeature, ThreatModel

# ----------------------------------------------------------------------------- data (cached)

_CACHE: dict = {}


def data(name: str) -> Dataset:
    if name not in _CACHE:
        if name == "moons":
            ds = load_dataset("moons", n_train=30, n_test=40, seed=1)
        elif name == "moons40":
            ds = load_dataset("moons", n_train=40, n_test=60, noise=0.05, seed=2)
        elif name == "iris":
            ds = load_dataset("iris", n_train=30, n_test=30, standardize=True, seed=0)
        elif name == "iris-full":
            ds = load_dataset("iris", standardize=True, seed=0)
        elif name == "breast-cancer":
            ds = load_dataset("breast-cancer", n_train=40, n_test=40, standardize=True, seed=0)
        elif name == "diabetes":
            ds = load_dataset("diabetes", n_train=30, n_test=30, standardize=True, seed=0)
        elif name == "diabetes-full":
            ds = load_dataset("diabetes", standardize=True, seed=0)
        elif name == "diabetes2":
            # two regression targets: the diabetes target and a nonlinear function of X
            base = data("diabetes")
            W = np.random.default_rng(0).normal(size=(10, 1))

            def two(X, y):
                return np.stack([y, np.tanh(X @ W)[:, 0]], axis=1)

            ds = replace(
                base, y_train=two(base.X_train, base.y_train), y_test=two(base.X_test, base.y_test)
            )
        elif name == "discrete":
            base = data("moons")
            rng = np.random.default_rng(7)

            def extend(X):
                lev = rng.integers(0, 4, size=(len(X), 1)).astype(np.float64)
                flag = rng.choice([0.0, 1.0], size=(len(X), 1))
                return np.hstack([X, lev, flag])

            ds = replace(base, X_train=extend(base.X_train), X_test=extend(base.X_test))
        else:  # pragma: no cover
            raise KeyError(name)
        _CACHE[name] = ds
    return _CACHE[name]


def make_problem(ds_name, arch, loss, threat=None, init_seed=0, **recipe) -> Problem:
    ds = data(ds_name)
    a = Architecture.parse(arch)
    recipe.setdefault("lr", 0.1)
    recipe.setdefault("epochs", 4)
    return Problem(
        ds,
        a,
        TrainingRecipe(loss=loss, **recipe),
        threat or ThreatModel(),
        init_params(a, init_seed),
    )


def warm_start(ds_name, arch, loss) -> np.ndarray:
    key = ("warm", ds_name, arch, loss)
    if key not in _CACHE:
        lr = 0.05 if loss == "mse" else 0.3
        clean = make_problem(ds_name, arch, loss, ThreatModel(), lr=lr, epochs=60)
        _CACHE[key] = clean.train_nominal().final
    return _CACHE[key]


# ----------------------------------------------------------------------------- eps = 0, k = 0

TRIVIAL = [
    ("moons40", "2-10-1", "hinge", {"lr": 0.5, "epochs": 10}),
    ("moons40", "2-20-20-1", "bce", {"lr": 0.5, "epochs": 10}),
    ("iris-full", "4-8-3", "ce", {"lr": 0.1, "epochs": 10}),
    ("diabetes-full", "10-1", "mse", {"lr": 0.05, "epochs": 5}),
    ("moons40", "2-10-1", "hinge", {"lr": 0.2, "epochs": 3, "batch_size": 7}),
    ("iris-full", "4-8-3", "ce", {"lr": 0.1, "epochs": 2, "batch_size": 16, "shuffle": False}),
    ("diabetes-full", "10-4-1", "mse", {"lr": 0.02, "epochs": 2, "batch_size": 32}),
]


@pytest.mark.parametrize("ds_name,arch,loss,recipe", TRIVIAL)
def test_trivial_threat_collapses_onto_clean_training(ds_name, arch, loss, recipe):
    problem = make_problem(ds_name, arch, loss, ThreatModel(), **recipe)
    assert problem.threat.is_trivial
    bounds = get_method("interval").bound(problem)
    nominal = problem.train_nominal().thetas
    assert bounds.lower.shape == bounds.upper.shape == nominal.shape
    assert bounds.n_steps == problem.n_steps == len(nominal) - 1
    assert np.array_equal(bounds.lower[0], problem.theta0)
    assert np.array_equal(bounds.upper[0], problem.theta0)
    assert bounds.contains(nominal).all()
    width = bounds.widths()
    assert np.all(width >= 0)
    assert np.all(width <= 1e-11 * (1.0 + np.abs(nominal))), np.max(width / (1 + np.abs(nominal)))
    # training actually moved the parameters far more than the box width
    assert np.max(np.abs(nominal[-1] - nominal[0])) > 1e6 * np.max(width[-1])

    result = certify_problem(problem)
    m = result.metrics
    assert result.nominal_inside and not result.warnings
    if problem.data.task == "classification":
        assert m["certified_accuracy"] == m["nominal_accuracy"]
        assert m["stable_rate"] == 1.0
        nominal_pred = predict_classes(net_forward(problem.arch, nominal[-1], problem.data.X_test))
        assert np.array_equal(result.test.certified_class, nominal_pred)
    else:
        assert m["best_case_mse_bound"] <= m["nominal_mse"] <= m["worst_case_mse_bound"]
        assert m["worst_case_mse_bound"] == pytest.approx(m["nominal_mse"], rel=1e-9)


# ----------------------------------------------------------------------------- sampling soundness


@dataclass
class Case:
    ds: str
    arch: str
    loss: str
    threat: dict
    recipe: dict = field(default_factory=dict)
    expect_certified: bool = True
    n_attacks: int = 200
    warm: bool = True

    def problem(self) -> Problem:
        threat = ThreatModel(**self.threat)
        problem = make_problem(self.ds, self.arch, self.loss, threat, **self.recipe)
        if self.warm:
            # start from a clean pre-trained model, so that predictions have margins and the
            # certified-prediction checks below are not vacuous
            problem = replace(problem, theta0=warm_start(self.ds, self.arch, self.loss))
        return problem

    def __str__(self) -> str:  # readable test ids
        return f"{self.ds}-{self.arch}-{self.loss}-{self.threat}-{self.recipe}"


MB = {"batch_size": 8, "shuffle": True, "seed": 3}

GROUPS: dict[str, list[Case]] = {
    "features": [
        Case("moons", "2-10-1", "hinge", {"eps": 1e-3}, {"lr": 0.5}),
        Case("moons", "2-10-1", "hinge", {"eps": 1e-2}, {"lr": 0.2, "epochs": 2, **MB}),
        Case("moons", "2-8-8-1", "bce", {"eps": 1e-3}, {"lr": 0.2, "epochs": 2, **MB}),
        Case("iris", "4-8-3", "ce", {"eps": 1e-2}, {"lr": 0.2}),
        Case(
            "iris",
            "4-6-6-3",
            "ce",
            {"eps": 1e-3},
            {"lr": 0.3, "epochs": 2, "batch_size": 10, "lr_schedule": "inverse", "lr_decay": 0.5},
        ),
        Case("moons", "2-1", "mse", {"eps": 1e-2}, {"lr": 0.1, "epochs": 5}),
        Case(
            "breast-cancer",
            "30-1",
            "bce",
            {"eps": 1e-3},
            {"lr": 0.1, "epochs": 3, "lr_schedule": "exponential", "lr_decay": 0.7},
        ),
    ],
    "budgets": [
        Case("moons", "2-10-1", "hinge", {"eps": 1e-2, "points": (0, 3, 5, 7, 29)}, {"lr": 0.5}),
        Case("moons", "2-10-1", "hinge", {"eps": 1e-2, "k": 3}, {"lr": 0.1, "epochs": 2, **MB}),
        Case("iris", "4-8-3", "ce", {"eps": 1e-2, "points": (1, 2, 4, 8, 16), "k": 2}, {}),
        Case(
            "moons",
            "2-10-1",
            "bce",
            {"eps": 1e-2, "k": 3, "label_k": 2, "paired": True},
            {"lr": 0.1, "epochs": 3},
        ),
    ],
    "labels": [
        Case(
            "moons",
            "2-10-1",
            "hinge",
            {"label_k": 2, "label_mode": "flip"},
            {"lr": 0.05, "epochs": 3},
        ),
        Case(
            "iris",
            "4-8-3",
            "ce",
            {"eps": 1e-3, "label_k": 2, "label_mode": "any"},
            {"lr": 0.05, "epochs": 3},
        ),
        Case("iris", "4-8-3", "ce", {"label_k": 2, "label_mode": "virginica"}, {"lr": 0.1}),
        Case("iris", "4-3", "ce", {"label_k": 3, "label_mode": 0}, {"lr": 0.05, "epochs": 1, **MB}),
        Case(
            "moons",
            "2-6-1",
            "mse",
            {"eps": 1e-3, "label_k": 2, "label_mode": "flip"},
            {"lr": 0.02, "epochs": 1, **MB},
        ),
    ],
    "regression": [
        Case("diabetes", "10-1", "mse", {"eps": 1e-3}, {"lr": 0.05}),
        Case(
            "diabetes",
            "10-4-1",
            "mse",
            {"eps": 1e-2, "label_k": 3, "label_eps": 0.1},
            {"lr": 0.02, "epochs": 1, **MB},
        ),
        Case(
            "diabetes",
            "10-1",
            "mse",
            {"label_k": 5, "label_eps": 0.05, "test_eps": 1e-2},
            {"lr": 0.05, "epochs": 3},
        ),
        Case(
            "diabetes2",
            "10-3-2",
            "mse",
            {"eps": 1e-2, "label_k": 3, "label_eps": 0.1, "test_eps": 1e-2},
            {"lr": 0.02, "epochs": 2, **MB},
        ),
    ],
    "discrete_bounds_clip": [
        Case(
            "discrete",
            "4-8-1",
            "hinge",
            {
                "eps": 1e-2,
                "discrete": (
                    DiscreteFeature(2, (0.0, 1.0, 2.0, 3.0), mode="shift"),
                    DiscreteFeature(3, (-1.0,), mode="any"),
                ),
            },
            {"lr": 0.05, "epochs": 2},
        ),
        Case(
            "discrete",
            "4-1",
            "bce",
            {
                "eps": 0.0,
                "k": 4,
                "discrete": (
                    DiscreteFeature(2, (0.0, 1.0, 2.0, 3.0), "shift", max_shift=2, direction="up"),
                ),
            },
            {"lr": 0.05, "epochs": 3},
        ),
        Case("moons", "2-10-1", "hinge", {"eps": 1e-2, "feature_bounds": "data"}, {"lr": 0.5}),
        Case("moons", "2-10-1", "hinge", {"eps": 1e-2}, {"lr": 0.5, "clip": 0.05, **MB}),
        Case(
            "moons",
            "2-10-1",
            "hinge",
            {"eps": np.inf, "k": 2},
            {"lr": 0.1, "clip": 0.5, "epochs": 2},
        ),
        Case(
            "moons",
            "2-8-1",
            "bce",
            {"eps": np.inf, "points": (2, 9), "feature_bounds": (-3.0, 3.0)},
            {"lr": 0.1, "clip": 0.1, "epochs": 2},
        ),
    ],
    "test_eps": [
        Case("moons", "2-10-1", "hinge", {"eps": 1e-3, "test_eps": 1e-2}, {"lr": 0.5}),
        Case("iris", "4-8-3", "ce", {"eps": 1e-3, "test_eps": 0.05}, {"lr": 0.1}),
        Case(
            "moons",
            "2-8-8-1",
            "bce",
            {"eps": 1e-3, "k": 2, "test_eps": 1e-2},
            {"lr": 0.1, "epochs": 1, **MB},
        ),
    ],
}


def _resolve(case: Case) -> Case:
    if case.threat.get("feature_bounds") == "data":
        ds = data(case.ds)
        X = np.vstack([ds.X_train, ds.X_test])
        # the tightest bounds that hold the data: clipping to them really happens
        case = replace(case, threat={**case.threat, "feature_bounds": (X.min(0), X.max(0))})
    return case


def _perturbed_test_inputs(rng, lo, hi, n):
    for _ in range(n):
        pick = rng.random(lo.shape)
        u = lo + (hi - lo) * rng.random(lo.shape)
        yield np.where(pick < 0.35, lo, np.where(pick < 0.7, hi, u))


def check_case(case: Case, seed: int) -> dict:
    """Run the method, then attack it ``n_attacks`` times; return counters."""
    case = _resolve(case)
    problem = case.problem()
    result = certify_problem(problem)
    assert result.nominal_inside
    bounds: ParameterBounds = result.bounds
    assert bounds.lower.shape == (problem.n_steps + 1, problem.arch.n_params)
    assert np.all(bounds.lower <= bounds.upper)
    assert not np.isnan(bounds.lower).any() and not np.isnan(bounds.upper).any()
    assert np.all(np.isfinite(bounds.upper[-1]))  # finite even for eps = inf (clipping)

    ds, threat, arch = problem.data, problem.threat, problem.arch
    rng = np.random.default_rng(seed)
    in_lo, in_hi = threat.feature_box(ds.X_train)
    test_lo, test_hi = threat.test_box(ds.X_test)
    counts = {"attacks": 0, "certified": 0, "checked_predictions": 0}
    cert = result.test.certified_class
    if ds.task == "classification":
        counts["certified"] = int((cert >= 0).sum())
        if case.expect_certified:
            assert (cert >= 0).any(), "nothing certified: the prediction check would be vacuous"
    for a in range(case.n_attacks):
        vertex_prob = 0.9 if a % 2 else 0.5
        Xp, yp = threat.sample(
            ds.X_train, ds.y_train, rng, ds.task, ds.n_classes, vertex_prob=vertex_prob
        )
        # the attack is one the threat model allows
        if threat.perturbs_features and not np.isinf(threat.eps):
            assert np.all((in_lo <= Xp) & (Xp <= in_hi))
        changed = np.any(Xp != ds.X_train, axis=1)
        if threat.k is not None:
            assert changed.sum() <= threat.k
        if ds.task == "classification":
            assert (yp != ds.y_train).sum() <= threat.label_k
        else:
            t_lo, t_hi = threat.target_box(ds.y_train)
            assert np.all((t_lo <= yp) & (yp <= t_hi))
            assert np.any((yp != ds.y_train).reshape(len(yp), -1), axis=1).sum() <= threat.label_k
        traj = problem.train_poisoned(Xp, yp)
        inside = bounds.contains(traj.thetas)
        assert inside.all(), f"attack {a} leaves the box at step {int(np.argmin(inside))}"
        counts["attacks"] += 1
        theta = traj.final
        inputs = [ds.X_test]
        if threat.test_eps > 0:
            inputs += list(_perturbed_test_inputs(rng, test_lo, test_hi, 3))
        for Xt in inputs:
            out = net_forward(arch, theta, Xt)
            if ds.task == "classification":
                pred = predict_classes(out)
                ok = cert >= 0
                assert np.array_equal(pred[ok], cert[ok]), f"attack {a} flips a certified point"
                counts["checked_predictions"] += int(ok.sum())
            else:
                ob = result.test.output_bounds
                assert np.all((ob.lo <= out) & (out <= ob.hi))
                y = ds.y_test.reshape(len(Xt), -1)
                mse = float(np.mean((out - y) ** 2))
                assert mse <= result.metrics["worst_case_mse_bound"]
                assert mse >= result.metrics["best_case_mse_bound"]
                counts["checked_predictions"] += len(Xt)
    return counts


@pytest.mark.parametrize("group", list(GROUPS))
def test_sampling_soundness(group):
    total = {"attacks": 0, "certified": 0, "checked_predictions": 0}
    for i, case in enumerate(GROUPS[group]):
        counts = check_case(case, seed=1000 + i)
        for k in total:
            total[k] += counts[k]
    assert total["attacks"] >= 200
    assert total["checked_predictions"] > 0


# ----------------------------------------------------------------------------- monotonicity


def _assert_nested(inner: ParameterBounds, outer: ParameterBounds) -> None:
    assert np.all(outer.lower <= inner.lower), "a larger threat set gave a higher lower bound"
    assert np.all(outer.upper >= inner.upper), "a larger threat set gave a lower upper bound"


@pytest.mark.parametrize(
    "ds_name,arch,loss,recipe,extra",
    [
        ("moons", "2-10-1", "hinge", {"lr": 0.5, **MB}, {}),
        ("iris", "4-8-3", "ce", {"lr": 0.1}, {"label_k": 1, "label_mode": "any"}),
        ("diabetes", "10-4-1", "mse", {"lr": 0.05}, {}),
        ("moons", "2-8-8-1", "bce", {"lr": 0.3, "clip": 0.2}, {"points": (0, 1, 2, 3)}),
    ],
)
def test_larger_eps_never_gives_narrower_boxes(ds_name, arch, loss, recipe, extra):
    method = get_method("interval")
    prev = None
    for eps in (0.0, 1e-4, 1e-3, 1e-2, 3e-2):
        problem = make_problem(ds_name, arch, loss, ThreatModel(eps=eps, **extra), **recipe)
        b = method.bound(problem)
        if prev is not None:
            _assert_nested(prev, b)
            assert b.widths()[-1].sum() > prev.widths()[-1].sum()
        prev = b


def test_more_label_changes_never_give_narrower_boxes():
    method = get_method("interval")
    base = dict(eps=1e-3)
    small = method.bound(make_problem("iris", "4-8-3", "ce", ThreatModel(**base), lr=0.1))
    target = method.bound(
        make_problem("iris", "4-8-3", "ce", ThreatModel(**base, label_k=2, label_mode=1), lr=0.1)
    )
    anyc = method.bound(
        make_problem(
            "iris", "4-8-3", "ce", ThreatModel(**base, label_k=2, label_mode="any"), lr=0.1
        )
    )
    _assert_nested(small, target)
    _assert_nested(target, anyc)
    # a subset of perturbed points is inside the all-points box
    sub = method.bound(
        make_problem("moons", "2-10-1", "hinge", ThreatModel(eps=1e-2, points=(1, 2)))
    )
    full = method.bound(make_problem("moons", "2-10-1", "hinge", ThreatModel(eps=1e-2)))
    _assert_nested(sub, full)


def test_interval_method_notes_relaxations():
    method = get_method("interval")
    p = make_problem("moons", "2-10-1", "hinge", ThreatModel(eps=1e-2, k=3, label_k=2))
    notes = method.check(p)
    assert any("k=3" in n for n in notes)
    assert any("label" in n for n in notes)
    assert method.bound(p).notes == notes
    assert method.check(make_problem("moons", "2-10-1", "hinge", ThreatModel(eps=1e-2))) == []
