"""Scale-out of ``mibp``: seconds per epoch with 1 worker against 2 (process pool, and Ray).

Setting: Two-Moons 100 train / 200 test, noise 0.1, 2-10-1 ReLU net, hinge loss, full batch (one
step per epoch), lr 0.1, eps 0.01 on every training point, seed 0. ``mibp`` bounds only (no
test-time certification): relax ``lp`` (HiGHS) for ``--epochs-lp`` epochs and relax ``milp``
(HiGHS) for ``--epochs-milp`` epochs, per-solve time limit ``--time-limit`` (a solve that stops
on it gives a load-dependent bound, and the boxes may then differ between executors).

Each mode runs with 1 worker (in-process), with a process pool of 2 workers and, when Ray is
installed, with a local Ray runtime of 2 CPUs, one after another in this one invocation; the
speed-up is the 1-worker bound time divided by the other's. Times include starting the pool or
Ray (they fall in the first epoch). The boxes of every executor must equal the 1-worker boxes
bit for bit (column "identical"). Writes the section ``bench_scaleout`` of docs/results.md.

Usage::

    python benchmarks/bench_scaleout.py [--epochs-lp 3] [--epochs-milp 2] [--time-limit 10]
                                        [--no-ray] [--no-milp]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

import numpy as np
from tabulate import tabulate

from _common import header_lines, update_results
from mibpcert import Config
from mibpcert.methods import get_method
from mibpcert.pipeline import build_problem


def bound(mode: str, epochs: int, executor: str, workers: int, time_limit: float):
    cfg = Config()
    cfg.threat.eps = 0.01
    cfg.training.epochs = epochs
    problem = build_problem(cfg)
    meth = get_method(
        "mibp",
        solver="highs",
        relax=mode,
        time_limit=time_limit,
        workers=workers,
        executor=executor,
    )
    t0 = time.perf_counter()
    b = meth.bound(problem)
    return b, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs-lp", type=int, default=3)
    ap.add_argument("--epochs-milp", type=int, default=2)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    ap.add_argument("--no-milp", action="store_true", help="lp only")
    args = ap.parse_args(argv)
    ray = not args.no_ray and importlib.util.find_spec("ray") is not None
    runs = [("inprocess", 1), ("process", 2)] + ([("ray", 2)] if ray else [])
    modes = [("lp", args.epochs_lp)] + ([] if args.no_milp else [("milp", args.epochs_milp)])
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    rows = []
    for mode, epochs in modes:
        ref = None
        for executor, workers in runs:
            b, wall = bound(mode, epochs, executor, workers, args.time_limit)
            total = float(sum(b.step_seconds))
            statuses: dict[str, int] = {}
            for info in b.step_info:
                for k, v in info["statuses"].items():
                    statuses[k] = statuses.get(k, 0) + v
            if ref is None:
                ref = (b, total)
            same = np.array_equal(b.lower, ref[0].lower) and np.array_equal(b.upper, ref[0].upper)
            rows.append(
                [
                    mode,
                    epochs,
                    executor,
                    workers,
                    ", ".join(f"{s:.1f}" for s in b.step_seconds),
                    f"{total:.1f}",
                    f"{ref[1] / total:.2f}",
                    ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
                    "yes" if same else "NO",
                ]
            )
            print(rows[-1], flush=True)
    runtime = time.perf_counter() - t_start
    load_end = os.getloadavg()[0]
    headers = [
        "relax",
        "epochs",
        "executor",
        "workers",
        "s per epoch",
        "bounds s",
        "speed-up",
        "solver statuses",
        "identical",
    ]
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    print(table)
    body = "\n".join(
        header_lines("bench_scaleout.py", "Scale-out of `mibp`: 1 worker vs 2 (bench_scaleout)")
        + [
            "* setting: Two-Moons 100 / 200, noise 0.1, 2-10-1, hinge, full batch (1 step = 1 "
            "epoch), lr 0.1, eps 0.01 on every point, seed 0; `mibp` bounds only, HiGHS; "
            f"per-solve time limit {args.time_limit:g} s; total runtime {runtime:.0f} s",
            "* speed-up: bound seconds with 1 worker (in-process) / with the executor; "
            "pool or Ray start-up is included (in the first epoch); identical: boxes equal the "
            "1-worker boxes bit for bit",
            "* the machine is shared: other jobs may have run at the same time (1-minute load "
            f"average {load_start:.2f} at the start, {load_end:.2f} at the end)",
            "",
            table,
        ]
    )
    update_results("bench_scaleout", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
