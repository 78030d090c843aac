"""``exact`` by pieces, one program per poisoned point (methods.md §11.9)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from mibpcert import Config
from mibpcert.attacks import TestObjective, threat_violations
from mibpcert.cli import main
from mibpcert.errors import ConfigError
from mibpcert.methods.exact import ExactMethod
from mibpcert.methods.exact_split import piece, split_applies
from mibpcert.pipeline import build_problem, certify_problem

pytest.importorskip("pyscipopt")


def _problem(**kw):
    cfg = Config()
    cfg.data.dataset = "moons"
    cfg.data.n_train = 5
    cfg.data.n_test = 12
    cfg.model.arch = "2-1"
    cfg.training.loss = "hinge"
    cfg.training.epochs = 2
    cfg.training.lr = 0.5
    cfg.threat.eps, cfg.threat.k = 0.5, 1
    for key, value in kw.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return build_problem(cfg)


def _exact(problem, **options):
    options.setdefault("workers", 1)
    options.setdefault("time_limit", 60)
    options.setdefault("heuristic_time", 0.3)
    return certify_problem(problem, "exact", options=options).exact


def _brute_force(problem, objective: TestObjective, levels: int = 5) -> float:
    """The worst value over a grid of every point's box (one point moved at a time)."""
    X0, y0 = problem.data.X_train, problem.data.y_train
    lo, hi = problem.threat.feature_box(X0)
    worst = objective.value(problem, problem.train_nominal().final)
    for i in problem.threat.scope(len(X0)):
        grids = [np.linspace(lo[i, j], hi[i, j], levels) for j in range(X0.shape[1])]
        for vals in itertools.product(*grids):
            X = X0.copy()
            X[i] = vals
            worst = max(worst, objective.value(problem, problem.train_poisoned(X, y0).final))
    return worst


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"training__loss": "mse", "training__lr": 0.3, "training__epochs": 3},
        {
            "model__arch": "2-3-1",
            "threat__eps": 0.5,
            "data__n_train": 6,
            "data__n_test": 30,
            "data__standardize": True,
        },
    ],
)
def test_split_equals_one_program_and_holds_the_brute_force_optimum(kw):
    """The pieces close on the same optimum as the one program; it is at least every gridded
    attack's value (sound), and the best attack replays inside the threat model."""
    p = _problem(**kw)
    assert split_applies(p)
    one = _exact(p, objective="misclassified", split="none")
    parts = _exact(p, objective="misclassified", split="points")
    assert "split" in parts and "split" not in one
    assert parts["split"]["pieces"] == p.data.n_train
    assert one["outcome"] == parts["outcome"] == "closed"
    assert parts["dual_bound"] == one["dual_bound"]
    assert parts["best_attack"] == one["best_attack"]
    grid = _brute_force(p, TestObjective("misclassified"))
    assert parts["dual_bound"] >= grid
    assert parts["best_attack"] > parts["clean_value"], "the instance must be non-trivial"


def _assert_samples_within(problem, bound: float, n: int = 200) -> None:
    """Random attacks of the whole threat model (k points' features, label changes), trained
    ordinarily, never misclassify more than ``bound`` test points."""
    rng = np.random.default_rng(0)
    obj = TestObjective("misclassified")
    X0, y0 = problem.data.X_train, problem.data.y_train
    for _ in range(n):
        X, y = problem.threat.sample(X0, y0, rng, vertex_prob=0.7)
        assert not threat_violations(problem, X, y)
        assert obj.value(problem, problem.train_poisoned(X, y).final) <= bound


def _brute_force_with_flips(problem, objective: TestObjective, levels: int = 5) -> float:
    """The worst value over one point's gridded box and one label flip (or none), every pair."""
    X0, y0 = problem.data.X_train, problem.data.y_train
    lo, hi = problem.threat.feature_box(X0)
    worst = -np.inf
    for i in problem.threat.scope(len(X0)):
        grids = [np.linspace(lo[i, j], hi[i, j], levels) for j in range(X0.shape[1])]
        for vals in itertools.product(*grids):
            X = X0.copy()
            X[i] = vals
            for f in [None, *range(len(y0))]:
                y = y0.copy()
                if f is not None:
                    y[f] = 1 - y[f]
                worst = max(worst, objective.value(problem, problem.train_poisoned(X, y).final))
    return worst


def test_split_with_label_flips_equals_one_program():
    """Features of one point and any one label flip: the pieces (features of point i, the flip
    anywhere) close on the one program's optimum, at least every gridded attack's value, and
    the best attack lies inside the threat model."""
    p = _problem(threat__label_k=1, threat__eps=0.3, data__n_train=5)
    assert split_applies(p)
    one = _exact(p, objective="misclassified", split="none")
    parts = _exact(p, objective="misclassified", split="points")
    assert "split" in parts and parts["split"]["pieces"] == p.data.n_train
    assert one["outcome"] == parts["outcome"] == "closed"
    assert parts["dual_bound"] == one["dual_bound"] == parts["best_attack"]
    assert parts["dual_bound"] >= _brute_force_with_flips(p, TestObjective("misclassified"))
    assert one["best_attack"] > parts["clean_value"], "the instance must be non-trivial"
    _assert_samples_within(p, parts["dual_bound"])


def _brute_force_pairs(problem, objective: TestObjective, levels: int = 3) -> float:
    """The worst value over a grid of every pair of points' boxes (two points moved at once)."""
    X0, y0 = problem.data.X_train, problem.data.y_train
    lo, hi = problem.threat.feature_box(X0)
    worst = -np.inf
    for pair in itertools.combinations(problem.threat.scope(len(X0)), 2):
        grids = [np.linspace(lo[i, j], hi[i, j], levels) for i in pair for j in range(2)]
        for vals in itertools.product(*grids):
            X = X0.copy()
            X[list(pair)] = np.reshape(vals, (2, 2))
            worst = max(worst, objective.value(problem, problem.train_poisoned(X, y0).final))
    return worst


@pytest.mark.parametrize("loss", ["hinge", "mse"])
def test_split_by_pairs_equals_one_program(loss):
    """k = 2: one piece per pair of points (C(5, 2) = 10), closing on the one program's
    optimum, at least every gridded two-point attack's value; every piece row names its pair."""
    p = _problem(threat__k=2, threat__eps=0.4, training__loss=loss)
    one = _exact(p, objective="misclassified", split="none")
    parts = _exact(p, objective="misclassified", split="points")
    assert parts["split"]["pieces"] == 10
    assert sorted(tuple(r["points"]) for r in parts["split"]["per_point"]) == sorted(
        itertools.combinations(range(5), 2)
    )
    assert all("point" not in r for r in parts["split"]["per_point"])
    assert one["outcome"] == parts["outcome"] == "closed"
    assert parts["dual_bound"] == one["dual_bound"] == parts["best_attack"]
    assert parts["dual_bound"] >= _brute_force_pairs(p, TestObjective("misclassified"))
    assert parts["best_attack"] > parts["clean_value"], "the instance must be non-trivial"
    _assert_samples_within(p, parts["dual_bound"])


def test_split_regression_bound_is_sound_and_the_attack_replays(tmp_path):
    cfg = {
        "data__dataset": "diabetes",
        "data__standardize": True,
        "data__n_train": 6,
        "data__n_test": 4,
        "model__arch": "10-1",
        "training__loss": "mse",
        "training__lr": 0.2,
        "training__epochs": 2,
        "threat__eps": 0.3,
    }
    p = _problem(**cfg)
    r = certify_problem(
        p,
        "exact",
        options=dict(objective="mse", workers=1, time_limit=60, split="points", out_dir=tmp_path),
    )
    ex = r.exact
    mse = TestObjective("mse")
    assert ex["outcome"] == "closed"
    rng = np.random.default_rng(0)
    for _ in range(100):  # sampled attacks never beat the certified bound
        X, y = p.threat.sample(p.data.X_train, p.data.y_train, rng, vertex_prob=0.7)
        assert mse.value(p, p.train_poisoned(X, y).final) <= ex["dual_bound"] + 1e-9
    best = np.load(tmp_path / "best.npz")  # the saved best attack: inside, and replays
    assert not threat_violations(p, best["X"], best["y"])
    assert mse.value(p, p.train_poisoned(best["X"], best["y"]).final) == pytest.approx(
        ex["best_attack"], abs=1e-12
    )
    assert ex["trace"], "the split's progress (best attack, bound so far) is recorded"
    # every piece's bound is sound for its own attacks: sampled attacks on that point only
    for row in ex["split"]["per_point"]:
        sub = piece(p, row["point"])
        for _ in range(20):
            X, y = sub.threat.sample(p.data.X_train, p.data.y_train, rng, vertex_prob=0.7)
            assert mse.value(p, p.train_poisoned(X, y).final) <= row["bound"] + 1e-9


def test_pieces_are_pruned_by_interval_bounds_and_cut_off_by_the_attack():
    """With a cutoff at the best attack, a piece that cannot beat it is proved infeasible or
    pruned: its bound is the best attack's value, never below it."""
    p = _problem(data__n_train=8, training__epochs=3, threat__eps=0.3)
    ex = _exact(p, objective="misclassified", split="points")
    rows = ex["split"]["per_point"]
    best = ex["best_attack"]
    assert all(row["bound"] >= best for row in rows)  # no piece bound below a real attack
    assert all(row["bound"] <= row["interval_bound"] for row in rows)
    assert max(row["bound"] for row in rows) == ex["dual_bound"]
    done = {row["status"] for row in rows}
    assert done & {"pruned", "infeasible"}, f"expected pruned or cut-off pieces, got {done}"
    assert ex["split"]["pruned"] + ex["split"]["solved"] + ex["split"]["unsolved"] == 8


def test_a_budget_that_runs_out_keeps_sound_interval_bounds():
    p = _problem(data__n_train=8, training__epochs=3, threat__eps=0.3)
    ex = _exact(p, objective="misclassified", split="points", time_limit=0.01, heuristic_time=0.0)
    assert ex["status"] == "time_limit" or ex["outcome"] == "closed"
    full = _exact(p, objective="misclassified", split="none")
    assert ex["dual_bound"] >= full["dual_bound"]  # never below the true optimum
    assert ex["dual_bound"] <= ex["interval_bound"]


@pytest.mark.parametrize("k,label_k", [(1, 0), (2, 0), (1, 1)])
def test_split_collapses_onto_ordinary_training_at_a_vanishing_radius(k, label_k):
    """eps -> 0 (1e-9; at eps = 0 nothing moves and the split does not apply): every piece
    is pruned or cut off at the clean value, and the bound is the clean count (one point, pairs;
    with a label budget, the labels' own worst case, which every piece shares)."""
    p = _problem(threat__eps=1e-9, data__n_train=6, threat__k=k, threat__label_k=label_k)
    assert split_applies(p)
    if label_k:  # nothing but the labels can move: the split equals the one program
        one = _exact(p, objective="misclassified", split="none")
        ex = _exact(p, objective="misclassified", split="points")
        assert ex["dual_bound"] == ex["best_attack"] == one["dual_bound"] == one["best_attack"]
        return
    ex = _exact(p, objective="misclassified", split="points")
    assert ex["outcome"] == "closed" and ex["status"] == "optimal"
    assert ex["dual_bound"] == ex["best_attack"] == ex["clean_value"]
    assert all(row["bound"] == ex["clean_value"] for row in ex["split"]["per_point"])
    assert not split_applies(_problem(threat__eps=0.0))


def test_split_with_affine_step_bounds_is_sound():
    p = _problem(data__n_train=6, threat__eps=0.3)
    ex = _exact(p, objective="misclassified", split="points", sets="affine")
    one = _exact(p, objective="misclassified", split="none")
    assert ex["dual_bound"] >= one["best_attack"] and one["dual_bound"] >= ex["best_attack"]
    assert ex["dual_bound"] >= _brute_force(p, TestObjective("misclassified"))


def test_split_choices_and_errors():
    p = _problem()
    assert ExactMethod().splits(p)
    assert not ExactMethod(split="none").splits(p)
    two = _problem(threat__k=2)
    assert split_applies(two) and ExactMethod().splits(two)  # C(5, 2) = 10 pieces
    every = _problem(threat__k=5)  # k = n: every point moves, nothing to split
    many = _problem(threat__k=3, data__n_train=25)  # C(25, 3) = 2300 pieces > 200
    assert not split_applies(every) and not split_applies(many)
    assert split_applies(_problem(threat__label_k=1))  # labels ride along in every piece
    assert not split_applies(_problem(threat__label_k=1, threat__paired=True))
    with pytest.raises(ConfigError, match="unknown exact split"):
        ExactMethod(split="subsets")
    for bad in (every, many):
        with pytest.raises(ConfigError, match="split 'points' needs a k-of-n"):
            ExactMethod(split="points").check(bad)
    with pytest.raises(ConfigError, match="split 'points' answers"):
        ExactMethod(split="points", objective="margin").check(p)
    sub = piece(p, 3)
    assert sub.threat.scope(p.data.n_train).tolist() == [3] and sub.threat.k is None
    assert piece(two, (1, 4)).threat.scope(5).tolist() == [1, 4]


def test_cli_split_flag(tmp_path, capsys):
    for split in ("none", "points"):
        out = tmp_path / split
        rc = main(
            [
                "certify", "--method", "exact", "--n-train", "5", "--n-test", "8",
                "--model", "2-1", "--steps", "2", "--lr", "0.5", "--eps", "0.3", "--k", "1",
                "--objective", "misclassified", "--split", split, "--workers", "1",
                "--root-cuts", "on" if split == "none" else "auto",
                "--heuristic-time", "0.3", "--time-limit", "20", "--out", str(out),
                "--no-progress",
            ]
        )  # fmt: skip
        assert rc == 0
        report = json.loads((out / "report.json").read_text())
        assert ("split" in report["exact"]) == (split == "points")
        assert report["config"]["method"]["split"] == split
        assert report["config"]["method"]["root_cuts"] == ("on" if split == "none" else "auto")
    capsys.readouterr()


class _ScriptedSession:
    """Stands in for a solver session: a piece's first solve stops on its time limit after
    ``nodes`` nodes with a loose bound, every later call proves the cutoff set empty."""

    def __init__(self, log: list, nodes: int, seen: set, key: tuple) -> None:
        self.log, self.nodes, self.seen, self.key = log, nodes, seen, key

    def _result(self, obj, resumed):
        from mibpcert.solvers.base import SolveResult
        from mibpcert.vocab import Status

        first = self.key not in self.seen  # the piece's very first solve
        self.seen.add(self.key)
        return SolveResult(
            status=Status.TIME_LIMIT if first else Status.INFEASIBLE,
            primal=None,
            dual_bound=1e6 if first else -np.inf,
            gap=None,
            seconds=0.0,
            nodes=self.nodes,
            message="scripted",
            objective_name="",
            sense="max",
            resumed=resumed,
        )

    def solve(self, obj, time_limit=None, return_x=False):
        self.obj = obj
        self.log.append("solve")
        return self._result(obj, None)

    def resume(self, time_limit=None, return_x=False):
        self.log.append("resume")
        return self._result(self.obj, True)

    def close(self):
        self.log.append("close")


@pytest.mark.parametrize("nodes", [1, 40])
def test_a_stopped_piece_search_goes_on_in_the_next_round(monkeypatch, nodes):
    """A piece whose solve stopped on its time limit is taken up again next round: resumed
    when its search got past the root node (same cutoff), solved afresh otherwise; the piece
    bound is then the cutoff's, and every session is closed."""
    import mibpcert.methods.exact_split as split_mod

    log: list = []
    seen: set = set()

    def scripted(task):  # a piece is known by its variable bounds (its point's box)
        key = (tuple(task.formulation.lb), tuple(task.formulation.ub))
        return _ScriptedSession(log, nodes, seen, key)

    monkeypatch.setattr(split_mod, "open_session", scripted)
    p = _problem(data__n_train=6)
    ex = _exact(p, objective="misclassified", split="points", heuristic=False)
    solved = [row for row in ex["split"]["per_point"] if row.get("solves")]
    assert solved, "the instance must leave pieces to solve"
    for row in solved:
        assert row["solves"] == 2 and row["status"] == "infeasible"
        assert row["resumed"] == (1 if nodes > 1 else 0)
        assert row["bound"] == ex["best_attack"]  # proved: nothing above the cutoff
    assert log.count("resume") == (len(solved) if nodes > 1 else 0)
    assert log.count("close") == log.count("solve")  # no session left open


def test_root_cuts_choice_keeps_the_optimum():
    """Root cutting planes change the search only: on, off and auto close on one optimum."""
    p = _problem(data__n_train=6, threat__eps=0.4)
    answers = [
        _exact(p, objective="misclassified", split=split, root_cuts=cuts)
        for split in ("points", "none")
        for cuts in ("on", "off")
    ]
    assert {a["outcome"] for a in answers} == {"closed"}
    assert len({a["dual_bound"] for a in answers}) == 1
    assert answers[0]["dual_bound"] >= _brute_force(p, TestObjective("misclassified"))
    m = ExactMethod()
    assert m.tunings("misclassified") == ("no_root_cuts",) and m.tunings("mse") == ()
    assert ExactMethod(root_cuts="on").tunings("misclassified") == ()
    assert ExactMethod(root_cuts="off").tunings("mse") == ("no_root_cuts",)
    with pytest.raises(ConfigError, match="unknown exact root_cuts"):
        ExactMethod(root_cuts="sometimes")
