"""Benchmark of the ``agt`` method (abstract gradient training, Sosnin et al.).

Two settings:

1. **Half-moons** (the AGT paper's toy setting): make_moons noise 0.1, 3000 train / 500 test,
   features [x, x^2, x^3] (6 inputs, then standardised on the training split), MLP 6-128-2,
   cross-entropy, full batch, 4 steps of SGD with lr 2.0 and inverse-time decay
   lr_t = 2.0 / (1 + 1.0 t) (the AGT library's schedule; the decay constant 1.0 is our choice).
   Threat models: k in {50, 100} with eps = 0.01; k = 10 with eps in {0.05, 0.1}; 1 and 3 label
   flips; paired k = 1 with eps = 0.1 (one point may change features and label).
2. **Two-Moons** 100 / 200, 2-10-1, hinge, full batch, lr 0.1, 10 epochs, eps in
   {1e-4, 1e-3, 1e-2}: ``interval`` vs ``agt`` with k = n (the same threat model: they coincide)
   and ``agt`` with k = 10 (only 10 points perturbed), so that the methods stand in one table.

Seeds 0..S-1 set data split and initialisation. Accuracies: mean ± std over seeds; seconds:
median per run (bounds + test certification). Writes the section ``bench_agt`` of
docs/results.md.

Usage::

    python benchmarks/bench_agt.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from tabulate import tabulate

from _common import agt_halfmoons, header_lines, pm, update_results
from mibpcert import Config
from mibpcert.pipeline import build_problem, certify_problem

HALFMOONS_THREATS = [
    ("k=50, eps=0.01", dict(eps=0.01, k=50)),
    ("k=100, eps=0.01", dict(eps=0.01, k=100)),
    ("k=10, eps=0.05", dict(eps=0.05, k=10)),
    ("k=10, eps=0.1", dict(eps=0.1, k=10)),
    ("1 label flip", dict(eps=0.0, label_k=1)),
    ("3 label flips", dict(eps=0.0, label_k=3)),
    ("paired k=1, eps=0.1", dict(eps=0.1, k=1, label_k=1, paired=True)),
]


def halfmoons_config(seed: int, threat: dict) -> Config:
    cfg = agt_halfmoons(seed)
    t = cfg.training
    t.lr, t.epochs, t.lr_schedule, t.lr_decay = 2.0, 4, "inverse", 1.0
    for key, value in {"eps": 0.0, **threat}.items():
        setattr(cfg.threat, key, value)
    cfg.method.name = "agt"
    return cfg


def moons_config(seed: int, method: str, eps: float, k: int | None) -> Config:
    cfg = Config()
    cfg.data.seed = cfg.model.init_seed = seed
    cfg.training.lr, cfg.training.epochs = 0.1, 10
    cfg.threat.eps, cfg.threat.k = eps, k
    cfg.method.name = method
    return cfg


def run_seeds(make, seeds: int) -> dict:
    nominal, certified, seconds, inside = [], [], [], []
    for seed in range(seeds):
        cfg = make(seed)
        t0 = time.perf_counter()
        res = certify_problem(build_problem(cfg), cfg.method.name)
        seconds.append(time.perf_counter() - t0)
        nominal.append(res.metrics["nominal_accuracy"])
        certified.append(res.metrics["certified_accuracy"])
        inside.append(res.nominal_inside)
    return {
        "nominal": pm(nominal),
        "certified": pm(certified),
        "seconds": f"{np.median(seconds):.2f}",
        "sound": "yes" if all(inside) else "NO",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows1 = []
    for name, threat in HALFMOONS_THREATS:
        r = run_seeds(lambda s, th=threat: halfmoons_config(s, th), args.seeds)
        rows1.append([name, r["nominal"], r["certified"], r["seconds"], r["sound"]])
        print(rows1[-1], flush=True)
    rows2 = []
    for eps in (1e-4, 1e-3, 1e-2):
        for method, k, label in (
            ("interval", None, "interval"),
            ("agt", None, "agt k=n"),
            ("agt", 10, "agt k=10"),
        ):
            r = run_seeds(lambda s, m=method, kk=k, e=eps: moons_config(s, m, e, kk), args.seeds)
            rows2.append(
                [label, f"{eps:g}", r["nominal"], r["certified"], r["seconds"], r["sound"]]
            )
            print(rows2[-1], flush=True)
    runtime = time.perf_counter() - t0
    h1 = ["threat model", "nominal acc (%)", "certified acc (%)", "s/run", "nominal inside"]
    h2 = ["method", "eps", "nominal acc (%)", "certified acc (%)", "s/run", "nominal inside"]
    t1 = tabulate(rows1, headers=h1, tablefmt="github", disable_numparse=True)
    t2 = tabulate(rows2, headers=h2, tablefmt="github", disable_numparse=True)
    print(t1, "\n", t2, sep="\n")
    body = "\n".join(
        header_lines("bench_agt.py", "`agt` (abstract gradient training)")
        + [
            f"* {args.seeds} seeds (seed = data split = init); accuracies: mean ± std over seeds "
            f"(ddof = 1); s/run: median; total runtime {runtime:.0f} s",
            "",
            "### Half-moons: 3000 / 500, [x, x², x³] standardised, 6-128-2, CE, full batch, "
            "4 steps, lr 2.0 / (1 + t)",
            "",
            t1,
            "",
            "### Two-Moons: 100 / 200, 2-10-1, hinge, full batch, lr 0.1, 10 epochs",
            "",
            t2,
        ]
    )
    update_results("bench_agt", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
