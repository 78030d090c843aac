"""Bad inputs raise a specific mibpcert error class with a message that says what is wrong."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mibpcert import Config
from mibpcert.config import load_config
from mibpcert.data.datasets import load_dataset, load_file
from mibpcert.errors import (
    ConfigError,
    DataError,
    MibpcertError,
    ModelError,
    ThreatModelError,
    UnsupportedError,
)
from mibpcert.methods import get_method
from mibpcert.model.network import Architecture, init_params, load_params
from mibpcert.model.recipe import TrainingRecipe
from mibpcert.pipeline import build_problem
from mibpcert.problem import Problem
from mibpcert.threat.model import DiscreteFeature, ThreatModel


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons", n_train=30, n_test=20, seed=0)


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris", n_train=30, n_test=20, seed=0)


@pytest.fixture(scope="module")
def diabetes():
    return load_dataset("diabetes", n_train=30, n_test=20, seed=0)


def problem(ds, threat=None, arch=None, loss=None):
    if arch is None:
        arch = {2: "2-4-1", 4: "4-4-3", 10: "10-1"}[ds.n_features]
    if loss is None:
        loss = "mse" if ds.task == "regression" else ("ce" if ds.n_classes > 2 else "hinge")
    a = Architecture.parse(arch)
    return Problem(
        ds, a, TrainingRecipe(loss=loss, epochs=1), threat or ThreatModel(), init_params(a)
    )


def test_error_hierarchy():
    for cls in (ConfigError, DataError, ModelError, ThreatModelError):
        assert issubclass(cls, MibpcertError) and issubclass(cls, ValueError)
    assert issubclass(UnsupportedError, MibpcertError)
    assert issubclass(UnsupportedError, NotImplementedError)


# ----------------------------------------------------------------------------- threat model


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"eps": -0.1}, r"eps must be >= 0, got -0\.1"),
        ({"eps": math.nan}, r"eps must be a number, got nan"),
        ({"test_eps": -1.0}, r"test_eps must be >= 0"),
        ({"test_eps": math.inf}, r"test_eps must be finite"),
        ({"eps": 0.1, "k": 31}, r"k = 31 exceeds the 30 training points; use k <= 30"),
        ({"eps": 0.1, "k": -1}, r"k must be a non-negative integer"),
        ({"eps": 0.1, "points": (0, 1), "k": 3}, r"k = 3 exceeds the 2 points in 'points'"),
        ({"label_k": 31}, r"label_k = 31 exceeds the 30 training points"),
        ({"label_k": -2}, r"label_k must be a non-negative integer"),
        (
            {"label_k": 1, "label_mode": 5},
            r"target class 5 is unknown: the data has classes 0\.\.1",
        ),
        ({"label_k": 1, "label_mode": -1}, r"target class -1 is unknown"),
        ({"label_k": 1, "label_mode": "dog"}, r"unknown label_mode 'dog'"),
        ({"label_k": 1, "label_eps": 0.1}, r"label_eps applies to regression targets only"),
        ({"eps": 0.1, "points": (0, 30)}, r"points contains index 30, outside the training set"),
        ({"eps": 0.1, "points": (-1, 3)}, r"points contains index -1"),
        ({"eps": 0.1, "points": (1, 2, 1)}, r"points contains duplicate indices"),
        ({"eps": 0.1, "points": ()}, r"points is empty"),
        ({"eps": math.inf}, r"eps = inf \(unbounded replacement\) needs a budget"),
        ({"eps": 0.1, "paired": True, "label_k": 1}, r"paired = true needs k"),
        (
            {"discrete": (DiscreteFeature(5, (0.0, 1.0)),)},
            r"discrete feature index 5 is outside 0\.\.1",
        ),
        (
            {"discrete": (DiscreteFeature(0, (0.0, 1.0)), DiscreteFeature(0, (2.0,)))},
            r"discrete feature 0 is declared twice",
        ),
        ({"discrete": (DiscreteFeature(1, ()),)}, r"values must be a non-empty list"),
        (
            {"discrete": (DiscreteFeature(0, (0.0, 1.0), mode="shift"),)},
            r"discrete feature 0 \(mode 'shift'\): training point 0 has value .* not one of the "
            r"levels \[0\.0, 1\.0\]",
        ),
        (
            {"discrete": (DiscreteFeature(0, (0.0,), mode="weird"),)},
            r"mode must be 'any' or 'shift'",
        ),
        ({"feature_bounds": (1.0, 0.0)}, r"feature_bounds: every low must be <= its high"),
        ({"feature_bounds": ([0.0, 0.0], [1.0])}, r"feature_bounds must give scalars or 2 values"),
        (
            {"feature_bounds": (-5.0, 0.5)},
            r"point \d+, feature \d+ = .* lies outside feature_bounds",
        ),
        ({"feature_bounds": 3.0}, r"feature_bounds must be a pair"),
    ],
)
def test_threat_model_errors(moons, kwargs, match):
    with pytest.raises(ThreatModelError, match=match):
        problem(moons, ThreatModel(**kwargs))


def test_feature_bounds_violated_by_test_data_only(moons):
    lo = moons.X_train.min(0)
    hi = moons.X_train.max(0)
    assert ((moons.X_test < lo) | (moons.X_test > hi)).any()  # premise of the test
    with pytest.raises(ThreatModelError, match=r"test point \d+, feature \d+ .* outside"):
        problem(moons, ThreatModel(eps=0.1, feature_bounds=(lo, hi)))


def test_label_flip_on_three_classes(iris):
    with pytest.raises(ThreatModelError, match=r"label_mode 'flip' is for binary data.*3 classes"):
        problem(iris, ThreatModel(label_k=2, label_mode="flip"))
    # allowed without label changes, and 'any' / a class name are fine
    problem(iris, ThreatModel(label_k=0, label_mode="flip"))
    p = problem(iris, ThreatModel(label_k=2, label_mode="virginica"))
    assert p.threat.label_mode == 2


def test_regression_label_errors(diabetes):
    with pytest.raises(ThreatModelError, match=r"label_k > 0 on regression data needs label_eps"):
        problem(diabetes, ThreatModel(label_k=2))
    with pytest.raises(ThreatModelError, match=r"label_eps = 0\.1 has no effect with label_k = 0"):
        problem(diabetes, ThreatModel(label_eps=0.1))


# ----------------------------------------------------------------------------- data


def test_nan_in_csv(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,b,label\n1,2,x\n3,,y\n5,6,x\n7,8,y\n")
    with pytest.raises(DataError, match=r"contains 1 NaN/inf value\(s\), first at row 1, column 1"):
        load_file(f)
    f.write_text("a,b,label\n1,2,x\n3,nan,y\n5,6,x\n7,inf,y\n")
    with pytest.raises(DataError, match=r"2 NaN/inf value\(s\)"):
        load_dataset(str(f))


def test_nan_in_npz(tmp_path):
    X = np.arange(20.0).reshape(10, 2)
    X[4, 1] = np.nan
    f = tmp_path / "d.npz"
    np.savez(f, X=X, y=np.arange(10) % 2)
    with pytest.raises(DataError, match=r"NaN/inf value\(s\), first at row 4, column 1"):
        load_file(f)
    g = tmp_path / "split.npz"
    Xt = np.ones((3, 2))
    Xt[2, 0] = np.inf
    np.savez(g, X_train=np.ones((4, 2)), y_train=[0, 1, 0, 1], X_test=Xt, y_test=[0, 1, 1])
    with pytest.raises(DataError, match=r"NaN/inf"):
        load_file(g)


def test_npz_missing_keys(tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, features=np.ones((4, 2)), labels=[0, 1, 0, 1])
    with pytest.raises(DataError, match=r"needs 'X' and 'y'"):
        load_file(f)


def test_csv_missing_label_column(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,b,label\n1,2,x\n3,4,y\n")
    with pytest.raises(DataError, match=r"has no column 'target'; its columns are"):
        load_file(f, label_column="target")


def test_csv_non_numeric_cell(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,b,label\n1,2,x\n3,red,y\n")
    with pytest.raises(
        DataError, match=r"data row 2, column 'b' holds 'red', which is not a number"
    ):
        load_file(f)


def test_csv_ragged_row_and_nonnumeric_regression(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,b,label\n1,2,x\n3,4\n")
    with pytest.raises(DataError, match=r"data row 2 has 2 fields, the header has 3"):
        load_file(f)
    g = tmp_path / "r.csv"
    g.write_text("a,b,t\n1,2,x\n3,4,y\n")
    with pytest.raises(DataError, match=r"label column 't' is not numeric"):
        load_file(g, task="regression")


def test_unknown_dataset_and_bad_split():
    with pytest.raises(DataError, match=r"unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(DataError, match=r"does not exist"):
        load_dataset("no/such/file.csv")
    with pytest.raises(DataError, match=r"cannot split into n_train=200"):
        load_dataset("iris", n_train=200)
    with pytest.raises(DataError, match=r"moons: n_train and n_test must be >= 1"):
        load_dataset("moons", n_train=0)


# ----------------------------------------------------------------------------- model / recipe


def test_model_input_size_mismatch(moons):
    with pytest.raises(ModelError, match=r"model 3-10-1 has 3 inputs but dataset 'moons' has 2 "):
        problem(moons, arch="3-10-1")
    with pytest.raises(ModelError, match=r"use '2-10-1'"):
        problem(moons, arch="3-10-1")


@pytest.mark.parametrize(
    "ds_name,arch,loss,match",
    [
        ("moons", "2-4-3", "hinge", r"one-vs-rest hinge needs one output per class"),
        ("moons", "2-4-1", "ce", r"loss 'ce' needs one output per class: the data has 2 classes"),
        ("iris", "4-4-3", "mse", r"loss 'mse' is binary but the data has 3 classes"),
        ("iris", "4-4-1", "hinge", r"loss 'hinge' is binary but the data has 3 classes"),
        ("iris", "4-4-3", "bce", r"loss 'bce' is binary"),
        ("diabetes", "10-1", "hinge", r"regression data needs loss 'mse', got 'hinge'"),
        ("diabetes", "10-2", "mse", r"the model has 2 output\(s\) but the regression data has 1"),
    ],
)
def test_loss_output_mismatch(request, ds_name, arch, loss, match):
    ds = request.getfixturevalue(ds_name)
    with pytest.raises(ModelError, match=match):
        problem(ds, arch=arch, loss=loss)


@pytest.mark.parametrize("spec", ["abc", "2-ten-1", "2--1", "2-10-", "2.5-1", ""])
def test_bad_arch_string_cannot_parse(spec):
    with pytest.raises(ModelError, match=r"cannot parse model"):
        Architecture.parse(spec)


@pytest.mark.parametrize(
    "spec,match",
    [
        ("2", r"needs at least an input and an output size"),
        ("2-0-1", r"layer sizes must be positive integers"),
        ((3, -1), r"layer sizes must be positive integers"),
    ],
)
def test_bad_arch_sizes(spec, match):
    with pytest.raises(ModelError, match=match):
        Architecture.parse(spec)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"lr": 0.0}, r"learning rate must be a positive finite number, got 0\.0"),
        ({"lr": -0.1}, r"learning rate must be a positive finite number"),
        ({"lr": math.inf}, r"learning rate must be a positive finite number"),
        ({"epochs": 0}, r"epochs must be a positive integer, got 0"),
        ({"epochs": 2.5}, r"epochs must be a positive integer"),
        ({"batch_size": 0}, r"batch_size must be a positive integer or None"),
        ({"loss": "l1"}, r"unknown loss 'l1'"),
        ({"lr_schedule": "cosine"}, r"unknown lr_schedule 'cosine'"),
        ({"lr_schedule": "exponential", "lr_decay": 1.5}, r"needs 0 < lr_decay <= 1"),
        ({"lr_decay": -1.0}, r"lr_decay must be >= 0"),
        ({"clip": 0.0}, r"clip must be a positive finite number or None"),
    ],
)
def test_recipe_errors(kwargs, match):
    with pytest.raises(ModelError, match=match):
        TrainingRecipe(**kwargs)


def test_init_file_wrong_shapes(tmp_path):
    arch = Architecture.parse("2-3-1")
    f = tmp_path / "theta.npz"
    np.savez(f, theta=np.zeros(arch.n_params + 1))
    with pytest.raises(ModelError, match=r"'theta' has 14 entries, model 2-3-1 has 13 parameters"):
        load_params(f, arch)
    g = tmp_path / "layers.npz"
    np.savez(g, W1=np.zeros((3, 3)), b1=np.zeros(3), W2=np.zeros((1, 3)), b2=np.zeros(1))
    with pytest.raises(ModelError, match=r"layer 1 of model 2-3-1 needs W of shape \(3, 2\)"):
        load_params(g, arch)
    h = tmp_path / "torch.npz"
    np.savez(h, **{"0.weight": np.zeros((3, 2)), "0.bias": np.zeros(3)})
    with pytest.raises(ModelError, match=r"expected 'theta', or 'W1','b1',\.\.\., or 2 torch"):
        load_params(h, arch)
    k = tmp_path / "nan.npz"
    np.savez(k, theta=np.full(arch.n_params, np.nan))
    with pytest.raises(ModelError, match=r"initial parameters contain NaN or inf"):
        load_params(k, arch)
    with pytest.raises(ModelError, match=r"does not exist"):
        load_params(tmp_path / "missing.npz", arch)
    # and through the configuration
    cfg = Config.from_dict({"model": {"arch": "2-3-1", "init_file": str(g)}})
    with pytest.raises(ModelError, match=r"needs W of shape"):
        build_problem(cfg)


def test_problem_theta0_shape(moons):
    a = Architecture.parse("2-4-1")
    with pytest.raises(ModelError, match=r"initial parameters have shape \(5,\)"):
        Problem(moons, a, TrainingRecipe(), ThreatModel(), np.zeros(5))
    with pytest.raises(ModelError, match=r"contain NaN or inf"):
        Problem(moons, a, TrainingRecipe(), ThreatModel(), np.full(a.n_params, np.inf))


# ----------------------------------------------------------------------------- config / methods


def test_unknown_config_section_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown section \[optimizer\]; sections are data"):
        Config.from_dict({"optimizer": {"lr": 1}})
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rate' in \[training\]"):
        Config.from_dict({"training": {"learning_rate": 0.1}})
    f = tmp_path / "c.toml"
    f.write_text('[data]\ndataset = "moons"\nsize = 3\n')
    with pytest.raises(ConfigError, match=r"c\.toml: unknown key 'size' in \[data\]"):
        load_config(f)
    with pytest.raises(ConfigError, match=r"unknown setting 'threat\.radius'"):
        Config().override({"threat.radius": 0.1})


@pytest.mark.parametrize(
    "raw,match",
    [
        ({"training": {"epochs": "ten"}}, r"\[training\] epochs must be int, got 'ten'"),
        ({"training": {"lr": "fast"}}, r"\[training\] lr must be float, got 'fast'"),
        ({"threat": {"eps": [0.1]}}, r"\[threat\] eps must be float"),
        ({"data": {"standardize": "maybe"}}, r"\[data\] standardize must be bool"),
        ({"data": {"dataset": 3}}, r"\[data\] dataset must be str"),
        ({"training": {"epochs": 2.5}}, r"\[training\] epochs must be int"),
        ({"threat": {"label_k": None}}, r"\[threat\] label_k must not be empty"),
        ({"data": "moons"}, r"\[data\] must be a table"),
    ],
)
def test_wrong_config_value_type(raw, match):
    with pytest.raises(ConfigError, match=match):
        Config.from_dict(raw)


def test_yaml_and_toml_parse_errors(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[data\n")
    with pytest.raises(ConfigError, match=r"cannot parse config file"):
        load_config(f)
    g = tmp_path / "c.json"
    g.write_text("{}")
    with pytest.raises(ConfigError, match=r"unknown extension '\.json'"):
        load_config(g)
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_config(tmp_path / "nope.yaml")
    h = tmp_path / "c.yaml"
    h.write_text("threat:\n  eps: 1e-3\ntraining:\n  epochs: 2\n")
    cfg = load_config(h)  # YAML reads 1e-3 as a string: it is converted
    assert cfg.threat.eps == 1e-3 and isinstance(cfg.threat.eps, float)


def test_unknown_dataset_in_config():
    with pytest.raises(DataError, match=r"unknown dataset 'cifar'"):
        build_problem(Config.from_dict({"data": {"dataset": "cifar"}}))


def test_unknown_method():
    with pytest.raises(ConfigError, match=r"unknown method 'magic'; available: interval"):
        get_method("magic")


def test_threat_errors_through_config():
    cfg = Config.from_dict({"data": {"n_train": 10, "n_test": 5}, "threat": {"eps": "inf"}})
    with pytest.raises(ThreatModelError, match=r"needs a budget"):
        build_problem(cfg)
    cfg = Config.from_dict({"data": {"n_train": 10, "n_test": 5}, "threat": {"paired": True}})
    with pytest.raises(ThreatModelError, match=r"paired = true needs k"):
        build_problem(cfg)
    cfg = Config.from_dict({"threat": {"discrete": [{"feature": 0}]}})
    with pytest.raises(ConfigError, match=r"discrete entry 0 must be a table with 'feature' and"):
        build_problem(cfg)
    cfg = Config.from_dict({"threat": {"discrete": [{"feature": 0, "values": [1], "x": 1}]}})
    with pytest.raises(ConfigError, match=r"discrete entry 0: unknown key\(s\) \['x'\]"):
        build_problem(cfg)


# ----------------------------------------------------------------------------- known bugs


@pytest.mark.parametrize("kwargs", [{"n_test": 2}, {"n_train": 2}])
def test_split_too_small_for_stratification_is_data_error(kwargs):
    with pytest.raises(DataError, match=r"n_(train|test)"):
        load_dataset("iris", **kwargs)


def test_non_numeric_points_is_threat_model_error(moons):
    with pytest.raises(ThreatModelError, match=r"points must be integer indices"):
        problem(moons, ThreatModel(eps=0.1, points=("a",)))


def test_non_numeric_feature_bounds_is_threat_model_error(moons):
    with pytest.raises(ThreatModelError, match=r"feature_bounds"):
        problem(moons, ThreatModel(eps=0.1, feature_bounds=("a", "b")))
