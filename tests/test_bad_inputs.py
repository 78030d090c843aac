"""The bad-input battery: every bad input a user can give the CLI ends in one clear line and a
non-zero exit (or is a documented, deliberate acceptance), never a traceback.

Each case is ``(id, argv, expect)``. ``argv`` may use ``{tmp}`` (the test's directory) and the
files of :data:`FILES` written there. ``expect`` is a regular expression the error line must
match, or ``ACCEPT`` with the reason the input is deliberately valid. Our own errors are exactly
one line on stderr (``mibpcert: error: ...``); argparse's own errors (a flag value of the wrong
type) print the usage and then one ``error:`` line, which is what the test checks there.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from mibpcert.cli import main

ACCEPT = "ACCEPT"
FAST = ["--epochs", "1", "--n-train", "12", "--n-test", "10", "--no-progress", "--quiet"]

FILES = {
    "nan.csv": "a,b,label\n0.1,0.2,0\nnan,0.3,1\n0.5,0.1,0\n0.2,0.9,1\n",
    "inf.csv": "a,b,label\n0.1,0.2,0\n0.4,inf,1\n0.5,0.1,0\n0.2,0.9,1\n",
    "text.csv": "a,b,label\n0.1,0.2,0\n0.4,hello,1\n0.5,0.1,0\n0.2,0.9,1\n",
    "oneclass.csv": "a,b,label\n0.1,0.2,0\n0.4,0.3,0\n0.5,0.1,0\n0.2,0.9,0\n",
    "empty.csv": "",
    "header.csv": "a,b,label\n",
    "ragged.csv": "a,b,label\n0.1,0.2,0\n0.4,1\n0.5,0.1,0\n",
    "good.csv": "".join(
        ["a,b,label\n"] + [f"{i / 40:.3f},{(i * 7 % 40) / 40:.3f},{i % 2}\n" for i in range(40)]
    ),
    "notzip.npz": "not a zip file\n",
    "notnpz.npz": b"PK\x03\x04 truncated",
    "unknown.toml": "[data]\nn_train = 10\n[bogus]\nx = 1\n",
    "unknown_key.toml": "[data]\nn_trian = 10\n",
    "badtype.yaml": "training:\n  epochs: ten\n",
    "badsyntax.toml": "[data\nn_train = 10\n",
    "badsyntax.yaml": "data: [unclosed\n",
    "list.yaml": "- 1\n- 2\n",
    "config.ini": "[data]\nn_train = 10\n",
    "badinit.npz": None,  # written by the fixture: wrong shapes
    "missing_keys.npz": None,
    "nan.npz": None,
    "notafile.txt": "x\n",
    "table.dat": "a,b,label\n1,2,0\n",
}


def _npz_files(tmp) -> None:
    np.savez(tmp / "badinit.npz", theta=np.zeros(5))
    np.savez(tmp / "missing_keys.npz", features=np.zeros((4, 2)))
    X = np.zeros((6, 2))
    X[2, 1] = np.nan
    np.savez(tmp / "nan.npz", X=X, y=np.array([0, 1, 0, 1, 0, 1]))


CASES: list[tuple[str, list[str], str]] = [
    # ---- data
    ("unknown-dataset", ["--dataset", "foo"], r"unknown dataset|no such file|foo"),
    ("missing-file", ["--dataset", "{tmp}/nope.csv"], r"nope\.csv"),
    ("dataset-is-dir", ["--dataset", "{tmp}"], r"director"),
    ("csv-nan", ["--dataset", "{tmp}/nan.csv"], r"nan\.csv.*(NaN|nan|finite)"),
    ("csv-inf", ["--dataset", "{tmp}/inf.csv"], r"inf\.csv.*(inf|finite)"),
    ("csv-text", ["--dataset", "{tmp}/text.csv"], r"text\.csv.*(hello|numeric|number)"),
    ("csv-one-class", ["--dataset", "{tmp}/oneclass.csv"], r"oneclass\.csv.*class"),
    ("csv-empty", ["--dataset", "{tmp}/empty.csv"], r"empty\.csv"),
    ("csv-header-only", ["--dataset", "{tmp}/header.csv"], r"header\.csv"),
    ("csv-ragged", ["--dataset", "{tmp}/ragged.csv"], r"ragged\.csv.*(row|line|field)"),
    ("csv-no-label-column", ["--dataset", "{tmp}/good.csv", "--label-column", "lbl"], r"lbl"),
    ("npz-not-zip", ["--dataset", "{tmp}/notzip.npz"], r"notzip\.npz"),
    ("npz-truncated", ["--dataset", "{tmp}/notnpz.npz"], r"notnpz\.npz"),
    ("npz-missing-keys", ["--dataset", "{tmp}/missing_keys.npz"], r"missing_keys\.npz.*X"),
    ("npz-nan", ["--dataset", "{tmp}/nan.npz"], r"nan\.npz.*(NaN|nan|finite)"),
    ("unknown-extension", ["--dataset", "{tmp}/table.dat"], r"table\.dat|unknown dataset"),
    ("test-path-missing", ["--dataset", "{tmp}/good.csv", "--test-path", "{tmp}/no.csv"],
     r"no\.csv"),
    ("n-train-0", ["--n-train", "0"], r"n_train"),
    ("n-train-negative", ["--n-train", "-5"], r"n_train"),
    ("n-test-0", ["--n-test", "0"], r"n_test"),
    ("n-train-too-many", ["--dataset", "iris", "--model", "4-3", "--loss", "ce",
                          "--n-train", "1000"], r"n_train|points|150"),
    ("noise-negative", ["--noise", "-1"], r"noise"),
    ("n-val-too-many", ["--n-val", "500"], r"n_val"),
    ("poly-degree-0", ["--poly-degree", "0"], r"poly"),
    ("task-unknown", ["--dataset", "{tmp}/good.csv", "--task", "clustering"], r"task"),
    ("n-train-not-int", ["--n-train", "ten"], r"invalid int value"),
    # ---- model
    ("arch-garbage", ["--model", "2-x-1"], r"2-x-1|architecture|layer"),
    ("arch-input-mismatch", ["--model", "3-10-1"], r"3 inputs.*2 features"),
    ("arch-one-layer", ["--model", "2"], r"architecture|layer|2"),
    ("arch-zero-width", ["--model", "2-0-1"], r"width|0|layer"),
    ("ce-one-output", ["--loss", "ce", "--model", "2-10-1"], r"ce|output"),
    ("hinge-3-classes-1-output", ["--dataset", "iris", "--model", "4-8-1", "--loss", "hinge"],
     r"output|class"),
    ("hinge-3-classes-one-vs-rest", ["--dataset", "iris", "--model", "4-8-3", "--loss",
                                     "hinge"],
     ACCEPT + ": hinge with C outputs is one-vs-rest on purpose (README, methods §3)"),
    ("init-missing", ["--init", "{tmp}/noinit.npz"], r"noinit\.npz"),
    ("init-wrong-shape", ["--init", "{tmp}/badinit.npz"], r"badinit\.npz|shape|parameters"),
    ("init-not-npz", ["--init", "{tmp}/notzip.npz"], r"notzip\.npz.*not an NPZ"),
    ("init-seed-text", ["--init-seed", "abc"], r"invalid int value"),
    # ---- training
    ("loss-unknown", ["--loss", "l7"], r"loss"),
    ("mse-on-3-classes-1-output", ["--dataset", "iris", "--model", "4-8-1", "--loss", "mse"],
     r"mse|class|output"),
    ("lr-0", ["--lr", "0"], r"lr|learning rate"),
    ("lr-negative", ["--lr", "-0.1"], r"lr|learning rate"),
    ("lr-nan", ["--lr", "nan"], r"lr|learning rate"),
    ("lr-inf", ["--lr", "inf"], r"lr|learning rate"),
    ("epochs-0", ["--epochs", "0"], r"epochs"),
    ("epochs-negative", ["--epochs", "-1"], r"epochs"),
    ("batch-0", ["--batch-size", "0"], r"batch"),
    ("batch-negative", ["--batch-size", "-4"], r"batch"),
    ("steps-0", ["--steps", "0"], r"steps"),
    ("lr-schedule-unknown", ["--lr-schedule", "cosine"], r"schedule"),
    ("lr-decay-negative", ["--lr-schedule", "inverse", "--lr-decay", "-1"], r"decay"),
    ("clip-0", ["--clip", "0"], r"clip"),
    ("clip-negative", ["--clip", "-1"], r"clip"),
    ("n-trusted-all", ["--n-trusted", "12"], r"n_trusted"),
    ("n-trusted-labels", ["--n-trusted", "3", "--label-k", "1"], r"--paired"),
    ("clip-norm-0", ["--clip-norm", "0"], r"clip_norm"),
    ("clip-scope-unknown", ["--clip-norm", "1", "--clip-scope", "tensor"], r"clip_scope"),
    ("mibp-clip-norm", ["--method", "mibp", "--clip-norm", "1"], r"clipping"),
    ("momentum-1", ["--momentum", "1"], r"momentum must be a number in \[0, 1\)"),
    ("nesterov-alone", ["--nesterov"], r"nesterov needs momentum"),
    ("exact-momentum", ["--method", "exact", "--momentum", "0.9"], r"momentum"),
    ("budget-scope-unknown", ["--budget-scope", "epoch"], r"unknown budget_scope"),
    ("exact-batch-scope", ["--method", "exact", "--budget-scope", "batch"], r"budget-scope"),
    ("remove-k-with-eps", ["--remove-k", "2", "--eps", "0.1"], r"cannot be combined"),
    ("remove-k-too-many", ["--remove-k", "999", "--eps", "0"], r"remove_k = 999 exceeds"),
    ("mibp-remove-k", ["--method", "mibp", "--remove-k", "1", "--eps", "0"], r"kept points"),
    ("freeze-linear", ["--model", "2-1", "--freeze", "1"], r"is a linear model"),
    ("freeze-too-many", ["--model", "2-4-1", "--freeze", "2"], r"freeze between 1 and 1"),
    ("freeze-negative", ["--freeze", "-1"], r"freeze must be a non-negative integer"),
    ("prefix-missing", ["--prefix", "{tmp}/none.pt"], r"prefix file .* does not exist"),
    ("prefix-not-torch", ["--prefix", "{tmp}/notzip.npz"], r"cannot read prefix file|needs torch"),
    (
        "exact-freeze-eps",
        ["--method", "exact", "--model", "2-4-1", "--freeze", "1", "--eps", "0.1"],
        r"no raw input may realise",
    ),
    ("weight-decay-negative", ["--weight-decay", "-0.1"], r"weight_decay"),
    ("l1-nan", ["--l1", "nan"], r"l1"),
    ("exact-l1", ["--method", "exact", "--l1", "0.01"], r"L1"),
    ("select-epoch-unknown", ["--select-epoch", "first"], r"select_epoch|select-epoch"),
    ("best-val-without-val", ["--select-epoch", "best-val"], r"n_val|validation"),
    # ---- threat model
    ("eps-negative", ["--eps", "-0.1"], r"eps"),
    ("eps-nan", ["--eps", "nan"], r"eps"),
    ("eps-text", ["--eps", "abc"], r"invalid float value"),
    ("k-negative", ["--k", "-1"], r"\bk\b"),
    ("k-too-big", ["--k", "100"], r"\bk\b"),
    ("label-k-negative", ["--label-k", "-1"], r"label_k"),
    ("label-k-too-big", ["--label-k", "100"], r"label_k"),
    ("label-mode-unknown", ["--label-k", "1", "--label-mode", "swap"], r"label_mode|swap"),
    ("label-target-out-of-range", ["--label-k", "1", "--label-mode", "7"], r"7|class"),
    ("label-eps-negative", ["--dataset", "diabetes", "--model", "10-1", "--loss", "mse",
                            "--label-k", "1", "--label-eps", "-1"], r"label_eps"),
    ("feature-bounds-reversed", ["--feature-bounds", "1,0"], r"feature_bounds|bounds"),
    ("feature-bounds-text", ["--feature-bounds", "abc"], r"feature.bounds|LOW,HIGH"),
    ("points-out-of-range", ["--points", "500"], r"points|500"),
    ("points-text", ["--points", "a,b"], r"points"),
    ("test-eps-negative", ["--test-eps", "-1"], r"test_eps"),
    ("eps-inf-mibp-no-bounds", ["--eps", "inf", "--method", "mibp", "--solver", "highs",
                                "--relax", "lp"], r"feature_bounds|inf"),
    # ---- method
    ("method-unknown", ["--method", "magic"], r"method|magic"),
    ("sets-unknown", ["--sets", "zonotope"], r"sets|zonotope"),
    ("solver-unknown", ["--method", "mibp", "--solver", "cplex"], r"solver|cplex"),
    ("relax-unknown", ["--method", "mibp", "--relax", "sdp"], r"relax|sdp"),
    ("highs-bilinear", ["--method", "mibp", "--solver", "highs", "--relax", "exact"],
     r"solver 'highs' cannot solve relax mode 'bilinear'"),
    ("time-limit-0", ["--method", "mibp", "--time-limit", "0"], r"time_limit"),
    ("time-limit-negative", ["--method", "mibp", "--time-limit", "-3"], r"time_limit"),
    ("workers-0", ["--method", "mibp", "--workers", "0"], r"workers"),
    ("executor-unknown", ["--method", "mibp", "--executor", "dask"], r"executor|dask"),
    ("objective-unknown", ["--method", "exact", "--objective", "auc"], r"objective|auc"),
    ("form-unknown", ["--method", "exact", "--form", "triangle"], r"form|triangle"),
    ("test-points-out-of-range", ["--method", "exact", "--objective", "margin",
                                  "--test-points", "999"], r"test.points|999"),
    ("exact-affine", ["--method", "exact", "--sets", "affine", "--model", "2-1", "--steps", "1",
                      "--objective", "misclassified", "--time-limit", "5"],
     ACCEPT + ": exact intersects its step bounds with the affine sets' boxes"),
    ("mibp-clip", ["--method", "mibp", "--clip", "0.1"], r"clip"),
    ("solver-log-unwritable", ["--method", "mibp", "--solver-log", "{tmp}/no/such/x.log"],
     r"solver log"),
    # ---- configuration files
    ("config-missing", ["--config", "{tmp}/none.toml"], r"none\.toml"),
    ("config-unknown-section", ["--config", "{tmp}/unknown.toml"], r"bogus"),
    ("config-unknown-key", ["--config", "{tmp}/unknown_key.toml"], r"n_trian"),
    ("config-wrong-type", ["--config", "{tmp}/badtype.yaml"], r"epochs|ten"),
    ("config-toml-syntax", ["--config", "{tmp}/badsyntax.toml"], r"badsyntax\.toml"),
    ("config-yaml-syntax", ["--config", "{tmp}/badsyntax.yaml"], r"badsyntax\.yaml"),
    ("config-yaml-not-mapping", ["--config", "{tmp}/list.yaml"], r"list\.yaml"),
    ("config-unknown-extension", ["--config", "{tmp}/config.ini"], r"config\.ini"),
    # ---- output
    ("out-is-a-file", ["--out", "{tmp}/notafile.txt"], r"existing file"),
    ("out-under-a-file", ["--out", "{tmp}/notafile.txt/sub"], r"cannot create"),
]


@pytest.fixture
def files(tmp_path):
    for name, content in FILES.items():
        if content is None:
            continue
        p = tmp_path / name
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    _npz_files(tmp_path)
    return tmp_path


def _run(argv: list[str], capsys) -> tuple[int, list[str]]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return rc, [ln for ln in err.strip().splitlines() if ln.strip()]


@pytest.mark.parametrize("name,args,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(name, args, expect, files, capsys):
    args = [a.replace("{tmp}", str(files)) for a in args]
    out = [] if "--out" in args else ["--out", str(files / "run")]
    rc, err = _run(["certify", *FAST, *args, *out], capsys)
    if expect.startswith(ACCEPT):
        assert rc == 0, err
        return
    assert rc != 0, f"accepted: {args}"
    assert err, "no message"
    if err[0].startswith("usage:"):  # argparse: the usage, then its error line
        line = err[-1]
        assert ": error:" in line
    else:
        assert len(err) == 1, err
        line = err[0]
        assert line.startswith("mibpcert: error: "), line
    assert re.search(expect, line), line


def test_resume_with_a_changed_config_is_refused(tmp_path, capsys):
    pytest.importorskip("highspy")
    base = ["certify", *FAST, "--method", "mibp", "--solver", "highs", "--relax", "lp",
            "--executor", "inprocess", "--no-test-mip", "--model", "2-3-1",
            "--out", str(tmp_path / "r")]
    assert main(base) == 0
    capsys.readouterr()
    rc, err = _run([*base, "--resume", "--lr", "0.5"], capsys)
    assert rc == 2 and len(err) == 1 and "different problem" in err[0]


def test_gurobi_without_gurobipy_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gurobipy", None)
    rc, err = _run(["certify", *FAST, "--method", "mibp", "--solver", "gurobi", "--out",
                    str(tmp_path / "g")], capsys)
    assert rc == 2 and len(err) == 1 and re.search(r"[Gg]urobi", err[0]), err


def test_battery_size():
    """The battery covers the issue's list (79 inputs in the report that asked for it)."""
    assert len(CASES) + 2 >= 79
