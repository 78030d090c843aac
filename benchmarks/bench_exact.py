"""Benchmark of the ``exact`` method: heuristic attack, exact primal, dual bound, gap, seconds.

Instances (full-batch gradient descent, feature poisoning of any k training points by l-inf
radius eps, T steps; features standardised on the training split):

* ``iris-binary``: versicolor vs virginica, linear 4-1, hinge, lr 0.5; objective: the number of
  misclassified test points under one shared attack;
* ``iris``: 3 classes, linear 4-3, one-vs-rest hinge, lr 0.5; misclassified test points;
* ``diabetes``: linear regression 10-1, MSE, lr 0.1; worst-case test MSE (standardised target);
* ``halfmoons``: make_moons (noise 0.1) 100 test points, features [x, x^2, x^3], linear
  6-1, hinge, lr 0.5; misclassified test points;
* ``mlp``: make_moons (noise 0.1), a 2-3-1 ReLU net, hinge, lr 0.5; misclassified test points.

``--n-train`` training points (default 20) and ``--seeds`` (data split and initialisation)
apply to every dataset.

Variants (ablation): ``full`` (LP bound tightening, the coordinate search and the interior
gradient attack as starts, incumbent repair; the encoding ``auto`` picks by program size; one
program per k-subset of poisoned points where there are at most 200),
``no-repair``, ``no-interior`` (no gradient attack), ``no-tighten``, ``no-heuristic`` (no
starts at all), ``points`` (``full`` with the per-point form), ``affine`` (``full`` with the
step bounds also intersected with the affine parameter sets' boxes), ``no-split`` (one
program instead of one per k-subset of poisoned points), ``root-cuts`` and ``no-split-root-cuts``
(``full`` / ``no-split`` with the solver's root cutting planes kept for the count objective,
where ``full`` turns them off). Columns: the heuristic's
attack value (replayed), the gradient attack's, the solver's primal and its incumbent replayed,
the best replayed attack, the certified bound (padded dual, combined with the interval bound),
the gap, status / outcome and seconds (program build incl. tightening + heuristic + solve).
Instances run in parallel processes (``--jobs``), each single-threaded.

Usage::

    python benchmarks/bench_exact.py [--datasets iris-binary diabetes] [--ks 1 2 5]
        [--eps 0.05 0.1] [--steps 5 10] [--variants full] [--time-limit 60] [--jobs 2]
        [--resume]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from tabulate import tabulate

from _common import ROOT, header_lines, shown, update_results

DATASETS = {
    "iris-binary": dict(dataset="iris-binary", arch="4-1", loss="hinge", lr=0.5),
    "iris": dict(dataset="iris", arch="4-3", loss="hinge", lr=0.5),
    "diabetes": dict(dataset="diabetes", arch="10-1", loss="mse", lr=0.1),
    "halfmoons": dict(dataset="moons", arch="6-1", loss="hinge", lr=0.5, poly_degree=3),
    "mlp": dict(dataset="moons", arch="2-3-1", loss="hinge", lr=0.5),
}
VARIANTS = {
    "full": dict(tighten=True, heuristic=True),
    "no-tighten": dict(tighten=False, heuristic=True),
    "no-heuristic": dict(tighten=True, heuristic=False),
    "points": dict(tighten=True, heuristic=True, form="points"),
    "no-repair": dict(tighten=True, heuristic=True, repair=False),
    "no-interior": dict(tighten=True, heuristic=True, interior_attack=False),
    "affine": dict(tighten=True, heuristic=True, sets="affine"),
    "no-split": dict(tighten=True, heuristic=True, split="none"),
    "root-cuts": dict(tighten=True, heuristic=True, root_cuts="on"),
    "no-split-root-cuts": dict(tighten=True, heuristic=True, split="none", root_cuts="on"),
}


def run_instance(args: tuple) -> dict:
    name, k, eps, T, variant, seed, time_limit, n_train, label_k = args
    sys.path.insert(0, str(ROOT / "src"))
    from mibpcert import Config
    from mibpcert.pipeline import build_problem, certify_problem

    spec = DATASETS[name]
    cfg = Config()
    cfg.data.dataset = spec["dataset"]
    cfg.data.standardize = True
    cfg.data.seed = cfg.model.init_seed = seed
    cfg.data.n_train = n_train
    if spec["dataset"] == "moons":
        cfg.data.n_test = 100
    if name == "halfmoons":
        cfg.data.poly_degree = spec["poly_degree"]
    cfg.model.arch = spec["arch"]
    cfg.training.loss = spec["loss"]
    cfg.training.lr = spec["lr"]
    cfg.training.epochs = T
    cfg.threat.eps, cfg.threat.k = eps, k
    if label_k:  # label changes beside the features: flips, any class, or target shifts by eps
        cfg.threat.label_k = label_k
        if spec["loss"] == "mse" and spec["dataset"] == "diabetes":
            cfg.threat.label_eps = eps
        elif name == "iris":
            cfg.threat.label_mode = "any"
    problem = build_problem(cfg)
    objective = "mse" if name == "diabetes" else "misclassified"
    t0 = time.perf_counter()
    r = certify_problem(
        problem,
        "exact",
        options=dict(objective=objective, time_limit=time_limit, workers=1, **VARIANTS[variant]),
    )
    ex = r.exact
    rep, sp = ex["replayed"], ex.get("solver_primal")
    return {
        "dataset": name,
        "seed": seed,
        "n_train": problem.data.n_train,
        "k": k,
        "label_k": label_k,
        "eps": eps,
        "T": T,
        "variant": variant,
        "time_limit": time_limit,
        "objective": objective,
        "clean": ex["clean_value"],
        "heuristic": ex["heuristic"],
        "gradient": ex.get("gradient"),
        "solver_primal": sp,
        "primal": ex["primal"],
        "replayed": rep,
        "replay_ok": None if rep is None or sp is None else abs(rep - sp) <= 1e-6 * (1 + abs(sp)),
        "outcome": ex.get("outcome"),
        "best_attack": ex["best_attack"],
        "bound": ex["dual_bound"],
        "interval": ex["interval_bound"],
        "gap": ex["gap"],
        "status": ex["status"],
        "certified_by": ex["certified_by"],
        "program_s": ex["program_seconds"],
        "heuristic_s": ex["heuristic_seconds"],
        "solve_s": ex["solve_seconds"],
        "total_s": time.perf_counter() - t0,
        "bilinear": ex["program"]["bilinear_products"],
        "binaries": ex["program"]["binaries"],
        "form": ex["program"]["form"],
        "tightened_steps": ex["tightened_steps"],
    }


def _key_of(g: tuple, time_limit: float, n_train: int, label_k: int) -> tuple:
    name, k, eps, T, variant, seed = g
    return (
        str(name), int(k), float(eps), int(T), str(variant), int(seed), float(time_limit),
        int(n_train), int(label_k),
    )  # fmt: skip


def _key(row: dict) -> tuple:
    g = (row["dataset"], row["k"], row["eps"], row["T"], row["variant"], row["seed"])
    return _key_of(g, row["time_limit"], row["n_train"], row.get("label_k") or 0)


def _parse(v: str):
    """A CSV cell back to None, bool, int, float or str."""
    if v == "":
        return None
    if v in ("True", "False"):
        return v == "True"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def _budget(r: dict) -> str:
    """The k column: ``k``, or ``k + L labels`` with label changes beside the features."""
    return f"{r['k']} + {r['label_k']} labels" if r.get("label_k") else str(r["k"])


def _abs_gap(r: dict) -> float | None:
    if r["bound"] is None or r["best_attack"] is None:
        return None
    return max(0.0, float(r["bound"]) - float(r["best_attack"]))


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--ks", nargs="+", type=int, default=[1, 2, 5])
    ap.add_argument("--eps", nargs="+", type=float, default=[0.05, 0.1])
    ap.add_argument("--steps", nargs="+", type=int, default=[5, 10])
    ap.add_argument("--variants", nargs="+", default=["full"], choices=list(VARIANTS))
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0..S-1 (split and init)")
    ap.add_argument("--n-train", type=int, default=20)
    ap.add_argument(
        "--label-k", type=int, default=0,
        help="label changes beside the features: flips (binary), any class (iris) or target "
        "shifts by eps (diabetes) of up to N points",
    )  # fmt: skip
    ap.add_argument(
        "--grid", nargs="+", default=None,
        help="explicit dataset:T cells instead of the product --datasets x --steps",
    )  # fmt: skip
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--csv", default=str(ROOT / "benchmarks" / "results" / "exact.csv"))
    ap.add_argument("--section", default="bench_exact")
    ap.add_argument(
        "--resume", action="store_true", help="keep the instances already in --csv, run the rest"
    )
    args = ap.parse_args()

    cells = (
        [(c.split(":")[0], int(c.split(":")[1])) for c in args.grid]
        if args.grid
        else list(itertools.product(args.datasets, args.steps))
    )
    grid = [
        (name, k, eps, T, variant, seed)
        for (name, T), k, eps, variant, seed in itertools.product(
            cells, args.ks, args.eps, args.variants, range(args.seeds)
        )
    ]
    csv_path = Path(args.csv)
    done = {}
    if args.resume and csv_path.exists():
        with open(csv_path, newline="") as fh:
            for raw in csv.DictReader(fh):
                row = {key: _parse(v) for key, v in raw.items()}
                done[_key(row)] = row
    elif csv_path.exists():
        csv_path.unlink()
    todo = [
        (*g, args.time_limit, args.n_train, args.label_k)
        for g in grid
        if _key_of(g, args.time_limit, args.n_train, args.label_k) not in done
    ]
    print(f"{len(grid) - len(todo)} of {len(grid)} instances already in {csv_path}", flush=True)
    t0 = time.perf_counter()
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_instance, task) for task in todo]
        for fut in as_completed(futures):
            row = fut.result()
            done[_key(row)] = row
            new_file = not csv_path.exists()
            with open(csv_path, "a", newline="") as fh:  # each instance lands as it finishes
                w = csv.DictWriter(fh, fieldnames=list(row))
                if new_file:
                    w.writeheader()
                w.writerow(row)
            print(
                f"{row['dataset']} k={row['k']} eps={row['eps']} T={row['T']} seed={row['seed']} "
                f"{row['variant']}: {row['status']}/{row['outcome']} attack "
                f"{fmt(row['best_attack'])} "
                f"bound {fmt(row['bound'])} ({row['total_s']:.0f} s)",
                flush=True,
            )
    wall = time.perf_counter() - t0
    order = {name: n for n, name in enumerate([*DATASETS, *VARIANTS])}
    rows = sorted(  # every instance in the CSV (this grid and resumed ones), in grid order
        done.values(),
        key=lambda r: (
            order[r["dataset"]], r["k"], r["eps"], r["T"], order[r["variant"]], r["seed"]
        ),
    )  # fmt: skip
    headers = [
        "dataset", "k", "eps", "T", "variant", "seed", "form", "clean", "heuristic", "gradient",
        "solver", "replayed", "primal", "bound", "bound - attack", "status / outcome",
        "tightened", "s (build/heur/solve)",
    ]  # fmt: skip
    table = [
        [
            r["dataset"],
            _budget(r),
            r["eps"],
            r["T"],
            r["variant"],
            r["seed"],
            r["form"],
            fmt(r["clean"]),
            fmt(r["heuristic"]),
            fmt(r.get("gradient")),
            fmt(r.get("solver_primal")),
            fmt(r["replayed"]),
            fmt(r["primal"]),
            fmt(r["bound"]),
            fmt(_abs_gap(r), 4),
            f"{r['status']} / {r.get('outcome')}",
            f"{r['tightened_steps']}/{r['T']}" if VARIANTS[r["variant"]]["tighten"] else "-",
            f"{r['program_s']:.0f}/{r['heuristic_s']:.0f}/{r['solve_s']:.0f}",
        ]
        for r in rows
    ]
    text = tabulate(table, headers, tablefmt="github", disable_numparse=True)
    print(text)
    summary = closure_table(rows)
    print(summary)
    closed = [r for r in rows if r["gap"] is not None and r["gap"] <= 1e-4]
    lines = header_lines("bench_exact.py", "exact: attacks and certificates (bench_exact)")
    lines += [
        f"* per-program time limit {args.time_limit:g} s; {args.jobs} instances in parallel, "
        f"single-threaded each; {len(todo)} instances run by this invocation in {wall:.0f} s "
        f"wall time, {len(rows) - len(todo)} kept from earlier ones (--resume); all instances "
        f"together {sum(r['total_s'] for r in rows):.0f} s; CSV: `{shown(Path(args.csv))}`",
        "* LP tightening: at most the time limit over all steps (`--tighten-time`); "
        "`tightened`: steps tightened before that budget ran out",
        "* objective: misclassified test points under one shared attack (classification), "
        "worst-case test MSE of the standardised target (diabetes); `clean`: the objective "
        "without attack; `heuristic`: replayed value of the coordinate-search attack; "
        "`primal`: the solver's best attack; `bound`: certified bound (padded dual bound, "
        "combined with the interval bound); `bound - attack`: the absolute gap between the "
        "certified bound and the best replayed attack (the relative gap is in the CSV)",
        "* `solver`: the solver's own primal; `replayed`: its incumbent replayed (after repair);"
        " `primal`: the best replayed attack (what the report gives); `outcome`: closed (best "
        "replayed attack within relative gap 1e-4 of the bound), replay_differs, open",
        f"* replays: {sum(1 for r in rows if r.get('replay_ok') is True)} of "
        f"{sum(1 for r in rows if r.get('replay_ok') is not None)} solver incumbents replay to "
        "the solver's value within 1e-6 (relative)",
        f"* closed (relative gap < 1e-4) within the time limit: {len(closed)} of {len(rows)}"
        + (
            ": "
            + ", ".join(
                f"{r['dataset']} k={r['k']} eps={r['eps']} T={r['T']} {r['variant']}"
                for r in closed
            )
            if 0 < len(closed) <= 12
            else ""
        ),
        "",
        "Closure per (dataset, T, variant) over the seeds:",
        "",
        summary,
        "",
        text,
    ]
    update_results(args.section, "\n".join(lines))


def closure_table(rows: list[dict]) -> str:
    """Per (dataset, k, eps, T, variant): seeds closed, replays that agree, median gap, s."""
    import statistics

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], _budget(r), r["eps"], r["T"], r["variant"]), []).append(r)
    out = []
    for (name, k, eps, T, variant), rs in groups.items():
        gaps = [r["gap"] for r in rs if r["gap"] is not None]
        oks = [r.get("replay_ok") for r in rs if r.get("replay_ok") is not None]
        out.append([
            name, k, eps, T, variant, len(rs),
            f"{sum(1 for g in gaps if g <= 1e-4)}/{len(rs)}",
            f"{sum(1 for o in oks if o)}/{len(oks)}",
            fmt(statistics.median(gaps)) if gaps else "-",
            f"{statistics.median(r['total_s'] for r in rs):.0f}",
        ])  # fmt: skip
    return tabulate(
        out,
        ["dataset", "k", "eps", "T", "variant", "seeds", "closed", "replay ok", "median gap",
         "median s"],
        tablefmt="github",
        disable_numparse=True,
    )  # fmt: skip


if __name__ == "__main__":
    main()
