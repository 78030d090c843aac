"""Method ``mibp`` (MIBP-Cert): every training step as a mixed-integer bilinear program.

For step t with parameter box Theta_t, the program of :func:`mibpcert.encode.step.encode_step`
describes every (theta, D') with theta in Theta_t and D' in the threat set; minimising and
maximising every updated parameter theta'_j gives the next box. Soundness:

* each bound is the solver's **dual bound** (never its incumbent), moved outward by the
  backend's tolerance, ``tol + tol * |bound|`` (:meth:`~mibpcert.solvers.SolveResult.certified`);
  a solve that ends without a finite dual bound (error,
  numerical trouble) leaves its coordinate at the best earlier bound (the LP pass, else the
  interval/agt step), and is counted;
* every new box is intersected with the interval step (and, under k-of-n or label budgets, the
  ``agt`` step) from Theta_t, so ``mibp`` is never looser than those from the same box;
* a runtime self-check trains single steps from random theta in Theta_t on random attacks with
  the ordinary trainer; a coordinate whose bound excludes such a point (a solver or tolerance
  failure) falls back to the interval bound and the run is warned.

Relaxation modes (:class:`~mibpcert.vocab.RelaxMode`): ``bilinear`` (the MIP itself, SCIP or
Gurobi; ``exact`` is its old name), ``milp`` (McCormick envelopes,
binaries kept) and ``lp`` (McCormick, binaries relaxed; HiGHS). With ``lp_first`` an exact or
milp run first solves the LP relaxation (cheap) and skips the exact/milp solve of every objective
the LP settles: its bound already meets the value of the clean training step (a feasible point,
so no bound can be better), or its optimum is feasible for the exact/milp program (binaries
integral, and for exact every product exact), so it is optimal there too.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mibpcert.bounds.parameters import ParameterBounds
from mibpcert.domains.interval import Interval, add, scale, sub
from mibpcert.encode.step import check_supported, encode_step
from mibpcert.errors import CheckpointError, ConfigError
from mibpcert.methods import mibp_affine
from mibpcert.methods.agt import reference_step
from mibpcert.methods.base import (
    DEFAULT_TIME_LIMIT,
    BoxMethod,
    StepCallback,
    TestMIP,
    check_affine_sets,
    check_sets,
)
from mibpcert.model.trainer import batch_gradient
from mibpcert.ops import sgd
from mibpcert.ops.loss import encode_targets
from mibpcert.parallel import check_kind, make_executor
from mibpcert.problem import Problem
from mibpcert.solvers.tasks import check_failures, solve_many
from mibpcert.vocab import RelaxMode, Status

CHECKPOINT_FILE = "mibp_checkpoint.npz"


def _meets(result, value: float) -> bool:
    """Whether the (unpadded) dual bound of ``result`` already reaches the feasible ``value``."""
    d = result.dual_bound
    if d is None or np.isnan(d):
        return False
    tol = 1e-7 * (1.0 + abs(value))
    return d >= value - tol if result.sense == "min" else d <= value + tol


def _settled(lp, value: float, formulation, relax: str) -> bool:
    """Whether the LP solve ``lp`` leaves nothing for a solve in ``relax`` to gain: its dual bound
    already meets the feasible ``value`` (the clean step), or its optimum is feasible for the
    ``relax`` program (binaries integral; products exact for ``exact``), hence optimal there."""
    if _meets(lp, value):
        return True
    return (
        lp.status == Status.OPTIMAL and lp.x is not None and formulation.satisfied_by(lp.x, relax)
    )


class MIBPMethod(BoxMethod):
    """Per-step mixed-integer bilinear bounds with a box between steps."""

    name = "mibp"

    def __init__(
        self,
        solver: str = "scip",
        relax: str = "bilinear",
        time_limit: float | None = DEFAULT_TIME_LIMIT,
        workers: int | None = None,
        lp_first: bool = True,
        out_dir: str | Path | None = None,
        resume: bool = False,
        self_check_samples: int = 16,
        on_solves: Callable[[int, int], None] | None = None,
        executor: str = "process",
        ray_address: str | None = None,
        test_mip_time: float | None = None,
        sets: str = "box",
        allow_degraded: bool = False,
    ) -> None:
        check_kind(executor)
        #: continue (and mark the report degraded) when more than
        #: :data:`~mibpcert.solvers.tasks.MAX_FAILED_SHARE` of a step's solves fail
        self.allow_degraded = bool(allow_degraded)
        #: ``box``, or ``affine``: each step's program is tied to the affine set of the
        #: parameters over the attack symbols, and bounds the next set's remainder
        self.sets = check_sets(sets)
        self._loaded_affine: dict | None = None
        relax = RelaxMode.parse(relax, "relaxation")
        if time_limit is not None and not time_limit > 0:
            raise ConfigError(f"time_limit must be > 0 seconds, got {time_limit}.")
        if test_mip_time is not None and not test_mip_time > 0:
            raise ConfigError(f"test_mip_time must be > 0 seconds, got {test_mip_time}.")
        if workers is not None and workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}.")
        self.solver = solver
        self.relax = relax
        #: seconds per solve of a step's objectives (LP pass and milp/bilinear solves)
        self.solve_time = time_limit
        #: seconds per test-time margin solve (default: the per-solve time)
        self.test_mip_time = time_limit if test_mip_time is None else test_mip_time
        self.workers = workers
        self.lp_first = lp_first
        #: where the checkpoint is kept (``None``: no checkpoint)
        self.checkpoint_dir = None if out_dir is None else Path(out_dir)
        self.resume = resume
        self.self_check_samples = self_check_samples
        #: called as ``on_solves(done, total)`` as the solves of the current step finish
        self.on_solves = on_solves
        #: executor kind of the solves (``inprocess``, ``process``, ``ray``) and Ray cluster
        self.executor = executor
        self.ray_address = ray_address

    # ------------------------------------------------------------------ set-up
    def provenance(self) -> str:
        tol = self._tolerance()
        return (
            f"solver dual bounds padded by {tol:g} + {tol:g}|b|, intersected with interval/agt "
            "steps; interval fallback where a solve proved nothing"
        )

    def _tolerance(self) -> float:
        from mibpcert.solvers import get_backend

        return get_backend(self.solver).feasibility_tolerance

    def test_mip(self) -> TestMIP:
        return TestMIP(
            self.solver,
            self.relax,
            self.test_mip_time,
            self.workers,
            self.executor,
            self.ray_address,
            self.allow_degraded,
        )

    def check(self, problem: Problem) -> list[str]:
        from mibpcert.solvers import get_backend

        notes = check_supported(problem)
        check_affine_sets(problem, self.sets, self.name)
        if problem.recipe.has_momentum:
            notes.append(
                "momentum: the velocity has its own box, from the interval/agt gradient step "
                "(sound, looser); the velocity's term of theta' is added to the solved bounds."
            )
        backend = get_backend(self.solver)
        backend.check()
        needed = self.relax.capability
        if needed not in backend.capabilities:
            raise ConfigError(
                f"solver {self.solver!r} cannot solve relax mode '{self.relax}' (needs "
                f"{needed}); use --solver scip, or --relax milp / lp with highs."
            )
        if (
            problem.recipe.batch_size is not None
            and problem.recipe.batch_size < (problem.data.n_train)
            and problem.threat.k is not None
            and not problem.threat.per_batch
        ):
            notes.append(
                "the global k-of-n budget is enforced within each batch only (sound, looser)."
            )
        tol = self._tolerance()
        notes.append(
            f"solver bounds are dual bounds padded by {tol:g} + {tol:g}*|bound| "
            f"({self.solver}, relax={self.relax})."
        )
        return notes

    def _fingerprint(self, problem: Problem) -> str:
        h = hashlib.sha256()
        for arr in (problem.theta0, problem.data.X_train, np.asarray(problem.data.y_train)):
            h.update(np.ascontiguousarray(arr).tobytes())
        if problem.prefix is not None:  # the raw inputs and the map give the feature boxes
            h.update(np.ascontiguousarray(problem.raw.X_train).tobytes())
            h.update(problem.prefix.fingerprint())
        meta = {
            "arch": str(problem.arch),
            # epochs excluded: a finished run can be resumed with more epochs (the batch order
            # and learning rate of the first epochs do not depend on the total)
            "recipe": {k: v for k, v in problem.recipe.to_dict().items() if k != "epochs"},
            "threat": problem.threat.describe(),
            "relax": self.relax,
            "solver": self.solver,
            **({"sets": self.sets} if self.sets != "box" else {}),
        }
        h.update(json.dumps(meta, sort_keys=True, default=str).encode())
        return h.hexdigest()

    # ------------------------------------------------------------------ main loop
    def bound(self, problem: Problem, on_step: StepCallback | None = None) -> ParameterBounds:
        notes = self.check(problem)
        batches = problem.batches()
        T, m = len(batches), problem.arch.n_params
        lower = np.empty((T + 1, m))
        upper = np.empty((T + 1, m))
        lower[0] = upper[0] = problem.theta0
        seconds: list[float] = []
        info: list[dict] = []
        start = 0
        fingerprint = self._fingerprint(problem)
        # the momentum velocity's boxes (v_0 = 0), or None without momentum
        vel = (
            (np.zeros((T + 1, m)), np.zeros((T + 1, m))) if problem.recipe.has_momentum else None
        )
        if self.resume and self.checkpoint_dir is not None:
            start = self._load_checkpoint(fingerprint, lower, upper, seconds, info, vel)
            if on_step is not None and start:
                on_step(start, T)
        clean = problem.train_nominal()
        nominal = clean.thetas
        reference = reference_step(problem)
        rng = np.random.default_rng(12345)
        warnings: list[str] = []
        affine = mibp_affine.start(self, problem, start) if self.sets == "affine" else None
        with make_executor(self.workers, self.executor, self.ray_address) as executor:
            for step in range(start, T):
                t0 = time.perf_counter()
                box = Interval(lower[step], upper[step])
                idx, lr = batches[step], problem.recipe.lr_at(step)
                vbox = None if vel is None else Interval(vel[0][step], vel[1][step])
                itv, vnext = reference(box, step, idx, vbox)
                if affine is None:
                    lo, hi, stats = self._solve_step(
                        problem, step, idx, box, itv, nominal[step : step + 2], executor,
                        velocity=None if vel is None else (vbox, clean.velocities[step]),
                    )
                else:
                    lo, hi, stats = mibp_affine.step(
                        self, problem, step, idx, box, itv, nominal[step : step + 2], executor,
                        affine, rng,
                    )
                if affine is None:
                    lo, hi, bad = self._self_check(
                        problem, box, idx, lr, lo, hi, itv, rng, vbox
                    )
                else:  # checked with parameters of both sets, in the affine step
                    bad = stats.pop("box_self_check_fallbacks")
                if bad:
                    warnings.append(
                        f"step {step + 1}: {bad} coordinate(s) failed the sampling "
                        "self-check and fell back to interval bounds."
                    )
                if affine is not None and stats.get("affine_self_check_fallbacks"):
                    warnings.append(
                        f"step {step + 1}: {stats['affine_self_check_fallbacks']} coordinate(s) "
                        "of the affine set failed the sampling self-check and kept the "
                        "solver-free remainder."
                    )
                stats["self_check_fallbacks"] = bad
                if stats.get("task_failures"):
                    warnings.append(
                        f"step {step + 1}: {stats['task_failures']} solve(s) were lost with "
                        "their task (worker died or the task raised, after retries); their "
                        "coordinates kept the best earlier bound."
                    )
                lower[step + 1], upper[step + 1] = lo, hi
                if vel is not None:
                    vel[0][step + 1], vel[1][step + 1] = vnext.lo, vnext.hi
                seconds.append(time.perf_counter() - t0)
                stats["seconds"] = seconds[-1]
                info.append(stats)
                self._save_checkpoint(
                    fingerprint, step + 1, lower, upper, seconds, info, affine, vel
                )
                if on_step is not None:
                    on_step(step + 1, T)
        traj = None
        if affine is not None:
            from mibpcert.bounds.parameters import AffineTrajectory

            traj = AffineTrajectory(
                affine["attack"],
                np.array(affine["c"]),
                np.array(affine["G"]),
                np.array(affine["rho"]),
            )
            notes.append(
                "affine parameter sets over the attack symbols between steps: every step's "
                f"program is tied to them ({traj.symbols.size} symbols), their remainders are "
                "padded dual bounds intersected with the solver-free affine step."
            )
        return ParameterBounds(
            self.name, lower, upper, notes, seconds, info, warnings, affine=traj
        )

    def _solve_step(
        self, problem, step, idx, box, itv, nominal, executor, tie=None, velocity=None
    ):
        """Bound the next box (min/max of every updated parameter over the step's program);
        with ``tie = (attack, state, G_next)`` the program is tied to the affine set ``state``
        and also bounds ``theta'_j - G_next_j u`` (returned as ``(rlo, rhi)``). ``nominal``:
        the clean trajectory's parameters before and after the step (feasible values);
        ``velocity = (box, clean value)``: the momentum velocity before the step."""
        from mibpcert.solvers import backend_for

        nominal_next = nominal[1]
        enc = encode_step(problem, step, box, idx)
        objectives = enc.objectives()
        m = len(enc.theta_vars)
        values = list(np.repeat(nominal_next, 2))  # a feasible value of every objective
        rlo, rhi = np.full(m, -np.inf), np.full(m, np.inf)
        if tie is not None:
            attack, state, G_next, basis = tie
            objectives += enc.tie_affine_set(
                attack, state.c, state.G, state.rho, G_next, basis
            )
            values += list(np.repeat(nominal_next - G_next @ attack.clean, 2))
        # the L1 term -lr l1 sign(theta_j) and the velocity's term c v_j are not in the program:
        # each objective's bound moves by their range over the boxes (min: the lower end, max:
        # the upper end), outward; the clean step's objective value by their clean value
        extra, extra_nom = self._outside_terms(problem, step, box, nominal[0], velocity)
        if extra is not None:
            values = [v - extra_nom[(k % (2 * m)) // 2] for k, v in enumerate(values)]

        def with_l1(k: int, bnd: float | None) -> float | None:
            if extra is None or bnd is None or np.isnan(bnd):
                return bnd
            j = (k % (2 * m)) // 2
            if k % 2 == 0:
                return float(np.nextafter(bnd + extra.lo[j], -np.inf))
            return float(np.nextafter(bnd + extra.hi[j], np.inf))

        lo, hi = itv.lo.copy(), itv.hi.copy()
        statuses: Counter = Counter()
        fallbacks = 0
        task_failures = 0
        pending = list(range(len(objectives)))
        stats: dict = {"model": enc.formulation.stats()}

        every: list = []

        def apply(which: list[int], results: list) -> None:
            nonlocal fallbacks, task_failures
            every.extend(results)
            for r in results:
                statuses[r.status] += 1
                task_failures += int(r.lost)
            bounds = [with_l1(k, r.certified()) for k, r in zip(which, results, strict=True)]
            box_k = [(k, b) for k, b in zip(which, bounds, strict=True) if k < 2 * m]
            res_k = [(k - 2 * m, b) for k, b in zip(which, bounds, strict=True) if k >= 2 * m]
            missing = enc.decode([k for k, _ in box_k], [b for _, b in box_k], lo, hi)
            missing += enc.decode([k for k, _ in res_k], [b for _, b in res_k], rlo, rhi)
            fallbacks += len(missing)

        relax = self.relax
        first = relax is not RelaxMode.LP and self.lp_first
        total = len(objectives) * (2 if first else 1)
        if self.on_solves is not None:
            self.on_solves(0, total)
        if first:
            lp_form = enc.formulation.relaxed(RelaxMode.LP)
            lp_res = solve_many(
                lp_form,
                objectives,
                backend_for(lp_form.needs, ("highs", self.solver)),
                self.solve_time,
                executor,
                return_x=True,
            )
            apply(pending, lp_res)
            if self.on_solves is not None:
                self.on_solves(len(objectives), total)
            pending = [
                k for k in pending if not _settled(lp_res[k], values[k], enc.formulation, relax)
            ]
            stats["lp_solves"] = len(objectives)
            stats["lp_settled"] = len(objectives) - len(pending)
        form = enc.formulation.relaxed(relax)
        if pending:
            res = solve_many(
                form, [objectives[k] for k in pending], self.solver, self.solve_time, executor
            )
            apply(pending, res)
        stats[f"{relax}_solves"] = len(pending)
        stats["failed_solves"] = check_failures(every, f"step {step + 1}", self.allow_degraded)
        if self.on_solves is not None:
            self.on_solves(total, total)
        crossed = lo > hi
        if crossed.any():  # numerical trouble: keep the interval bound there
            lo[crossed], hi[crossed] = itv.lo[crossed], itv.hi[crossed]
            fallbacks += int(crossed.sum())
        stats["statuses"] = dict(statuses)
        stats["fallbacks"] = fallbacks
        if task_failures:
            stats["task_failures"] = task_failures
        stats["n_objectives"] = len(objectives)
        if tie is not None:
            return lo, hi, stats, (rlo, rhi)
        return lo, hi, stats

    @staticmethod
    def _outside_terms(problem, step, box, theta_nom, velocity):
        """The terms of ``theta'`` outside the step's program (``- lr l1 sign(theta)`` and the
        momentum velocity's ``c v``) as an interval over the boxes, and their clean value;
        ``(None, None)`` when there are none."""
        rec = problem.recipe
        lr = rec.lr_at(step)
        _, _, vc, l1_factor = sgd.momentum_terms(lr, rec.weight_decay, rec.momentum, rec.nesterov)
        l1 = rec.l1 * l1_factor
        if not l1 and velocity is None:
            return None, None
        m = len(theta_nom)
        extra, nom = Interval.point(np.zeros(m)), np.zeros(m)
        if l1:
            extra = sub(extra, sgd.l1_interval(box, lr, l1))
            nom = nom - (lr * l1) * np.sign(theta_nom)
        if velocity is not None:
            vbox, v_nom = velocity
            extra = add(extra, scale(vbox, vc))
            nom = nom + vc * v_nom
        return extra, nom

    def _self_check(self, problem, box, idx, lr, lo, hi, itv, rng, vbox=None):
        """Random single steps from theta in the box (and the velocity in its box) on random
        attacks must land in [lo, hi]."""
        if self.self_check_samples <= 0:
            return lo, hi, 0
        data = problem.data

        bad = np.zeros(len(lo), dtype=bool)
        for s in range(self.self_check_samples):
            if s % 2 == 0:
                theta = np.where(rng.random(len(lo)) < 0.5, box.lo, box.hi)
            else:
                theta = rng.uniform(box.lo, box.hi)
            X, y = problem.sample_poisoned(
                rng, vertex_prob=0.7, within=idx if problem.threat.per_batch else None
            )
            t = encode_targets(problem.recipe.loss, y, data.task)
            g, _ = batch_gradient(
                problem.arch, theta, X[idx], t[idx], problem.recipe.loss, problem.recipe.clip
            )
            v = None if vbox is None else rng.uniform(vbox.lo, vbox.hi)
            nxt, _ = sgd.step(theta, v, g, lr, **problem.recipe.sgd_args())
            bad |= (nxt < lo) | (nxt > hi)
        if bad.any():
            lo, hi = lo.copy(), hi.copy()
            lo[bad], hi[bad] = itv.lo[bad], itv.hi[bad]
        return lo, hi, int(bad.sum())

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(
        self, fingerprint, done, lower, upper, seconds, info, affine=None, vel=None
    ):
        if self.checkpoint_dir is None:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_dir / CHECKPOINT_FILE
        tmp = path.with_suffix(".tmp.npz")
        sets = {}
        if affine is not None:
            sets = {f"affine_{k}": np.array(affine[k][: done + 1]) for k in ("c", "G", "rho")}
        if vel is not None:
            sets["velocity_lower"], sets["velocity_upper"] = vel[0][: done + 1], vel[1][: done + 1]
        np.savez(
            tmp,
            fingerprint=np.asarray(fingerprint),
            done=np.asarray(done),
            lower=lower[: done + 1],
            upper=upper[: done + 1],
            seconds=np.asarray(seconds),
            info=np.asarray(json.dumps(info, default=str)),
            **sets,
        )
        tmp.replace(path)

    def _load_checkpoint(self, fingerprint, lower, upper, seconds, info, vel=None) -> int:
        """Restore the steps a checkpoint holds; a corrupted, foreign or mismatched file gives
        one :class:`~mibpcert.errors.CheckpointError` line naming it and how to start over."""
        import zipfile

        path = self.checkpoint_dir / CHECKPOINT_FILE
        if not path.exists():
            return 0
        fix = (
            "delete it (or drop --resume) to start over from step 0, or use another output "
            "directory."
        )
        try:
            with np.load(path, allow_pickle=False) as ck:
                missing = sorted(
                    {"fingerprint", "done", "lower", "upper", "seconds", "info"} - set(ck.files)
                )
                if missing:
                    raise CheckpointError(
                        f"checkpoint {str(path)!r} is not a mibp checkpoint (no "
                        f"{', '.join(missing)}); {fix}"
                    )
                if str(ck["fingerprint"]) != fingerprint:
                    raise CheckpointError(
                        f"checkpoint {str(path)!r} belongs to a different problem or method "
                        f"setting (or an older mibpcert); {fix}"
                    )
                done = int(ck["done"])
                ck_lower, ck_upper = ck["lower"], ck["upper"]
                ck_seconds = [float(x) for x in np.atleast_1d(ck["seconds"])]
                ck_info = json.loads(str(ck["info"]))
                affine = (
                    {k: ck[f"affine_{k}"] for k in ("c", "G", "rho")}
                    if "affine_c" in ck.files
                    else None
                )
                velocity = (
                    (ck["velocity_lower"], ck["velocity_upper"])
                    if "velocity_lower" in ck.files
                    else None
                )
        except CheckpointError:
            raise
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise CheckpointError(
                f"checkpoint {str(path)!r} is unreadable or corrupted "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); {fix}"
            ) from None
        m = lower.shape[1]
        shape_ok = (
            0 <= done
            and ck_lower.shape == ck_upper.shape == (done + 1, m)
            and len(ck_seconds) >= done
            and isinstance(ck_info, list)
            and len(ck_info) >= done
            and (
                affine is None
                or all(len(affine[k]) == done + 1 for k in ("c", "G", "rho"))
            )
            and (vel is None) == (velocity is None)
            and (velocity is None or velocity[0].shape == velocity[1].shape == (done + 1, m))
        )
        if not shape_ok:
            raise CheckpointError(
                f"checkpoint {str(path)!r} is inconsistent (step count or array shapes do not "
                f"match {done} step(s) of {m} parameters); {fix}"
            )
        done = min(done, lower.shape[0] - 1)
        lower[: done + 1] = ck_lower[: done + 1]
        upper[: done + 1] = ck_upper[: done + 1]
        if vel is not None:
            vel[0][: done + 1] = velocity[0][: done + 1]
            vel[1][: done + 1] = velocity[1][: done + 1]
        seconds.extend(ck_seconds[:done])
        info.extend(ck_info[:done])
        self._loaded_affine = affine
        return done
