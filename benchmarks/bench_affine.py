"""Benchmark of affine parameter sets (``--sets affine``) against boxes, with attacks as inner
bounds.

Settings (seeds 0..S-1 set the data split and the initialisation; every method sees the same
training run):

* ``moons``: the bench_mibp setting -- Two-Moons 100 train / 200 test, noise 0.1, 2-10-1 ReLU,
  full batch, lr 0.1, 10 epochs, eps on every training point; loss ``hinge`` or ``bce``;
* ``pretrained``: the same, started from 200 clean epochs (lr 0.5) on a separate trusted draw of
  100 points (data seed 1000 + seed), as in bench_mibp's pretrained section;
* ``iris-binary``: versicolor vs virginica, standardised, 4-5-1, hinge, lr 0.1, 10 epochs;
* ``deep``: Two-Moons as above with a 6-hidden-layer width-5 net (2-5-5-5-5-5-5-1).

Methods: ``interval`` and ``agt`` with ``box`` and ``affine`` sets (no solver), and the
linearised attacks (``mibpcert.attacks.attack_targets``): one replayed attack per parameter,
sense and epoch and per test point, whose reached spread is the "attained" width (a lower bound
on the truth) and whose margins give the attacked accuracy.

Columns: certified / nominal / attacked accuracy (mean ± std over seeds); certified accuracy
with the MIBP-Cert protocol (``moons`` and ``pretrained``: 100 of 300 test-pool points as a clean
validation split, the test set certified at the epoch whose certified validation accuracy is
highest, ``--select-epoch best-val``; 200 test points either way); final max width
(median), final max width / attained max width (median over seeds), (parameter, step) widths
that shrank from one step to the next (mean per run), seconds per epoch (median), and the
sampling self-check of the affine sets (``|theta_t - c_t - G_t u*| <= rho_t`` for sampled attacks
at every step; ``ok`` or the number of violations). Writes the section ``bench_affine`` of
docs/results.md.

With ``--mibp-epochs E`` it instead runs ``mibp`` in relax mode ``milp`` (HiGHS, 2 s per solve,
2 workers) with ``box`` and ``affine`` sets on the ``moons`` hinge setting at eps = 0.01 for E
epochs, seed 0 only (one affine-milp epoch costs minutes on 2 cores), beside ``interval`` and the
attacks; it prints the max width per epoch of each, the undecided hinge/ReLU binaries per step,
and writes the section ``bench_affine_mibp``.

Usage::

    python benchmarks/bench_affine.py [--seeds 3] [--settings moons pretrained iris-binary deep]
    python benchmarks/bench_affine.py --mibp-epochs 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

from _common import header_lines, pm, update_results
from mibpcert import Config
from mibpcert.attacks import TestObjective, attack_targets
from mibpcert.data import load_dataset
from mibpcert.model import Architecture, TrainingRecipe, init_params
from mibpcert.model.trainer import train
from mibpcert.pipeline import build_problem, certify_problem, method_options

#: (setting, loss, eps) cells of the default grid
GRID = [
    ("moons", "hinge", 0.001),
    ("moons", "hinge", 0.01),
    ("moons", "bce", 0.01),
    ("pretrained", "hinge", 0.001),
    ("pretrained", "hinge", 0.01),
    ("iris-binary", "hinge", 0.3),
    ("deep", "hinge", 0.001),
]
METHODS = [("interval", "box"), ("interval", "affine"), ("agt", "box"), ("agt", "affine")]


def pretrained_init(seed: int, tmp: Path) -> str:
    path = tmp / f"pretrained_{seed}.npz"
    if not path.exists():
        arch = Architecture.parse("2-10-1")
        clean = load_dataset("moons", n_train=100, n_test=1, noise=0.1, seed=1000 + seed)
        rec = TrainingRecipe(lr=0.5, epochs=200)
        theta = train(arch, rec, clean.X_train, clean.y_train, init_params(arch, seed)).final
        np.savez(path, theta=theta)
    return str(path)


def config(setting: str, loss: str, eps: float, seed: int, tmp: Path) -> Config:
    cfg = Config()
    cfg.data.seed = cfg.model.init_seed = seed
    cfg.training.loss, cfg.threat.eps = loss, eps
    if setting == "pretrained":
        cfg.model.init_file = pretrained_init(seed, tmp)
    elif setting == "iris-binary":
        cfg.data.dataset, cfg.data.standardize, cfg.model.arch = "iris-binary", True, "4-5-1"
    elif setting == "deep":
        cfg.model.arch = "2-5-5-5-5-5-5-1"
    return cfg


def attained(problem) -> tuple[np.ndarray, float, float]:
    """Per-epoch attained max width, attacked accuracy and nominal accuracy."""
    per_epoch = problem.recipe.steps_per_epoch(problem.data.n_train)
    epochs = problem.recipe.epochs
    n_theta = (epochs + 1) * problem.arch.n_params
    margin = TestObjective("margin")

    def targets(tr):
        theta = tr.thetas[::per_epoch].ravel()
        return np.concatenate([theta, theta, margin.margins(problem, tr.final)])

    n_test = len(problem.data.X_test)
    senses = ["max"] * n_theta + ["min"] * (n_theta + n_test)
    clean, reached = attack_targets(problem, targets, senses)
    hi, lo, mg = reached[:n_theta], reached[n_theta : 2 * n_theta], reached[2 * n_theta :]
    widths = (hi - lo).reshape(epochs + 1, -1).max(axis=1)
    return widths, float(np.mean(mg > 0)), float(np.mean(clean[2 * n_theta :] > 0))


def self_check(problem, bounds, samples: int = 64) -> int:
    """Sampled attacks that leave an affine set (or a box) at some step."""
    rng = np.random.default_rng(7)
    bad = 0
    traj = bounds.affine
    for _ in range(samples):
        X, y = problem.threat.sample(problem.data.X_train, problem.data.y_train, rng,
                                     vertex_prob=0.8)
        thetas = problem.train_poisoned(X, y).thetas
        out = not bounds.contains(thetas).all()
        if traj is not None:
            out |= bool((traj.residuals(thetas, traj.symbols.coordinates(X)) > 0).any())
        bad += int(out)
    return bad


def run_cell(setting: str, loss: str, eps: float, seeds: int, tmp: Path) -> list[dict]:
    rows = {f"{m} {s}": [] for m, s in METHODS}
    rows["attack (inner)"] = []
    for seed in range(seeds):
        base = config(setting, loss, eps, seed, tmp)
        problem = build_problem(base)
        att_widths, attacked, nominal = attained(problem)
        rows["attack (inner)"].append(
            dict(best_val=None, certified=None, nominal=nominal, attacked=attacked,
                 width=att_widths[-1], ratio=1.0, shrink=None, s_epoch=None, check=None)
        )
        for method, sets in METHODS:
            cfg = config(setting, loss, eps, seed, tmp)
            cfg.method.name, cfg.method.sets = method, sets
            t0 = time.perf_counter()
            res = certify_problem(problem, method, options=method_options(cfg))
            secs = time.perf_counter() - t0
            w = res.bounds.widths()
            shrink = int(np.sum(w[1:] < w[:-1] - 1e-15))
            val = None
            if setting in ("moons", "pretrained"):  # the MIBP-Cert protocol: best-val epoch
                vcfg = config(setting, loss, eps, seed, tmp)
                vcfg.method.name, vcfg.method.sets = method, sets
                vcfg.data.n_test, vcfg.data.n_val = 300, 100
                vres = certify_problem(
                    build_problem(vcfg), method, options=method_options(vcfg),
                    select_epoch="best-val",
                )
                val = vres.metrics["certified_accuracy"]
            rows[f"{method} {sets}"].append(
                dict(
                    best_val=val,
                    certified=res.metrics["certified_accuracy"],
                    nominal=res.metrics["nominal_accuracy"],
                    attacked=None,
                    width=float(w[-1].max()),
                    ratio=float(w[-1].max() / max(att_widths[-1], 1e-300)),
                    shrink=shrink,
                    s_epoch=res.metrics["seconds_per_epoch"],
                    total=secs,
                    check=self_check(problem, res.bounds) if sets == "affine" else None,
                )
            )
    out = []
    def col(rs: list[dict], key: str, fmt: str = "{:.3g}") -> str:
        vals = [r[key] for r in rs if r.get(key) is not None]
        return fmt.format(float(np.median(vals))) if vals else "-"

    for label, rs in rows.items():
        cert = [r["certified"] for r in rs if r["certified"] is not None]
        best_val = [r["best_val"] for r in rs if r["best_val"] is not None]
        att = [r["attacked"] for r in rs if r["attacked"] is not None]
        checks = [r["check"] for r in rs if r["check"] is not None]
        shrinks = [r["shrink"] for r in rs if r["shrink"] is not None]
        out.append(
            {
                "setting": setting,
                "loss": loss,
                "eps": f"{eps:g}",
                "method / sets": label,
                "seeds": len(rs),
                "nominal (%)": pm([r["nominal"] for r in rs]),
                "certified (%)": pm(cert) if cert else "-",
                "certified, best-val epoch (%)": pm(best_val) if best_val else "-",
                "attacked (%)": pm(att) if att else "-",
                "final max width": col(rs, "width"),
                "width / attained": col(rs, "ratio", "{:.2f}"),
                "shrunk (param, step)": f"{np.mean(shrinks):.1f}" if shrinks else "-",
                "s/epoch": col(rs, "s_epoch"),
                "self-check": "-" if not checks else (str(sum(checks)) if sum(checks) else "ok"),
            }
        )
    return out


def run_mibp(epochs: int, tmp: Path) -> tuple[list[dict], list[dict]]:
    """``mibp milp`` with box and affine sets (and interval, attacks), moons hinge eps 0.01,
    seed 0, ``epochs`` epochs: summary rows and the max width per epoch of each."""
    base = config("moons", "hinge", 0.01, 0, tmp)
    base.training.epochs = epochs
    problem = build_problem(base)
    att_widths, attacked, nominal = attained(problem)
    rows = [dict(method="attack (inner)", certified="-", nominal=f"{100 * nominal:.1f}",
                 attacked=f"{100 * attacked:.1f}", width=f"{att_widths[-1]:.3g}", ratio="1.00",
                 s_epoch="-", undecided="-", statuses="-", check="-")]
    curves = [dict(method="attained", **{f"ep {e}": f"{w:.3g}" for e, w in enumerate(att_widths)})]
    for method, sets, relax in [("interval", "box", None), ("interval", "affine", None),
                                ("mibp", "box", "milp"), ("mibp", "affine", "milp")]:
        cfg = config("moons", "hinge", 0.01, 0, tmp)
        cfg.training.epochs = epochs
        cfg.method.name, cfg.method.sets = method, sets
        if relax is not None:
            cfg.method.relax, cfg.method.solver = relax, "highs"
            cfg.method.time_limit, cfg.method.workers = 2.0, 2
        res = certify_problem(problem, method, options=method_options(cfg),
                              test_mip=method == "mibp")
        w = res.bounds.widths().max(axis=1)
        label = f"{method}{' ' + relax if relax else ''} {sets}"
        info = res.bounds.step_info or []
        statuses: dict[str, int] = {}
        for st in info:
            for k, v in (st.get("statuses") or {}).items():
                statuses[k] = statuses.get(k, 0) + v
        und = [st["model"].get("binaries") for st in info if "model" in st]
        rows.append(dict(
            method=label, certified=f"{100 * res.metrics['certified_accuracy']:.1f}",
            nominal=f"{100 * res.metrics['nominal_accuracy']:.1f}", attacked="-",
            width=f"{w[-1]:.3g}", ratio=f"{w[-1] / max(att_widths[-1], 1e-300):.2f}",
            s_epoch=f"{res.metrics['seconds_per_epoch']:.3g}",
            undecided=" ".join(str(u) for u in und) if und else "-",
            statuses=", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) or "-",
            check=(str(self_check(problem, res.bounds) or "ok") if sets == "affine" else "-"),
        ))
        curves.append(dict(method=label, **{f"ep {e}": f"{x:.3g}" for e, x in enumerate(w)}))
        print(rows[-1], flush=True)
    return rows, curves


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--settings", nargs="+", default=sorted({g[0] for g in GRID}))
    ap.add_argument("--section", default=None)
    ap.add_argument("--mibp-epochs", type=int, default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.mibp_epochs is not None:
        return main_mibp(args, t0)
    args.section = args.section or "bench_affine"
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for setting, loss, eps in GRID:
            if setting not in args.settings:
                continue
            cell = run_cell(setting, loss, eps, args.seeds, Path(tmp))
            rows += cell
            print(tabulate([list(r.values()) for r in cell], headers=list(cell[0]),
                           tablefmt="simple", disable_numparse=True), flush=True)
    table = tabulate([list(r.values()) for r in rows], headers=list(rows[0]), tablefmt="github",
                     disable_numparse=True)
    lines = header_lines("bench_affine.py", "bench_affine: affine parameter sets vs boxes")
    lines += [f"* runtime: {time.perf_counter() - t0:.0f} s", "", table, ""]
    update_results(args.section, "\n".join(lines))
    print(f"\nwrote section {args.section} of docs/results.md")
    return 0


def main_mibp(args, t0: float) -> int:
    section = args.section or "bench_affine_mibp"
    with tempfile.TemporaryDirectory() as tmp:
        rows, curves = run_mibp(args.mibp_epochs, Path(tmp))
    fmt = dict(tablefmt="github", disable_numparse=True)
    table = tabulate([list(r.values()) for r in rows], headers=[
        "method / sets", "certified (%)", "nominal (%)", "attacked (%)", "final max width",
        "width / attained", "s/epoch", "undecided binaries per step", "solver statuses",
        "self-check"], **fmt)
    curve = tabulate([list(r.values()) for r in curves], headers=list(curves[0]), **fmt)
    lines = header_lines("bench_affine.py", "bench_affine_mibp: mibp milp with affine sets")
    lines += [
        f"* runtime: {time.perf_counter() - t0:.0f} s; moons hinge eps 0.01, seed 0, "
        f"{args.mibp_epochs} epochs; mibp milp on HiGHS, 2 s per solve, 2 workers",
        "", table, "", "Max width per epoch:", "", curve, "",
    ]
    print("\n".join(lines))
    update_results(section, "\n".join(lines))
    print(f"\nwrote section {section} of docs/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
