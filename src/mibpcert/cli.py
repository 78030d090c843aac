"""``mibpcert`` command line: a thin shell over :mod:`mibpcert.pipeline`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from mibpcert._version import __version__
from mibpcert.config import Config, load_config
from mibpcert.errors import MibpcertError

# flag -> (config key, type, help)
_FLAGS: list[tuple[str, str, type | None, str]] = [
    (
        "--dataset",
        "data.dataset",
        str,
        "moons | iris | iris-binary | diabetes | breast-cancer | path to .csv/.npz",
    ),
    ("--n-train", "data.n_train", int, "training points (moons default 100)"),
    ("--n-test", "data.n_test", int, "test points (moons default 200)"),
    ("--n-val", "data.n_val", int, "clean validation points, taken from the test points"),
    ("--noise", "data.noise", float, "moons noise (default 0.1)"),
    ("--data-seed", "data.seed", int, "seed of the dataset / split"),
    ("--task", "data.task", str, "classification | regression (for CSV/NPZ files)"),
    ("--label-column", "data.label_column", str, "label column of a CSV file (default: last)"),
    ("--test-path", "data.test_path", str, "separate CSV test file"),
    ("--poly-degree", "data.poly_degree", int, "expand features to [x, x^2, ..., x^p]"),
    ("--model", "model.arch", str, "layer sizes, e.g. 2-10-1 or 4-16-16-3 (linear: 4-3)"),
    ("--init-seed", "model.init_seed", int, "seed of the PyTorch-style initialisation"),
    (
        "--init",
        "model.init_file",
        str,
        "initial parameters (.npz: theta | W1,b1,... | torch state dict keys)",
    ),
    (
        "--freeze",
        "model.freeze",
        int,
        "fine-tuning: the first N affine layers stay at their initial values (a fixed "
        "feature map); the rest is trained and certified",
    ),
    (
        "--prefix",
        "model.prefix",
        str,
        "fine-tuning: a torch.save'd nn.Sequential (Linear, ReLU, Tanh, Sigmoid, Flatten) "
        "used as a fixed feature map in front of --model",
    ),
    ("--loss", "training.loss", str, "hinge | bce | ce | mse"),
    ("--lr", "training.lr", float, "learning rate"),
    ("--epochs", "training.epochs", int, "epochs"),
    ("--steps", "training.steps", int, "gradient steps (sets epochs; full batch: = epochs)"),
    (
        "--select-epoch",
        "training.select_epoch",
        str,
        "last (default) | best-val: the epoch with the best certified validation accuracy",
    ),
    ("--batch-size", "training.batch_size", int, "batch size (default: full batch)"),
    ("--seed", "training.seed", int, "seed of the batch order"),
    ("--lr-schedule", "training.lr_schedule", str, "constant | inverse | exponential"),
    ("--lr-decay", "training.lr_decay", float, "decay parameter of the lr schedule"),
    ("--clip", "training.clip", float, "per-sample gradient clipping to [-clip, clip]"),
    (
        "--clip-norm",
        "training.clip_norm",
        float,
        "per-sample gradient clipping to l2 norm <= C (see --clip-scope)",
    ),
    ("--clip-scope", "training.clip_scope", str, "layer (per parameter tensor) | global"),
    (
        "--weight-decay",
        "training.weight_decay",
        float,
        "L2 regularisation: theta' = (1 - lr wd) theta - lr g (PyTorch SGD weight_decay)",
    ),
    ("--l1", "training.l1", float, "L1 regularisation: - lr l1 sign(theta) per step"),
    (
        "--momentum",
        "training.momentum",
        float,
        "SGD momentum mu in [0, 1) (PyTorch's, dampening 0): v' = mu v + g, theta' = theta - lr v'",
    ),
    ("--eps", "threat.eps", float, "l-inf radius of training-feature perturbations"),
    (
        "--points",
        "threat.points",
        None,
        "comma-separated indices of the points that may be perturbed (default: all)",
    ),
    ("--k", "threat.k", int, "any k of the points may be perturbed (default: all of them)"),
    ("--label-k", "threat.label_k", int, "number of labels the attacker may change"),
    ("--k-label", "threat.label_k", int, "alias of --label-k"),
    ("--label-mode", "threat.label_mode", str, "flip | any | target class"),
    ("--label-eps", "threat.label_eps", float, "regression: max target shift"),
    ("--feature-bounds", "threat.feature_bounds", None, "LOW,HIGH box all features stay in"),
    ("--test-eps", "threat.test_eps", float, "l-inf radius of test-time perturbations"),
    (
        "--n-trusted",
        "threat.n_trusted",
        int,
        "a seeded subset of N training points is trusted: the attacker cannot change them",
    ),
    (
        "--budget-scope",
        "threat.budget_scope",
        str,
        "global (default: k, label_k per training set) | batch (per batch, each step poisoned "
        "afresh; the AGT library's model)",
    ),
    (
        "--remove-k",
        "threat.remove_k",
        int,
        "removal threat: any K training points deleted (interval, agt; with --eps 0)",
    ),
    ("--method", "method.name", str, "interval | agt | mibp | exact"),
    (
        "--sets",
        "method.sets",
        str,
        "box (default) | affine: parameter sets over the attack symbols (interval, agt, mibp; "
        "exact: tighter step bounds)",
    ),
    ("--solver", "method.solver", str, "mibp, exact: scip (default) | highs | gurobi"),
    ("--relax", "method.relax", str, "mibp: bilinear (MIP; alias exact) | milp | lp (McCormick)"),
    ("--time-limit", "method.time_limit", float, "seconds per solve (mibp) / program (exact)"),
    (
        "--test-mip-time",
        "method.test_mip_time",
        float,
        "mibp: seconds per test-time margin solve (default: --time-limit)",
    ),
    ("--workers", "method.workers", int, "mibp, exact: worker processes (default: all cores)"),
    (
        "--objective",
        "method.objective",
        str,
        "exact: mse (regression) | margin (per test point) | misclassified (one shared attack)",
    ),
    (
        "--test-points",
        "method.test_points",
        None,
        "exact, margin: comma-separated test points to solve exactly (default: all open ones)",
    ),
    (
        "--heuristic-time",
        "method.heuristic_time",
        float,
        "exact: seconds for the coordinate search (the gradient attack gets as much again)",
    ),
    (
        "--tighten-time",
        "method.tighten_time",
        float,
        "exact: seconds for LP bound tightening over all steps (default: the time limit)",
    ),
    (
        "--form",
        "method.form",
        str,
        "exact: auto (default) | points | slots (linear, k-of-n) | moments (full-batch linear MSE)",
    ),
    (
        "--split",
        "method.split",
        str,
        "exact: auto (default: one program per k-subset of poisoned points, at most 200) | "
        "points | none",
    ),
    (
        "--root-cuts",
        "method.root_cuts",
        str,
        "exact: auto (default: off for the misclassified count) | on | off: root cutting planes",
    ),
    ("--executor", "method.executor", str, "mibp: process (default) | inprocess | ray"),
    ("--ray-address", "method.ray_address", str, "mibp: Ray cluster to use (default: local Ray)"),
    (
        "--solver-log",
        "method.solver_log",
        str,
        "mibp, exact: append every solver's log to this file (never printed on stdout)",
    ),
    ("--out", "output.dir", str, "output directory (report.json, boxes.npz)"),
]


# switch -> (config key, value it sets, help)
_SWITCHES: list[tuple[str, str, bool, str]] = [
    ("--standardize", "data.standardize", True, "standardise features (train statistics)"),
    ("--no-shuffle", "training.shuffle", False, "keep the data order in every epoch"),
    ("--nesterov", "training.nesterov", True, "Nesterov momentum (with --momentum)"),
    (
        "--paired",
        "threat.paired",
        True,
        "label changes only on the (at most max(k, label_k)) points whose features change",
    ),
    (
        "--resume",
        "method.resume",
        True,
        "mibp: continue an interrupted run from its checkpoint in --out",
    ),
    ("--no-lp-first", "method.lp_first", False, "mibp: no LP pass before exact/milp solves"),
    (
        "--allow-degraded",
        "method.allow_degraded",
        True,
        "mibp, exact: go on when over a quarter of a step's solves fail (report marked degraded)",
    ),
    ("--no-tighten", "method.tighten", False, "exact: no LP bound tightening per step"),
    ("--no-heuristic", "method.heuristic", False, "exact: no primal heuristic / start solution"),
    (
        "--no-interior-attack",
        "method.interior_attack",
        False,
        "exact: no gradient attack through the training steps after the coordinate search",
    ),
    (
        "--no-repair",
        "method.repair",
        False,
        "exact: keep solver incumbents that replay worse than the solver's value unrepaired",
    ),
    (
        "--no-test-mip",
        "method.test_mip",
        False,
        "mibp: certify test points by interval propagation only",
    ),
]


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _float_pair(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != 2:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}")
    return vals


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mibpcert",
        description="Certify machine-learning training against data poisoning.",
    )
    parser.add_argument("--version", action="version", version=f"mibpcert {__version__}")
    sub = parser.add_subparsers(dest="command")
    cert = sub.add_parser(
        "certify",
        help="bound training under attack and certify the test set",
        description="Bound every parameter after every training step under the threat model, "
        "then certify test predictions. With no arguments: Two-Moons, 2-10-1, hinge, "
        "eps=0.001, interval method.",
    )
    cert.add_argument("--config", "-c", help="TOML or YAML configuration file")
    for flag, key, typ, help_ in _FLAGS:
        conv = typ
        if key in ("threat.points", "method.test_points"):
            conv = _int_list
        elif key == "threat.feature_bounds":
            conv = _float_pair
        cert.add_argument(flag, dest=key, type=conv, default=None, help=help_)
    for flag, key, const, help_ in _SWITCHES:
        cert.add_argument(
            flag, dest=key, action="store_const", const=const, default=None, help=help_
        )
    cert.add_argument("--no-progress", action="store_true", help="no progress bar")
    cert.add_argument("--quiet", "-q", action="store_true", help="print only the output paths")
    cert.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _add_study_commands(sub)
    return parser


def _add_study_commands(sub) -> None:
    """The ``sweep`` and ``plot`` subcommands."""
    sw = sub.add_parser(
        "sweep",
        help="run a grid of certifications (methods x eps x k x seeds) from a sweep config",
        description="Run every cell of the [sweep] grid of CONFIG (one run per cell, written to "
        "OUT/cells/<cell>/), skip cells already done with the same configuration, and write "
        "OUT/sweep.csv and OUT/sweep.json.",
    )
    sw.add_argument("config", help="TOML or YAML file: run sections plus a [sweep] section")
    sw.add_argument("--out", help="output directory (default: [output] dir, else sweeps/NAME)")
    sw.add_argument("--executor", help="process (default) | inprocess | ray")
    sw.add_argument("--workers", type=int, help="workers of the executor (default: all cores)")
    sw.add_argument("--ray-address", help="Ray cluster to use (default: a local Ray runtime)")
    sw.add_argument(
        "--parallel-cells",
        action="store_true",
        help="run whole cells in parallel through the executor (each cell with one worker)",
    )
    sw.add_argument("--no-progress", action="store_true", help="no progress bar")
    sw.add_argument("--quiet", "-q", action="store_true", help="print only the output paths")
    pl = sub.add_parser(
        "plot",
        help="draw PNG plots of a run directory or a sweep directory",
        description="Sweep directory: certified accuracy vs eps and box width per step. Run "
        "directory: box width per step, and the exact method's bounds over time if present.",
    )
    pl.add_argument("path", help="a run directory (report.json) or a sweep directory (sweep.json)")
    pl.add_argument("--out", help="where to write the PNG files (default: PATH)")


def _sweep(args: argparse.Namespace) -> int:
    from mibpcert.sweep import load_sweep, resolve_out_dir, run_sweep

    spec = load_sweep(args.config)
    out = resolve_out_dir(spec, args.out)
    rows = run_sweep(
        spec,
        out,
        executor=args.executor,
        workers=args.workers,
        ray_address=args.ray_address,
        parallel_cells=args.parallel_cells,
        progress=not (args.no_progress or args.quiet),
        print_table=not args.quiet,
    )
    print(f"table: {out / 'sweep.csv'}\njson:  {out / 'sweep.json'}")
    return 0 if all(r["nominal_inside"] for r in rows) else 3


def _plot(args: argparse.Namespace) -> int:
    from mibpcert.certify.plots import plot_dir

    def note(msg: str) -> None:
        print(f"mibpcert: {msg}", file=sys.stderr)

    for path in plot_dir(args.path, args.out, on_message=note):
        print(path)
    return 0


def _certify(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from mibpcert.certify.report import check_output_dir
    from mibpcert.pipeline import build_problem, certify_problem, method_options

    cfg = load_config(args.config) if args.config else Config()
    overrides = {k: v for k, v in vars(args).items() if "." in k}
    cfg = cfg.override(overrides)
    check_output_dir(cfg.output.dir)  # before any compute: a bad --out fails now
    problem = build_problem(cfg)
    bar = tqdm(
        total=problem.n_steps,
        desc=f"{cfg.method.name} bounds",
        unit="step",
        disable=args.no_progress or args.quiet or None,
        file=sys.stderr,
    )

    def on_step(done: int, total: int) -> None:
        bar.update(done - bar.n)

    callbacks: dict = {}
    if not bar.disable:

        def on_solves(done: int, total: int) -> None:
            bar.set_postfix_str(f"solves {done}/{total}")

        def progress(t: float, primal: float | None, dual: float | None) -> None:
            p = "-" if primal is None else f"{primal:.6g}"
            d = "-" if dual is None else f"{dual:.6g}"
            bar.set_postfix_str(f"solve {t:.1f}s attack {p} bound {d}")

        def on_point(done: int, total: int) -> None:
            bar.set_postfix_str(f"test points {done}/{total}")

        callbacks = {"on_solves": on_solves, "progress": progress, "on_point": on_point}
    # each method takes the callbacks it reports progress through
    options = method_options(cfg, cfg.output.dir, **callbacks)
    try:
        result = certify_problem(
            problem,
            cfg.method.name,
            on_step=on_step,
            config=cfg.to_dict(),
            options=options,
            test_mip=cfg.method.test_mip,
            select_epoch=cfg.training.select_epoch,
            solver_log=cfg.method.solver_log,
        )
    finally:
        bar.close()
    paths = result.save(cfg.output.dir)
    if args.json:
        print(json.dumps(result.metrics, indent=2))
    elif not args.quiet:
        print(result.summary())
        print()
    where = sys.stderr if args.json else sys.stdout
    print(f"report: {paths['report']}\nboxes:  {paths['boxes']}", file=where)
    if result.degraded:
        print(
            f"mibpcert: warning: DEGRADED run: {result.failed_solves} solve(s) failed; their "
            "bounds fell back to weaker proven ones (see the report's warnings)",
            file=sys.stderr,
        )
    return 0 if result.nominal_inside else 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "plot":
            return _plot(args)
        return _certify(args)
    except MibpcertError as exc:
        print(f"mibpcert: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mibpcert: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
