"""The removal threat (``remove_k``: any K training points deleted): the kept-mean bound against
brute force, the trainer's deletion semantics, sound bounds of interval and agt against random
deletions (full batch, mini-batches, emptied batches, momentum), collapse, refusals, the CLI."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest

from mibpcert.bounds.removal import removal_mean
from mibpcert.cli import main
from mibpcert.data import load_dataset
from mibpcert.domains.interval import Interval
from mibpcert.errors import ThreatModelError, UnsupportedError
from mibpcert.methods import get_method
from mibpcert.model import Architecture, TrainingRecipe, init_params
from mibpcert.problem import Problem
from mibpcert.threat import ThreatModel


def _problem(threat: ThreatModel, batch_size=None, epochs=3, **rec) -> Problem:
    data = load_dataset("moons", n_train=12, n_test=20, seed=2)
    a = Architecture.parse("2-5-1")
    recipe = TrainingRecipe(loss="hinge", lr=0.3, epochs=epochs, batch_size=batch_size, **rec)
    return Problem(data, a, recipe, threat, init_params(a, 0))


def _means(g: np.ndarray, removable: np.ndarray, k: int) -> np.ndarray:
    """Every kept mean of ``g`` (b, m) over all deletions of at most ``k`` removable rows."""
    b = len(g)
    rows = np.flatnonzero(removable)
    out = []
    for r in range(min(k, len(rows)) + 1):
        for R in itertools.combinations(rows, r):
            keep = np.setdiff1d(np.arange(b), R)
            out.append(g[keep].mean(axis=0) if len(keep) else np.zeros(g.shape[1]))
    return np.array(out)


@pytest.mark.parametrize("b,k", [(5, 2), (4, 4), (6, 3)])
def test_removal_mean_is_the_brute_force_hull_for_point_gradients(b, k):
    rng = np.random.default_rng(b + k)
    g = rng.normal(size=(b, 7))
    removable = np.ones(b, dtype=bool)
    removable[0] = b == 4  # one trusted point except in the all-removable case
    box = removal_mean(Interval.point(g), removable, k)
    means = _means(g, removable, k)
    # sound: every deletion's mean lies inside; tight: per coordinate the hull is reached
    assert np.all(box.lo <= means.min(0)) and np.all(means.max(0) <= box.hi)
    np.testing.assert_allclose(box.lo, means.min(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(box.hi, means.max(0), rtol=0, atol=1e-12)


def test_removal_mean_holds_every_gradient_in_the_boxes():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(5, 4))
    per = Interval(c - 0.1, c + 0.1)
    box = removal_mean(per, np.ones(5, dtype=bool), 2)
    for _ in range(100):
        m = _means(rng.uniform(per.lo, per.hi), np.ones(5, dtype=bool), 2)
        assert np.all(box.lo <= m.min(0)) and np.all(m.max(0) <= box.hi)


def test_trainer_deletes_points_and_empties_batches():
    p = _problem(ThreatModel(), batch_size=2, epochs=1)
    removed = p.batches()[0]  # the whole first batch
    traj = p.train_removed(removed)
    assert np.array_equal(traj.thetas[1], traj.thetas[0])  # an emptied batch: no loss gradient
    assert np.isnan(traj.losses[0]) and not np.array_equal(traj.thetas[2], traj.thetas[1])
    assert np.array_equal(p.train_removed(np.zeros(0, dtype=int)).thetas, p.train_nominal().thetas)


@pytest.mark.parametrize(
    "threat,match",
    [
        (ThreatModel(eps=0.1, remove_k=1), "cannot be combined"),
        (ThreatModel(label_k=1, remove_k=1), "cannot be combined"),
        (ThreatModel(remove_k=13), "exceeds the 12 points"),
        (ThreatModel(remove_k=-1), "non-negative integer"),
        (ThreatModel(remove_k=1, budget_scope="batch"), "budget_scope = 'global'"),
    ],
)
def test_bad_removal_threats_are_clear_errors(threat, match):
    with pytest.raises(ThreatModelError, match=match):
        _problem(threat)


@pytest.mark.parametrize("batch_size,rec", [(None, {}), (5, {}), (2, {}), (5, {"momentum": 0.9})])
@pytest.mark.parametrize("method", ["interval", "agt"])
def test_random_deletions_stay_inside_the_bounds(method, batch_size, rec):
    p = _problem(ThreatModel(remove_k=3, points=tuple(range(1, 12))), batch_size=batch_size, **rec)
    b = get_method(method).bound(p)
    rng = np.random.default_rng(3)
    for _ in range(60):
        removed = p.threat.sample_removal(p.data.n_train, rng)
        assert 0 not in removed  # point 0 is trusted
        assert b.contains(p.train_removed(removed).thetas).all(), "a deletion left the boxes"
    # the bounds are not trivially wide: a bound for one deletion fewer is narrower
    fewer = get_method(method).bound(p.with_threat(dataclasses.replace(p.threat, remove_k=1)))
    assert float(fewer.widths()[-1].sum()) < float(b.widths()[-1].sum())


def test_zero_deletions_collapse_onto_training():
    p = _problem(ThreatModel(remove_k=0), batch_size=5)
    b = get_method("agt").bound(p)
    assert b.contains(p.train_nominal().thetas).all() and float(b.widths().max()) < 1e-9


def test_programs_and_affine_sets_refuse_removal():
    p = _problem(ThreatModel(remove_k=2))
    for method, opts in (("mibp", {"solver": "highs", "relax": "lp"}), ("exact", {})):
        with pytest.raises(UnsupportedError, match="divides by the number of kept points"):
            get_method(method, **opts).check(p)
    with pytest.raises(UnsupportedError, match="removal threat"):
        get_method("agt", sets="affine").bound(p)


def test_removal_from_the_cli(tmp_path):
    rc = main([
        "certify", "--dataset", "moons", "--n-train", "20", "--n-test", "10", "--model", "2-4-1",
        "--epochs", "2", "--eps", "0", "--remove-k", "2", "--method", "agt", "--out",
        str(tmp_path), "--no-progress", "--quiet",
    ])  # fmt: skip
    assert rc == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["problem"]["threat"]["remove_k"] == 2
    assert rep["metrics"]["certified_accuracy"] <= rep["metrics"]["nominal_accuracy"]
