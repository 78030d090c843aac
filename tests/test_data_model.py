"""Datasets, architectures, initialisation, parameter files, recipes, the numpy trainer, and the
PyTorch import/export."""

from __future__ import annotations

import numpy as np
import pytest

from mibpcert.data.datasets import Dataset, load_dataset, load_file
from mibpcert.model import trainer
from mibpcert.model.losses import encode_targets, loss_values, predict_classes
from mibpcert.model.network import Architecture, forward, init_params, load_params
from mibpcert.model.recipe import TrainingRecipe

# ----------------------------------------------------------------------------- datasets


def test_moons_seeded_and_sized():
    a = load_dataset("moons", seed=3)
    b = load_dataset("moons", seed=3)
    c = load_dataset("moons", seed=4)
    assert (a.n_train, a.n_test, a.n_features) == (100, 200, 2)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_train, c.X_train)
    assert a.X_train.dtype == np.float64 and a.y_train.dtype == np.int64
    assert a.task == "classification" and a.n_classes == 2
    assert set(np.unique(a.y_train)) == {0, 1}
    d = load_dataset("moons", n_train=17, n_test=5, noise=0.0, seed=0)
    assert d.X_train.shape == (17, 2) and d.X_test.shape == (5, 2)
    # noise-free moons lie on the two unit half circles
    r0 = np.linalg.norm(d.X_train[d.y_train == 0], axis=1)
    r1 = np.linalg.norm(d.X_train[d.y_train == 1] - [1.0, 0.5], axis=1)
    assert np.allclose(r0, 1.0) and np.allclose(r1, 1.0)


def test_builtin_sklearn_datasets():
    iris = load_dataset("iris")
    assert iris.n_classes == 3 and iris.n_features == 4
    assert iris.n_train + iris.n_test == 150 and iris.n_test == 45
    assert set(np.unique(iris.y_train)) == {0, 1, 2} == set(np.unique(iris.y_test))
    assert iris.class_names == ("setosa", "versicolor", "virginica")
    # stratified split: 15 test points per class
    assert np.array_equal(np.bincount(iris.y_test), [15, 15, 15])

    binary = load_dataset("iris-binary")
    assert binary.n_classes == 2 and binary.n_train + binary.n_test == 100
    assert binary.class_names == ("versicolor", "virginica")
    assert set(np.unique(binary.y_train)) == {0, 1}

    dia = load_dataset("diabetes", n_train=100, n_test=50)
    assert dia.task == "regression" and dia.n_classes is None and dia.n_targets == 1
    assert dia.X_train.shape == (100, 10) and dia.y_train.dtype == np.float64
    assert dia.y_train.shape == (100,)

    bc = load_dataset("breast-cancer")
    assert bc.n_classes == 2 and bc.n_features == 30 and bc.n_train + bc.n_test == 569

    again = load_dataset("iris", seed=5)
    other = load_dataset("iris", seed=6)
    assert np.array_equal(again.X_train, load_dataset("iris", seed=5).X_train)
    assert not np.array_equal(again.X_train, other.X_train)


@pytest.mark.parametrize("name", ["iris", "diabetes"])
def test_standardisation_fits_on_train_only(name):
    raw = load_dataset(name, seed=1)
    std = load_dataset(name, seed=1, standardize=True)
    assert raw.standardization is None and std.standardization is not None
    assert np.allclose(std.X_train.mean(0), 0.0, atol=1e-12)
    assert np.allclose(std.X_train.std(0), 1.0)
    mean, scale = raw.X_train.mean(0), raw.X_train.std(0)
    assert np.allclose(std.X_test, (raw.X_test - mean) / scale)
    assert np.allclose(std.standardization["mean"], mean)
    # the test split is not standardised on its own statistics
    assert not np.allclose(std.X_test.mean(0), 0.0, atol=1e-3)
    if raw.task == "regression":
        assert np.isclose(std.y_train.mean(), 0.0) and np.isclose(std.y_train.std(), 1.0)
        assert np.allclose(std.y_test, (raw.y_test - raw.y_train.mean()) / raw.y_train.std())
    else:
        assert np.array_equal(std.y_test, raw.y_test)
    assert std.standardized() is std


def test_constant_feature_standardisation_keeps_finite():
    X = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    ds = Dataset("c", X, np.array([0, 1, 0]), X[:1].copy(), np.array([1]), "classification", 2)
    s = ds.standardized()
    assert np.all(np.isfinite(s.X_train)) and np.all(s.X_train[:, 1] == 0.0)


def _write_csv(path, X, labels, header):
    lines = [",".join(header)]
    for row, lab in zip(X, labels, strict=True):
        lines.append(",".join([repr(float(v)) for v in row] + [str(lab)]))
    path.write_text("\n".join(lines) + "\n")


def test_csv_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)) * [1.0, 1e-7, 1e6]
    labels = np.where(rng.random(40) < 0.5, "cat", "dog")
    f = tmp_path / "data.csv"
    _write_csv(f, X, labels, ["a", "b", "c", "animal"])
    ds = load_file(f, n_test=10, seed=2)
    assert (ds.n_train, ds.n_test) == (30, 10)
    assert ds.feature_names == ("a", "b", "c") and ds.class_names == ("cat", "dog")
    allX = np.vstack([ds.X_train, ds.X_test])
    ally = np.concatenate([ds.y_train, ds.y_test])
    # every row comes back exactly, with its label
    order = np.lexsort(allX.T)
    ref = np.lexsort(X.T)
    assert np.array_equal(allX[order], X[ref])
    assert np.array_equal(np.array(["cat", "dog"])[ally[order]], labels[ref])
    # via load_dataset, and the same seed gives the same split
    ds2 = load_dataset(str(f), n_test=10, seed=2)
    assert np.array_equal(ds2.X_train, ds.X_train)


def test_csv_label_column_and_separate_test_file(tmp_path):
    rng = np.random.default_rng(1)
    Xtr, Xte = rng.normal(size=(12, 2)), rng.normal(size=(5, 2))
    ytr = ["b", "a"] * 6
    yte = ["c", "a", "b", "c", "a"]  # class 'c' only in the test file
    ftr, fte = tmp_path / "train.csv", tmp_path / "test.csv"
    for f, X, y in ((ftr, Xtr, ytr), (fte, Xte, yte)):
        rows = ["x0,label,x1"] + [
            f"{float(r[0])!r},{lab},{float(r[1])!r}" for r, lab in zip(X, y, strict=True)
        ]
        f.write_text("\n".join(rows) + "\n")
    ds = load_file(ftr, label_column="label", test_path=fte)
    assert ds.feature_names == ("x0", "x1")
    assert np.array_equal(ds.X_train, Xtr) and np.array_equal(ds.X_test, Xte)
    assert ds.class_names == ("a", "b", "c") and ds.n_classes == 3
    assert [ds.class_names[i] for i in ds.y_train] == ytr
    assert [ds.class_names[i] for i in ds.y_test] == yte


def test_csv_regression(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 2))
    t = X @ [1.5, -2.0] + 0.25
    f = tmp_path / "reg.csv"
    _write_csv(f, X, [repr(float(v)) for v in t], ["u", "v", "target"])
    ds = load_file(f, task="regression", n_test=5)
    assert ds.task == "regression" and ds.y_train.dtype == np.float64
    assert np.allclose(ds.X_train @ [1.5, -2.0] + 0.25, ds.y_train, rtol=0, atol=1e-12)


def test_npz_xy_and_presplit(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 4))
    y = np.array([3, 7] * 15)
    f = tmp_path / "xy.npz"
    np.savez(f, X=X, y=y)
    ds = load_file(f, n_test=6, seed=0)
    assert (ds.n_train, ds.n_test, ds.n_features) == (24, 6, 4)
    assert ds.class_names == ("3", "7")
    allX = np.vstack([ds.X_train, ds.X_test])
    assert np.array_equal(allX[np.lexsort(allX.T)], X[np.lexsort(X.T)])
    g = tmp_path / "split.npz"
    np.savez(g, X_train=X[:20], y_train=y[:20], X_test=X[20:], y_test=y[20:])
    ds = load_dataset(str(g))
    assert np.array_equal(ds.X_train, X[:20]) and np.array_equal(ds.X_test, X[20:])
    assert np.array_equal(ds.y_train, (y[:20] == 7).astype(int))
    h = tmp_path / "reg.npz"
    np.savez(h, X_train=X[:20], y_train=X[:20, 0], X_test=X[20:], y_test=X[20:, 0])
    reg = load_file(h, task="regression")
    assert reg.task == "regression" and np.array_equal(reg.y_test, X[20:, 0])


# ----------------------------------------------------------------------------- architecture


def test_architecture_parse_and_sizes():
    a = Architecture.parse("2-10-1")
    assert a.sizes == (2, 10, 1) and str(a) == "2-10-1"
    assert Architecture.parse("2x10x1") == a == Architecture.parse([2, 10, 1])
    assert Architecture.parse(a) is a
    assert (a.n_inputs, a.n_outputs, a.n_layers) == (2, 1, 2)
    assert a.n_params == 2 * 10 + 10 + 10 * 1 + 1
    assert a.layer_shapes == [(10, 2), (1, 10)]
    lin = Architecture.parse("4-3")
    assert lin.is_linear and not a.is_linear and lin.n_params == 15


@pytest.mark.parametrize("spec", ["3-2", "2-5-1", "3-4-4-2", "5-7-6-4-3"])
def test_flatten_unflatten_param_names(spec):
    arch = Architecture.parse(spec)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=arch.n_params)
    layers = arch.unflatten(theta)
    assert len(layers) == arch.n_layers
    for (W, b), (o, i) in zip(layers, arch.layer_shapes, strict=True):
        assert W.shape == (o, i) and b.shape == (o,)
    assert np.array_equal(arch.flatten(layers), theta)
    # unflatten returns views: writing into them changes theta
    layers[0][1][0] = 123.0
    assert 123.0 in theta
    # leading batch axes
    batch = rng.normal(size=(3, 2, arch.n_params))
    Wb, bb = arch.unflatten(batch)[-1]
    assert Wb.shape == (3, 2, arch.n_outputs, arch.sizes[-2]) and bb.shape == (3, 2, arch.n_outputs)
    # names match the layout
    names = arch.param_names()
    assert len(names) == arch.n_params == len(set(names))
    fresh = arch.unflatten(theta)
    for k, (W, b) in enumerate(fresh, start=1):
        r, c = W.shape[0] - 1, W.shape[1] - 1
        assert theta[names.index(f"W{k}[{r},{c}]")] == W[r, c]
        assert theta[names.index(f"W{k}[0,{c}]")] == W[0, c]
        assert theta[names.index(f"b{k}[{r}]")] == b[r]
    assert names[0] == "W1[0,0]" and names[1] == ("W1[0,1]" if arch.sizes[0] > 1 else "b1[0]")


def test_forward_matches_manual_relu_network():
    arch = Architecture.parse("3-4-2")
    theta = init_params(arch, 5)
    (W1, b1), (W2, b2) = arch.unflatten(theta)
    X = np.random.default_rng(1).normal(size=(7, 3))
    ref = np.maximum(X @ W1.T + b1, 0) @ W2.T + b2
    assert np.allclose(forward(arch, theta, X), ref, rtol=1e-14, atol=1e-14)


def test_init_params_bounds_and_seeding():
    arch = Architecture.parse("16-64-4")
    a, b, c = init_params(arch, 0), init_params(arch, 0), init_params(arch, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    for (W, bias), (_, i) in zip(arch.unflatten(a), arch.layer_shapes, strict=True):
        bound = 1.0 / np.sqrt(i)
        assert np.all(np.abs(W) <= bound) and np.all(np.abs(bias) <= bound)
        # uniform on the whole range, not a narrower one
        assert np.abs(W).max() > 0.9 * bound
        assert abs(W.mean()) < 0.2 * bound and W.std() > 0.45 * bound


def test_load_params_three_layouts(tmp_path):
    arch = Architecture.parse("3-4-4-2")
    theta = init_params(arch, 7)
    layers = arch.unflatten(theta)
    np.savez(tmp_path / "flat.npz", theta=theta)
    np.savez(
        tmp_path / "named.npz",
        **{f"{n}{k}": v for k, L in enumerate(layers, 1) for n, v in zip("Wb", L, strict=True)},
    )
    sd = {}
    for k, (W, b) in enumerate(layers):
        sd[f"{2 * k}.weight"], sd[f"{2 * k}.bias"] = W, b
    np.savez(tmp_path / "torch.npz", **sd)
    for name in ("flat", "named", "torch"):
        loaded = load_params(tmp_path / f"{name}.npz", arch)
        assert loaded.dtype == np.float64 and np.array_equal(loaded, theta), name


def test_load_params_orders_torch_keys_numerically(tmp_path):
    arch = Architecture.parse("2-3-3-3-3-3-1")  # Linear modules 0, 2, 4, 6, 8, 10
    theta = init_params(arch, 2)
    sd = {}
    for k, (W, b) in enumerate(arch.unflatten(theta)):
        sd[f"{2 * k}.weight"], sd[f"{2 * k}.bias"] = W, b
    np.savez(tmp_path / "deep.npz", **sd)
    assert np.array_equal(load_params(tmp_path / "deep.npz", arch), theta)


# ----------------------------------------------------------------------------- recipe


@pytest.mark.parametrize("n,b", [(23, 5), (20, 5), (7, 1), (10, 9)])
def test_minibatch_schedule(n, b):
    r = TrainingRecipe(epochs=3, batch_size=b, seed=4)
    steps = r.batches(n)
    per_epoch = -(-n // b)
    assert len(steps) == r.n_steps(n) == 3 * per_epoch
    assert r.steps_per_epoch(n) == per_epoch
    for e in range(3):
        epoch = steps[e * per_epoch : (e + 1) * per_epoch]
        assert np.array_equal(np.sort(np.concatenate(epoch)), np.arange(n))  # each point once
        assert [len(s) for s in epoch[:-1]] == [b] * (per_epoch - 1)
        assert len(epoch[-1]) == n - b * (per_epoch - 1)
        assert all(np.array_equal(s, np.sort(s)) for s in epoch)
    # a fixed, seeded order: the same every time, different for another seed, reshuffled per epoch
    again = TrainingRecipe(epochs=3, batch_size=b, seed=4).batches(n)
    assert all(np.array_equal(s, t) for s, t in zip(steps, again, strict=True))
    if b > 1 and n > b + 1:
        other = TrainingRecipe(epochs=3, batch_size=b, seed=5).batches(n)
        assert any(not np.array_equal(s, t) for s, t in zip(steps, other, strict=True))
        assert any(not np.array_equal(steps[i], steps[i + per_epoch]) for i in range(per_epoch))


def test_no_shuffle_and_full_batch():
    r = TrainingRecipe(epochs=2, batch_size=4, shuffle=False)
    steps = r.batches(10)
    assert [s.tolist() for s in steps[:3]] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(np.array_equal(a, b) for a, b in zip(steps[:3], steps[3:], strict=True))
    for bs in (None, 10, 50):
        full = TrainingRecipe(epochs=4, batch_size=bs).batches(10)
        assert len(full) == 4 == TrainingRecipe(epochs=4, batch_size=bs).n_steps(10)
        assert all(np.array_equal(s, np.arange(10)) for s in full)


def test_lr_schedules():
    c = TrainingRecipe(lr=0.3)
    assert [c.lr_at(t) for t in range(4)] == [0.3] * 4
    inv = TrainingRecipe(lr=0.4, lr_schedule="inverse", lr_decay=0.5)
    assert np.allclose([inv.lr_at(t) for t in range(5)], [0.4 / (1 + 0.5 * t) for t in range(5)])
    ex = TrainingRecipe(lr=0.2, lr_schedule="exponential", lr_decay=0.9)
    assert np.allclose([ex.lr_at(t) for t in range(5)], [0.2 * 0.9**t for t in range(5)])
    floor = TrainingRecipe(lr=1.0, lr_schedule="exponential", lr_decay=0.5, lr_min=0.1)
    lrs = [floor.lr_at(t) for t in range(8)]
    assert lrs[:4] == [1.0, 0.5, 0.25, 0.125] and lrs[4:] == [0.1] * 4
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


# ----------------------------------------------------------------------------- losses / trainer


def test_encode_targets_and_predict():
    y = np.array([0, 1, 1, 0])
    assert encode_targets("hinge", y, "classification").ravel().tolist() == [-1, 1, 1, -1]
    assert encode_targets("mse", y, "classification").ravel().tolist() == [-1, 1, 1, -1]
    assert encode_targets("bce", y, "classification").ravel().tolist() == [0, 1, 1, 0]
    assert encode_targets("ce", y, "classification").dtype == np.int64
    assert encode_targets("mse", np.array([1.5, 2.0]), "regression").shape == (2, 1)
    assert predict_classes(np.array([[0.3], [-0.1], [0.0]])).tolist() == [1, 0, 0]
    assert predict_classes(np.array([[0.1, 0.5, 0.2], [3.0, 1.0, 2.0]])).tolist() == [1, 0]


FD_CASES = [
    ("2-6-1", "hinge", "classification", 2),
    ("2-6-1", "bce", "classification", 2),
    ("2-6-1", "mse", "classification", 2),
    ("3-5-4-3", "ce", "classification", 3),
    ("3-2", "ce", "classification", 2),
    ("3-5-1", "mse", "regression", None),
    ("3-4-2", "mse", "regression", None),
]


@pytest.mark.parametrize("spec,loss,task,C", FD_CASES)
def test_trainer_gradient_matches_finite_differences(spec, loss, task, C):
    arch = Architecture.parse(spec)
    rng = np.random.default_rng(len(spec) + len(loss))
    n = 12
    X = rng.normal(size=(n, arch.n_inputs))
    if task == "regression":
        y = rng.normal(size=(n, arch.n_outputs)) if arch.n_outputs > 1 else rng.normal(size=n)
    else:
        y = rng.integers(0, C, n)
    t = encode_targets(loss, y, task)
    theta = init_params(arch, 3) * 2.0

    def mean_loss(th):
        return float(np.mean(loss_values(loss, forward(arch, th, X), t)))

    # stay away from kinks (ReLU at 0, hinge at y o = 1) so the loss is smooth near theta
    pre = X @ arch.unflatten(theta)[0][0].T + arch.unflatten(theta)[0][1]
    assert np.min(np.abs(pre)) > 1e-4
    if loss == "hinge":
        assert np.min(np.abs(1 - t[:, 0] * forward(arch, theta, X)[:, 0])) > 1e-4
    g, value = trainer.batch_gradient(arch, theta, X, t, loss)
    assert value == pytest.approx(mean_loss(theta), rel=1e-14)
    h = 1e-6
    fd = np.empty_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h
        fd[j] = (mean_loss(theta + e) - mean_loss(theta - e)) / (2 * h)
    assert np.allclose(g, fd, rtol=1e-5, atol=1e-7), np.max(np.abs(g - fd))
    assert np.max(np.abs(g)) > 1e-3  # a non-trivial gradient
    # per-sample gradients average to the batch gradient; clipping clips each of them
    per, value2 = trainer.per_sample_gradients(arch, theta, X, t, loss)
    assert per.shape == (n, arch.n_params) and value2 == value
    assert np.allclose(per.mean(axis=0), g, rtol=1e-12, atol=1e-15)
    gc, _ = trainer.batch_gradient(arch, theta, X, t, loss, clip=0.05)
    assert np.allclose(gc, np.clip(per, -0.05, 0.05).mean(axis=0), rtol=1e-12, atol=1e-15)
    assert np.all(np.abs(gc) <= 0.05)


def test_train_follows_recipe_step_by_step():
    ds = load_dataset("moons", n_train=23, n_test=5, seed=0)
    arch = Architecture.parse("2-5-1")
    recipe = TrainingRecipe(
        loss="bce", lr=0.3, epochs=2, batch_size=6, lr_schedule="inverse", lr_decay=0.2
    )
    theta0 = init_params(arch, 1)
    traj = trainer.train(arch, recipe, ds.X_train, ds.y_train, theta0)
    assert traj.thetas.shape == (recipe.n_steps(23) + 1, arch.n_params)
    assert np.array_equal(traj.thetas[0], theta0)
    assert np.array_equal(traj.final, traj.thetas[-1])
    t_all = encode_targets("bce", ds.y_train, "classification")
    theta = theta0.copy()
    for step, idx in enumerate(recipe.batches(23)):
        g, val = trainer.batch_gradient(arch, theta, ds.X_train[idx], t_all[idx], "bce")
        assert traj.losses[step] == val
        theta = theta - recipe.lr_at(step) * g
        assert np.array_equal(traj.thetas[step + 1], theta)
    # training reduces the full training loss
    full = [np.mean(loss_values("bce", forward(arch, th, ds.X_train), t_all)) for th in traj.thetas]
    assert full[-1] < full[0]
    # theta0 is not modified
    assert np.array_equal(theta0, init_params(arch, 1))


# ----------------------------------------------------------------------------- torch


def test_torch_import_export_round_trip():
    torch = pytest.importorskip("torch")
    from mibpcert.model.torch_io import from_torch, to_torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)
    ).double()
    arch, theta = from_torch(model)
    assert arch.sizes == (3, 6, 2) and theta.shape == (arch.n_params,)
    X = np.random.default_rng(0).normal(size=(11, 3))
    with torch.no_grad():
        ref = model(torch.from_numpy(X)).numpy()
    assert np.allclose(forward(arch, theta, X), ref, rtol=1e-13, atol=1e-14)
    back = to_torch(arch, theta)
    with torch.no_grad():
        out = back(torch.from_numpy(X)).numpy()
    assert np.array_equal(out, ref)
    arch2, theta2 = from_torch(back)
    assert arch2 == arch and np.array_equal(theta2, theta)
    # float32 modules are read as float64 values
    arch3, theta3 = from_torch(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).float()
    )
    assert arch3.sizes == (4, 2) and theta3.dtype == np.float64


def test_torch_unsupported_modules():
    torch = pytest.importorskip("torch")
    from mibpcert.errors import ModelError
    from mibpcert.model.torch_io import from_torch

    nn = torch.nn
    with pytest.raises(ModelError, match="two Linear layers in a row"):
        from_torch(nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)))
    with pytest.raises(ModelError, match="unsupported layer Tanh"):
        from_torch(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)))
    with pytest.raises(ModelError, match="must end with a Linear layer"):
        from_torch(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
    with pytest.raises(ModelError, match="without bias"):
        from_torch(nn.Sequential(nn.Linear(2, 3, bias=False)))


def test_torch_state_dict_and_sgd_match(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)
    ).double()
    f = tmp_path / "init.npz"
    np.savez(f, **{k: v.numpy() for k, v in model.state_dict().items()})
    arch = Architecture.parse("2-8-1")
    theta0 = load_params(f, arch)

    ds = load_dataset("moons", n_train=40, n_test=5, seed=0)
    recipe = TrainingRecipe(loss="hinge", lr=0.2, epochs=5)
    traj = trainer.train(arch, recipe, ds.X_train, ds.y_train, theta0)

    X = torch.from_numpy(ds.X_train)
    y = torch.from_numpy(2.0 * ds.y_train - 1.0).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    from mibpcert.model.torch_io import from_torch

    for step in range(5):
        _, theta_t = from_torch(model)
        assert np.allclose(theta_t, traj.thetas[step], rtol=0, atol=1e-10), step
        opt.zero_grad()
        loss = torch.clamp(1.0 - y * model(X)[:, 0], min=0.0).mean()
        assert loss.item() == pytest.approx(traj.losses[step], abs=1e-12)
        loss.backward()
        opt.step()
    _, theta_t = from_torch(model)
    assert np.allclose(theta_t, traj.final, rtol=0, atol=1e-10)
    assert np.max(np.abs(traj.final - theta0)) > 1e-2  # training did move the weights
