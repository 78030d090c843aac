"""Benchmark of ``mibp`` (MIBP-Cert) against ``interval`` on Two-Moons.

Setting (MIBP issue): Two-Moons 100 train / 200 test, noise 0.1, 2-10-1 ReLU net, hinge loss,
full batch, SGD with lr 0.1 for 10 epochs (the package defaults), eps on every training point.
Seeds set the data split and the initialisation; every method sees the same training run.

With ``--pretrain-epochs N`` the run starts instead from a model trained for N clean epochs (lr
``--pretrain-lr``) on a *separate* Two-Moons draw of 100 points (seed 1000 + seed): a trusted
pretraining set, as in FullCert's protocol, never seen by the attacker. The certified run then
trains on the poisonable 100 points as above.

Methods: ``interval`` and ``mibp`` in the relax modes given with ``--modes`` (``lp`` and ``milp``
with HiGHS, ``exact`` with SCIP; milp and exact after an LP pass that settles what it can).
Per-solve time limit ``--time-limit``: a solve that hits it contributes its dual bound. Test
points are certified by interval propagation and, for ``mibp``, by a MIP per remaining point
(same solver and relax mode).

Columns: certified accuracy (mean ± std over seeds), final max box width (median), mean seconds
per epoch (median over seeds), share of objectives the LP pass settled, solver statuses summed
over the run, fallbacks (coordinates that kept an earlier bound because a solve proved nothing).
Box width per epoch goes to a CSV. Every finished run is appended to ``--runs`` (JSON lines) at
once; ``--resume`` keeps the runs already there. Writes the section ``--section`` of
docs/results.md.

Usage::

    python benchmarks/bench_mibp.py [--seeds 3] [--eps 1e-4 1e-3 1e-2] [--modes lp milp exact]
                                    [--epochs 10] [--time-limit 10] [--workers 2] [--resume]
                                    [--pretrain-epochs 0] [--pretrain-lr 0.5]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tabulate import tabulate

from _common import ROOT, header_lines, pm, shown, update_results
from mibpcert import Config
from mibpcert.attacks import TestObjective, attack_targets
from mibpcert.certify.plots import plot_width_panels
from mibpcert.data import load_dataset
from mibpcert.model import Architecture, TrainingRecipe, init_params
from mibpcert.model.trainer import train
from mibpcert.pipeline import build_problem, certify_problem, method_options

SOLVER = {"lp": "highs", "milp": "highs", "exact": "scip"}
NAMES = {"interval": "interval", "attack": "attack (inner)"}


def pretrained(seed: int, args) -> str | None:
    """Initial parameters trained on a separate clean draw (the trusted pretraining set)."""
    if not args.pretrain_epochs:
        return None
    path = Path(args.tmp) / f"pretrained_{seed}.npz"
    if path.exists():  # one pretraining per seed, shared by every eps and method
        return str(path)
    arch = Architecture.parse("2-10-1")
    clean = load_dataset("moons", n_train=100, n_test=1, noise=0.1, seed=1000 + seed)
    rec = TrainingRecipe(lr=args.pretrain_lr, epochs=args.pretrain_epochs)
    theta = train(arch, rec, clean.X_train, clean.y_train, init_params(arch, seed)).final
    np.savez(path, theta=theta)
    return str(path)


def config(seed: int, eps: float, method: str, relax: str, args) -> Config:
    cfg = Config()
    cfg.data.seed = cfg.model.init_seed = seed
    cfg.model.init_file = pretrained(seed, args)
    cfg.training.lr, cfg.training.epochs = args.lr, args.epochs
    cfg.threat.eps = eps
    cfg.method.name = method
    cfg.method.relax = relax
    cfg.method.solver = SOLVER.get(relax, "scip")
    cfg.method.time_limit = args.time_limit
    cfg.method.workers = args.workers
    return cfg


def attack_run(seed: int, eps: float, args) -> dict:
    """Linearised attacks (inner bounds): one per parameter, epoch and sense, and one per test
    point against its margin; each replayed with the ordinary trainer."""
    problem = build_problem(config(seed, eps, "interval", "exact", args))
    per_epoch = len(problem.batches()) // args.epochs
    n_theta = (args.epochs + 1) * problem.arch.n_params
    margin = TestObjective("margin")

    def targets(tr):  # every parameter twice (max, then min), then every test margin (min)
        theta = tr.thetas[::per_epoch].ravel()
        return np.concatenate([theta, theta, margin.margins(problem, tr.final)])

    t0 = time.perf_counter()
    n_test = len(problem.data.X_test)
    senses = ["max"] * n_theta + ["min"] * (n_theta + n_test)
    clean, reached = attack_targets(problem, targets, senses)  # one set of sensitivities
    total = time.perf_counter() - t0
    hi, lo, mg = reached[:n_theta], reached[n_theta : 2 * n_theta], reached[2 * n_theta :]
    widths = (hi - lo).reshape(args.epochs + 1, -1)
    return {
        "seed": seed,
        "eps": eps,
        "label": "attack",
        "setting": setting(args),
        "certified": None,
        "attacked": float(np.mean(mg > 0)),
        "nominal": float(np.mean(clean[2 * n_theta :] > 0)),
        "width": float(widths[-1].max()),
        "s_epoch": total / args.epochs,
        "total": total,
        "statuses": {},
        "fallbacks": 0,
        "lp_settled": 0,
        "lp_solves": 0,
        "sound": True,
        "epoch_widths": [float(w) for w in widths.max(axis=1)],
    }


def run(seed: int, eps: float, label: str, args) -> dict:
    if label == "attack":
        return attack_run(seed, eps, args)
    method, relax = ("interval", "exact") if label == "interval" else ("mibp", label)
    cfg = config(seed, eps, method, relax, args)
    problem = build_problem(cfg)
    t0 = time.perf_counter()
    res = certify_problem(problem, method, options=method_options(cfg), test_mip=method == "mibp")
    total = time.perf_counter() - t0
    statuses: Counter = Counter()
    fallbacks = settled = first = 0
    for info in res.bounds.step_info:
        statuses.update(info.get("statuses", {}))
        fallbacks += info.get("fallbacks", 0) + info.get("self_check_fallbacks", 0)
        if label in ("milp", "exact"):
            settled += info.get("lp_settled", 0)
            first += info.get("lp_solves", 0)
    statuses.update(res.test.metrics.get("mip_statuses", {}))
    widths = res.bounds.widths()[:: res.steps_per_epoch]
    return {
        "seed": seed,
        "eps": eps,
        "label": label,
        "setting": setting(args),
        "certified": res.metrics["certified_accuracy"],
        "nominal": res.metrics["nominal_accuracy"],
        "width": res.metrics["final_max_width"],
        "s_epoch": res.metrics["seconds_per_epoch"],
        "total": total,
        "statuses": dict(statuses),
        "fallbacks": fallbacks,
        "lp_settled": settled,
        "lp_solves": first,
        "sound": bool(res.nominal_inside and not res.warnings),
        "epoch_widths": [float(w) for w in widths.max(axis=1)],
        "final_lower": res.bounds.lower[-1].tolist(),
        "final_upper": res.bounds.upper[-1].tolist(),
    }


def setting(args) -> dict:
    """What makes two runs comparable (a resumed run must match it)."""
    return {
        "epochs": args.epochs,
        "lr": args.lr,
        "time_limit": args.time_limit,
        "workers": args.workers,
        "pretrain_epochs": args.pretrain_epochs,
        "pretrain_lr": args.pretrain_lr if args.pretrain_epochs else None,
    }


def load_runs(path: Path, args) -> dict:
    runs = {}
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r["setting"] == setting(args):
                runs[(r["seed"], r["eps"], r["label"])] = r
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eps", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    ap.add_argument("--modes", nargs="*", default=["lp", "milp", "exact"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pretrain-epochs", type=int, default=0)
    ap.add_argument("--pretrain-lr", type=float, default=0.5)
    ap.add_argument("--csv", default=str(ROOT / "benchmarks" / "results" / "mibp.csv"))
    ap.add_argument("--runs", default=None, help="JSON lines of finished runs (default: CSV stem)")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --runs")
    ap.add_argument("--section", default="bench_mibp", help="results.md section to write")
    ap.add_argument(
        "--table-only",
        action="store_true",
        help="run nothing: write the table from the runs already in --runs (implies --resume)",
    )
    args = ap.parse_args(argv)
    csv_path = Path(args.csv)
    runs_path = Path(args.runs) if args.runs else csv_path.with_suffix(".runs.jsonl")
    runs_path.parent.mkdir(parents=True, exist_ok=True)
    args.resume = args.resume or args.table_only
    if not args.resume and runs_path.exists():
        runs_path.unlink()
    done = load_runs(runs_path, args)
    labels = ["interval", *args.modes, "attack"]
    grid = [(s, e, m) for e in args.eps for m in labels for s in range(args.seeds)]
    print(f"{sum(g in done for g in grid)} of {len(grid)} runs already in {runs_path}", flush=True)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        for key in grid:
            if key in done or args.table_only:
                continue
            r = run(*key, args)
            done[key] = r
            with open(runs_path, "a") as fh:  # each run lands as it finishes
                fh.write(json.dumps(r) + "\n")
            what = "attacked" if key[2] == "attack" else "certified"
            print(
                f"seed {key[0]} eps {key[1]:g} {key[2]}: {what} {100 * r[what]:.1f} % "
                f"width {r['width']:.3g} {r['s_epoch']:.1f} s/epoch",
                flush=True,
            )
    runtime = time.perf_counter() - t_start
    rows, csv_rows = [], []
    panels: dict[float, list[tuple]] = {eps: [] for eps in args.eps}
    for eps in args.eps:
        for label in labels:
            rs = [done[(s, eps, label)] for s in range(args.seeds) if (s, eps, label) in done]
            if not rs:
                continue
            st: Counter = Counter()
            for r in rs:
                st.update(r["statuses"])
            first = sum(r["lp_solves"] for r in rs)
            attack = label == "attack"
            rows.append(
                [
                    NAMES.get(label, f"mibp {label}"),
                    f"{eps:g}",
                    str(len(rs)),
                    pm([r["nominal"] for r in rs]),
                    "-" if attack else pm([r["certified"] for r in rs]),
                    pm([r["attacked"] for r in rs]) if attack else "-",
                    f"{np.median([r['width'] for r in rs]):.3g}",
                    f"{np.median([r['s_epoch'] for r in rs]):.3g}",
                    f"{100 * sum(r['lp_settled'] for r in rs) / first:.0f} %" if first else "-",
                    ", ".join(f"{k} {v}" for k, v in sorted(st.items())) or "-",
                    str(sum(r["fallbacks"] for r in rs)),
                    "yes" if all(r["sound"] for r in rs) else "NO",
                ]
            )
            widths = np.array([r["epoch_widths"] for r in rs])  # the seeds present
            med = np.median(widths, axis=0)
            name = NAMES.get(label, f"mibp {label}")
            panels[eps].append((label, name, np.arange(widths.shape[1]), widths))
            csv_rows += [[label, f"{eps:g}", e, repr(float(w))] for e, w in enumerate(med)]
    headers = [
        "method",
        "eps",
        "seeds",
        "nominal acc (%)",
        "certified acc (%)",
        "attacked acc (%)",
        "final max width",
        "s/epoch",
        "LP settled",
        "solver statuses",
        "fallbacks",
        "self-checks ok",
    ]
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    print(table)
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "eps", "epoch", "max_width_median"])
        w.writerows(csv_rows)
    figure = ROOT / "docs" / "img" / csv_path.with_suffix(".png").name
    plot_width_panels(panels, figure)
    init = (
        f"init pretrained for {args.pretrain_epochs} clean epochs (lr {args.pretrain_lr}) on a "
        "separate trusted draw of 100 points (seed 1000 + seed)"
        if args.pretrain_epochs
        else "random init (seed)"
    )
    body = "\n".join(
        header_lines("bench_mibp.py", f"`mibp` vs `interval` on Two-Moons ({args.section})")
        + [
            f"* setting: Two-Moons 100 / 200, noise 0.1, 2-10-1, hinge, full batch, lr {args.lr}, "
            f"{args.epochs} epochs; {init}; {args.seeds} seeds (seed = split = init); per-solve "
            f"time limit {args.time_limit} s; {args.workers} worker processes; "
            + (
                "table written from the runs file (--table-only): the runs come from earlier "
                "invocations with this setting, their seconds are in the runs"
                if args.table_only
                else f"runtime of this invocation {runtime:.0f} s (runs kept by --resume not "
                "included)"
            ),
            "* accuracies: mean ± std over the seeds run (column `seeds`: seeds 0, 1, ... in "
            "order); width and s/epoch: median over them; LP "
            "settled: share of the milp/exact objectives the LP pass settled (no milp/exact "
            "solve needed); statuses: per-parameter solves (LP pass included) and test-point "
            "MIP solves, summed over seeds",
            "* attack (inner): linearised attacks replayed with the ordinary trainer "
            "(`mibpcert.attacks.attack_targets`): per test point one attack on its margin "
            "(attacked acc: test points still correct under their own attack, an upper bound on "
            "what any certificate can reach), per parameter and epoch one attack per sense "
            "(final max width: the widest range attained, a lower bound on the true one)",
            f"* box width per epoch: `{shown(csv_path)}` and the figure below; runs: "
            f"`{shown(runs_path)}`",
            "",
            table,
            "",
            f"![max box width per epoch](img/{figure.name})",
        ]
    )
    update_results(args.section, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
