"""Side-by-side benchmark: our ``agt`` method vs the public AGT library (Sosnin et al.).

The library is ``abstract_gradient_training`` (github psosnin/AbstractGradientTraining, GPL-3.0),
benchmarked at commit ``f409c6ea8d308660673423add3165d02bfcd37f7``. It is only imported, never
copied into this repository, and this project does not install it: run the script with a Python
in which both ``abstract_gradient_training`` and ``mibpcert`` import (a separate environment of
your own). Without the library the script prints a message and exits 0.

Setting: the AGT library's own half-moons poisoning experiment (its
``scripts/poisoning_paper/halfmoons.py``, frame 1): MLP 6-128-2, cross-entropy, full batch,
``n_epochs = 4`` (4 SGD steps), ``learning_rate = 2.0``, ``lr_decay = 0.6``, ``lr_min = 1e-3``;
threat: l-inf feature poisoning of any ``k = 50`` training points with ``eps = 0.01``. The AGT
optimizer's schedule ``max(lr / (1 + lr_decay * step), lr_min)`` (step counted from 0) is our
``lr_schedule = "inverse"`` exactly (the script checks both schedules step by step).

Both tools get identical inputs: our :class:`~mibpcert.problem.Problem` (make_moons noise 0.1,
3000 train / 500 test, seed = data split = init, features [x, x^2, x^3] standardised on the train
split) and its ``theta0``, loaded into the ``torch.nn.Sequential`` that AGT bounds (``W`` is
(out, in) in both, as ``torch.nn.Linear`` stores it); float64 throughout. The data differ from
the library's script, which shifts class 0 by +0.2, splits with ``train_test_split`` and does not
standardise (so eps = 0.01 is in standardised units here).

First a collapse check: with eps = 0 and k = 0 every bound must collapse onto the nominally
trained parameters, and both tools' nominal parameters must agree. Then each tool runs
``--repeats`` times, interleaved. AGT runs its default interval matrix product (``rump``,
midpoint-radius) and its ``exact`` and ``nguyen`` variants (``IntervalBoundedModel(...,
interval_matmul=...)``). Timed (CPU wall, one thread): ours ``certify_problem(problem, "agt")``;
AGT ``IntervalBoundedModel(...)``, ``poison_certified_training`` and its test metrics. Both
include the 4 nominal training steps and the test-set certification; neither includes imports,
data loading or building the torch model.

"certified acc" is the fraction of test points certified correct: the prediction is the true
class for every parameter vector in the final box. Each tool's own certifier: AGT's
``test_metrics.test_accuracy`` worst case (lower logit of the true class vs upper logits of the
others) and ours ``certify_classification`` (lower bound of the margin ``o_y - o_j`` > 0). Every
final box is also run through the other tool's certifier ("AGT cert., exact": AGT's
``test_accuracy`` with the ``exact`` interval product; "our cert.": ours). "certified
unchanged" is the fraction whose prediction is certified constant over the box, correct or not
(AGT's ``certified_predictions``; our ``stable_rate``).

Usage::

    python benchmarks/bench_agt_library.py [--seeds 3] [--repeats 3] [--profile] [--write]

``--profile`` additionally profiles our ``agt`` (cProfile, one thread) on the first seed and prints
the top 15 functions by cumulative and by own time. ``--write`` writes the section
``bench_agt_library`` of docs/results.md.
"""

from __future__ import annotations

import os

os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

import argparse
import cProfile
import io
import pstats
import sys
import time

import numpy as np
from tabulate import tabulate

from _common import agt_halfmoons, header_lines, pm, update_results
from mibpcert import Config
from mibpcert.certify.testtime import certify_classification
from mibpcert.domains.interval import Interval
from mibpcert.pipeline import build_problem, certify_problem

AGT_COMMIT = "f409c6ea8d308660673423add3165d02bfcd37f7"
LR, EPOCHS, LR_DECAY, LR_MIN = 2.0, 4, 0.6, 1e-3
K, EPS = 50, 0.01
AGT_VARIANTS = ("rump", "exact", "nguyen")  # rump: the library's default


def make_config(seed: int, eps: float, k: int) -> Config:
    cfg = agt_halfmoons(seed)
    t = cfg.training
    t.lr, t.epochs = LR, EPOCHS
    t.lr_schedule, t.lr_decay, t.lr_min = "inverse", LR_DECAY, LR_MIN
    cfg.threat.eps, cfg.threat.k = eps, k
    cfg.method.name = "agt"
    return cfg


class AGTRunner:
    """The library's side: torch model from ``theta0``, data as tensors, config per threat."""

    def __init__(self, agt, torch, problem):
        self.agt, self.torch, self.problem = agt, torch, problem
        from abstract_gradient_training import test_metrics
        from abstract_gradient_training.bounded_models import IntervalBoundedModel

        self.test_metrics, self.IBM = test_metrics, IntervalBoundedModel
        d = problem.data
        tensor = torch.utils.data.TensorDataset(
            torch.from_numpy(d.X_train).double(), torch.from_numpy(d.y_train).long()
        )
        self.dl_train = torch.utils.data.DataLoader(tensor, batch_size=d.n_train, shuffle=False)
        self.X_test = torch.from_numpy(d.X_test).double()
        self.y_test = torch.from_numpy(d.y_test).long()
        self.model = self.sequential(problem.theta0)

    def sequential(self, theta: np.ndarray):
        torch = self.torch
        layers = self.problem.arch.unflatten(theta)
        mods = []
        for i, (W, b) in enumerate(layers):
            lin = torch.nn.Linear(W.shape[1], W.shape[0]).double()  # weight (out, in), as ours
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.array(W, dtype=np.float64)))
                lin.bias.copy_(torch.from_numpy(np.array(b, dtype=np.float64)))
            mods.append(lin)
            if i < len(layers) - 1:
                mods.append(torch.nn.ReLU())
        return torch.nn.Sequential(*mods)

    def config(self, eps: float, k: int):
        return self.agt.AGTConfig(
            n_epochs=EPOCHS,
            learning_rate=LR,
            lr_decay=LR_DECAY,
            lr_min=LR_MIN,
            loss="cross_entropy",
            device="cpu",
            log_level="WARNING",
            k_poison=k,
            epsilon=eps,
        )

    def run(self, variant: str, eps: float, k: int) -> dict:
        conf = self.config(eps, k)
        t0 = time.perf_counter()
        bm = self.IBM(self.model, interval_matmul=variant)
        self.agt.poison_certified_training(bm, conf, self.dl_train)
        acc_worst, acc_nominal, _ = self.test_metrics.test_accuracy(bm, self.X_test, self.y_test)
        unchanged = float(self.test_metrics.certified_predictions(bm, self.X_test))
        seconds = time.perf_counter() - t0
        flat = [
            self.torch.cat([p.detach().flatten() for p in ps]).numpy().astype(np.float64)
            for ps in (bm.param_l, bm.param_n, bm.param_u)
        ]
        return {
            "lo": flat[0],
            "nominal": flat[1],
            "hi": flat[2],
            "certified": float(acc_worst),
            "nominal_acc": float(acc_nominal),
            "unchanged": unchanged,
            "seconds": seconds,
        }

    def certify_box(self, lo: np.ndarray, hi: np.ndarray, nominal: np.ndarray) -> float:
        """AGT's ``test_accuracy`` worst case on an arbitrary flat box (our layout = theirs),
        with the library's tightest (``exact``) interval product."""
        torch = self.torch
        bm = self.IBM(self.model, interval_matmul="exact")
        sizes = [p.numel() for p in bm.param_n]
        for params, flat in ((bm.param_l, lo), (bm.param_n, nominal), (bm.param_u, hi)):
            for p, chunk in zip(params, np.split(flat, np.cumsum(sizes)[:-1]), strict=True):
                p.copy_(torch.from_numpy(chunk.reshape(p.shape).copy()))
        return float(self.test_metrics.test_accuracy(bm, self.X_test, self.y_test)[0])

    def schedule(self) -> list[float]:
        bm = self.IBM(self.model)
        opt = self.config(0.0, 0).get_bounded_optimizer(bm)
        return [float(opt.lr_scheduler(t)) for t in range(EPOCHS)]


def run_ours(problem) -> dict:
    t0 = time.perf_counter()
    res = certify_problem(problem, "agt")
    seconds = time.perf_counter() - t0
    b = res.bounds
    return {
        "lo": b.lower[-1],
        "nominal": res.nominal.final,
        "hi": b.upper[-1],
        "certified": res.metrics["certified_accuracy"],
        "nominal_acc": res.metrics["nominal_accuracy"],
        "unchanged": res.metrics["stable_rate"],
        "seconds": seconds,
        "step_seconds": list(b.step_seconds),
        "inside": res.nominal_inside,
    }


def our_certifier(problem, r: dict) -> float:
    d = problem.data
    test = certify_classification(
        problem.arch,
        Interval(r["lo"], r["hi"]),
        r["nominal"],
        d.X_test,
        d.y_test,
        int(d.n_classes),
    )
    return float(test.metrics["certified_accuracy"])


def collapse_check(seed: int, agt, torch) -> list[list[str]]:
    """eps = 0, k = 0: every box must collapse onto the nominal parameters of both tools."""
    problem = build_problem(make_config(seed, 0.0, 0))
    runner = AGTRunner(agt, torch, problem)
    ours = run_ours(problem)
    rows = [
        [
            str(seed),
            "ours",
            f"{np.max(ours['hi'] - ours['lo']):.2e}",
            f"{np.max(np.abs(ours['nominal'] - ours['lo'])):.2e}",
            "-",
            "-",
        ]
    ]
    for variant in AGT_VARIANTS:
        r = runner.run(variant, 0.0, 0)
        rows.append(
            [
                str(seed),
                f"AGT {variant}",
                f"{np.max(r['hi'] - r['lo']):.2e}",
                f"{np.max(np.abs(r['nominal'] - r['lo'])):.2e}",
                f"{np.max(np.abs(r['nominal'] - ours['nominal'])):.2e}",
                f"{max(np.max(np.abs(r[e] - ours[e])) for e in ('lo', 'hi')):.2e}",
            ]
        )
    return rows


def profile_ours(problem, top: int = 15) -> tuple[str, list[str]]:
    """cProfile of one ``certify_problem(problem, "agt")``: the printed report and a summary."""
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    res = certify_problem(problem, "agt")
    prof.disable()
    total = time.perf_counter() - t0
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    print(f"--- top {top} by cumulative time ---", file=out)
    stats.sort_stats("cumulative").print_stats(top)
    print(f"--- top {top} by own time (tottime) ---", file=out)
    stats.sort_stats("tottime").print_stats(top)
    steps = res.bounds.step_seconds
    summary = [
        f"profiled run {total:.2f} s (under cProfile), {len(steps)} steps, "
        f"per step {', '.join(f'{s:.2f}' for s in steps)} s (median {np.median(steps):.2f} s)",
    ]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:8]
    for (fname, line, func), (_, _, tottime, cumtime, _) in rows:
        summary.append(
            f"`{fname}:{line}({func})`: own {tottime:.2f} s ({100 * tottime / total:.0f}%), "
            f"cumulative {cumtime:.2f} s"
        )
    return out.getvalue(), summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile our agt on the first seed")
    ap.add_argument("--write", action="store_true", help="write the docs/results.md section")
    args = ap.parse_args(argv)
    try:
        import abstract_gradient_training as agt
        import torch
    except ImportError as exc:
        print(
            f"bench_agt_library: skipped, the AGT library is not importable ({exc}); run it with "
            "a Python where abstract_gradient_training and mibpcert both import."
        )
        return 0
    torch.set_num_threads(1)
    t_start = time.perf_counter()

    # schedules must coincide step by step
    problem0 = build_problem(make_config(0, EPS, K))
    ours_lr = [problem0.recipe.lr_at(t) for t in range(EPOCHS)]
    agt_lr = AGTRunner(agt, torch, problem0).schedule()
    print("lr per step  ours:", ours_lr, "\n             AGT: ", agt_lr)
    if not np.allclose(ours_lr, agt_lr, rtol=0, atol=0):
        print("learning-rate schedules differ: the comparison is void.")
        return 1

    # collapse check
    collapse = []
    for seed in range(args.seeds):
        collapse += collapse_check(seed, agt, torch)
    hc = [
        "seed",
        "tool",
        "max box width",
        "max abs(nominal - lower)",
        "max abs(nominal - ours nominal)",
        "max abs(box - ours box)",
    ]
    t_collapse = tabulate(collapse, headers=hc, tablefmt="github", disable_numparse=True)
    print("\nCollapse check (eps = 0, k = 0):\n" + t_collapse, flush=True)

    # the benchmark
    tools = ["ours"] + [f"AGT {v}" for v in AGT_VARIANTS]
    runs: dict[str, list[dict]] = {name: [] for name in tools}
    per_seed: dict[str, list[dict]] = {name: [] for name in tools}
    contain = []
    for seed in range(args.seeds):
        problem = build_problem(make_config(seed, EPS, K))
        runner = AGTRunner(agt, torch, problem)
        seed_runs: dict[str, list[dict]] = {name: [] for name in tools}
        for rep in range(args.repeats):
            order = tools if rep % 2 == 0 else tools[::-1]
            for name in order:
                if name == "ours":
                    r = run_ours(problem)
                else:
                    r = runner.run(name.split()[1], EPS, K)
                seed_runs[name].append(r)
                print(
                    f"seed {seed} rep {rep} {name:11s} {r['seconds']:6.2f} s  certified "
                    f"{r['certified']:.3f}  unchanged {r['unchanged']:.3f}",
                    flush=True,
                )
        for name in tools:
            r = dict(seed_runs[name][0])  # the bounds are deterministic: the first run's
            r["seconds"] = float(np.median([x["seconds"] for x in seed_runs[name]]))
            r["own_cert"] = r["certified"]
            r["our_cert"] = our_certifier(problem, r)
            r["agt_cert"] = runner.certify_box(r["lo"], r["hi"], r["nominal"])
            r["mean_width"] = float(np.mean(r["hi"] - r["lo"]))
            r["max_width"] = float(np.max(r["hi"] - r["lo"]))
            per_seed[name].append(r)
            runs[name] += seed_runs[name]
        o, e = per_seed["ours"][-1], per_seed["AGT exact"][-1]
        contain.append(
            [
                str(seed),
                f"{np.max(np.abs(o['lo'] - e['lo'])):.2e}",
                f"{np.max(np.abs(o['hi'] - e['hi'])):.2e}",
                "yes" if np.all((o["lo"] <= e["lo"]) & (e["hi"] <= o["hi"])) else "no",
                f"{np.max(np.abs(o['nominal'] - e['nominal'])):.2e}",
            ]
        )

    ours_s = float(np.median([r["seconds"] for r in runs["ours"]]))
    rows = []
    for name in tools:
        ps = per_seed[name]
        secs = float(np.median([r["seconds"] for r in runs[name]]))
        rows.append(
            [
                name if name != "AGT rump" else "AGT rump (default)",
                pm([r["own_cert"] for r in ps]),
                pm([r["agt_cert"] for r in ps]),
                pm([r["our_cert"] for r in ps]),
                pm([r["unchanged"] for r in ps]),
                f"{np.mean([r['mean_width'] for r in ps]):.5f}",
                f"{np.mean([r['max_width'] for r in ps]):.4f}",
                f"{secs:.2f}",
                "1.00" if name == "ours" else f"{ours_s / secs:.2f}",
            ]
        )
    nominal = pm([r["nominal_acc"] for r in per_seed["ours"]])
    headers = [
        "tool",
        "certified acc, own cert. (%)",
        "AGT cert., exact (%)",
        "our cert. (%)",
        "certified unchanged, own (%)",
        "mean width",
        "max width",
        "s/run",
        "s ours / s theirs",
    ]
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    hk = [
        "seed",
        "max abs(lo - AGT exact lo)",
        "max abs(hi - AGT exact hi)",
        "ours ⊇ AGT exact",
        "max abs(nominal diff)",
    ]
    t_contain = tabulate(contain, headers=hk, tablefmt="github", disable_numparse=True)
    print(f"\nnominal test accuracy {nominal} %\n\n{table}\n\nours vs AGT exact:\n{t_contain}")

    profile_lines: list[str] = []
    if args.profile:
        report, profile_lines = profile_ours(problem0)
        print("\nProfile of our agt (seed 0, one thread):\n" + report)
        print("\n".join(profile_lines))
    runtime = time.perf_counter() - t_start
    print(f"\ntotal runtime {runtime:.0f} s")

    if args.write:
        ours_steps = [s for r in runs["ours"] for s in r["step_seconds"]]
        body = header_lines("bench_agt_library.py", "`agt` vs the AGT library") + [
            f"* AGT library: `abstract_gradient_training` (psosnin/AbstractGradientTraining, "
            f"GPL-3.0) at commit `{AGT_COMMIT}`, imported from an environment of its own (not "
            f"installed by this project), torch {torch.__version__}",
            "* setting: the library's half-moons poisoning experiment: 6-128-2, cross-entropy, "
            f"full batch, {EPOCHS} steps, lr {LR} / (1 + {LR_DECAY} t) (floor {LR_MIN}; the "
            "library's schedule and our `inverse` one coincide, checked step by step), l-inf "
            f"feature poisoning of any k = {K} points with eps = {EPS}",
            "* identical inputs: our data (make_moons noise 0.1, 3000 / 500, [x, x², x³] "
            "standardised; seed = split = init) and our theta0 loaded into the library's "
            "torch model; float64",
            f"* {args.seeds} seeds × {args.repeats} interleaved repeats; accuracies: mean ± std "
            "over seeds; widths: mean over seeds of the final box's mean / max width; s/run: "
            "median CPU wall time with one thread (bounding, nominal steps and test "
            "certification; not imports or data loading); s ours / s theirs > 1: ours slower, "
            f"our median step {np.median(ours_steps):.2f} s; nominal test accuracy {nominal} %; "
            f"total runtime {runtime:.0f} s",
            "* certified acc: test points correct for every parameter vector of the final box, "
            "by each tool's own certifier (AGT: worst-case logits `test_accuracy`; ours: margin "
            "lower bounds), and every box through both certifiers (AGT's with its `exact` "
            "product); certified unchanged: "
            "prediction certified constant (correct or not)",
            "* AGT variants: `IntervalBoundedModel(interval_matmul=...)`: `rump` (the default, "
            "midpoint-radius), `exact`, `nguyen`",
            "",
            table,
            "",
            "Collapse check (eps = 0, k = 0; every box must shrink onto the nominal "
            "parameters, which the two tools must share):",
            "",
            t_collapse,
            "",
            "Our final box vs AGT `exact`'s (k = 50, eps = 0.01):",
            "",
            t_contain,
        ]
        if profile_lines:
            body += ["", "Profile of our `agt` (cProfile, one thread, seed 0):", ""]
            body += [f"* {line}" for line in profile_lines]
        update_results("bench_agt_library", "\n".join(body))
        print("wrote section bench_agt_library of docs/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
