"""SGD momentum and Nesterov: the trainer (against PyTorch's SGD), its interval version, sound
bounds of interval, agt and mibp (the velocity as state with its own box), eps = 0 collapse,
sampled attacks with full and mini-batches, checkpoints, refusals and the CLI."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mibpcert import Config
from mibpcert.cli import main
from mibpcert.data import load_dataset
from mibpcert.domains.interval import Interval
from mibpcert.errors import ModelError, UnsupportedError
from mibpcert.methods import get_method
from mibpcert.model import Architecture, TrainingRecipe, init_params
from mibpcert.model.trainer import train
from mibpcert.ops import sgd
from mibpcert.pipeline import build_problem, certify_problem
from mibpcert.problem import Problem
from mibpcert.threat import ThreatModel

MIBP = dict(solver="highs", relax="milp", executor="inprocess", workers=1)
MIBP_LP = {**MIBP, "relax": "lp"}


def _problem(threat: ThreatModel, epochs=3, batch_size=None, **rec) -> Problem:
    data = load_dataset("moons", n_train=16, n_test=20, seed=2)
    a = Architecture.parse("2-5-1")
    recipe = TrainingRecipe(loss="hinge", lr=0.3, epochs=epochs, batch_size=batch_size, **rec)
    return Problem(data, a, recipe, threat, init_params(a, 0))


def _sampled_inside(p: Problem, bounds, n: int = 40, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for s in range(n):
        X, y = p.threat.sample(
            p.data.X_train, p.data.y_train, rng, p.data.task, p.data.n_classes,
            vertex_prob=0.8 if s % 2 else 0.3,
        )  # fmt: skip
        assert bounds.contains(p.train_poisoned(X, y).thetas).all(), "an attack left the boxes"


@pytest.mark.parametrize("nesterov", [False, True])
def test_trainer_matches_pytorch_sgd_with_momentum(nesterov):
    torch = pytest.importorskip("torch")
    data = load_dataset("moons", n_train=12, n_test=4, seed=0)
    a = Architecture.parse("2-4-1")
    rec = TrainingRecipe(
        loss="mse", lr=0.2, epochs=4, batch_size=5, momentum=0.8, nesterov=nesterov,
        weight_decay=0.05,
    )  # fmt: skip
    theta0 = init_params(a, 1)
    y = data.y_train.astype(np.float64) * 2 - 1
    ours = train(a, rec, data.X_train, y, theta0, task="regression").thetas
    # the same recursion in PyTorch (float64)
    layers = a.unflatten(theta0)
    params = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for pr in layers for p in pr]
    opt = torch.optim.SGD(
        params, lr=rec.lr, momentum=rec.momentum, nesterov=nesterov, weight_decay=0.05
    )
    X = torch.tensor(data.X_train, dtype=torch.float64)
    Y = torch.tensor(y, dtype=torch.float64).reshape(-1, 1)
    for idx in rec.batches(len(X)):
        opt.zero_grad()
        h = X[idx] @ params[0].T + params[1]
        out = torch.relu(h) @ params[2].T + params[3]
        loss = ((out - Y[idx]) ** 2).mean()
        loss.backward()
        opt.step()
    theirs = np.concatenate([p.detach().numpy().ravel() for p in params])
    np.testing.assert_allclose(ours[-1], theirs, rtol=1e-10, atol=1e-12)
    assert not np.allclose(ours[-1], train(
        a, dataclasses.replace(rec, momentum=0.0, nesterov=False), data.X_train, y, theta0,
        task="regression").thetas[-1])  # fmt: skip


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_step_and_its_interval_version(nesterov):
    rng = np.random.default_rng(0)
    m, lr, wd, l1, mu = 40, 0.1, 0.3, 0.02, 0.9
    theta, v, g = rng.normal(size=m), rng.normal(size=m), rng.normal(size=m)
    nxt, v2 = sgd.step(theta, v, g, lr, wd, l1, mu, nesterov)
    # the recursion it claims: d = g + wd theta + l1 sign, v' = mu v + d, theta' = ...
    d = g + wd * theta + l1 * np.sign(theta)
    np.testing.assert_allclose(v2, mu * v + d, atol=1e-14)
    want = theta - lr * ((d + mu * (mu * v + d)) if nesterov else (mu * v + d))
    np.testing.assert_allclose(nxt, want, atol=1e-14)
    a, b, c, ls = sgd.momentum_terms(lr, wd, mu, nesterov)
    np.testing.assert_allclose(a * theta + b * g + c * v - lr * l1 * ls * np.sign(theta), want,
                               atol=1e-14)  # fmt: skip
    # mu = 0 is plain SGD, bit for bit
    assert np.array_equal(sgd.step(theta, None, g, lr, wd, l1)[0], sgd.update(theta, g, lr, wd, l1))
    # the interval version holds every float result over the boxes
    tb, vb, gb = (Interval(x - 0.01, x + 0.01) for x in (theta, v, g))
    out, vout = sgd.step_interval(tb, vb, gb, lr, wd, l1, mu, nesterov)
    for _ in range(200):
        t, vv, gg = (rng.uniform(x.lo, x.hi) for x in (tb, vb, gb))
        n1, n2 = sgd.step(t, vv, gg, lr, wd, l1, mu, nesterov)
        assert np.all((out.lo <= n1) & (n1 <= out.hi))
        assert np.all((vout.lo <= n2) & (n2 <= vout.hi))


def test_bad_momentum_is_a_clear_error():
    for mu in (-0.1, 1.0, float("nan")):
        with pytest.raises(ModelError, match="momentum must be a number in"):
            TrainingRecipe(momentum=mu)
    with pytest.raises(ModelError, match="nesterov needs momentum"):
        TrainingRecipe(nesterov=True)


CASES = [
    ("interval", {}),
    ("agt", {}),
    ("mibp", MIBP),
]


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("method,opts", CASES, ids=[c[0] for c in CASES])
def test_eps_zero_collapses_onto_momentum_training(method, opts, nesterov):
    p = _problem(ThreatModel(eps=0.0), batch_size=6, momentum=0.9, nesterov=nesterov)
    b = get_method(method, **opts).bound(p)
    nominal = p.train_nominal().thetas
    assert b.contains(nominal).all()
    assert float(b.widths().max()) < 1e-9


@pytest.mark.parametrize("batch_size", [None, 6])
@pytest.mark.parametrize(
    "method,opts,threat,nesterov",
    [
        ("interval", {}, ThreatModel(eps=0.1), False),
        ("interval", {}, ThreatModel(eps=0.1), True),
        ("agt", {}, ThreatModel(eps=0.1, k=3, label_k=1), False),
        ("agt", {}, ThreatModel(eps=0.1, k=3), True),
        ("mibp", MIBP, ThreatModel(eps=0.1, k=3), False),
        ("mibp", MIBP_LP, ThreatModel(eps=0.1, label_k=2), True),
    ],
    ids=["interval", "interval-nesterov", "agt-k", "agt-k-nesterov", "mibp-k", "mibp-labels-nes"],
)  # fmt: skip
def test_sampled_attacks_stay_inside_momentum_bounds(method, opts, threat, nesterov, batch_size):
    p = _problem(
        threat, batch_size=batch_size, momentum=0.9, nesterov=nesterov, weight_decay=0.1, l1=0.01
    )
    b = get_method(method, **opts).bound(p)
    _sampled_inside(p, b)


def test_momentum_changes_the_bounds_it_claims_to_bound():
    """The boxes follow the momentum trainer: without momentum in the method, the momentum
    trajectory leaves them (so the tests above can fail); mibp is never looser than interval."""
    mom = _problem(ThreatModel(eps=0.01), momentum=0.9)
    plain = _problem(ThreatModel(eps=0.01))
    assert not get_method("interval").bound(plain).contains(mom.train_nominal().thetas).all()
    i = get_method("interval").bound(mom)
    assert i.contains(mom.train_nominal().thetas).all()
    m = get_method("mibp", **MIBP).bound(mom)
    assert np.all(m.lower >= i.lower - 1e-12) and np.all(m.upper <= i.upper + 1e-12)
    assert float(m.widths()[-1].sum()) < float(i.widths()[-1].sum())


def test_mibp_momentum_resume_continues_the_velocity(tmp_path):
    p2 = _problem(ThreatModel(eps=0.05), epochs=1, batch_size=8, momentum=0.9)
    p3 = _problem(ThreatModel(eps=0.05), epochs=2, batch_size=8, momentum=0.9)
    get_method("mibp", out_dir=tmp_path, **MIBP).bound(p2)
    resumed = get_method("mibp", out_dir=tmp_path, resume=True, **MIBP).bound(p3)
    fresh = get_method("mibp", **MIBP).bound(p3)
    np.testing.assert_allclose(resumed.lower, fresh.lower, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(resumed.upper, fresh.upper, rtol=1e-9, atol=1e-12)


def test_exact_and_affine_sets_refuse_momentum():
    p = _problem(ThreatModel(eps=0.1), momentum=0.5)
    with pytest.raises(UnsupportedError, match="does not unroll SGD momentum"):
        get_method("exact", solver="highs").check(p)
    for method in ("interval", "agt"):
        with pytest.raises(UnsupportedError, match="does not carry the momentum velocity"):
            get_method(method, sets="affine").bound(p)
    with pytest.raises(UnsupportedError, match="does not carry the momentum velocity"):
        get_method("mibp", sets="affine", **MIBP).check(p)


def test_momentum_from_config_and_cli(tmp_path):
    cfg = Config()
    cfg.data.dataset, cfg.data.n_train, cfg.data.n_test = "moons", 20, 10
    cfg.model.arch = "2-4-1"
    cfg.training.epochs, cfg.training.momentum, cfg.training.nesterov = 2, 0.9, True
    cfg.threat.eps = 0.01
    p = build_problem(cfg)
    assert p.recipe.momentum == 0.9 and p.recipe.nesterov
    run = certify_problem(p, "agt")
    assert run.nominal_inside
    assert run.metrics["certified_accuracy"] <= run.metrics["nominal_accuracy"]
    rc = main([
        "certify", "--dataset", "moons", "--n-train", "20", "--n-test", "10", "--model", "2-4-1",
        "--epochs", "2", "--momentum", "0.9", "--nesterov", "--eps", "0.01", "--method",
        "interval", "--out", str(tmp_path / "cli"), "--no-progress", "--quiet",
    ])  # fmt: skip
    assert rc == 0
    import json

    rep = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert rep["problem"]["recipe"]["momentum"] == 0.9
    assert rep["problem"]["recipe"]["nesterov"] is True
