"""Method ``exact``: poisoning, all training steps and the test objective as one program.

The program (:mod:`mibpcert.encode.unroll`) holds the attacker's choices, every unrolled
training step and a test objective. The solver's **dual bound** (padded) is the certificate; its
incumbent is an attack, which is projected onto the threat model (round-off) and **replayed**
with the ordinary trainer -- the replayed value is the attack's value. At a time limit the answer
is the interval [best attack, certified bound].

Objectives (:class:`~mibpcert.attacks.TestObjective`):

* ``mse`` -- worst-case test MSE of a regression model (maximised);
* ``margin`` -- per test point, the smallest margin of its true class (minimised; certified when
  > 0); one program per point, fanned out over the executor;
* ``misclassified`` -- the number of test points one shared attack misclassifies (maximised).

Speed-ups: variable bounds per step from the interval (and AGT) step, then an LP pass per step
(HiGHS, McCormick) -- :func:`lp_tightener`; exact reformulations (binary x continuous products,
the linear clean part of a linear MSE model's gradient); a primal heuristic
(:func:`~mibpcert.attacks.coordinate_search`) whose attack is handed to the solver as a start.

Soundness: every reported bound is the solver's dual bound padded by ``1e-6 + 1e-6 |b|`` and
combined with the interval bound of the same question from the final parameter box (the better
of two proofs), so ``exact`` is never looser than ``interval``; a solve that proves nothing keeps
the interval bound and says so.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mibpcert.attacks import Attack, TestObjective, coordinate_search, project_attack
from mibpcert.attacks.replay import replay, threat_violations
from mibpcert.bounds.parameters import ParameterBounds
from mibpcert.certify.testtime import certify_regression, class_margin_lower_bounds
from mibpcert.domains.builder import Builder
from mibpcert.domains.interval import Interval
from mibpcert.domains.program import Formulation, LinearObjective
from mibpcert.encode import forms
from mibpcert.encode.objectives import margin_objectives, misclassified_objective, mse_objective
from mibpcert.encode.unroll import TrainingProgram, encode_training
from mibpcert.errors import ConfigError, UnsupportedError
from mibpcert.methods.agt import agt_step
from mibpcert.methods.base import StepCallback
from mibpcert.methods.interval import interval_step
from mibpcert.problem import Problem

OBJECTIVES = ("mse", "margin", "misclassified")
#: encodings of the training steps: ``auto`` picks the smallest that applies
FORMS = forms.FORM_NAMES
PAD_ABS = 1e-6
PAD_REL = 1e-6

ProgressFn = Callable[[float, "float | None", "float | None"], None]


# ----------------------------------------------------------------------------- solver tasks


@dataclass(frozen=True)
class ExactTask:
    """One program with its objectives, solved in one session (picklable, runs in a worker)."""

    formulation: Formulation
    objectives: list[LinearObjective]
    backend: str
    time_limit: float | None
    start: dict | None = None


def solve_exact_task(task: ExactTask, progress: ProgressFn | None = None) -> list:
    """Solve every objective of ``task``, returning incumbents (``x``) and traces."""
    from mibpcert.solvers import get_backend

    with get_backend(task.backend).session(task.formulation, time_limit=task.time_limit) as s:
        return [
            s.solve(obj, return_x=True, start=task.start, progress=progress)
            for obj in task.objectives
        ]


def lp_tightener(backend: str, time_limit: float | None, budget: float | None = None) -> Callable:
    """A :data:`~mibpcert.encode.unroll.TightenFn`: min and max of every new parameter over
    the McCormick LP relaxation of the program so far; padded dual bounds.

    ``budget``: seconds for all steps together; once spent, later steps keep their interval/AGT
    bounds (sound: tightening only ever narrows proven bounds) and report ``skipped``.
    """
    from mibpcert.solvers.tasks import SolveTask, solve_task

    spent = [0.0]

    def tighten(b: Builder, exprs: list) -> tuple[np.ndarray, np.ndarray, dict]:
        m = len(exprs)
        lo, hi = np.full(m, -np.inf), np.full(m, np.inf)
        if budget is not None and spent[0] >= budget:
            return lo, hi, {"skipped": True, "reason": f"tightening budget {budget:g} s spent"}
        which = [j for j, e in enumerate(exprs) if e.is_var]
        objectives = [
            LinearObjective(np.array([exprs[j].idx[0]]), np.array([1.0]), 0.0, s, f"{s} {j}")
            for j in which
            for s in ("min", "max")
        ]
        t0 = time.perf_counter()
        # one session in this process: the LPs are re-solved from a hot start, and the bounds
        # do not depend on the executor
        results = solve_task(SolveTask(b.f.relaxed("lp"), objectives, backend, time_limit))
        statuses: Counter = Counter()
        for k, r in enumerate(results):
            statuses[r.status] += 1
            bound = r.bound(PAD_ABS, PAD_REL)
            if bound is None or math.isnan(bound):
                continue
            j = which[k // 2]
            if r.sense == "min":
                lo[j] = bound
            else:
                hi[j] = bound
        spent[0] += time.perf_counter() - t0
        before = np.array([e.hi - e.lo for e in exprs])
        after = np.minimum(hi, [e.hi for e in exprs]) - np.maximum(lo, [e.lo for e in exprs])
        info = {
            "lp_solves": len(objectives),
            "lp_seconds": time.perf_counter() - t0,
            "statuses": dict(statuses),
            "max_width_before": float(before.max()) if m else 0.0,
            "max_width_after": float(np.maximum(after, 0.0).max()) if m else 0.0,
        }
        return lo, hi, info

    return tighten


# ----------------------------------------------------------------------------- results


@dataclass
class ExactOutcome:
    """What :meth:`ExactMethod.run` produced: parameter boxes, the report section, metrics."""

    bounds: ParameterBounds
    section: dict
    metrics: dict
    point_verdicts: dict[int, dict] = field(default_factory=dict)
    attacks: dict[str, Attack] = field(default_factory=dict)


def _final_value(r) -> tuple[float | None, float | None]:
    """(primal, padded dual bound) of a solve result."""
    return r.primal, r.bound(PAD_ABS, PAD_REL)


class ExactMethod:
    """Whole-training mixed-integer certification and attack (see the module docstring)."""

    name = "exact"

    def __init__(
        self,
        solver: str = "scip",
        objective: str | None = None,
        test_points: list[int] | None = None,
        time_limit: float | None = 60.0,
        tighten: bool = True,
        tighten_time: float | None = None,
        heuristic: bool = True,
        heuristic_time: float | None = None,
        form: str = "auto",
        lp_solver: str = "highs",
        workers: int | None = 1,
        executor: str = "process",
        ray_address: str | None = None,
        out_dir: str | Path | None = None,
        progress: ProgressFn | None = None,
        on_point: Callable[[int, int], None] | None = None,
        seed: int = 0,
    ) -> None:
        if objective is not None and objective not in OBJECTIVES:
            raise ConfigError(
                f"unknown exact objective {objective!r}; use one of {', '.join(OBJECTIVES)}."
            )
        if time_limit is not None and not time_limit > 0:
            raise ConfigError(f"time_limit must be > 0 seconds, got {time_limit}.")
        if form not in FORMS:
            raise ConfigError(f"unknown exact form {form!r}; use one of {', '.join(FORMS)}.")
        if tighten_time is not None and not tighten_time > 0:
            raise ConfigError(f"tighten_time must be > 0 seconds, got {tighten_time}.")
        if heuristic_time is not None and not heuristic_time >= 0:
            raise ConfigError(f"heuristic_time must be >= 0 seconds, got {heuristic_time}.")
        self.solver = solver
        self.objective = objective
        self.test_points = None if test_points is None else [int(i) for i in test_points]
        self.time_limit = time_limit
        self.tighten = tighten
        #: seconds for LP tightening over all steps (default: the time limit)
        self.tighten_time = time_limit if tighten_time is None else tighten_time
        self.heuristic = heuristic
        self.heuristic_time = heuristic_time
        self.form = form
        self.lp_solver = lp_solver
        self.workers = workers
        self.executor = executor
        self.ray_address = ray_address
        self.out_dir = None if out_dir is None else Path(out_dir)
        #: called as ``progress(seconds, primal, dual)`` during a single-program solve
        self.progress = progress
        #: called as ``on_point(done, total)`` as per-point programs finish
        self.on_point = on_point
        self.seed = seed

    # ------------------------------------------------------------------ set-up
    def objective_for(self, problem: Problem) -> str:
        task = problem.data.task
        kind = self.objective or ("mse" if task == "regression" else "margin")
        if (kind == "mse") != (task == "regression"):
            raise ConfigError(
                f"objective {kind!r} does not fit {task} data: use 'mse' for regression, "
                "'margin' or 'misclassified' for classification."
            )
        return kind

    def check(self, problem: Problem) -> list[str]:
        from mibpcert.encode.step import check_supported
        from mibpcert.solvers import get_backend

        notes = check_supported(problem)
        if problem.threat.test_eps > 0:
            raise UnsupportedError(
                "method 'exact' does not model test-time perturbations (test_eps) yet; use "
                "interval, agt or mibp for them."
            )
        if problem.recipe.loss in ("bce", "ce"):
            notes.append(
                "the loss gradient is relaxed (sigmoid/softmax bounds), so the program is a "
                "sound relaxation: dual bounds hold, incumbents may not replay to their value."
            )
        kind = self.objective_for(problem)
        n_test = len(problem.data.X_test)
        for i in self.test_points or []:
            if not 0 <= i < n_test:
                raise ConfigError(f"test point {i} does not exist (the test set has {n_test}).")
        if self.test_points is not None and kind != "margin":
            raise ConfigError("test_points select the points of the 'margin' objective only.")
        forms.check_form(self.form, problem)
        backend = get_backend(self.solver)
        backend.check()
        if "bilinear" not in backend.capabilities:
            raise ConfigError(
                f"solver {self.solver!r} cannot solve bilinear programs; use --solver scip "
                "(or gurobi)."
            )
        notes.append(
            f"exact bounds are {self.solver} dual bounds padded by {PAD_ABS:g} + "
            f"{PAD_REL:g}*|bound|, combined with the interval bound of the same question."
        )
        return notes

    def _executor(self):
        from mibpcert.parallel import make_executor

        return make_executor(self.workers, self.executor, self.ray_address)

    def _program(self, problem: Problem, on_step: StepCallback | None):
        X_box, labels = problem.input_box(), problem.label_set()
        t = problem.threat
        budgets = (t.k is not None and t.perturbs_features) or 0 < t.label_k < problem.data.n_train

        def box_step(box: Interval, step: int, idx: np.ndarray) -> Interval:
            lr = problem.recipe.lr_at(step)
            itv = interval_step(problem, box, idx, lr, X_box, labels)
            if budgets:
                itv = itv.intersect(agt_step(problem, box, step, idx, X_box, labels))
            return itv

        lp = self.lp_solver
        from mibpcert.solvers import get_backend

        if not get_backend(lp).available():
            lp = self.solver
        tighten = lp_tightener(lp, self.time_limit, self.tighten_time) if self.tighten else None
        return encode_training(
            problem, box_step=box_step, tighten=tighten, on_step=on_step, form=self.form
        )

    def bound(self, problem: Problem, on_step: StepCallback | None = None) -> ParameterBounds:
        """The per-step parameter boxes the program uses (interval/AGT steps, LP-tightened)."""
        notes = self.check(problem)
        return self._bounds(self._program(problem, on_step), notes)

    def _bounds(self, prog: TrainingProgram, notes: list[str]) -> ParameterBounds:
        return ParameterBounds(
            self.name, prog.lower, prog.upper, notes, prog.step_seconds, prog.step_info
        )

    # ------------------------------------------------------------------ main entry
    def run(self, problem: Problem, on_step: StepCallback | None = None) -> ExactOutcome:
        """Build the program, find attacks, solve, replay; see the module docstring."""
        notes = self.check(problem)
        kind = self.objective_for(problem)
        t0 = time.perf_counter()
        prog = self._program(problem, on_step)
        build_seconds = time.perf_counter() - t0
        bounds = self._bounds(prog, notes)
        if kind == "margin":
            with self._executor() as executor:
                outcome = self._run_margins(problem, prog, bounds, executor)
        else:
            outcome = self._run_single(problem, prog, bounds, kind)
        outcome.section["program_seconds"] = build_seconds
        outcome.section["program"] = {**prog.builder.f.stats(), "form": prog.form}
        outcome.section["tightening"] = self.tighten
        outcome.section["tightened_steps"] = sum(
            1 for row in prog.step_info if "tighten" in row and not row["tighten"].get("skipped")
        )
        outcome.section["heuristic_enabled"] = self.heuristic
        if self.out_dir is not None:
            files = {}
            for name, attack in outcome.attacks.items():
                paths = attack.save(problem, self.out_dir / name)
                files[name] = {k: str(v) for k, v in paths.items()}
            outcome.section["attack_files"] = files
        return outcome

    # ------------------------------------------------------------------ helpers
    def _heuristic_budget(self) -> float:
        if self.heuristic_time is not None:
            return float(self.heuristic_time)
        tl = 60.0 if self.time_limit is None else float(self.time_limit)
        return float(min(10.0, max(0.5, 0.1 * tl)))

    def _solver_attack(
        self, problem: Problem, prog: TrainingProgram, x, objective: TestObjective
    ) -> Attack | None:
        """The incumbent's poisoning, projected onto the threat model and replayed."""
        if x is None:
            return None
        data = problem.data
        X, y = prog.poison.attack(x, data.X_train, data.y_train)
        X, y = project_attack(problem, X, y)
        bad = threat_violations(problem, X, y, tol=1e-7)
        value = replay(problem, X, y, objective)
        return Attack(X, y, value, "solver", {"threat_violations": bad})

    def _interval_bound(self, problem: Problem, prog: TrainingProgram, kind: str) -> float:
        """The same question answered from the final parameter box by interval arithmetic."""
        data = problem.data
        box = Interval(prog.lower[-1], prog.upper[-1])
        if kind == "mse":
            theta = problem.train_nominal().final
            cert = certify_regression(problem.arch, box, theta, data.X_test, data.y_test)
            return float(cert.metrics["worst_case_mse_bound"])
        lb = class_margin_lower_bounds(
            problem.arch, box, Interval.point(data.X_test), int(data.n_classes)
        )
        true_lb = lb[np.arange(len(data.y_test)), np.asarray(data.y_test, dtype=np.int64)]
        return float(np.sum(true_lb <= 0.0))

    def _run_single(
        self, problem: Problem, prog: TrainingProgram, bounds: ParameterBounds, kind: str
    ) -> ExactOutcome:
        objective = TestObjective(kind)
        data = problem.data
        clean_value = objective.value(problem, problem.train_nominal().final)
        attacks = {"clean": Attack(data.X_train, data.y_train, clean_value, "clean")}
        start = None
        h_seconds = 0.0
        if self.heuristic:
            t0 = time.perf_counter()
            h = coordinate_search(problem, objective, self._heuristic_budget(), seed=self.seed)
            h_seconds = time.perf_counter() - t0
            attacks["heuristic"] = h
            start = prog.poison.assignment(data.X_train, data.y_train, h.X, h.y)
        b = prog.builder.fork()
        layers = prog.layers(problem)
        obj = (
            mse_objective(b, problem, layers)
            if kind == "mse"
            else misclassified_objective(b, problem, layers)
        )
        task = ExactTask(b.f, [obj], self.solver, self.time_limit, start)
        t0 = time.perf_counter()
        (res,) = solve_exact_task(task, self.progress)
        solve_seconds = time.perf_counter() - t0
        primal, dual = _final_value(res)
        solver_attack = self._solver_attack(problem, prog, res.x, objective)
        if solver_attack is not None:
            attacks["solver"] = solver_attack
        interval_bound = self._interval_bound(problem, prog, kind)
        if dual is None:
            certified = interval_bound
            proof = "interval (the solve proved nothing)"
        elif kind == "misclassified":
            certified = float(min(math.floor(dual), interval_bound))
            proof = "solver" if math.floor(dual) <= interval_bound else "interval"
        else:
            certified = float(min(dual, interval_bound))
            proof = "solver" if dual <= interval_bound else "interval"
        best = max(attacks.values(), key=lambda a: a.value)
        attacks["best"] = best
        replayed = solver_attack.value if solver_attack is not None else None
        agree = (
            None
            if replayed is None or primal is None
            else bool(abs(replayed - primal) <= 1e-5 * (1.0 + abs(primal)))
        )
        metrics = {
            "objective": kind,
            "status": res.status,
            "primal": primal,
            "dual_bound": certified,
            "solver_dual_bound": dual,
            "interval_bound": interval_bound,
            "gap": _gap(best.value, certified),
            "replayed": replayed,
            "heuristic": attacks["heuristic"].value if "heuristic" in attacks else None,
            "best_attack": best.value,
            "clean_value": clean_value,
            "certified_by": proof,
        }
        if kind == "misclassified":
            n = len(data.X_test)
            metrics["accuracy_lower_bound"] = 1.0 - certified / n
            metrics["attacked_accuracy"] = 1.0 - best.value / n
        section = {
            **metrics,
            "solve_seconds": solve_seconds,
            "heuristic_seconds": h_seconds,
            "nodes": res.nodes,
            "message": res.message,
            "start_used": res.start_used,
            "replay_agrees": agree,
            "trace": [{"t": t, "primal": p, "dual": d} for t, p, d in res.trace],
            "attacks": {k: a.summary(problem) for k, a in attacks.items()},
        }
        if agree is False:
            section["replay_note"] = (
                "the solver's value and the replayed value differ: the incumbent sits at a "
                "ReLU/hinge kink or within solver tolerances; the replayed value is the attack's."
            )
        return ExactOutcome(bounds, section, metrics, attacks=attacks)

    def _run_margins(
        self, problem: Problem, prog: TrainingProgram, bounds: ParameterBounds, executor
    ) -> ExactOutcome:
        data = problem.data
        explicit = self.test_points is not None
        points = self.test_points if explicit else list(range(len(data.X_test)))
        box = Interval(prog.lower[-1], prog.upper[-1])
        lb_all = class_margin_lower_bounds(
            problem.arch, box, Interval.point(data.X_test[points]), int(data.n_classes)
        )
        nominal = problem.train_nominal().final
        verdicts: dict[int, dict] = {}
        attacks: dict[str, Attack] = {}
        starts: dict[int, dict | None] = {}
        todo: list[int] = []
        for row, p in enumerate(points):
            objective = TestObjective("margin", p)
            c = int(data.y_test[p])
            v = {
                "point": p,
                "label": c,
                "interval_bound": float(lb_all[row, c]),
                "clean_value": objective.value(problem, nominal),
            }
            verdicts[p] = v
            if v["interval_bound"] > 0 and not explicit:
                v.update(
                    verdict="certified", certified_by="interval", dual_bound=v["interval_bound"]
                )
                continue
            best = Attack(data.X_train, data.y_train, v["clean_value"], "clean")
            start = None
            if self.heuristic:
                h = coordinate_search(problem, objective, self._heuristic_budget(), self.seed)
                v["heuristic"] = h.value
                start = prog.poison.assignment(data.X_train, data.y_train, h.X, h.y)
                if h.value < best.value:
                    best = h
            v["best_attack"] = best.value
            if best.value <= 0.0:
                attacks[f"attack_point{p}"] = best
            if best.value <= 0.0 and not explicit:
                v.update(verdict="not certified", certified_by=None)
                continue
            starts[p] = start
            todo.append(p)
        tasks = []
        for p in todo:
            b = prog.builder.fork()
            objs = margin_objectives(b, problem, prog.layers(problem), p)
            tasks.append(ExactTask(b.f, objs, self.solver, self.time_limit, starts[p]))
        from mibpcert.parallel import TaskFailure
        from mibpcert.solvers.tasks import failed_results

        done = 0
        if self.on_point is not None:
            self.on_point(0, len(tasks))

        def on_result(_i: int, _res) -> None:
            nonlocal done
            done += 1
            if self.on_point is not None:
                self.on_point(done, len(tasks))

        results = executor.map(solve_exact_task, tasks, on_result=on_result)
        statuses: Counter = Counter()
        for p, task, res in zip(todo, tasks, results, strict=True):
            if isinstance(res, TaskFailure):
                res = failed_results(task.objectives, res.message)
            v = verdicts[p]
            objective = TestObjective("margin", p)
            duals = [_final_value(r)[1] for r in res]
            primals = [r.primal for r in res if r.primal is not None]
            for r in res:
                statuses[r.status] += 1
            dual = None if any(d is None for d in duals) else float(min(duals))
            worst = min(
                range(len(res)), key=lambda k: np.inf if res[k].primal is None else res[k].primal
            )
            sa = self._solver_attack(problem, prog, res[worst].x, objective)
            certified = v["interval_bound"] if dual is None else max(dual, v["interval_bound"])
            v.update(
                status=",".join(sorted({r.status for r in res})),
                primal=min(primals) if primals else None,
                solver_dual_bound=dual,
                dual_bound=certified,
                replayed=None if sa is None else sa.value,
                seconds=float(sum(r.seconds for r in res)),
                trace=[{"t": t, "primal": pr, "dual": d} for t, pr, d in res[worst].trace],
            )
            if sa is not None and sa.value < v.get("best_attack", np.inf):
                v["best_attack"] = sa.value
                if sa.value <= 0.0:
                    attacks[f"attack_point{p}"] = sa
            v["gap"] = _gap(v["best_attack"], certified)
            if certified > 0.0:
                v.update(
                    verdict="certified",
                    certified_by="solver"
                    if dual is not None and dual >= v["interval_bound"]
                    else "interval",
                )
            elif v["best_attack"] <= 0.0:
                v.update(verdict="not certified", certified_by=None)
            else:
                v.update(verdict="unknown", certified_by=None)
        counts = Counter(v["verdict"] for v in verdicts.values())
        metrics = {
            "objective": "margin",
            "test_points": points,
            "primal": [verdicts[p].get("primal") for p in points],
            "dual_bound": [verdicts[p].get("dual_bound") for p in points],
            "gap": [verdicts[p].get("gap") for p in points],
            "replayed": [verdicts[p].get("replayed") for p in points],
            "heuristic": [verdicts[p].get("heuristic") for p in points],
            "exact_certified": counts.get("certified", 0),
            "exact_not_certified": counts.get("not certified", 0),
            "exact_unknown": counts.get("unknown", 0),
            "exact_solved": len(todo),
        }
        section = {
            **metrics,
            "statuses": dict(statuses),
            "points": [verdicts[p] for p in points],
        }
        return ExactOutcome(bounds, section, metrics, verdicts, attacks)


def _gap(attack: float | None, bound: float | None) -> float | None:
    """``|bound - attack| / max(|attack|, 1e-10)``; None when either is missing/infinite."""
    if attack is None or bound is None or not (math.isfinite(attack) and math.isfinite(bound)):
        return None
    d = abs(bound - attack)
    return 0.0 if d == 0 else d / max(abs(attack), 1e-10)
