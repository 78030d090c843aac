"""Benchmark of the ``interval`` method (FullCert-style interval bounds) on Two-Moons.

Setting (the FullCert / MIBP-Cert toy example):

* data: Two-Moons, 100 training / 200 test points, noise 0.1;
* models: ReLU MLPs 2-10-1 and 2-20-20-1 (PyTorch-style seeded initialisation);
* losses: ``hinge`` and ``bce``; plain SGD, constant learning rate, full batch (one step per
  epoch);
* threat model: l-infinity radius ``eps`` on the features of every training point (no label
  changes), eps in {1e-4, 1e-3, 1e-2};
* seeds 0..S-1; the seed sets both the data (Two-Moons draws a fresh sample and split per seed)
  and the initialisation (``data.seed = model.init_seed = seed``). The batch-order seed is
  irrelevant for full batch.

Learning rate and epochs default to 0.1 and 10, the package defaults (``mibpcert certify`` with
no flags). They are not tuned: the aim is a reproducible reference point for the method, not
the best certified accuracy. With FullCert-style intervals the box width only grows
(width(theta') = width(theta) + lr * width(g)), so more epochs or a larger learning rate trade
nominal accuracy against certified accuracy; change them with ``--epochs`` and ``--lr``.

Everything runs through the public Python API (:func:`mibpcert.pipeline.build_problem` and
:func:`mibpcert.pipeline.certify_problem`). For each (model, loss, eps) the table shows

* nominal / certified accuracy: mean +- sample standard deviation (ddof = 1) over seeds;
* stable rate: mean over seeds (share of test points with a provably constant prediction);
* final max width: the largest parameter-box width after the last step, median over seeds;
* s/epoch: seconds the interval method spent per epoch, median over seeds;
* nominal_inside: ``yes`` when the soundness self-check (the clean training trajectory lies in
  every box) held for every seed.

The per-epoch box widths (median over seeds) go to a CSV file; the table is also written to
``docs/results.md`` between the markers ``<!-- bench_interval:start -->`` and
``<!-- bench_interval:end -->`` (the rest of that file is left alone).

Usage::

    python benchmarks/bench_interval.py [--seeds 5] [--epochs 10] [--lr 0.1]
                                        [--out docs/results.md]
                                        [--csv benchmarks/results/interval.csv]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

from _common import ROOT, header_lines, pm, shown, update_results
from mibpcert import Config
from mibpcert.pipeline import build_problem, certify_problem

MODELS = ("2-10-1", "2-20-20-1")
LOSSES = ("hinge", "bce")
EPS = (1e-4, 1e-3, 1e-2)
N_TRAIN, N_TEST, NOISE = 100, 200, 0.1
HEADERS = [
    "model",
    "loss",
    "eps",
    "nominal acc (%)",
    "certified acc (%)",
    "stable rate (%)",
    "final max width",
    "s/epoch",
    "nominal_inside",
]


def make_config(model: str, loss: str, eps: float, seed: int, lr: float, epochs: int) -> Config:
    """The run description of one (model, loss, eps, seed) cell."""
    cfg = Config()
    cfg.data.dataset = "moons"
    cfg.data.n_train, cfg.data.n_test, cfg.data.noise = N_TRAIN, N_TEST, NOISE
    cfg.data.seed = seed
    cfg.model.arch = model
    cfg.model.init_seed = seed
    cfg.training.loss = loss
    cfg.training.lr = lr
    cfg.training.epochs = epochs
    cfg.training.batch_size = None  # full batch
    cfg.threat.eps = eps
    cfg.method.name = "interval"
    return cfg


def run_cell(model: str, loss: str, eps: float, seeds: int, lr: float, epochs: int) -> dict:
    """Certify every seed of one setting; return the aggregated row and per-epoch widths."""
    nominal, certified, stable, final_w, spe, inside = [], [], [], [], [], []
    epoch_max, epoch_mean = [], []
    for seed in range(seeds):
        cfg = make_config(model, loss, eps, seed, lr, epochs)
        problem = build_problem(cfg)
        result = certify_problem(problem, cfg.method.name, config=cfg.to_dict())
        m = result.metrics
        nominal.append(m["nominal_accuracy"])
        certified.append(m["certified_accuracy"])
        stable.append(m["stable_rate"])
        final_w.append(m["final_max_width"])
        spe.append(m["seconds_per_epoch"])
        inside.append(result.nominal_inside)
        widths = result.bounds.widths()  # (steps + 1, n_params)
        at_epochs = widths[:: result.steps_per_epoch]  # epoch boundaries, epoch 0 = init
        epoch_max.append(at_epochs.max(axis=1))
        epoch_mean.append(at_epochs.mean(axis=1))
    return {
        "model": model,
        "loss": loss,
        "eps": eps,
        "nominal": np.asarray(nominal),
        "certified": np.asarray(certified),
        "stable": np.asarray(stable),
        "final_max_width": float(np.median(final_w)),
        "seconds_per_epoch": float(np.median(spe)),
        "nominal_inside": all(inside),
        "epoch_max_width": np.median(np.asarray(epoch_max), axis=0),
        "epoch_mean_width": np.median(np.asarray(epoch_mean), axis=0),
    }


def table_rows(cells: list[dict]) -> list[list[str]]:
    return [
        [
            c["model"],
            c["loss"],
            f"{c['eps']:g}",
            pm(c["nominal"]),
            pm(c["certified"]),
            f"{100 * c['stable'].mean():.1f}",
            f"{c['final_max_width']:.3g}",
            f"{c['seconds_per_epoch']:.2g}",
            "yes" if c["nominal_inside"] else "NO",
        ]
        for c in cells
    ]


def write_csv(path: Path, cells: list[dict]) -> None:
    """Long format: one row per (model, loss, eps, epoch); widths are medians over seeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "loss", "eps", "epoch", "max_width_median", "mean_width_median"])
        for c in cells:
            for e, (mx, mn) in enumerate(
                zip(c["epoch_max_width"], c["epoch_mean_width"], strict=True)
            ):
                w.writerow(
                    [c["model"], c["loss"], f"{c['eps']:g}", e, repr(float(mx)), repr(float(mn))]
                )


def results_section(args: argparse.Namespace, table: str, runtime: float) -> str:
    return "\n".join(
        header_lines("bench_interval.py", "`interval` on Two-Moons")
        + [
            f"* setting: Two-Moons {N_TRAIN} train / {N_TEST} test, noise {NOISE}; full batch "
            f"SGD, lr {args.lr}, {args.epochs} epochs; l-inf eps on every training point; "
            f"{args.seeds} seeds (seed = data split = init); total runtime {runtime:.1f} s",
            "* accuracies in %: mean ± std (ddof = 1) over seeds; stable rate: mean; final max "
            "width and s/epoch: median over seeds; nominal_inside: the clean trajectory lay in "
            "every box for every seed",
            f"* per-epoch box widths: `{shown(args.csv)}`",
            "",
            table,
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..S-1 (default 5)")
    p.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    p.add_argument(
        "--out", default=None, help="markdown file to update (default: <repo>/docs/results.md)"
    )
    p.add_argument(
        "--csv",
        default=None,
        help="per-epoch widths (default: <repo>/benchmarks/results/interval.csv)",
    )
    args = p.parse_args(argv)
    args.out = Path(args.out) if args.out else ROOT / "docs" / "results.md"
    args.csv = Path(args.csv) if args.csv else ROOT / "benchmarks" / "results" / "interval.csv"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    cells = [
        run_cell(model, loss, eps, args.seeds, args.lr, args.epochs)
        for model in MODELS
        for loss in LOSSES
        for eps in EPS
    ]
    runtime = time.perf_counter() - t0
    rows = table_rows(cells)
    table = tabulate(rows, headers=HEADERS, tablefmt="github", disable_numparse=True)
    print(table)
    print(f"\n{len(cells)} settings x {args.seeds} seeds in {runtime:.1f} s")
    write_csv(args.csv, cells)
    update_results("bench_interval", results_section(args, table, runtime), args.out)
    print(f"wrote {shown(args.csv)} and {shown(args.out)}")
    return 0 if all(c["nominal_inside"] for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
