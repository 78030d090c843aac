"""Fingerprint of every method's numbers on small versions of the benchmark settings.

A refactoring that must not change behaviour has to give **bit-identical** boxes. This script runs
a fixed list of cases (the settings of ``bench_interval``, ``bench_agt``, ``bench_mibp`` and
``bench_exact`` at sizes where every solve ends at optimality well within its time limit, plus
one case per loss, threat kind, batch schedule and exact form) through the public API and stores,
per case, the parameter boxes of every step, the clean trajectory, the test-time verdicts and
margins, and the ``exact`` method's numbers. ``--compare FILE`` reruns the cases and reports every
array that is not bit-identical to the stored one.

Solver results are deterministic for a fixed model and objective order, so a difference means
the encoding (variables, rows, their order) or the arithmetic changed. Time-limited solves would
make the numbers depend on the machine's speed; the cases avoid them, and the fingerprint stores
the solver statuses so that a time-limit hit shows up as a difference.

Usage::

    python benchmarks/fingerprint.py --out /tmp/before.npz [--only interval agt]
    python benchmarks/fingerprint.py --compare /tmp/before.npz
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mibpcert import Config
from mibpcert.bounds import Interval
from mibpcert.pipeline import build_problem, certify_problem, method_options


def _cfg(**sections) -> Config:
    cfg = Config()
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(cfg, section), key, value)
    return cfg


def _cases() -> dict[str, Callable[[], Config]]:
    out: dict[str, Callable[[], Config]] = {}
    moons = dict(dataset="moons", n_train=100, n_test=200, noise=0.1, seed=0)
    # bench_interval: models x losses, two radii
    for arch in ("2-10-1", "2-20-20-1"):
        for loss in ("hinge", "bce"):
            for eps in (1e-3, 1e-2):
                out[f"interval/{arch}/{loss}/{eps:g}"] = lambda a=arch, lo=loss, e=eps: _cfg(
                    data=moons, model=dict(arch=a), training=dict(loss=lo), threat=dict(eps=e)
                )
    # bench_agt: half-moons 6-128-2 CE (fewer points), Two-Moons k = 10
    half = dict(
        dataset="moons", n_train=600, n_test=200, noise=0.1, poly_degree=3, standardize=True
    )
    agt_threats = {
        "k50": dict(eps=0.01, k=50),
        "flips3": dict(eps=0.0, label_k=3),
        "paired": dict(eps=0.1, k=1, label_k=1, paired=True),
    }
    for name, threat in agt_threats.items():
        out[f"agt/halfmoons/{name}"] = lambda t=threat: _cfg(
            data=half,
            model=dict(arch="6-128-2"),
            training=dict(loss="ce", lr=2.0, epochs=4, lr_schedule="inverse", lr_decay=1.0),
            threat={"eps": 0.0, **t},
            method=dict(name="agt"),
        )
    for method in ("interval", "agt"):
        out[f"{method}/moons/k10"] = lambda m=method: _cfg(
            data=moons, threat=dict(eps=0.01, k=10), method=dict(name=m)
        )
    # one case per loss / threat kind / schedule, for interval and agt
    small = dict(dataset="moons", n_train=40, n_test=60, seed=1)
    variants = {
        "mse": dict(training=dict(loss="mse"), threat=dict(eps=0.01)),
        "clip": dict(training=dict(clip=0.2), threat=dict(eps=float("inf"), k=2)),
        "minibatch": dict(
            training=dict(batch_size=16, epochs=3, lr_schedule="exponential", lr_decay=0.9),
            threat=dict(eps=0.01, k=4, label_k=2),
        ),
        "discrete": dict(
            threat=dict(
                eps=0.01, discrete=[dict(feature=1, values=[-1.0, 0.0, 1.0], mode="any")]
            ),
        ),
        "test_eps": dict(threat=dict(eps=0.005, test_eps=0.01, feature_bounds=[-3.0, 3.0])),
    }
    for name, v in variants.items():
        for method in ("interval", "agt"):
            out[f"{method}/{name}"] = lambda v=v, m=method: _cfg(
                data=small, **v, method=dict(name=m)
            )
    iris = dict(dataset="iris", standardize=True)
    for method in ("interval", "agt"):
        out[f"{method}/iris-ce"] = lambda m=method: _cfg(
            data=iris,
            model=dict(arch="4-8-3"),
            training=dict(loss="ce", epochs=5),
            threat=dict(eps=0.01, k=5, label_k=2, label_mode="any"),
            method=dict(name=m),
        )
        out[f"{method}/iris-ovr-hinge"] = lambda m=method: _cfg(
            data=iris,
            model=dict(arch="4-3"),
            training=dict(loss="hinge", epochs=5),
            threat=dict(eps=0.01, label_k=1, label_mode=0),
            method=dict(name=m),
        )
        out[f"{method}/diabetes"] = lambda m=method: _cfg(
            data=dict(dataset="diabetes", standardize=True),
            model=dict(arch="10-1"),
            training=dict(loss="mse", lr=0.05, epochs=5),
            threat=dict(eps=0.001, label_k=3, label_eps=0.1),
            method=dict(name=m),
        )
    # mibp: every relax mode, several losses and threats (no solve near its time limit)
    mibp = dict(name="mibp", time_limit=120.0, workers=2)
    tiny = dict(dataset="moons", n_train=20, n_test=40, seed=2)
    for relax, solver in (("lp", "highs"), ("milp", "highs"), ("exact", "scip")):
        epochs = 2 if relax == "exact" else 3
        n = dict(tiny, n_train=12) if relax == "exact" else tiny
        out[f"mibp/{relax}/hinge"] = lambda r=relax, s=solver, e=epochs, d=n: _cfg(
            data=d,
            model=dict(arch="2-4-1"),
            training=dict(epochs=e),
            threat=dict(eps=0.01),
            method=dict(mibp, relax=r, solver=s),
        )
    out["mibp/lp/bench_setting"] = lambda: _cfg(
        data=moons, training=dict(epochs=2), threat=dict(eps=0.01),
        method=dict(mibp, relax="lp", solver="highs"),
    )
    mibp_variants = {
        "budgets": dict(threat=dict(eps=0.02, k=3, label_k=2)),
        "paired": dict(threat=dict(eps=0.02, k=2, label_k=2, paired=True)),
        "bce": dict(training=dict(loss="bce"), threat=dict(eps=0.01)),
        "mse": dict(training=dict(loss="mse"), threat=dict(eps=0.01)),
        "minibatch": dict(training=dict(batch_size=8, epochs=1), threat=dict(eps=0.01, k=3)),
        "discrete": dict(
            threat=dict(eps=0.01, discrete=[dict(feature=0, values=[-1.0, 0.0, 1.0])], k=2)
        ),
        "test_eps": dict(threat=dict(eps=0.005, test_eps=0.02)),
    }
    for name, v in mibp_variants.items():
        for relax in ("lp", "milp"):
            out[f"mibp/{relax}/{name}"] = lambda v=v, r=relax: _cfg(
                data=tiny,
                model=dict(arch="2-4-1"),
                **{"training": dict(epochs=2), **v},
                method=dict(mibp, relax=r, solver="highs"),
            )
    iris_small = dict(dataset="iris", standardize=True, n_train=None)
    out["mibp/milp/iris-ce"] = lambda: _cfg(
        data=iris_small,
        model=dict(arch="4-3"),
        training=dict(loss="ce", epochs=1),
        threat=dict(eps=0.01, label_k=1, label_mode="any"),
        method=dict(mibp, relax="milp", solver="highs"),
    )
    out["mibp/milp/iris-ovr-hinge"] = lambda: _cfg(
        data=iris_small,
        model=dict(arch="4-3"),
        training=dict(loss="hinge", epochs=2),
        threat=dict(eps=0.01, k=3),
        method=dict(mibp, relax="milp", solver="highs"),
    )
    out["mibp/lp/diabetes"] = lambda: _cfg(
        data=dict(dataset="diabetes", standardize=True),
        model=dict(arch="10-1"),
        training=dict(loss="mse", lr=0.05, epochs=2),
        threat=dict(eps=0.001, k=5, label_k=3, label_eps=0.1),
        method=dict(mibp, relax="lp", solver="highs"),
    )
    # exact: every objective and form, no heuristic (it is time-budgeted)
    ex = dict(name="exact", time_limit=300.0, heuristic=False, workers=2)
    out["exact/readme-misclassified"] = lambda: _cfg(
        data=dict(dataset="moons", n_train=20),
        model=dict(arch="2-1"),
        training=dict(steps=3, lr=0.5),
        threat=dict(eps=0.2, k=2),
        method=dict(ex, objective="misclassified"),
    )
    ib = dict(dataset="iris-binary", standardize=True, n_train=20, n_test=20)
    for form in ("points", "slots"):
        out[f"exact/iris-binary-margin/{form}"] = lambda f=form: _cfg(
            data=ib,
            model=dict(arch="4-1"),
            training=dict(steps=2, lr=0.5),
            threat=dict(eps=0.5, k=1),
            method=dict(ex, objective="margin", form=f),
        )
    dia = dict(dataset="diabetes", standardize=True, n_train=8, n_test=8)
    for form in ("auto", "points", "slots"):
        out[f"exact/diabetes/{form}"] = lambda f=form: _cfg(
            data=dia,
            model=dict(arch="10-1"),
            training=dict(loss="mse", steps=2, lr=0.1),
            threat=dict(eps=0.05, k=1),
            method=dict(ex, form=f),
        )
    out["exact/diabetes-labels"] = lambda: _cfg(
        data=dia,
        model=dict(arch="10-1"),
        training=dict(loss="mse", steps=2, lr=0.1),
        threat=dict(eps=0.0, label_k=2, label_eps=0.2),
        method=ex,
    )
    out["exact/iris-ovr-misclassified"] = lambda: _cfg(
        data=dict(dataset="iris", standardize=True, n_train=15, n_test=15),
        model=dict(arch="4-3"),
        training=dict(steps=2, lr=0.5),
        threat=dict(eps=0.05, k=1),
        method=dict(ex, objective="misclassified"),
    )
    out["exact/mlp-margin"] = lambda: _cfg(
        data=dict(dataset="moons", n_train=8, n_test=6, seed=3),
        model=dict(arch="2-3-1"),
        training=dict(steps=2, lr=0.3),
        threat=dict(eps=0.05, k=1, label_k=1),
        method=dict(ex, objective="margin"),
    )
    out["exact/minibatch-mse"] = lambda: _cfg(
        data=dia,
        model=dict(arch="10-1"),
        training=dict(loss="mse", lr=0.1, epochs=1, batch_size=10),
        threat=dict(eps=0.1, k=2),
        method=ex,
    )
    return out


def _programs() -> dict[str, tuple[Callable[[], Config], str]]:
    """Cases whose *programs* are fingerprinted (every variable bound, row and product), for
    encodings too slow to solve here: ``(config, form)`` of the unrolled program."""
    dia = dict(dataset="diabetes", standardize=True, n_train=16, n_test=8)
    cfg = lambda **t: _cfg(  # noqa: E731
        data=dia,
        model=dict(arch="10-1"),
        training=dict(loss="mse", steps=2, lr=0.1),
        threat=t,
        method=dict(name="exact"),
    )
    return {
        "program/moments-features": (lambda: cfg(eps=0.01, k=1), "moments"),
        "program/moments-labels": (lambda: cfg(eps=0.0, label_k=2, label_eps=0.2), "moments"),
        "program/slots": (lambda: cfg(eps=0.01, k=2), "slots"),
        "program/points": (lambda: cfg(eps=0.01, k=2), "points"),
        "program/points-mlp-flips": (
            lambda: _cfg(
                data=dict(dataset="moons", n_train=10, n_test=5),
                model=dict(arch="2-3-1"),
                training=dict(steps=2, lr=0.3),
                threat=dict(eps=0.05, k=2, label_k=1),
                method=dict(name="exact"),
            ),
            "points",
        ),
        **{
            f"program/step-{name}": (lambda v=v: _cfg(**v, method=dict(name="exact")), "points")
            for name, v in {
                "iris-ce": dict(
                    data=dict(dataset="iris", n_train=12, n_test=5),
                    model=dict(arch="4-3-3"),
                    training=dict(loss="ce", steps=2),
                    threat=dict(eps=0.01, k=2, label_k=2, label_mode="any"),
                ),
                "iris-ovr": dict(
                    data=dict(dataset="iris", n_train=12, n_test=5),
                    model=dict(arch="4-3"),
                    training=dict(loss="hinge", steps=2),
                    threat=dict(eps=0.01, label_k=1, label_mode=0),
                ),
                "bce-paired": dict(
                    data=dict(dataset="moons", n_train=10, n_test=5),
                    model=dict(arch="2-3-1"),
                    training=dict(loss="bce", steps=2),
                    threat=dict(eps=0.05, k=2, label_k=2, paired=True),
                ),
                "mse-discrete": dict(
                    data=dict(dataset="moons", n_train=10, n_test=5),
                    model=dict(arch="2-3-1"),
                    training=dict(loss="mse", steps=3, batch_size=4),
                    threat=dict(
                        eps=0.05, k=2, discrete=[dict(feature=0, values=[-1.0, 0.0, 1.0])]
                    ),
                ),
                "regression-labels": dict(
                    data=dict(dataset="diabetes", n_train=10, n_test=5),
                    model=dict(arch="10-2-1"),
                    training=dict(loss="mse", steps=2, lr=0.05),
                    threat=dict(eps=0.01, k=2, label_k=3, label_eps=0.1),
                ),
            }.items()
        },
    }


def _digest(f) -> np.ndarray:
    """sha256 of a formulation: bounds, types, every row and product, in order."""
    import hashlib

    h = hashlib.sha256()
    h.update(np.asarray(f.lb, dtype=np.float64).tobytes())
    h.update(np.asarray(f.ub, dtype=np.float64).tobytes())
    h.update("".join(f.vtype).encode())
    h.update("\n".join(f.names).encode())
    for idx, coef, lo, hi in f.rows:
        h.update(np.asarray(idx, dtype=np.int64).tobytes())
        h.update(np.asarray(coef, dtype=np.float64).tobytes())
        h.update(np.asarray([lo, hi], dtype=np.float64).tobytes())
    h.update(np.asarray(f.products, dtype=np.int64).tobytes())
    return np.array(h.hexdigest())


def run_program_case(name: str, cfg: Config, form: str) -> dict[str, np.ndarray]:
    from mibpcert.encode.step import encode_step

    problem = build_problem(cfg)
    try:  # the layout after the redesign
        from mibpcert.encode.unroll import encode_training

        prog = encode_training(problem, form=form)
    except ImportError:  # before it
        from mibpcert.encode.training import encode_training

        prog = encode_training(problem, moments=form == "moments", slots=form == "slots")
    box = Interval(problem.theta0 - 0.01, problem.theta0 + 0.01)
    step = encode_step(problem, 0, box)
    return {
        f"{name}::unrolled": _digest(prog.builder.f),
        f"{name}::form": np.array(prog.form),
        f"{name}::step": _digest(step.formulation),
    }


def _numbers(obj, prefix: str, out: dict[str, np.ndarray]) -> None:
    """Flatten the numeric and string leaves of a report section into arrays."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("seconds", "solve_seconds", "heuristic_seconds", "program_seconds", "trace"):
                continue
            if k.endswith("seconds") or k == "nodes" or k == "attack_files":
                continue
            _numbers(v, f"{prefix}.{k}", out)
    elif isinstance(obj, (list, tuple)):
        if all(isinstance(v, (int, float, bool)) or v is None for v in obj):
            out[prefix] = np.array([np.nan if v is None else float(v) for v in obj])
        else:
            for i, v in enumerate(obj):
                _numbers(v, f"{prefix}[{i}]", out)
    elif isinstance(obj, bool) or obj is None:
        out[prefix] = np.array(np.nan if obj is None else float(obj))
    elif isinstance(obj, (int, float, np.integer, np.floating)):
        out[prefix] = np.array(float(obj))
    elif isinstance(obj, str):
        out[prefix] = np.array(obj)


def run_case(name: str, cfg: Config) -> dict[str, np.ndarray]:
    problem = build_problem(cfg)
    options = method_options(cfg, None)
    res = certify_problem(
        problem,
        cfg.method.name,
        config=cfg.to_dict(),
        options=options,
        test_mip=cfg.method.name == "mibp" and cfg.method.test_mip,
    )
    arrays = {
        "lower": res.bounds.lower,
        "upper": res.bounds.upper,
        "nominal": res.nominal.thetas,
    }
    metrics = {k: v for k, v in res.test.metrics.items() if not k.endswith("seconds")}
    _numbers(metrics, "test.metrics", arrays)
    for p in res.test.points:
        for key in ("margin_lower_bound", "mip_margin_lower_bound", "certified_class"):
            if key in p:
                arrays.setdefault(f"test.points.{key}", [])
                arrays[f"test.points.{key}"].append(np.nan if p[key] is None else p[key])
        if "prediction_lower" in p:
            arrays.setdefault("test.points.prediction", [])
            arrays["test.points.prediction"].append(p["prediction_lower"] + p["prediction_upper"])
    for key in list(arrays):
        if key.startswith("test.points."):
            arrays[key] = np.asarray(arrays[key], dtype=np.float64)
    statuses: dict = {}
    for step in res.bounds.step_info:
        for k, v in (step.get("statuses") or {}).items():
            statuses[k] = statuses.get(k, 0) + v
    arrays["step_statuses"] = np.array(json.dumps(statuses, sort_keys=True))
    if res.exact is not None:
        _numbers(res.exact, "exact", arrays)
    return {f"{name}::{k}": np.asarray(v) for k, v in arrays.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the fingerprint to this .npz")
    ap.add_argument("--compare", help="compare with this stored fingerprint")
    ap.add_argument("--only", nargs="*", help="run only cases whose name starts with these")
    ap.add_argument("--list", action="store_true", help="list the cases and stop")
    ap.add_argument(
        "--renamed",
        nargs="*",
        default=[],
        metavar="KEY:OLD=NEW",
        help="a word renamed on purpose: stored string OLD of keys ending in KEY reads as NEW",
    )
    ap.add_argument(
        "--new-keys", nargs="*", default=[], help="keys (suffixes) the new code may add"
    )
    args = ap.parse_args(argv)
    cases: dict = dict(_cases())
    programs = _programs()
    cases.update({k: v[0] for k, v in programs.items()})
    if args.only:
        cases = {k: v for k, v in cases.items() if any(k.startswith(p) for p in args.only)}
    if args.list:
        print("\n".join(cases))
        return 0
    if not (args.out or args.compare):
        ap.error("give --out or --compare")
    stored = dict(np.load(args.compare, allow_pickle=False)) if args.compare else None
    for rule in args.renamed if stored is not None else []:
        key, _, words = rule.partition(":")
        old, _, new = words.partition("=")
        for k, v in stored.items():
            if k.endswith(key) and v.dtype.kind == "U" and str(v) == old:
                stored[k] = np.array(new)
    result: dict[str, np.ndarray] = {}
    bad = 0
    for name, make in cases.items():
        t0 = time.perf_counter()
        if name in programs:
            got = run_program_case(name, make(), programs[name][1])
        else:
            got = run_case(name, make())
        result.update(got)
        line = f"{name:45s} {time.perf_counter() - t0:7.1f} s"
        if stored is not None:
            diffs = []
            keys = {k for k in stored if k.startswith(f"{name}::")} | set(got)
            for k in sorted(keys):
                a, b = stored.get(k), got.get(k)
                if a is None and any(k.endswith(n) for n in args.new_keys):
                    continue
                if a is None or b is None:
                    diffs.append(f"{k.split('::')[1]} {'missing' if b is None else 'new'}")
                elif a.shape != b.shape or a.dtype.kind != b.dtype.kind:
                    diffs.append(f"{k.split('::')[1]} shape/type {a.shape} vs {b.shape}")
                elif a.dtype.kind == "f":
                    if not np.array_equal(a, b, equal_nan=True):
                        d = np.nanmax(np.abs(a - b)) if a.size else 0.0
                        diffs.append(f"{k.split('::')[1]} max |diff| {d:.3g}")
                elif not np.array_equal(a, b):
                    diffs.append(f"{k.split('::')[1]} {a!r} vs {b!r}")
            if diffs:
                bad += 1
                line += "  DIFFERENT: " + "; ".join(diffs[:6])
            else:
                line += "  identical"
        print(line, flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.out, **result)
    if stored is not None:
        print(f"\n{len(cases) - bad} of {len(cases)} cases bit-identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
