"""Sweeps: grid cells, resuming, stale cells, validation, parallel cells, progress, CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import mibpcert.pipeline as pipeline
import mibpcert.sweep as sweep_mod
import mibpcert.sweep.execute as sweep_exec
from mibpcert import Config, run
from mibpcert.cli import main
from mibpcert.errors import ConfigError
from mibpcert.sweep import COLUMNS, TIMING_COLUMNS, load_sweep, run_sweep

REAL_RUN = pipeline.run


def _spec(**sweep) -> dict:
    grid = {
        "methods": ["interval", "agt"],
        "eps": [0.001, 0.01],
        "k": ["-", 5],
        "seeds": [0, 1],
    }
    grid.update(sweep)
    return {
        "data": {"n_train": 20, "n_test": 30},
        "training": {"epochs": 2},
        "sweep": grid,
    }


def _stable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def _counting(monkeypatch, fail_after: int | None = None) -> list[str]:
    """Count pipeline.run calls (the cell directories); raise after ``fail_after`` calls."""
    calls: list[str] = []
    real = REAL_RUN

    def counted(cfg, *args, **kwargs):
        if fail_after is not None and len(calls) >= fail_after:
            raise RuntimeError("interrupted (injected)")
        calls.append(str(kwargs["out_dir"]))
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run", counted)
    return calls


def test_sweep_cells_match_direct_runs(tmp_path):
    rows = run_sweep(_spec(), tmp_path)
    assert len(rows) == 16
    assert rows[0]["cell"] == "interval_eps0.001_k-_seed0"
    assert rows[-1]["cell"] == "agt_eps0.01_k5_seed1"
    assert [(r["method"], r["eps"], r["k"], r["seed"]) for r in rows[:4]] == [
        ("interval", 0.001, None, 0),
        ("interval", 0.001, None, 1),
        ("interval", 0.001, 5, 0),
        ("interval", 0.001, 5, 1),
    ]
    # one cell against the same run through the Python API
    cfg = Config()
    cfg.data.n_train, cfg.data.n_test, cfg.training.epochs = 20, 30, 2
    cfg.method.name, cfg.threat.eps, cfg.threat.k = "agt", 0.01, 5
    cfg.data.seed = cfg.model.init_seed = 1
    direct = run(cfg)
    row = next(r for r in rows if r["cell"] == "agt_eps0.01_k5_seed1")
    assert row["certified_accuracy"] == direct.metrics["certified_accuracy"]
    assert row["nominal_accuracy"] == direct.metrics["nominal_accuracy"]
    assert row["final_max_width"] == direct.metrics["final_max_width"]
    boxes = np.load(tmp_path / row["dir"] / "boxes.npz")
    np.testing.assert_array_equal(boxes["upper"], direct.bounds.upper)
    report = json.loads((tmp_path / row["dir"] / "report.json").read_text())
    assert report["config"]["threat"]["k"] == 5 and report["config"]["model"]["init_seed"] == 1
    # agt uses the budget, interval cannot: same cell otherwise
    itv = next(r for r in rows if r["cell"] == "interval_eps0.01_k5_seed1")
    assert row["final_max_width"] < itv["final_max_width"]
    # the tables on disk
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["complete"] is True and doc["columns"] == list(COLUMNS)
    assert doc["timing_columns"] == list(TIMING_COLUMNS)
    assert _stable(doc["rows"]) == _stable(rows)
    with open(tmp_path / "sweep.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [t["cell"] for t in table] == [r["cell"] for r in rows]
    assert float(table[5]["certified_accuracy"]) == rows[5]["certified_accuracy"]
    assert table[0]["k"] == "" and table[2]["k"] == "5"


def test_interrupted_sweep_resumes_without_recomputing(tmp_path, monkeypatch):
    spec = _spec(methods=["interval", "agt"], k=[5])
    calls = _counting(monkeypatch, fail_after=3)
    with pytest.raises(RuntimeError, match="injected"):
        run_sweep(spec, tmp_path / "a")
    assert len(calls) == 3
    partial = json.loads((tmp_path / "a" / "sweep.json").read_text())
    assert partial["complete"] is False and len(partial["rows"]) == 3

    calls = _counting(monkeypatch)
    resumed = run_sweep(spec, tmp_path / "a")
    assert len(calls) == 8 - 3  # only the cells that were not finished
    assert not any(c.endswith(r["dir"]) for c in calls for r in partial["rows"])
    calls = _counting(monkeypatch)
    again = run_sweep(spec, tmp_path / "a", workers=1, executor="inprocess")
    assert calls == []  # all cells done; execution settings do not matter
    calls = _counting(monkeypatch)
    fresh = run_sweep(spec, tmp_path / "b")
    assert len(calls) == 8
    assert _stable(resumed) == _stable(fresh) == _stable(again)
    on_disk = json.loads((tmp_path / "a" / "sweep.json").read_text())
    assert on_disk["complete"] is True and _stable(on_disk["rows"]) == _stable(fresh)


def test_stale_cells_are_run_again(tmp_path, monkeypatch):
    spec = _spec(methods=["interval"], k=[5], eps=[0.01])
    run_sweep(spec, tmp_path)
    # a stored report whose configuration differs from its cell's
    report_path = tmp_path / "cells" / "interval_eps0.01_k5_seed1" / "report.json"
    report = json.loads(report_path.read_text())
    report["config"]["training"]["lr"] = 0.5
    report_path.write_text(json.dumps(report))
    (tmp_path / "cells" / "interval_eps0.01_k5_seed0" / "boxes.npz").unlink()
    calls = _counting(monkeypatch)
    rows = run_sweep(spec, tmp_path)
    assert sorted(c.rsplit("/", 1)[-1] for c in calls) == [
        "interval_eps0.01_k5_seed0",
        "interval_eps0.01_k5_seed1",
    ]
    assert json.loads(report_path.read_text())["config"]["training"]["lr"] == 0.1
    # a changed base configuration makes every cell stale
    spec["training"]["epochs"] = 3
    calls = _counting(monkeypatch)
    rows3 = run_sweep(spec, tmp_path)
    assert len(calls) == 2
    for r, r3 in zip(rows, rows3, strict=True):
        assert r3["final_max_width"] > r["final_max_width"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sweep": {"methods": ["interval"], "eps": [0.1], "grid": 1}}, "unknown key"),
        ({"sweep": {"methods": [], "eps": [0.1]}}, "methods must not be empty"),
        ({"sweep": {"methods": ["interval"]}}, "needs eps"),
        ({"sweep": {"methods": ["interval"], "eps": 0.1}}, "eps must be a list"),
        ({"sweep": {"methods": ["fullcert"], "eps": [0.1]}}, "unknown method 'fullcert'"),
        ({"sweep": {"methods": ["interval"], "eps": ["big"]}}, "eps values must be numbers"),
        ({"sweep": {"methods": ["interval"], "eps": [0.1, 0.1]}}, "more than once"),
        ({"sweep": {"methods": ["interval"], "eps": [0.1], "seeds": [True]}}, "seeds must be"),
        ({"sweep": {"methods": ["interval"], "eps": [0.1], "k": [1.5]}}, "k values must be"),
        (
            {"sweep": {"methods": ["interval"], "eps": [0.1], "options": {"mibp": {}}}},
            "not one of the sweep's methods",
        ),
        (
            {"sweep": {"methods": ["mibp"], "eps": [0.1], "options": {"mibp": {"relx": "lp"}}}},
            "unknown key(s) ['relx']",
        ),
        (
            {"sweep": {"methods": ["mibp"], "eps": [0.1], "options": {"mibp": {"workers": "x"}}}},
            "workers must be int",
        ),
        ({"training": {"epochz": 2}, "sweep": {"methods": ["interval"], "eps": [0.1]}}, "epochz"),
        ({"data": {"n_train": 20}}, "no [sweep] section"),
    ],
)
def test_sweep_validation(change, message):
    with pytest.raises(ConfigError) as exc:
        load_sweep(change)
    assert message in str(exc.value)


def test_yaml_sweep_file_with_null_k(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(
        "data: {n_train: 20, n_test: 30}\n"
        "training: {epochs: 1}\n"
        "sweep:\n  methods: [agt]\n  eps: ['1e-3']\n  k: [null, 3]\n  seeds: [2]\n"
    )
    spec = load_sweep(path)
    assert spec.default_out == "sweeps/grid"
    cells = spec.cells()
    assert [c.id for c in cells] == ["agt_eps0.001_k-_seed2", "agt_eps0.001_k3_seed2"]
    assert cells[1].config.threat.k == 3 and cells[0].config.threat.k is None
    assert cells[0].config.data.seed == cells[0].config.model.init_seed == 2


def test_parallel_cells_give_the_same_table(tmp_path):
    spec = _spec(methods=["interval", "agt"], eps=[0.01], seeds=[0, 1])
    seq = run_sweep(spec, tmp_path / "seq", executor="inprocess")
    par = run_sweep(spec, tmp_path / "par", executor="process", workers=2, parallel_cells=True)
    assert _stable(par) == _stable(seq)
    report = json.loads((tmp_path / "par" / par[0]["dir"] / "report.json").read_text())
    assert report["config"]["method"]["workers"] == 1


def test_progress_counts_cells_steps_and_solves(tmp_path, monkeypatch):
    pytest.importorskip("highspy")
    seen = []

    class Recorder(sweep_mod._Progress):
        def close(self):
            seen.append((self.cells_done, self.solves_total))
            super().close()

    monkeypatch.setattr(sweep_exec, "_Progress", Recorder)
    spec = {
        "data": {"n_train": 8, "n_test": 10},
        "model": {"arch": "2-3-1"},
        "training": {"epochs": 2},
        "method": {"solver": "highs", "relax": "lp", "test_mip": False, "workers": 1},
        "sweep": {"methods": ["interval", "mibp"], "eps": [0.05]},
    }
    rows = run_sweep(spec, tmp_path, progress=False)
    mibp_row = rows[1]
    n_solves = sum(mibp_row["statuses"].values())
    assert n_solves == 2 * 2 * 13  # 2 steps x 2 objectives x 13 parameters
    assert seen == [(2, n_solves)]
    assert rows[0]["statuses"] == {} and mibp_row["final_max_width"] <= rows[0]["final_max_width"]


def test_cli_sweep_and_errors(tmp_path, capsys):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(
        "[data]\nn_train = 20\nn_test = 30\n[training]\nepochs = 2\n"
        '[sweep]\nmethods = ["interval", "agt"]\neps = [0.01]\nk = [5]\nseeds = [0]\n'
    )
    out = tmp_path / "out"
    assert main(["sweep", str(cfg), "--out", str(out), "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "certified acc (%)" in stdout and "agt" in stdout
    assert f"table: {out / 'sweep.csv'}" in stdout
    assert (out / "cells" / "agt_eps0.01_k5_seed0" / "report.json").exists()
    with open(out / "sweep.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2

    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nmethods = ["interval"]\neps = []\n')
    assert main(["sweep", str(bad), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mibpcert: error:") and "eps must not be empty" in err
    assert main(["sweep", str(cfg), "--out", str(out), "--executor", "threads"]) == 2
    assert "unknown executor 'threads'" in capsys.readouterr().err


def test_interrupted_mibp_cell_continues_from_its_checkpoint(tmp_path, monkeypatch):
    pytest.importorskip("highspy")
    spec = {
        "data": {"n_train": 8, "n_test": 10},
        "model": {"arch": "2-3-1"},
        "training": {"epochs": 3},
        "method": {"solver": "highs", "relax": "lp", "workers": 1},
        "sweep": {"methods": ["mibp"], "eps": [0.05]},
    }
    steps: list[tuple[int, int]] = []

    def interrupted(cfg, on_step=None, **kwargs):
        def stop_after_two(done, total):
            steps.append((done, total))
            if done == 2:
                raise KeyboardInterrupt

        return REAL_RUN(cfg, on_step=stop_after_two, **kwargs)

    monkeypatch.setattr(pipeline, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path / "a")
    assert steps == [(1, 3), (2, 3)]
    assert (tmp_path / "a" / "cells" / "mibp_eps0.05_k-_seed-" / "mibp_checkpoint.npz").exists()

    steps.clear()

    def recorded(cfg, on_step=None, **kwargs):
        return REAL_RUN(cfg, on_step=lambda d, t: steps.append((d, t)), **kwargs)

    monkeypatch.setattr(pipeline, "run", recorded)
    resumed = run_sweep(spec, tmp_path / "a")
    assert steps == [(2, 3), (3, 3)]  # steps 1-2 came from the checkpoint
    fresh = run_sweep(spec, tmp_path / "b")
    assert _stable(resumed) == _stable(fresh)
    a = np.load(tmp_path / "a" / resumed[0]["dir"] / "boxes.npz")
    b = np.load(tmp_path / "b" / fresh[0]["dir"] / "boxes.npz")
    np.testing.assert_array_equal(a["lower"], b["lower"])
    np.testing.assert_array_equal(a["upper"], b["upper"])
