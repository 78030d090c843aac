"""Plots of sweep and run directories (PNG files), the exact-bounds trace, and the CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from mibpcert import Config, run
from mibpcert.certify.plots import plot_dir, plot_run, plot_sweep
from mibpcert.cli import main
from mibpcert.errors import ConfigError, UnsupportedError
from mibpcert.sweep import run_sweep

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def _image(path):
    """The PNG as an array; checks it is a real, non-blank picture."""
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5000
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    assert img[..., :3].std() > 0.05  # more than a blank canvas
    return img


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    spec = {
        "data": {"n_train": 20, "n_test": 30},
        "training": {"epochs": 3},
        "sweep": {"methods": ["interval", "agt"], "eps": [0.001, 0.01], "k": [5], "seeds": [0, 1]},
    }
    run_sweep(spec, out)
    return out


def test_sweep_plots(sweep_dir, tmp_path):
    paths = plot_sweep(sweep_dir, tmp_path / "png")
    assert [p.name for p in paths] == ["certified_accuracy_vs_eps.png", "box_width_per_step.png"]
    acc = _image(paths[0])
    widths = _image(paths[1])
    assert widths.shape[1] > acc.shape[1]  # one panel per eps
    assert plot_dir(sweep_dir) == [sweep_dir / p.name for p in paths]  # default: next to it


def test_run_plots_with_exact_traces(tmp_path):
    cfg = Config()
    cfg.data.n_train, cfg.data.n_test, cfg.training.epochs = 20, 30, 3
    run(cfg, out_dir=tmp_path)
    report_path = tmp_path / "report.json"
    report = json.loads(report_path.read_text())
    assert [p.name for p in plot_run(tmp_path)] == ["box_width_per_step.png"]
    _image(tmp_path / "box_width_per_step.png")

    trace = [
        {"t": 0.1, "primal": None, "dual": -3.0},
        {"t": 0.5, "primal": 1.5, "dual": -1.0},
        {"t": 2.0, "primal": 0.5, "dual": 0.2},
    ]
    report["exact"] = {"objective": "margin", "trace": trace}
    report_path.write_text(json.dumps(report))
    paths = plot_dir(tmp_path, tmp_path / "a")
    assert [p.name for p in paths] == ["box_width_per_step.png", "exact_bounds.png"]
    single = _image(paths[1])

    report["exact"] = {
        "points": [{"index": i, "trace": trace} for i in range(6)] + [{"index": 9, "trace": []}]
    }
    report_path.write_text(json.dumps(report))
    many = _image(plot_run(tmp_path, tmp_path / "b")[1])
    assert many.shape[1] > 3 * single.shape[1]  # four panels (the first four points)

    messages: list[str] = []
    report["exact"] = {"trace": []}
    report_path.write_text(json.dumps(report))
    paths = plot_run(tmp_path, tmp_path / "c", on_message=messages.append)
    assert [p.name for p in paths] == ["box_width_per_step.png"]
    assert not (tmp_path / "c" / "exact_bounds.png").exists()
    assert messages == ["exact_bounds.png skipped: the exact section has no (or an empty) trace."]


def test_box_widths_come_from_the_boxes_when_steps_lack_them(tmp_path):
    cfg = Config()
    cfg.data.n_train, cfg.data.n_test, cfg.training.epochs = 20, 30, 2
    res = run(cfg, out_dir=tmp_path)
    from mibpcert.certify.plots import _step_widths

    report = json.loads((tmp_path / "report.json").read_text())
    _, wmax, wmean = _step_widths(tmp_path, report)
    np.testing.assert_allclose(wmax, res.bounds.widths().max(axis=1))
    report["steps"] = []
    _, wmax2, wmean2 = _step_widths(tmp_path, report)
    np.testing.assert_array_equal(wmax2, res.bounds.widths().max(axis=1))
    np.testing.assert_array_equal(wmean2, res.bounds.widths().mean(axis=1))


def test_plot_needs_matplotlib(tmp_path, monkeypatch):
    cfg = Config()
    cfg.data.n_train, cfg.data.n_test, cfg.training.epochs = 20, 30, 1
    run(cfg, out_dir=tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(UnsupportedError, match=r"pip install 'mibpcert\[plot\]'"):
        plot_run(tmp_path)
    with pytest.raises(ConfigError, match="neither a run directory"):
        plot_dir(tmp_path / "missing")


def test_cli_plot(sweep_dir, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["plot", str(sweep_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    names = ["certified_accuracy_vs_eps.png", "box_width_per_step.png"]
    assert printed == [str(out / n) for n in names]
    assert all((out / n).stat().st_size > 5000 for n in names)
    cell = sweep_dir / "cells" / "agt_eps0.01_k5_seed0"
    assert main(["plot", str(cell), "--out", str(tmp_path / "cell")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "cell" / "box_width_per_step.png")]
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mibpcert: error:") and "neither a run directory" in err
