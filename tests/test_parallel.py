"""Executors: kinds, retries after worker death and task errors, TaskFailure fallbacks, Ray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mibpcert.data import load_dataset
from mibpcert.domains.program import Formulation, LinearObjective
from mibpcert.errors import ConfigError, UnsupportedError
from mibpcert.methods import get_method
from mibpcert.model import Architecture, TrainingRecipe, init_params
from mibpcert.parallel import (
    EXECUTOR_KINDS,
    InProcess,
    ProcessPool,
    TaskFailure,
    make_executor,
)
from mibpcert.problem import Problem
from mibpcert.solvers.tasks import CHUNKS, solve_many
from mibpcert.threat import ThreatModel

# ----------------------------------------------------------------------------- task functions
# (module level, so spawned workers can import them)


def _attempt(marker_dir: str, i: int) -> int:
    """Record one attempt of task ``i``; return how many attempts it has had so far."""
    path = Path(marker_dir) / f"attempts_{i}"
    with open(path, "a") as fh:
        fh.write("x")
    return len(path.read_text())


def square_or_die_once(task: tuple[str, int, int]) -> int:
    """Task ``die``'s process kills itself on its first attempt."""
    marker_dir, i, die = task
    n = _attempt(marker_dir, i)
    if i == die and n == 1:
        os._exit(3)
    return i * i


def square_or_always_die(task: tuple[str, int, int]) -> int:
    marker_dir, i, die = task
    _attempt(marker_dir, i)
    if i == die:
        os._exit(3)
    return i * i


def square_or_raise(task: tuple[str, int, int]) -> int:
    marker_dir, i, bad = task
    _attempt(marker_dir, i)
    if i == bad:
        raise ValueError(f"task {i} is bad")
    return i * i


def _attempts(marker_dir: Path, i: int) -> int:
    path = marker_dir / f"attempts_{i}"
    return len(path.read_text()) if path.exists() else 0


# ----------------------------------------------------------------------------- kinds


def test_make_executor_kinds():
    assert isinstance(make_executor(1), InProcess)
    assert isinstance(make_executor(4, "inprocess"), InProcess)
    pool = make_executor(2, "process", retries=5)
    assert isinstance(pool, ProcessPool) and pool.workers == 2 and pool.retries == 5
    assert EXECUTOR_KINDS == ("inprocess", "process", "ray")
    with pytest.raises(ConfigError, match="unknown executor 'threads'; use one of inprocess, "):
        make_executor(2, "threads")
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        make_executor(0)


def test_ray_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UnsupportedError, match=r"pip install 'mibpcert\[ray\]'"):
        make_executor(2, "ray")


def test_import_loads_no_ray_no_matplotlib():
    code = (
        "import sys, mibpcert, mibpcert.parallel, mibpcert.sweep, mibpcert.certify.plots, "
        "mibpcert.cli; print([m for m in ('ray', 'matplotlib', 'pyscipopt', 'highspy') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- retries


def test_inprocess_retries_a_raising_task_then_gives_a_failure(tmp_path):
    tasks = [(str(tmp_path), i, 2) for i in range(4)]
    out = InProcess(retries=2).map(square_or_raise, tasks)
    assert out[:2] == [0, 1] and out[3] == 9
    assert isinstance(out[2], TaskFailure)
    assert "ValueError: task 2 is bad" in out[2].message
    assert [_attempts(tmp_path, i) for i in range(4)] == [1, 1, 3, 1]


def test_process_pool_retries_a_task_whose_worker_died(tmp_path):
    tasks = [(str(tmp_path), i, 1) for i in range(5)]
    seen = []
    with ProcessPool(2, retries=2) as pool:
        out = pool.map(square_or_die_once, tasks, on_result=lambda i, r: seen.append((i, r)))
    assert out == [0, 1, 4, 9, 16]
    assert _attempts(tmp_path, 1) == 2  # died once, then succeeded
    # every other task ran once, or twice if the broken pool lost it
    assert all(1 <= _attempts(tmp_path, i) <= 2 for i in range(5))
    assert sorted(seen) == [(i, i * i) for i in range(5)]


def test_process_pool_task_that_always_dies_becomes_a_failure(tmp_path):
    tasks = [(str(tmp_path), i, 0) for i in range(3)]
    with ProcessPool(2, retries=1) as pool:
        out = pool.map(square_or_always_die, tasks)
        assert out[1:] == [1, 4]
        assert isinstance(out[0], TaskFailure)
        assert "worker process died" in out[0].message
        assert _attempts(tmp_path, 0) == 2  # 1 + retries
        # the pool is usable again afterwards
        assert pool.map(square_or_raise, [(str(tmp_path), 5, -1)]) == [25]


def test_process_pool_raising_task_becomes_a_failure(tmp_path):
    tasks = [(str(tmp_path), i, 1) for i in range(3)]
    with ProcessPool(2, retries=1) as pool:
        out = pool.map(square_or_raise, tasks)
    assert out[0] == 0 and out[2] == 4
    assert isinstance(out[1], TaskFailure) and "ValueError: task 1 is bad" in out[1].message
    assert [_attempts(tmp_path, i) for i in range(3)] == [1, 2, 1]


# ----------------------------------------------------------------------------- fallbacks


class _FailChunks:
    """Runs tasks in-process but returns a TaskFailure for the chunks in ``fail``."""

    workers = 1

    def __init__(self, fail):
        self.fail = set(fail)

    def map(self, fn, tasks, on_result=None):
        return [
            TaskFailure("worker died (simulated)") if i in self.fail else fn(t)
            for i, t in enumerate(tasks)
        ]

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_solve_many_turns_a_failed_task_into_error_results():
    pytest.importorskip("highspy")
    form = Formulation()
    form.add_var(-1.0, 2.0)
    form.add_var(0.0, 3.0)
    form.add_row([0, 1], [1.0, 1.0], hi=4.0)
    objectives = [
        LinearObjective(np.array([j % 2]), np.array([1.0]), 0.0, sense, f"o{j}{sense}")
        for j in range(10)
        for sense in ("min", "max")
    ]
    res = solve_many(form, objectives, "highs", 10.0, _FailChunks({0, 3}))
    n = min(CHUNKS, len(objectives))
    assert [r.objective_name for r in res] == [o.name for o in objectives]
    assert [r.sense for r in res] == [o.sense for o in objectives]
    for k, (r, obj) in enumerate(zip(res, objectives, strict=True)):
        if k % n in (0, 3):
            assert r.status == "error" and r.dual_bound is None and r.primal is None
            assert r.bound(1e-6, 1e-6) is None
            assert r.message == "task failed: worker died (simulated)"
            assert r.seconds == 0 and r.nodes == 0
        else:
            var = obj.idx[0]
            want = [-1.0, 0.0][var] if obj.sense == "min" else [2.0, 3.0][var]
            assert r.status == "optimal" and r.dual_bound == pytest.approx(want)


def _small_problem(eps=0.05, n=8, epochs=2):
    data = load_dataset("moons", n_train=n, n_test=20, seed=0)
    arch = Architecture.parse("2-3-1")
    rec = TrainingRecipe(loss="hinge", lr=0.5, epochs=epochs)
    return Problem(data, arch, rec, ThreatModel(eps=eps), init_params(arch, 0))


def test_mibp_stops_when_every_task_fails(monkeypatch):
    pytest.importorskip("highspy")
    import mibpcert.methods.mibp as mibp_mod
    from mibpcert.errors import SolveFailureError

    monkeypatch.setattr(mibp_mod, "make_executor", lambda *a, **k: _FailChunks(range(CHUNKS)))
    problem = _small_problem()
    m = problem.arch.n_params
    with pytest.raises(SolveFailureError, match=rf"step 1: {2 * m} of {2 * m} solves failed"):
        get_method("mibp", solver="highs", relax="lp", workers=1).bound(problem)


def test_mibp_degraded_keeps_interval_bounds_when_every_task_fails(monkeypatch):
    pytest.importorskip("highspy")
    import mibpcert.methods.mibp as mibp_mod

    monkeypatch.setattr(mibp_mod, "make_executor", lambda *a, **k: _FailChunks(range(CHUNKS)))
    problem = _small_problem()
    m = problem.arch.n_params
    got = get_method(
        "mibp", solver="highs", relax="lp", workers=1, allow_degraded=True
    ).bound(problem)
    ref = get_method("interval").bound(problem)
    np.testing.assert_array_equal(got.lower, ref.lower)
    np.testing.assert_array_equal(got.upper, ref.upper)
    assert np.all(got.contains(problem.train_nominal().thetas))
    for info in got.step_info:
        assert info["statuses"] == {"error": 2 * m}
        assert info["fallbacks"] == 2 * m and info["task_failures"] == 2 * m
        assert info["failed_solves"] == 2 * m
    assert len(got.warnings) == problem.n_steps
    assert "lost with their task" in got.warnings[0]


def test_mibp_rejects_unknown_executor():
    with pytest.raises(ConfigError, match="unknown executor 'dask'"):
        get_method("mibp", executor="dask")


# ----------------------------------------------------------------------------- Ray


@pytest.fixture
def ray_module():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # pragma: no cover - another test left Ray running
        ray.shutdown()
    # the task functions above live in this test module, which Ray workers cannot import
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    if ray.is_initialized():
        ray.shutdown()


def test_ray_matches_process_pool_and_survives_worker_death(ray_module, tmp_path):
    pytest.importorskip("highspy")
    ray = ray_module
    problem = _small_problem()
    opts = {"solver": "highs", "relax": "lp", "workers": 2, "self_check_samples": 4}
    pool = get_method("mibp", executor="process", **opts).bound(problem)

    with make_executor(2, "ray", retries=2) as ex:  # starts Ray: this executor owns it
        assert ray.is_initialized()
        out = ex.map(square_or_die_once, [(str(tmp_path), i, 2) for i in range(4)])
        assert out == [0, 1, 4, 9]
        assert _attempts(tmp_path, 2) == 2
        (tmp_path / "always").mkdir()
        out = ex.map(square_or_always_die, [(str(tmp_path / "always"), i, 0) for i in range(2)])
        assert isinstance(out[0], TaskFailure) and out[1] == 1
        assert _attempts(tmp_path / "always", 0) == 3  # 1 + retries
        # mibp's own Ray executor reuses the running runtime and leaves it running
        on_ray = get_method("mibp", executor="ray", **opts).bound(problem)
        assert ray.is_initialized()
    assert not ray.is_initialized()  # shut down by the executor that started it

    np.testing.assert_array_equal(on_ray.lower, pool.lower)
    np.testing.assert_array_equal(on_ray.upper, pool.upper)
    assert [s["statuses"] for s in on_ray.step_info] == [s["statuses"] for s in pool.step_info]
    assert pool.widths()[-1].max() > 0


def test_cli_executor_flags(tmp_path, capsys):
    pytest.importorskip("highspy")
    from mibpcert.certify.report import load_report
    from mibpcert.cli import main

    small = ["--n-train", "8", "--n-test", "10", "--model", "2-3-1", "--epochs", "1"]
    mibp = ["--method", "mibp", "--relax", "lp", "--solver", "highs", "--no-progress", "-q"]
    out = tmp_path / "run"
    assert main(["certify", *small, *mibp, "--executor", "inprocess", "--out", str(out)]) == 0
    report = load_report(out)
    assert report["config"]["method"]["executor"] == "inprocess"
    assert report["config"]["method"]["ray_address"] is None
    assert report["steps"][1]["statuses"] == {"optimal": 26}
    capsys.readouterr()
    assert main(["certify", *small, *mibp, "--executor", "dask", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mibpcert: error:") and "unknown executor 'dask'" in err
