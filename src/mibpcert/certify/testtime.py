"""Test-time certification from a parameter box (interval propagation).

A test point is *certified* for class c when, for every parameter vector in the final box (and
every test input in its ``test_eps`` box), the margin of class c over every other class is
strictly positive: ``min (o_c - o_j) > 0`` (binary single output: ``o > 0`` for class 1,
``o < 0`` for class 0). Margins of multi-class models are bounded on the difference of the last
layer's rows, which keeps the shared hidden activations correlated. Certified accuracy counts the
points certified for their true class.

Regression: a sound upper bound on the worst-case test MSE over the box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.bounds import affine_pass, network
from mibpcert.bounds.parameters import AffineTrajectory
from mibpcert.domains.interval import TINY, UNIT, Interval, divide, sub, sum_axis
from mibpcert.model.network import Architecture
from mibpcert.model.network import forward as forward_point
from mibpcert.ops import margin, relu
from mibpcert.vocab import Provenance, Verdict


def class_margin_lower_bounds(
    arch: Architecture, box: Interval, X: Interval, n_classes: int
) -> np.ndarray:
    """(n, C) lower bounds on ``min_{j != c} (o_c - o_j)`` for every candidate class c."""
    if arch.n_outputs == 1:
        return margin.lower_bounds_from_output(network.forward(arch, box, X).output)
    # hidden activations of the last layer's input, then row differences of the last layer
    head = Architecture(arch.sizes[:-1]) if arch.n_layers > 1 else None
    layers = network.split_params(arch, box)
    if head is not None:
        n_head = head.n_params
        A = relu.interval(network.forward(head, box[:n_head], X).output)
    else:
        A = X
    W, b = layers[-1]
    return margin.lower_bounds_from_last_layer(A, W, b)


@dataclass
class TestCertificate:
    """Per-point test-time verdicts and the aggregate metrics."""

    task: str
    metrics: dict
    points: list[dict]
    certified_class: np.ndarray | None = None  # classification: class id, -1 if none
    output_bounds: Interval | None = None  # regression: (n, q) output interval

    def to_dict(self) -> dict:
        return {"task": self.task, "metrics": self.metrics, "points": self.points}


def affine_margin_lower_bounds(
    arch: Architecture, affine: AffineTrajectory, box: Interval, X: Interval, t: int = -1
) -> np.ndarray:
    """(n, C) lower bounds on every class's margin for every parameter vector of the affine
    set of step ``t`` (``box`` holds them too: its interval ranges are intersected)."""
    state = affine_pass.AffineSet.at(affine, t)
    out, sym, rng = affine_pass.output_forms(arch, state, affine.symbols, X, box)
    if out.shape[1] == 1:
        return margin.lower_bounds_from_output(rng)
    return margin.lower_bounds_affine_set(out, sym)


def certify_classification(
    arch: Architecture,
    box: Interval,
    theta_nominal: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    test_box: tuple[np.ndarray, np.ndarray] | None = None,
    affine: AffineTrajectory | None = None,
) -> TestCertificate:
    """Certify every test point against every parameter vector in ``box`` (and, with
    ``affine``, in the final affine set: both hold the true parameters, so the larger of the two
    margin bounds is kept)."""
    X = Interval.point(X_test) if test_box is None else Interval(*test_box)
    margins = class_margin_lower_bounds(arch, box, X, n_classes)
    if affine is not None:
        margins = np.maximum(margins, affine_margin_lower_bounds(arch, affine, box, X))
    best = np.argmax(margins, axis=1)
    certified = np.where(margins[np.arange(len(best)), best] > 0, best, -1)
    nominal = margin.predict(forward_point(arch, theta_nominal, X_test))
    y = np.asarray(y_test, dtype=np.int64)
    n = len(y)
    true_margin = margins[np.arange(n), y]
    points = [
        {
            "index": i,
            "label": int(y[i]),
            "nominal_prediction": int(nominal[i]),
            "certified_class": None if certified[i] < 0 else int(certified[i]),
            "verdict": Verdict.CERTIFIED if certified[i] >= 0 else Verdict.UNKNOWN,
            "certified_correct": bool(certified[i] == y[i]),
            "margin_lower_bound": float(true_margin[i]),
        }
        for i in range(n)
    ]
    metrics = {
        "nominal_accuracy": float(np.mean(nominal == y)),
        "certified_accuracy": float(np.mean(certified == y)),
        "stable_rate": float(np.mean(certified >= 0)),
        "n_test": n,
    }
    return TestCertificate("classification", metrics, points, certified_class=certified)


def merge_point_verdicts(test: TestCertificate, verdicts: dict[int, dict]) -> None:
    """Fold per-point verdicts of a stronger proof (method ``exact``) into ``test``: a point the
    proof certifies for its true class becomes certified (``certified_by`` the proof's
    provenance); metrics are recomputed."""
    for p, v in verdicts.items():
        row = test.points[p]
        row["exact_verdict"] = v["verdict"]
        row["exact_margin_bound"] = v.get("dual_bound")
        if v["verdict"] == Verdict.CERTIFIED and not row["certified_correct"]:
            row.update(
                certified_class=row["label"],
                verdict=Verdict.CERTIFIED,
                certified_correct=True,
                margin_lower_bound=v.get("dual_bound"),
                certified_by=v.get("certified_by", Provenance.EXACT),
            )
            if test.certified_class is not None:
                test.certified_class[p] = row["label"]
    n = len(test.points)
    test.metrics["certified_accuracy"] = sum(r["certified_correct"] for r in test.points) / n
    test.metrics["stable_rate"] = sum(r["certified_class"] is not None for r in test.points) / n


def certify_regression(
    arch: Architecture,
    box: Interval,
    theta_nominal: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    test_box: tuple[np.ndarray, np.ndarray] | None = None,
    affine: AffineTrajectory | None = None,
) -> TestCertificate:
    """Sound bounds on each prediction and on the worst-case (and best-case) test MSE (with
    ``affine``: the predictions' ranges over the final affine set intersected)."""
    X = Interval.point(X_test) if test_box is None else Interval(*test_box)
    out = network.forward(arch, box, X).output
    if affine is not None:
        state = affine_pass.AffineSet.at(affine)
        out = affine_pass.output_forms(arch, state, affine.symbols, X, box)[2]
    y = np.asarray(y_test, dtype=np.float64).reshape(len(X_test), -1)
    err = sub(out, Interval.point(y))  # prediction error interval (n, q)
    mag_hi = np.maximum(np.abs(err.lo), np.abs(err.hi))
    sq_hi = np.nextafter(mag_hi * mag_hi, np.inf)
    straddle = (err.lo <= 0) & (err.hi >= 0)
    mag_lo = np.where(straddle, 0.0, np.minimum(np.abs(err.lo), np.abs(err.hi)))
    sq_lo = np.maximum(np.nextafter(mag_lo * mag_lo, -np.inf), 0.0)
    count = sq_hi.size
    worst = divide(sum_axis(Interval(sq_lo, sq_hi).reshape(-1), axis=0), float(count))
    nominal_out = forward_point(arch, theta_nominal, X_test)
    per_point_worst = sq_hi.mean(axis=1) * (1.0 + 2 * (y.shape[1] + 1) * UNIT) + TINY
    points = [
        {
            "index": i,
            "target": y[i].tolist(),
            "nominal_prediction": nominal_out[i].tolist(),
            "prediction_lower": out.lo[i].tolist(),
            "prediction_upper": out.hi[i].tolist(),
            "worst_case_sq_error_bound": float(per_point_worst[i]),
        }
        for i in range(len(y))
    ]
    metrics = {
        "nominal_mse": float(np.mean((nominal_out - y) ** 2)),
        "worst_case_mse_bound": float(worst.hi),
        "best_case_mse_bound": float(max(worst.lo, 0.0)),
        "mean_prediction_width": float(np.mean(out.hi - out.lo)),
        "n_test": int(len(y)),
    }
    return TestCertificate("regression", metrics, points, output_bounds=out)


SELECT_EPOCH = ("last", "best-val")


def epoch_by_validation(
    arch: Architecture,
    lower: np.ndarray,
    upper: np.ndarray,
    affine: AffineTrajectory | None,
    X_val: np.ndarray,
    y_val: np.ndarray,
    steps_per_epoch: int,
    task: str,
    n_classes: int | None,
) -> tuple[int, list[float]]:
    """The epoch whose certified validation accuracy is highest (regression: whose worst-case
    validation MSE bound is lowest; ties: the latest), and the value of every epoch.

    The choice depends only on clean validation data and the proven bounds, never on the
    attacked training run, so certifying the test set at the chosen epoch is sound: the model
    deployed is the one trained for that many epochs, whatever the attack.
    """
    X = Interval.point(X_val)
    values = []
    n_epochs = (lower.shape[0] - 1) // steps_per_epoch
    for e in range(n_epochs + 1):
        t = e * steps_per_epoch
        box = Interval(lower[t], upper[t])
        if task == "classification":
            m = class_margin_lower_bounds(arch, box, X, int(n_classes))
            if affine is not None:
                m = np.maximum(m, affine_margin_lower_bounds(arch, affine, box, X, t))
            true = m[np.arange(len(y_val)), np.asarray(y_val, dtype=np.int64)]
            values.append(float(np.mean(true > 0)))
        else:
            out = network.forward(arch, box, X).output
            y = np.asarray(y_val, dtype=np.float64).reshape(len(X_val), -1)
            err = np.maximum(np.abs(out.lo - y), np.abs(out.hi - y))
            values.append(-float(np.mean(err * err)))
    best = max(range(len(values)), key=lambda e: (values[e], e))
    if task != "classification":
        values = [-v for v in values]
    return best, values
