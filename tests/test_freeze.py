"""Fine-tuning with a frozen prefix (``--freeze N``, ``--prefix`` torch nn.Sequential): the
prefix's sound feature boxes, the trainer against PyTorch with frozen layers, eps = 0 collapse
and sampled raw-input attacks (full and mini-batches, both budget scopes) for interval, agt and
mibp, refusals, reports and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mibpcert import Config
from mibpcert.cli import main
from mibpcert.data import load_dataset
from mibpcert.errors import ConfigError, ModelError, UnsupportedError
from mibpcert.methods import get_method
from mibpcert.model import Architecture, TrainingRecipe, init_params
from mibpcert.model.prefix import FrozenPrefix, PrefixLayer
from mibpcert.pipeline import build_problem, certify_problem
from mibpcert.problem import Problem, fine_tune, freeze_layers
from mibpcert.threat import ThreatModel

MIBP = dict(solver="highs", relax="milp", executor="inprocess", workers=1)


def _random_prefix(rng, sizes=(3, 6, 5, 4), acts=("relu", "tanh", "sigmoid")) -> FrozenPrefix:
    layers = []
    for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(PrefixLayer("linear", rng.normal(size=(o, i)), rng.normal(size=o)))
        layers.append(PrefixLayer(acts[k % len(acts)]))
    return FrozenPrefix(tuple(layers), "random")


def _problem(threat: ThreatModel, arch="2-6-4-1", freeze=1, epochs=2, batch_size=None, **rec):
    data = load_dataset("moons", n_train=16, n_test=20, seed=2)
    a = Architecture.parse(arch)
    recipe = TrainingRecipe(loss="hinge", lr=0.3, epochs=epochs, batch_size=batch_size, **rec)
    return freeze_layers(Problem(data, a, recipe, threat, init_params(a, 0)), freeze)


def _sampled_inside(p: Problem, bounds, n: int = 40, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for s in range(n):
        schedule = p.sample_attack(rng, vertex_prob=0.8 if s % 2 else 0.3)
        assert bounds.contains(p.train_schedule(schedule).thetas).all(), "an attack left the boxes"


# ----------------------------------------------------------------------------- the prefix


def test_prefix_image_holds_the_features_of_every_input_in_the_box():
    rng = np.random.default_rng(0)
    prefix = _random_prefix(rng)
    X = rng.normal(size=(30, 3))
    lo, hi = X - 0.3, X + 0.3
    lo[:5], hi[:5] = X[:5], X[:5]  # five points the attacker cannot move
    box = prefix.image(lo, hi)
    assert box.shape == (30, 4) and box.is_valid()
    np.testing.assert_array_equal(box.lo[:5], prefix.forward(X[:5]))
    np.testing.assert_array_equal(box.hi[:5], prefix.forward(X[:5]))
    for s in range(300):
        Z = np.where(rng.random(X.shape) < 0.5, lo, hi) if s % 2 else rng.uniform(lo, hi)
        F = prefix.forward(Z)
        assert np.all((box.lo <= F) & (F <= box.hi))
    # the box is not vacuous: it is close to the sampled range
    assert float(box.width[5:].max()) < 10.0


def test_prefix_image_of_a_linear_layer_is_its_exact_range():
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(4, 3)), rng.normal(size=4)
    prefix = FrozenPrefix((PrefixLayer("linear", W, b),))
    x = rng.normal(size=(1, 3))
    box = prefix.image(x - 0.1, x + 0.1)
    centre = x @ W.T + b
    radius = 0.1 * np.abs(W).sum(axis=1)
    np.testing.assert_allclose(box.lo, centre - radius, rtol=0, atol=1e-13)
    np.testing.assert_allclose(box.hi, centre + radius, rtol=0, atol=1e-13)
    assert np.all(box.lo <= centre - radius) and np.all(box.hi >= centre + radius)


def test_freeze_trains_what_pytorch_trains_with_frozen_layers():
    torch = pytest.importorskip("torch")
    data = load_dataset("iris", seed=0)
    a = Architecture.parse("4-6-5-3")
    rec = TrainingRecipe(loss="ce", lr=0.2, epochs=3, batch_size=40, momentum=0.9,
                         weight_decay=0.01)  # fmt: skip
    theta0 = init_params(a, 3)
    p = freeze_layers(Problem(data, a, rec, ThreatModel(), theta0), 1)
    ours = p.train_nominal().thetas[-1]
    layers = a.unflatten(theta0)
    params = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for pr in layers for x in pr]
    opt = torch.optim.SGD(params[2:], lr=rec.lr, momentum=0.9, weight_decay=0.01)
    X = torch.tensor(data.X_train, dtype=torch.float64)
    Y = torch.tensor(data.y_train)
    for idx in rec.batches(len(X)):
        opt.zero_grad()
        h = torch.relu(X[idx] @ params[0].T + params[1])
        out = torch.relu(h @ params[2].T + params[3]) @ params[4].T + params[5]
        torch.nn.functional.cross_entropy(out, Y[idx]).backward()
        opt.step()
    np.testing.assert_array_equal(params[0].detach().numpy(), layers[0][0])  # frozen
    theirs = np.concatenate([x.detach().numpy().ravel() for x in params[2:]])
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    assert p.param_names()[0] == "W2[0,0]" and p.frozen_layers == 1


def test_freeze_errors_are_specific():
    with pytest.raises(ModelError, match="is a linear model"):
        _problem(ThreatModel(), arch="2-1", freeze=1)
    with pytest.raises(ModelError, match="freeze between 1 and 2"):
        _problem(ThreatModel(), freeze=3)
    cfg = Config()
    cfg.model.freeze = -1
    with pytest.raises(ConfigError, match="freeze must be a non-negative integer"):
        build_problem(cfg)
    rng = np.random.default_rng(0)
    prefix = _random_prefix(rng, sizes=(2, 5, 3))
    data = load_dataset("moons", n_train=16, n_test=20, seed=2)
    a = Architecture.parse("4-1")
    with pytest.raises(ModelError, match=r"prefix \(random\) gives 3 features; use '3-1'"):
        fine_tune(data, prefix, a, TrainingRecipe(), ThreatModel(), init_params(a, 0))
    with pytest.raises(ModelError, match="takes 3 inputs but dataset"):
        fine_tune(data, _random_prefix(rng), a, TrainingRecipe(), ThreatModel(), init_params(a))


# ----------------------------------------------------------------------------- soundness

CASES = [("interval", {}), ("agt", {}), ("mibp", MIBP)]


@pytest.mark.parametrize("method,opts", CASES, ids=[c[0] for c in CASES])
def test_eps_zero_collapses_onto_fine_tuning(method, opts):
    p = _problem(ThreatModel(eps=0.0), batch_size=6, momentum=0.5)
    b = get_method(method, **opts).bound(p)
    assert b.contains(p.train_nominal().thetas).all()
    assert float(b.widths().max()) < 1e-9


@pytest.mark.parametrize("batch_size", [None, 6])
@pytest.mark.parametrize(
    "method,opts,threat",
    [
        ("interval", {}, ThreatModel(eps=0.1)),
        ("agt", {}, ThreatModel(eps=0.1, k=3, label_k=1)),
        ("agt", {}, ThreatModel(eps=0.1, k=2, label_k=1, budget_scope="batch")),
        ("mibp", MIBP, ThreatModel(eps=0.1, k=2)),
    ],
    ids=["interval", "agt-k", "agt-batch-scope", "mibp-k"],
)
def test_sampled_raw_attacks_stay_inside_fine_tuning_bounds(method, opts, threat, batch_size):
    p = _problem(threat, batch_size=batch_size)
    b = get_method(method, **opts).bound(p)
    _sampled_inside(p, b)
    assert float(b.widths()[-1].max()) > 0  # the attack moves something


def test_fine_tuning_bounds_are_tighter_than_training_everything():
    """Freezing the first layer removes its parameters from the attack's reach: the trained
    layers' boxes are narrower than the same layers' boxes when everything is trained."""
    threat = ThreatModel(eps=0.05)
    full = _problem(threat, freeze=1)
    data = load_dataset("moons", n_train=16, n_test=20, seed=2)
    a = Architecture.parse("2-6-4-1")
    everything = Problem(data, a, full.recipe, threat, init_params(a, 0))
    frozen = get_method("interval").bound(full).widths()[-1]
    trained = get_method("interval").bound(everything).widths()[-1][-len(frozen):]
    assert float(frozen.sum()) < float(trained.sum())


def test_test_time_boxes_go_through_the_prefix():
    p = _problem(ThreatModel(eps=0.05, test_eps=0.05), epochs=1)
    lo, hi = p.test_box()
    raw_lo, raw_hi = p.threat.test_box(p.raw.X_test)
    rng = np.random.default_rng(0)
    for _ in range(50):
        F = p.prefix.forward(rng.uniform(raw_lo, raw_hi))
        assert np.all((lo <= F) & (F <= hi))
    run = certify_problem(p, "interval")
    assert run.metrics["certified_accuracy"] <= run.metrics["nominal_accuracy"]


def test_methods_that_would_attack_feature_boxes_refuse():
    p = _problem(ThreatModel(eps=0.1, k=2))
    with pytest.raises(UnsupportedError, match="no raw input may realise"):
        get_method("exact", solver="highs").check(p)
    with pytest.raises(UnsupportedError, match="maps nonlinearly"):
        get_method("interval", sets="affine").bound(p)
    # label-only attacks leave the features exact: exact runs on them
    labels = _problem(ThreatModel(label_k=1), epochs=1)
    get_method("exact", solver="scip").check(labels)


# ----------------------------------------------------------------------------- torch prefix


def test_torch_prefix_forward_and_file_round_trip(tmp_path):
    torch = pytest.importorskip("torch")
    from mibpcert.model.torch_io import load_prefix, prefix_from_torch

    torch.manual_seed(0)
    seq = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(2, 5), torch.nn.Tanh(), torch.nn.Dropout(0.1),
        torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3), torch.nn.Sigmoid(),
    ).double().eval()  # fmt: skip
    X = np.random.default_rng(0).normal(size=(10, 2))
    want = seq(torch.tensor(X)).detach().numpy()
    np.testing.assert_allclose(prefix_from_torch(seq).forward(X), want, rtol=1e-12, atol=1e-14)
    path = tmp_path / "prefix.pt"
    torch.save(seq, path)
    loaded = load_prefix(path)
    assert loaded.n_inputs == 2 and loaded.n_outputs == 3
    np.testing.assert_allclose(loaded.forward(X), want, rtol=1e-12, atol=1e-14)
    with pytest.raises(ModelError, match="layer 0 is Conv1d"):
        prefix_from_torch(torch.nn.Sequential(torch.nn.Conv1d(1, 1, 1)))
    torch.save({"w": torch.zeros(2)}, tmp_path / "dict.pt")
    with pytest.raises(ModelError, match="holds a dict, not an nn.Sequential"):
        load_prefix(tmp_path / "dict.pt")
    with pytest.raises(ModelError, match="does not exist"):
        load_prefix(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="cannot read prefix file"):
        load_prefix(tmp_path / "junk.pt")


def test_freeze_and_prefix_from_the_cli(tmp_path):
    out = tmp_path / "freeze"
    rc = main([
        "certify", "--dataset", "moons", "--n-train", "20", "--n-test", "10", "--model",
        "2-6-4-1", "--freeze", "1", "--epochs", "2", "--eps", "0.02", "--k", "2", "--method",
        "agt", "--out", str(out), "--no-progress", "--quiet",
    ])  # fmt: skip
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["problem"]["prefix"]["source"] == "freeze 1 of 2-6-4-1"
    assert report["problem"]["arch"] == "6-4-1"
    assert report["problem"]["raw_data"]["n_features"] == 2
    torch = pytest.importorskip("torch")
    seq = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU()).double()
    torch.save(seq, tmp_path / "p.pt")
    rc = main([
        "certify", "--dataset", "moons", "--n-train", "20", "--n-test", "10", "--model", "3-1",
        "--prefix", str(tmp_path / "p.pt"), "--epochs", "2", "--eps", "0.02", "--method",
        "interval", "--out", str(tmp_path / "prefix"), "--no-progress", "--quiet",
    ])  # fmt: skip
    assert rc == 0
    report = json.loads((tmp_path / "prefix" / "report.json").read_text())
    assert report["problem"]["prefix"]["layers"][0] == {"kind": "linear", "in": 2, "out": 3}
