"""Benchmark of ``mibp`` (MIBP-Cert) against ``interval`` on Two-Moons.

Setting (MIBP issue): Two-Moons 100 train / 200 test, noise 0.1, 2-10-1 ReLU net, hinge loss,
full batch, SGD with lr 0.1 for 10 epochs (the package defaults), eps on every training point.
Seeds set the data split and the initialisation; every method sees the same training run.

Methods: ``interval`` and ``mibp`` in the relax modes given with ``--modes`` (``lp`` and ``milp``
with HiGHS, ``exact`` with SCIP after an LP pass). Per-solve time limit ``--time-limit``: a solve
that hits it contributes its dual bound. Test points are certified by interval propagation and,
for ``mibp``, by a MIP per remaining point (same solver and relax mode).

Columns: certified accuracy (mean ± std over seeds), final max box width (median), mean seconds
per epoch (median over seeds), solver statuses summed over the run, fallbacks (coordinates that
kept their interval bound because a solve proved nothing). Box width per epoch goes to a CSV.
Writes the section ``bench_mibp`` of docs/results.md.

Usage::

    python benchmarks/bench_mibp.py [--seeds 3] [--eps 1e-4 1e-3 1e-2] [--modes lp milp exact]
                                    [--epochs 10] [--time-limit 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter

import numpy as np
from tabulate import tabulate

from _common import ROOT, header_lines, pm, shown, update_results
from mibpcert import Config
from mibpcert.pipeline import build_problem, certify_problem, method_options

SOLVER = {"lp": "highs", "milp": "highs", "exact": "scip"}


def config(seed: int, eps: float, method: str, relax: str, args) -> Config:
    cfg = Config()
    cfg.data.seed = cfg.model.init_seed = seed
    cfg.training.lr, cfg.training.epochs = args.lr, args.epochs
    cfg.threat.eps = eps
    cfg.method.name = method
    cfg.method.relax = relax
    cfg.method.solver = SOLVER.get(relax, "scip")
    cfg.method.time_limit = args.time_limit
    cfg.method.workers = args.workers
    return cfg


def run(seed: int, eps: float, label: str, args) -> dict:
    method, relax = ("interval", "exact") if label == "interval" else ("mibp", label)
    cfg = config(seed, eps, method, relax, args)
    problem = build_problem(cfg)
    t0 = time.perf_counter()
    res = certify_problem(problem, method, options=method_options(cfg), test_mip=method == "mibp")
    total = time.perf_counter() - t0
    statuses: Counter = Counter()
    fallbacks = 0
    for info in res.bounds.step_info:
        statuses.update(info.get("statuses", {}))
        fallbacks += info.get("fallbacks", 0) + info.get("self_check_fallbacks", 0)
    statuses.update(res.test.metrics.get("mip_statuses", {}))
    widths = res.bounds.widths()[:: res.steps_per_epoch]
    return {
        "certified": res.metrics["certified_accuracy"],
        "nominal": res.metrics["nominal_accuracy"],
        "width": res.metrics["final_max_width"],
        "s_epoch": res.metrics["seconds_per_epoch"],
        "total": total,
        "statuses": statuses,
        "fallbacks": fallbacks,
        "sound": res.nominal_inside and not res.warnings,
        "epoch_widths": widths.max(axis=1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eps", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    ap.add_argument("--modes", nargs="+", default=["lp", "milp", "exact"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--csv", default=str(ROOT / "benchmarks" / "results" / "mibp.csv"))
    ap.add_argument("--section", default="bench_mibp", help="results.md section to write")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    rows, csv_rows = [], []
    for eps in args.eps:
        for label in ["interval", *args.modes]:
            runs = [run(seed, eps, label, args) for seed in range(args.seeds)]
            st: Counter = Counter()
            for r in runs:
                st.update(r["statuses"])
            rows.append(
                [
                    label if label == "interval" else f"mibp {label}",
                    f"{eps:g}",
                    pm([r["nominal"] for r in runs]),
                    pm([r["certified"] for r in runs]),
                    f"{np.median([r['width'] for r in runs]):.3g}",
                    f"{np.median([r['s_epoch'] for r in runs]):.3g}",
                    ", ".join(f"{k} {v}" for k, v in sorted(st.items())) or "-",
                    str(sum(r["fallbacks"] for r in runs)),
                    "yes" if all(r["sound"] for r in runs) else "NO",
                ]
            )
            print(rows[-1], flush=True)
            med = np.median(np.array([r["epoch_widths"] for r in runs]), axis=0)
            csv_rows += [[label, f"{eps:g}", e, repr(float(w))] for e, w in enumerate(med)]
    runtime = time.perf_counter() - t_start
    headers = [
        "method",
        "eps",
        "nominal acc (%)",
        "certified acc (%)",
        "final max width",
        "s/epoch",
        "solver statuses",
        "fallbacks",
        "self-checks ok",
    ]
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    print(table)
    path = ROOT / args.csv if not str(args.csv).startswith("/") else args.csv
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "eps", "epoch", "max_width_median"])
        w.writerows(csv_rows)
    body = "\n".join(
        header_lines("bench_mibp.py", f"`mibp` vs `interval` on Two-Moons ({args.section})")
        + [
            f"* setting: Two-Moons 100 / 200, noise 0.1, 2-10-1, hinge, full batch, lr {args.lr}, "
            f"{args.epochs} epochs; {args.seeds} seeds (seed = split = init); per-solve time "
            f"limit {args.time_limit} s; {args.workers} worker processes; total runtime "
            f"{runtime:.0f} s",
            "* accuracies: mean ± std over seeds; width and s/epoch: median over seeds; "
            "statuses: per-parameter solves and test-point MIP solves, summed over seeds",
            f"* box width per epoch: `{shown(path)}`",
            "",
            table,
        ]
    )
    update_results(args.section, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
