"""End-to-end smoke test of the Python API on the built-in default."""

import subprocess
import sys

from mibpcert import Config, run


def test_default_run_is_sound_and_certifies_something(tmp_path):
    result = run(Config(), out_dir=tmp_path)
    assert result.nominal_inside
    m = result.metrics
    assert 0.5 < m["nominal_accuracy"] <= 1.0
    assert 0.0 < m["certified_accuracy"] <= m["nominal_accuracy"]
    assert (tmp_path / "report.json").exists() and (tmp_path / "boxes.npz").exists()


def test_import_loads_no_solver():
    code = (
        "import sys, mibpcert, mibpcert.pipeline, mibpcert.methods, mibpcert.solvers; "
        "print([m for m in ('pyscipopt', 'highspy', 'gurobipy', 'torch', 'ray') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
