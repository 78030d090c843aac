"""``select_epoch = "best-val"``: certify the test set at the epoch whose certified accuracy on a
clean validation split is highest (the MIBP-Cert protocol)."""

from __future__ import annotations

import numpy as np
import pytest

from mibpcert import Config, run
from mibpcert.data import load_dataset
from mibpcert.errors import ConfigError, DataError
from mibpcert.pipeline import build_problem, certify_problem


def _cfg(**training) -> Config:
    cfg = Config()
    cfg.data.n_train, cfg.data.n_test, cfg.data.n_val = 60, 120, 40
    cfg.training.epochs, cfg.threat.eps = 8, 0.01
    for k, v in training.items():
        setattr(cfg.training, k, v)
    return cfg


def test_validation_split_is_taken_from_the_test_pool():
    full = load_dataset("moons", n_train=60, n_test=120, seed=0)
    ds = load_dataset("moons", n_train=60, n_test=120, seed=0, n_val=40)
    assert ds.n_val == 40 and ds.n_test == 80
    pool = {tuple(x) for x in full.X_test}
    assert {tuple(x) for x in ds.X_val} | {tuple(x) for x in ds.X_test} == pool
    assert not ({tuple(x) for x in ds.X_val} & {tuple(x) for x in ds.X_test})
    with pytest.raises(DataError, match="leaves no test points"):
        load_dataset("moons", n_train=10, n_test=5, n_val=5)


def test_best_val_certifies_the_chosen_epoch():
    cfg = _cfg(select_epoch="best-val")
    res = run(cfg)
    m = res.metrics
    e = m["selected_epoch"]
    curve = m["validation_certified"]
    assert len(curve) == 9 and curve[e] == max(curve)
    assert all(c < curve[e] for c in curve[e + 1 :])  # ties go to the latest epoch
    assert res.bounds.n_steps == e  # full batch: one step per epoch
    # the same as certifying a run of e epochs
    short = _cfg()
    short.training.epochs = e
    ref = run(short) if e > 0 else None
    if ref is not None:
        assert m["certified_accuracy"] == ref.metrics["certified_accuracy"]
        np.testing.assert_array_equal(res.bounds.upper, ref.bounds.upper)


def test_best_val_needs_a_validation_split():
    cfg = _cfg(select_epoch="best-val")
    cfg.data.n_val = 0
    with pytest.raises(ConfigError, match="n_val"):
        run(cfg)
    with pytest.raises(ConfigError, match="unknown select_epoch"):
        certify_problem(build_problem(_cfg()), select_epoch="best")
