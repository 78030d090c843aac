"""config -> problem -> method -> test-time certification -> report: the Python API's entry point.

Example::

    from mibpcert import Config, run
    result = run(Config())                 # the built-in Two-Moons default
    print(result.metrics["certified_accuracy"])
    result.save("runs/demo")
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mibpcert.certify.report import RunResult, check_output_dir
from mibpcert.certify.testtime import (
    SELECT_EPOCH,
    certify_classification,
    certify_regression,
    epoch_by_validation,
    merge_point_verdicts,
)
from mibpcert.config import Config
from mibpcert.data.datasets import load_dataset
from mibpcert.errors import ConfigError
from mibpcert.methods import StepCallback, get_method
from mibpcert.model.network import Architecture, init_params, load_params
from mibpcert.model.recipe import TrainingRecipe
from mibpcert.model.trainer import Trajectory
from mibpcert.problem import Problem, fine_tune, freeze_layers
from mibpcert.threat.model import DiscreteFeature, ThreatModel


def trusted_points(cfg: Config, n_train: int) -> np.ndarray:
    """The training points of ``[threat] n_trusted``: a seeded subset (``[data] seed``) of the
    training set the attacker cannot touch (empty for 0)."""
    n = cfg.threat.n_trusted
    if not isinstance(n, (int, np.integer)) or not 0 <= n < n_train:
        raise ConfigError(
            f"n_trusted must be an integer in 0..{n_train - 1} (the training set has {n_train} "
            f"points, and at least one must be untrusted), got {n!r}."
        )
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([cfg.data.seed, 7919])
    return np.sort(rng.choice(n_train, size=int(n), replace=False))


def build_threat(cfg: Config, n_train: int | None = None) -> ThreatModel:
    """The threat model of ``cfg``; with ``[threat] n_trusted`` (needs ``n_train``) its scope
    is the given ``points`` (default: all) without the trusted points."""
    t = cfg.threat
    points = None if t.points is None else tuple(t.points)
    if t.n_trusted:
        if n_train is None:
            raise ConfigError("n_trusted needs the training set size.")
        trusted = set(trusted_points(cfg, n_train).tolist())
        if t.label_k and not t.paired:
            raise ConfigError(
                "n_trusted with label changes needs --paired (labels then change only on "
                "untrusted points whose features may change); label changes anywhere else "
                "are not tied to the trusted split yet."
            )
        pool = range(n_train) if points is None else points
        points = tuple(int(i) for i in pool if int(i) not in trusted)
        if not points:
            raise ConfigError("n_trusted leaves no untrusted point the attacker may change.")
    discrete = []
    for i, d in enumerate(t.discrete):
        if not isinstance(d, dict) or "feature" not in d or "values" not in d:
            raise ConfigError(
                f"[threat] discrete entry {i} must be a table with 'feature' and 'values' "
                "(optional: mode, max_shift, direction)."
            )
        unknown = set(d) - {"feature", "values", "mode", "max_shift", "direction"}
        if unknown:
            raise ConfigError(f"[threat] discrete entry {i}: unknown key(s) {sorted(unknown)}.")
        discrete.append(DiscreteFeature(**{**d, "values": tuple(d["values"])}))
    return ThreatModel(
        eps=t.eps,
        points=points,
        k=t.k,
        label_k=t.label_k,
        label_mode=t.label_mode,
        label_eps=t.label_eps,
        discrete=tuple(discrete),
        feature_bounds=None if t.feature_bounds is None else tuple(t.feature_bounds),
        test_eps=t.test_eps,
        paired=t.paired,
        budget_scope=t.budget_scope,
        remove_k=t.remove_k,
    )


def build_problem(cfg: Config) -> Problem:
    """Load the data, parse the model, and validate everything against each other."""
    data_args = dataclasses.asdict(cfg.data)
    data = load_dataset(data_args.pop("dataset"), **data_args)
    arch = Architecture.parse(cfg.model.arch)
    train_args = dataclasses.asdict(cfg.training)
    steps = train_args.pop("steps")
    train_args.pop("select_epoch")
    if steps is not None:
        train_args["epochs"] = _epochs_for_steps(steps, data.n_train, train_args["batch_size"])
    recipe = TrainingRecipe(**train_args)
    if cfg.model.init_file:
        theta0 = load_params(cfg.model.init_file, arch)
    else:
        theta0 = init_params(arch, cfg.model.init_seed)
    threat = build_threat(cfg, data.n_train)
    if cfg.model.prefix:
        from mibpcert.model.torch_io import load_prefix

        problem = fine_tune(data, load_prefix(cfg.model.prefix), arch, recipe, threat, theta0)
    else:
        problem = Problem(data, arch, recipe, threat, theta0)
    freeze = cfg.model.freeze
    if not isinstance(freeze, (int, np.integer)) or isinstance(freeze, bool) or freeze < 0:
        raise ConfigError(f"[model] freeze must be a non-negative integer, got {freeze!r}.")
    return freeze_layers(problem, int(freeze)) if freeze else problem


def _epochs_for_steps(steps: int, n: int, batch_size: int | None) -> int:
    """Epochs giving exactly ``steps`` gradient steps (full batch: one step per epoch)."""
    if int(steps) < 1:
        raise ConfigError(f"[training] steps must be >= 1, got {steps}.")
    per_epoch = 1 if batch_size is None else -(-n // min(int(batch_size), n))
    if int(steps) % per_epoch:
        raise ConfigError(
            f"[training] steps = {steps} is not a whole number of epochs ({per_epoch} steps per "
            "epoch with this batch size); set epochs instead, or a multiple of "
            f"{per_epoch} steps."
        )
    return int(steps) // per_epoch


def method_options(
    cfg: Config, out_dir: str | Path | None = None, **extra: Any
) -> dict[str, Any]:
    """Constructor options of the configured method: every ``[method]`` setting the method's
    constructor accepts, ``out_dir`` (where ``mibp`` keeps its checkpoint and ``exact`` its
    attack files) and the ``extra`` options it accepts (e.g. progress callbacks); the others
    are left out, so one configuration serves every method."""
    from mibpcert.methods import METHODS

    cls = METHODS.get(cfg.method.name)
    if cls is None:
        return {}
    accepted = inspect.signature(cls).parameters
    values = {**dataclasses.asdict(cfg.method), "out_dir": out_dir, **extra}
    return {k: v for k, v in values.items() if k in accepted}


def certify_problem(
    problem: Problem,
    method: str = "interval",
    on_step: StepCallback | None = None,
    config: dict | None = None,
    options: dict[str, Any] | None = None,
    test_mip: bool = False,
    select_epoch: str = "last",
    solver_log: str | Path | None = None,
) -> RunResult:
    """Bound training with ``method`` and certify the test set from the final box.

    ``options`` go to the method's constructor (e.g. ``solver``, ``relax`` for ``mibp``);
    ``test_mip`` refines the interval test-time verdicts with one MIP per open test point, as the
    method specifies (:meth:`~mibpcert.methods.base.Method.test_mip`: ``mibp`` uses its solver,
    relax mode, test-MIP time and executor; methods without a test MIP ignore it).
    ``select_epoch="best-val"`` certifies the test set at the epoch whose certified accuracy on
    the clean validation split is highest (:func:`~mibpcert.certify.testtime.epoch_by_validation`);
    the boxes and trajectory of the report then end at that epoch. ``solver_log``: append
    every solver's log to this file (solver output never goes to stdout).
    """
    from mibpcert.solvers.tasks import solver_log as log_to

    with log_to(solver_log):
        return _certify_problem(problem, method, on_step, config, options, test_mip, select_epoch)


def _certify_problem(
    problem: Problem,
    method: str,
    on_step: StepCallback | None,
    config: dict | None,
    options: dict[str, Any] | None,
    test_mip: bool,
    select_epoch: str,
) -> RunResult:
    if select_epoch not in SELECT_EPOCH:
        raise ConfigError(
            f"unknown select_epoch {select_epoch!r}; use one of {', '.join(SELECT_EPOCH)}."
        )
    if select_epoch == "best-val" and problem.data.n_val == 0:
        raise ConfigError(
            "select_epoch 'best-val' needs a validation split: set [data] n_val (e.g. --n-val "
            "100), which moves that many test points into it."
        )
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    meth = get_method(method, **dict(options or {}))
    meth.check(problem)
    nominal = problem.train_nominal()
    timings["nominal_training"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    outcome = meth.run(problem, on_step=on_step)
    bounds = outcome.bounds
    timings["bounds"] = time.perf_counter() - t1
    selection = None
    if select_epoch == "best-val":
        spe = problem.recipe.steps_per_epoch(problem.data.n_train)
        epoch, curve = epoch_by_validation(
            problem.arch,
            bounds.lower,
            bounds.upper,
            bounds.affine,
            problem.data.X_val,
            problem.data.y_val,
            spe,
            problem.data.task,
            problem.data.n_classes,
        )
        bounds = bounds.truncated(epoch * spe)
        nominal = Trajectory(nominal.thetas[: epoch * spe + 1], nominal.losses[: epoch * spe])
        selection = {"selected_epoch": epoch, "validation_curve": curve}
    t2 = time.perf_counter()
    data, threat = problem.data, problem.threat
    test_box = problem.test_box()
    if data.task == "classification":
        test = certify_classification(
            problem.arch,
            bounds.box(),
            nominal.final,
            data.X_test,
            data.y_test,
            int(data.n_classes),
            test_box,
            bounds.affine,
        )
        spec = meth.test_mip() if test_mip else None
        if spec is not None:
            from mibpcert.certify.mip import refine_with_mip
            from mibpcert.parallel import make_executor

            X_lo, X_hi = test_box or (data.X_test, data.X_test)
            with make_executor(spec.workers, spec.executor, spec.ray_address) as executor:
                refine_with_mip(
                    test,
                    problem.arch,
                    bounds.box(),
                    X_lo,
                    X_hi,
                    spec.solver,
                    spec.relax,
                    spec.time_limit,
                    executor,
                    spec.allow_degraded,
                )
    else:
        test = certify_regression(
            problem.arch,
            bounds.box(),
            nominal.final,
            data.X_test,
            data.y_test,
            test_box,
            bounds.affine,
        )
    if outcome.point_verdicts and selection is None:
        merge_point_verdicts(test, outcome.point_verdicts)
    if outcome.worst_case_mse_bound is not None and selection is None:
        test.metrics["worst_case_mse_bound"] = min(
            test.metrics["worst_case_mse_bound"], outcome.worst_case_mse_bound
        )
    if selection is not None:
        test.metrics["selected_epoch"] = selection["selected_epoch"]
        test.metrics["validation_certified"] = selection["validation_curve"]
    timings["test_certification"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    info: dict[str, Any] = {
        "data": data.describe(),
        "arch": str(problem.arch),
        "n_params": problem.arch.n_params,
        "n_steps": problem.n_steps,
        "recipe": problem.recipe.to_dict(),
        "threat": threat.describe(),
    }
    if problem.prefix is not None:
        info["prefix"] = problem.prefix.describe()
        info["raw_data"] = problem.raw.describe()
    result = RunResult(
        config=config or {},
        problem=info,
        bounds=bounds,
        nominal=nominal,
        test=test,
        timings=timings,
        param_names=problem.param_names(),
        steps_per_epoch=problem.recipe.steps_per_epoch(data.n_train),
        provenance=outcome.provenance,
        section=outcome.section,
        method_metrics=outcome.metrics,
        summary_rows=outcome.summary,
    )
    result.warnings.extend(bounds.warnings)
    if result.nominal_diverged:
        result.warnings.append(
            "the ordinary training on clean data diverged (NaN/inf parameters); lower the "
            "learning rate. Bounds of the diverged steps are meaningless."
        )
    if not result.nominal_inside:
        result.warnings.append(
            "the clean training trajectory left the certified boxes: this indicates a bug; "
            "do not trust these bounds and please report it."
        )
    return result


def run(
    config: Config | None = None,
    on_step: StepCallback | None = None,
    out_dir: str | Path | None = None,
    on_solves: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Run a full certification from a :class:`~mibpcert.config.Config` (default: Two-Moons).

    Writes ``report.json`` and ``boxes.npz`` to ``out_dir`` when it is given. ``on_solves(done,
    total)`` is given to methods that report solver progress (``mibp``) and ignored by others.
    """
    cfg = config or Config()
    if out_dir is not None:
        check_output_dir(out_dir)  # before any compute
    problem = build_problem(cfg)
    options = method_options(cfg, out_dir, on_solves=on_solves)
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
    if out_dir is not None:
        result.save(out_dir)
    return result
