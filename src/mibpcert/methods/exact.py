"""Method ``exact``: poisoning, all training steps and the test objective as one program.

The program (:mod:`mibpcert.encode.unroll`, in the form :mod:`mibpcert.encode.forms` picks)
holds the attacker's choices, every unrolled training step and a test objective
(:mod:`mibpcert.encode.objectives`). The solver's **dual bound** (padded) is the certificate; its
incumbent is an attack, which is projected onto the threat model (round-off) and **replayed**
with the ordinary trainer -- the replayed value is the attack's value. At a time limit the answer
is the interval [best attack, certified bound].

Objectives (:class:`~mibpcert.attacks.TestObjective`):

* ``mse`` -- worst-case test MSE of a regression model (maximised);
* ``margin`` -- per test point, the smallest margin of its true class (minimised; certified when
  > 0); one program per point, fanned out over the executor (:mod:`mibpcert.methods.exact_margins`);
* ``misclassified`` -- the number of test points one shared attack misclassifies (maximised).

Under a k-of-n feature threat with at most 200 k-subsets of the scope the ``mse`` and
``misclassified`` answers go by pieces, one program per choice of poisoned points, pruned by
interval bounds and cut off at the best attack (:mod:`mibpcert.methods.exact_split`,
``split``).

Speed-ups: variable bounds per step from the interval (and AGT) step, then an LP pass per step
(HiGHS, McCormick) -- :func:`~mibpcert.methods.tightening.lp_tightener`; exact reformulations
(binary x continuous products, the linear clean part of a linear MSE model's gradient, the slot and
moment forms); a primal heuristic (:func:`~mibpcert.attacks.coordinate_search`) whose attack is
handed to the solver as a start.

Time budgets: ``time_limit`` is the budget of each program (and of each LP of the tightening);
``tighten_time`` bounds the tightening over all steps (default: the program budget);
``heuristic_time`` the attack heuristic per program (default: ``min(10, max(0.5, 0.1 x``
the program budget``))``).

Soundness: every reported bound is the solver's dual bound padded by the backend's tolerance
(``tol + tol |b|``) and combined with the interval bound of the same question from the final
parameter box (the better of two proofs), so ``exact`` is never looser than ``interval``; a solve
that proves nothing keeps the interval bound and says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mibpcert.attacks import TestObjective
from mibpcert.bounds.parameters import ParameterBounds
from mibpcert.certify.testtime import certify_regression, class_margin_lower_bounds
from mibpcert.domains.interval import Interval
from mibpcert.encode import forms
from mibpcert.encode.objectives import single_objective
from mibpcert.encode.unroll import TrainingProgram, encode_training
from mibpcert.errors import ConfigError, UnsupportedError
from mibpcert.methods.agt import reference_step
from mibpcert.methods.base import (
    DEFAULT_TIME_LIMIT,
    MethodResult,
    StepCallback,
    TestMIP,
    check_sets,
)
from mibpcert.methods.exact_attacks import (
    best_of,
    opening_attacks,
    single_answer,
    solver_attack,
)
from mibpcert.methods.exact_margins import Answer, run_margins
from mibpcert.methods.exact_split import SPLITS, run_split, split_applies
from mibpcert.methods.tightening import lp_tightener
from mibpcert.problem import Problem
from mibpcert.solvers.results import ProgressCallback
from mibpcert.solvers.tasks import SolveTask, solve_task
from mibpcert.vocab import Provenance

OBJECTIVES = ("mse", "margin", "misclassified")
#: encodings of the training steps: ``auto`` picks the smallest that applies
FORMS = forms.FORM_NAMES

#: root cutting planes of the program solves: ``auto``, ``on`` (the solver's default), ``off``
ROOT_CUTS = ("auto", "on", "off")

#: metrics of the method that go into the report's metrics (the section holds them all)
REPORT_METRICS = (
    "objective",
    "status",
    "outcome",
    "primal",
    "solver_primal",
    "dual_bound",
    "gap",
    "replayed",
    "heuristic",
    "gradient",
    "accuracy_lower_bound",
    "attacked_accuracy",
    "best_attack",
    "test_points",
    "exact_certified",
    "exact_not_certified",
    "exact_unknown",
    "exact_solved",
    "failed_solves",
)


class ExactMethod:
    """Whole-training mixed-integer certification and attack (see the module docstring)."""

    name = "exact"

    def __init__(
        self,
        solver: str = "scip",
        objective: str | None = None,
        test_points: list[int] | None = None,
        time_limit: float | None = DEFAULT_TIME_LIMIT,
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
        progress: ProgressCallback | None = None,
        on_point: Callable[[int, int], None] | None = None,
        seed: int = 0,
        sets: str = "box",
        allow_degraded: bool = False,
        interior_attack: bool = True,
        repair: bool = True,
        split: str = "auto",
        root_cuts: str = "auto",
    ) -> None:
        #: continue (report marked degraded) when too many per-point margin solves fail
        self.allow_degraded = bool(allow_degraded)
        #: ``affine``: every step's parameter bounds in the program are also intersected with
        #: the box of the solver-free affine parameter set over the attack (tighter big-M)
        self.sets = check_sets(sets)
        #: a projected-gradient attack through the unrolled training (interior optima), after
        #: the coordinate search, as a start and an inner bound
        self.interior_attack = bool(interior_attack)
        #: turn a solver incumbent that replays worse than the solver's value into one that
        #: replays (local moves, gradient polish): :func:`~mibpcert.attacks.repair_attack`
        self.repair = bool(repair)
        if objective is not None and objective not in OBJECTIVES:
            raise ConfigError(
                f"unknown exact objective {objective!r}; use one of {', '.join(OBJECTIVES)}."
            )
        if time_limit is not None and not time_limit > 0:
            raise ConfigError(f"time_limit must be > 0 seconds, got {time_limit}.")
        if split not in SPLITS:
            raise ConfigError(f"unknown exact split {split!r}; use one of {', '.join(SPLITS)}.")
        #: ``points``: one program per k-subset of poisoned points under a k-of-n feature threat
        #: (:mod:`mibpcert.methods.exact_split`); ``auto``: where that applies; ``none``: never
        self.split = split
        if root_cuts not in ROOT_CUTS:
            raise ConfigError(
                f"unknown exact root_cuts {root_cuts!r}; use one of {', '.join(ROOT_CUTS)}."
            )
        #: cutting-plane rounds at the root node: ``auto`` turns them off for the count
        #: objective (``misclassified``), where SCIP's root cut loop tails off at a bound that
        #: branching then closes quickly, and keeps the solver's default elsewhere
        self.root_cuts = root_cuts
        if form not in FORMS:
            raise ConfigError(f"unknown exact form {form!r}; use one of {', '.join(FORMS)}.")
        if tighten_time is not None and not tighten_time > 0:
            raise ConfigError(f"tighten_time must be > 0 seconds, got {tighten_time}.")
        if heuristic_time is not None and not heuristic_time >= 0:
            raise ConfigError(f"heuristic_time must be >= 0 seconds, got {heuristic_time}.")
        self.solver = solver
        self.objective = objective
        self.test_points = None if test_points is None else [int(i) for i in test_points]
        #: seconds per program (each objective's solve; each LP of the tightening)
        self.program_time = time_limit
        self.tighten = tighten
        #: seconds for LP tightening over all steps (default: the program budget)
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
    def provenance(self) -> str:
        tol = self._tolerance()
        return (
            "one program over poisoning, all training steps and the test objective: solver dual "
            f"bound padded by {tol:g} + {tol:g}|b|, combined with the interval bound of the same "
            f"question; parameter boxes from interval/agt steps tightened by padded LP dual bounds"
        )

    def _tolerance(self) -> float:
        from mibpcert.solvers import get_backend

        return get_backend(self.solver).feasibility_tolerance

    def test_mip(self) -> TestMIP | None:
        """None: the margin objective decides test points with its own programs."""
        return None

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
        if problem.threat.per_batch:
            raise UnsupportedError(
                "method 'exact' unrolls training on one poisoned training set, so it cannot "
                "bound --budget-scope batch (each step poisoned afresh); use interval, agt or "
                "mibp, or --budget-scope global."
            )
        if problem.recipe.has_momentum:
            raise UnsupportedError(
                "method 'exact' does not unroll SGD momentum yet; use interval, agt or mibp "
                "(the velocity gets its own box there), or drop --momentum."
            )
        if problem.recipe.l1:
            raise UnsupportedError(
                "method 'exact' does not encode L1 regularisation (sign(theta) needs an exact "
                "encoding at theta = 0); use interval, agt or mibp, or drop --l1."
            )
        if problem.prefix is not None and problem.threat.perturbs_features:
            raise UnsupportedError(
                "method 'exact' with a frozen prefix (--freeze / --prefix) would search attacks "
                "in the prefix's feature box, which no raw input may realise; use interval, agt "
                "or mibp (sound bounds over that box), or label changes only (eps = 0)."
            )
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
        if self.split == "points" and not split_applies(problem):
            raise ConfigError(
                "split 'points' needs a k-of-n feature threat (label changes allowed, no "
                "paired or discrete threat) with k below the number of points in scope and at "
                "most 200 k-subsets of them; use split 'auto' or 'none'."
            )
        if self.split == "points" and kind == "margin":
            raise ConfigError(
                "split 'points' answers the 'mse' and 'misclassified' objectives (the 'margin' "
                "objective has a program per test point already); use --objective misclassified."
            )
        backend = get_backend(self.solver)
        backend.check()
        if "bilinear" not in backend.capabilities:
            raise ConfigError(
                f"solver {self.solver!r} cannot solve bilinear programs; use --solver scip "
                "(or gurobi)."
            )
        tol = self._tolerance()
        notes.append(
            f"exact bounds are {self.solver} dual bounds padded by {tol:g} + "
            f"{tol:g}*|bound|, combined with the interval bound of the same question."
        )
        return notes

    def _executor(self):
        from mibpcert.parallel import make_executor

        return make_executor(self.workers, self.executor, self.ray_address)

    def _program(
        self,
        problem: Problem,
        on_step: StepCallback | None,
        time_limit: float | None = None,
        tighten_time: float | None = None,
        box_step=None,
    ):
        """The unrolled program; ``time_limit`` / ``tighten_time`` override the LP budgets
        (per LP / over all steps) of the tightening; ``box_step``: the problem's
        :meth:`_box_step` when the caller has it already."""
        from mibpcert.solvers import backend_for

        tighten = None
        if self.tighten:
            lp = backend_for("lp", (self.lp_solver, self.solver))
            tighten = lp_tightener(
                lp,
                self.program_time if time_limit is None else time_limit,
                self.tighten_time if tighten_time is None else tighten_time,
            )
        return encode_training(
            problem,
            box_step=self._box_step(problem) if box_step is None else box_step,
            tighten=tighten,
            on_step=on_step,
            form=self.form,
        )

    def _box_step(self, problem: Problem):
        """The interval (and agt) step; with ``sets="affine"`` also intersected with the box
        of the affine parameter set of the same step (sound for every attack, so for every
        feasible point of the program)."""
        ref = reference_step(problem)

        def reference(box: Interval, t: int, idx: np.ndarray) -> Interval:
            return ref(box, t, idx)[0]  # no momentum here: exact refuses it

        if self.sets != "affine":
            return reference
        from mibpcert.methods.agt import AGTMethod
        from mibpcert.methods.interval import IntervalMethod

        budgets = problem.threat.counts_points(problem.data.n_train)
        aff = (AGTMethod if budgets else IntervalMethod)(sets="affine").bound(problem)

        def step(box: Interval, t: int, idx: np.ndarray) -> Interval:
            return reference(box, t, idx).intersect(Interval(aff.lower[t + 1], aff.upper[t + 1]))

        return step

    def bound(self, problem: Problem, on_step: StepCallback | None = None) -> ParameterBounds:
        """The per-step parameter boxes the program uses (interval/AGT steps, LP-tightened)."""
        notes = self.check(problem)
        return self._bounds(self._program(problem, on_step), notes)

    def _bounds(self, prog: TrainingProgram, notes: list[str]) -> ParameterBounds:
        if self.sets == "affine":
            notes = [
                *notes,
                "every step's parameter bounds in the program are intersected with the box of "
                "the affine parameter set over the attack (sets = affine)",
            ]
        return ParameterBounds(
            self.name, prog.lower, prog.upper, notes, prog.step_seconds, prog.step_info
        )

    # ------------------------------------------------------------------ main entry
    def run(self, problem: Problem, on_step: StepCallback | None = None) -> MethodResult:
        """Build the program, find attacks, solve, replay; see the module docstring."""
        notes = self.check(problem)
        kind = self.objective_for(problem)
        t0 = time.perf_counter()
        prog = self._program(problem, on_step)
        build_seconds = time.perf_counter() - t0
        bounds = self._bounds(prog, notes)
        if kind == "margin":
            with self._executor() as executor:
                answer = run_margins(self, problem, prog, executor)
        elif self.splits(problem):
            answer = run_split(self, problem, prog, kind)
        else:
            answer = self._run_single(problem, prog, kind)
        section = answer.section
        section["program_seconds"] = build_seconds
        section["program"] = {**prog.builder.f.stats(), "form": prog.form}
        section["tightening"] = self.tighten
        section["tightened_steps"] = sum(
            1 for row in prog.step_info if "tighten" in row and not row["tighten"].get("skipped")
        )
        section["heuristic_enabled"] = self.heuristic
        if self.out_dir is not None:
            files = {}
            for name, attack in answer.attacks.items():
                paths = attack.save(problem, self.out_dir / name)
                files[name] = {k: str(v) for k, v in paths.items()}
            section["attack_files"] = files
        return MethodResult(
            bounds=bounds,
            provenance=self.provenance(),
            point_verdicts=answer.point_verdicts,
            attacks=answer.attacks,
            metrics={k: section[k] for k in REPORT_METRICS if k in section},
            section=section,
            summary=summary_rows(section),
            statuses=answer.statuses,
            worst_case_mse_bound=answer.metrics["dual_bound"] if kind == "mse" else None,
        )

    # ------------------------------------------------------------------ helpers
    def splits(self, problem: Problem) -> bool:
        """Whether the single-objective answer goes by pieces, one per poisoned point."""
        return self.split != "none" and split_applies(problem)

    def heuristic_budget(self) -> float:
        if self.heuristic_time is not None:
            return float(self.heuristic_time)
        tl = 60.0 if self.program_time is None else float(self.program_time)
        return float(min(10.0, max(0.5, 0.1 * tl)))

    def _interval_bound(self, problem: Problem, prog: TrainingProgram, kind: str) -> float:
        """The same question answered from the final parameter box by interval arithmetic."""
        return self._box_bound(problem, Interval(prog.lower[-1], prog.upper[-1]), kind)

    def _step_box(self, problem: Problem, step=None) -> Interval:
        """The final parameter box of the interval/AGT steps alone (no program, no LP);
        ``step``: the problem's :meth:`_box_step` when the caller has it already."""
        step = self._box_step(problem) if step is None else step
        box = Interval(problem.theta0.copy(), problem.theta0.copy())
        for t, idx in enumerate(problem.batches()):
            box = step(box, t, idx)
        return box

    def _box_bound(self, problem: Problem, box: Interval, kind: str) -> float:
        """The objective's bound over the final parameter box ``box`` by interval arithmetic."""
        data = problem.data
        if kind == "mse":
            theta = problem.train_nominal().final
            cert = certify_regression(problem.arch, box, theta, data.X_test, data.y_test)
            return float(cert.metrics["worst_case_mse_bound"])
        lb = class_margin_lower_bounds(
            problem.arch, box, Interval.point(data.X_test), int(data.n_classes)
        )
        true_lb = lb[np.arange(len(data.y_test)), np.asarray(data.y_test, dtype=np.int64)]
        return float(np.sum(true_lb <= 0.0))

    def tunings(self, kind: str) -> tuple[str, ...]:
        """Backend-neutral solver tunings of the program solves of objective ``kind``
        (:meth:`~mibpcert.solvers.base.Backend.tuning`)."""
        off = self.root_cuts == "off" or (self.root_cuts == "auto" and kind == "misclassified")
        return ("no_root_cuts",) if off else ()

    def repair_budget(self) -> float:
        """Seconds to repair one solver incumbent that replays worse than the solver's value."""
        return min(2.0, self.heuristic_budget()) if self.repair else 0.0

    def _run_single(self, problem: Problem, prog: TrainingProgram, kind: str) -> Answer:
        objective = TestObjective(kind)
        data = problem.data
        attacks, h_seconds = opening_attacks(self, problem, objective)
        start = None
        if len(attacks) > 1:
            s = best_of(objective, [a for k, a in attacks.items() if k != "clean"])
            start = prog.poison.assignment(data.X_train, data.y_train, s.X, s.y)
        b = prog.builder.fork()
        obj = single_objective(b, problem, prog.layers(problem), kind)
        task = SolveTask(
            b.f,
            [obj],
            self.solver,
            self.program_time,
            return_x=True,
            start=start,
            tunings=self.tunings(kind),
        )
        t0 = time.perf_counter()
        (res,) = solve_task(task, self.progress)
        solve_seconds = time.perf_counter() - t0
        solver_primal, dual = res.primal, res.certified()
        t0 = time.perf_counter()
        incumbent = solver_attack(
            problem, prog, res.x, objective, solver_primal, self.repair_budget(), self.seed
        )
        repair_seconds = time.perf_counter() - t0
        if incumbent is not None:
            attacks["solver"] = incumbent
        interval_bound = self._interval_bound(problem, prog, kind)
        if dual is None:
            certified = interval_bound
            proof = Provenance.INTERVAL
        elif kind == "misclassified":
            certified = float(min(math.floor(dual), interval_bound))
            proof = Provenance.EXACT if math.floor(dual) <= interval_bound else Provenance.INTERVAL
        else:
            certified = float(min(dual, interval_bound))
            proof = Provenance.EXACT if dual <= interval_bound else Provenance.INTERVAL
        attacks["best"] = best_of(objective, attacks.values())
        replayed = incumbent.value if incumbent is not None else None
        metrics, section = single_answer(
            problem,
            objective,
            attacks,
            status=res.status,
            solver_primal=solver_primal,
            solver_dual=dual,
            replayed=replayed,
            interval_bound=interval_bound,
            certified=certified,
            proof=proof,
            seconds={"solve": solve_seconds, "heuristic": h_seconds, "repair": repair_seconds},
            repaired=incumbent is not None and bool(incumbent.extra.get("repaired")),
            trace=[{"t": t, "primal": p, "dual": d} for t, p, d in res.trace],
        )
        section.update(
            nodes=res.nodes,
            message=res.message,
            start_used=res.start_used,
            solve_proved_nothing=dual is None,
        )
        if section["replay_agrees"] is False:
            section["replay_note"] = (
                "the solver's value and its incumbent's replayed value differ (a training point "
                "at a ReLU/hinge kink, or solver tolerances); the primal reported is the best "
                "replayed attack"
                + (
                    ", after repair"
                    if section["repaired"]
                    else (
                        "; no repaired attack reaches the solver's value"
                        if self.repair
                        else " (repair is off: --no-repair)"
                    )
                )
                + "."
            )
        return Answer(section, metrics, attacks=attacks, statuses={res.status: 1})


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))


def summary_rows(section: dict) -> list[tuple[str, str]]:
    """Rows of the readable summary for the method's section."""
    kind = section["objective"]
    if kind == "margin":
        return [
            ("exact: test points solved", str(section["exact_solved"])),
            (
                "exact: certified / attacked / unknown",
                f"{section['exact_certified']} / {section['exact_not_certified']} / "
                f"{section['exact_unknown']}",
            ),
        ]
    what = "worst-case test MSE" if kind == "mse" else "misclassified test points"
    rows = [
        (
            f"exact: {what}",
            f"attack {_fmt(section['best_attack'])} <= ... <= {_fmt(section['dual_bound'])}",
        ),
    ]
    if kind == "misclassified":
        rows.append(
            (
                "exact: accuracy under any attack",
                f">= {section['accuracy_lower_bound']:.2%} (proved; attacked "
                f"{section['attacked_accuracy']:.2%})",
            )
        )
    rows += [
        (
            "exact: outcome / status / gap",
            f"{section.get('outcome', '-')} / {section['status']} / {_fmt(section['gap'])}",
        ),
        (
            "exact: attacks (heuristic / gradient / solver replayed)",
            f"{_fmt(section['heuristic'])} / {_fmt(section.get('gradient'))} / "
            f"{_fmt(section['replayed'])} (solver value {_fmt(section.get('solver_primal'))})",
        ),
    ]
    if "split" in section:
        sp = section["split"]
        rows.append(
            (
                "exact: pieces, one per poisoned point (pruned / solved / unsolved)",
                f"{sp['pieces']} ({sp['pruned']} / {sp['solved']} / {sp['unsolved']})",
            )
        )
    if section.get("replay_note"):
        rows.append(("exact: note", section["replay_note"]))
    return rows
