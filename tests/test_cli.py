"""The ``mibpcert`` command line, in-process and once through the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mibpcert import __version__
from mibpcert.certify.report import load_report
from mibpcert.cli import main
from mibpcert.model.network import Architecture

SMALL = ["--n-train", "30", "--n-test", "20"]


def _check_report(out: Path, n_steps: int, n_test: int, arch: str) -> dict:
    report = load_report(out)
    assert report == json.loads((out / "report.json").read_text())
    m = report["metrics"]
    for key in ("nominal_accuracy", "certified_accuracy", "stable_rate"):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["certified_accuracy"] <= m["nominal_accuracy"]
    assert m["certified_accuracy"] <= m["stable_rate"]
    assert m["final_max_width"] >= m["final_mean_width"] >= 0
    assert len(report["steps"]) == n_steps + 1
    assert [s["step"] for s in report["steps"]] == list(range(n_steps + 1))
    assert report["steps"][0]["max_width"] == 0.0
    assert report["problem"]["n_steps"] == n_steps
    assert len(report["test"]["points"]) == n_test
    verdicts = {p["verdict"] for p in report["test"]["points"]}
    assert verdicts <= {"certified", "unknown"}
    n_cert_correct = sum(p["certified_correct"] for p in report["test"]["points"])
    assert n_cert_correct == pytest.approx(m["certified_accuracy"] * n_test)
    assert report["soundness"]["nominal_inside_boxes"] is True
    assert report["problem"]["arch"] == arch
    boxes = np.load(out / "boxes.npz")
    n_params = Architecture.parse(arch).n_params
    assert boxes["lower"].shape == boxes["upper"].shape == (n_steps + 1, n_params)
    assert boxes["nominal"].shape == (n_steps + 1, n_params)
    assert np.all(boxes["lower"] <= boxes["nominal"]) and np.all(boxes["nominal"] <= boxes["upper"])
    assert list(boxes["param_names"]) == Architecture.parse(arch).param_names()
    widths = (boxes["upper"] - boxes["lower"]).max(axis=1)
    assert np.allclose(widths, [s["max_width"] for s in report["steps"]])
    return report


def test_default_certify_writes_report(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["certify", "--no-progress", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    report = _check_report(out, n_steps=10, n_test=200, arch="2-10-1")
    assert report["metrics"]["certified_accuracy"] > 0
    assert report["config"]["threat"]["eps"] == 0.001
    assert report["method"] == "interval"
    assert "certified accuracy" in stdout
    assert f"report: {out / 'report.json'}" in stdout


def test_default_output_dir_is_relative_to_cwd(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["certify", "--no-progress", "--quiet", *SMALL, "--epochs", "2"]) == 0
    assert (tmp_path / "runs" / "default" / "report.json").exists()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("report:") and lines[1].startswith("boxes:")


def test_flags_override_toml_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[data]\n"
        'dataset = "moons"\nn_train = 30\nn_test = 20\nseed = 3\n'
        '[model]\narch = "2-6-1"\n'
        '[training]\nloss = "hinge"\nlr = 0.2\nepochs = 4\n'
        "[threat]\neps = 0.01\n"
        '[output]\ndir = "from_file"\n'
    )
    assert main(["certify", "-c", str(cfg), "--no-progress", "--eps", "0.02", "--epochs", "2"]) == 0
    report = _check_report(tmp_path / "from_file", n_steps=2, n_test=20, arch="2-6-1")
    c = report["config"]
    assert c["threat"]["eps"] == 0.02 and c["training"]["epochs"] == 2  # flags win
    assert c["training"]["lr"] == 0.2 and c["data"]["seed"] == 3  # file values kept
    assert report["problem"]["threat"]["eps"] == 0.02
    # --out overrides [output] dir
    out = tmp_path / "flag_dir"
    assert main(["certify", "-c", str(cfg), "--no-progress", "--out", str(out)]) == 0
    report = _check_report(out, n_steps=4, n_test=20, arch="2-6-1")
    assert report["config"]["threat"]["eps"] == 0.01
    capsys.readouterr()


def test_flags_override_yaml_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "data: {dataset: iris, standardize: true, n_train: 30, n_test: 15}\n"
        "model: {arch: 4-8-3}\n"
        "training: {loss: ce, lr: 0.05, epochs: 3}\n"
        "threat: {eps: 1e-3, label_k: 2, label_mode: any}\n"
    )
    out = tmp_path / "y"
    rc = main(
        ["certify", "--config", str(cfg), "--no-progress", "--out", str(out), "--model", "4-5-3"]
        + ["--label-k", "1", "--batch-size", "10"]
    )
    assert rc == 0
    report = _check_report(out, n_steps=9, n_test=15, arch="4-5-3")
    c = report["config"]
    assert c["threat"]["eps"] == 1e-3 and c["threat"]["label_k"] == 1
    assert c["threat"]["label_mode"] == "any" and c["data"]["standardize"] is True
    assert c["training"]["batch_size"] == 10
    capsys.readouterr()


def test_json_prints_metrics(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "j"
    assert main(["certify", "--no-progress", "--json", *SMALL, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    metrics, end = json.JSONDecoder().raw_decode(stdout)
    report = load_report(out)
    assert metrics["certified_accuracy"] == report["metrics"]["certified_accuracy"]
    assert set(metrics) >= {"nominal_accuracy", "certified_accuracy", "stable_rate", "n_test"}
    assert metrics["n_test"] == 20
    assert "certified accuracy" not in stdout  # no summary table


def test_json_stdout_is_pure_json(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["certify", "--no-progress", "--json", *SMALL, "--out", str(tmp_path / "j")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics == load_report(tmp_path / "j")["metrics"]


@pytest.mark.parametrize(
    "flags,match",
    [
        (["--eps", "-1"], "eps must be >= 0"),
        (["--model", "3-10-1"], "has 3 inputs but dataset 'moons' has 2 features"),
        (["--lr", "0"], "learning rate must be a positive"),
        (["--k", "500"], "k = 500 exceeds"),
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--method", "magic"], "unknown method 'magic'"),
        (["--loss", "ce"], "loss 'ce' needs one output per class"),
        (["--points", "0,0"], "duplicate"),
    ],
)
def test_bad_flag_value_returns_2(tmp_path, monkeypatch, capsys, flags, match):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bad"
    assert main(["certify", "--no-progress", *SMALL, "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mibpcert: error:")
    assert match in err
    assert not (out / "report.json").exists()


def test_unparseable_flag_value_exits_2(capsys):
    for flags in (["--eps", "abc"], ["--points", "1,x"], ["--feature-bounds", "0"]):
        with pytest.raises(SystemExit) as exc:
            main(["certify", *flags])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "error: argument" in err and flags[0] in err


def test_bad_config_file_returns_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[training]\nlearnrate = 1\n")
    assert main(["certify", "-c", str(cfg)]) == 2
    assert "unknown key 'learnrate' in [training]" in capsys.readouterr().err


def test_help_and_version(capsys):
    assert main([]) == 0
    assert "certify" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_feature_flags_reach_the_threat_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "f"
    flags = ["--eps", "0.05", "--points", "1,4,7", "--k", "2", "--label-k", "1", "--paired"]
    flags += ["--feature-bounds=-5,5", "--test-eps", "0.01", "--clip", "0.5", "--no-shuffle"]
    assert main(["certify", "--no-progress", *SMALL, "--out", str(out), *flags]) == 0
    t = load_report(out)["problem"]["threat"]
    assert t["points"] == [1, 4, 7] and t["k"] == 2 and t["label_k"] == 1 and t["paired"]
    assert t["feature_bounds"] == [-5.0, 5.0]
    assert t["test_eps"] == 0.01
    r = load_report(out)["problem"]["recipe"]
    assert r["clip"] == 0.5 and r["shuffle"] is False
    capsys.readouterr()


def test_console_script(tmp_path):
    exe = Path(sys.executable).with_name("mibpcert")
    if not exe.exists():
        found = shutil.which("mibpcert")
        if found is None:
            pytest.skip("the mibpcert console script is not installed")
        exe = Path(found)
    out = tmp_path / "cs"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(exe), "certify", "--no-progress", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    _check_report(out, n_steps=10, n_test=200, arch="2-10-1")
    assert "report:" in proc.stdout


def test_too_small_stratified_split_returns_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    flags = ["--dataset", "iris", "--model", "4-8-3", "--loss", "ce", "--n-test", "2"]
    assert main(["certify", "--no-progress", "--out", str(tmp_path / "o"), *flags]) == 2
    assert capsys.readouterr().err.startswith("mibpcert: error:")
