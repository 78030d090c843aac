"""Run results: the JSON report, the per-step boxes (.npz) and the readable summary."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mibpcert.bounds.parameters import ParameterBounds
from mibpcert.certify.testtime import TestCertificate
from mibpcert.model.trainer import Trajectory

REPORT_FILE = "report.json"
BOXES_FILE = "boxes.npz"
AFFINE_FILE = "affine_sets.npz"


def versions() -> dict:
    """Versions of mibpcert and its numeric stack (recorded in every report)."""
    import scipy
    import sklearn

    from mibpcert._version import __version__

    return {
        "mibpcert": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
    }


def check_output_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a path after checking, before any compute, that the run can write there:
    it is a directory or can be created, and a file can be written in it. Raises
    :class:`~mibpcert.errors.ConfigError` (one line: which path, what is wrong, how to fix)."""
    import tempfile

    from mibpcert.errors import ConfigError

    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"output directory {str(out)!r} is an existing file; pass another --out (or delete "
            "the file)."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create output directory {str(out)!r} ({exc.strerror or exc}); pass an "
            "--out in a writable place."
        ) from None
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".mibpcert-write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"output directory {str(out)!r} is not writable ({exc.strerror or exc}); pass an "
            "--out in a writable place or fix its permissions."
        ) from None
    return out


@dataclass
class RunResult:
    """Everything one certification run produced.

    Attributes:
        config: the configuration that produced it (plain dict).
        problem: summary of data, model, recipe and threat model.
        bounds: parameter boxes for every step, from ``bounds.method``.
        nominal: the ordinary trainer's trajectory on clean data.
        test: test-time verdicts and metrics.
        timings: wall-clock seconds of the phases.
        param_names: one name per parameter (``W1[0,1]``, ``b2[0]``, ...).
        steps_per_epoch: training steps in one epoch.
        provenance: how the method proved the bounds (``soundness.bounds``).
        section: the method's own report section (reported under the method's name).
        method_metrics: the method's own metrics (merged into :attr:`metrics`).
        summary_rows: the method's rows of the readable summary.
    """

    config: dict
    problem: dict
    bounds: ParameterBounds
    nominal: Trajectory
    test: TestCertificate
    timings: dict
    param_names: list[str]
    steps_per_epoch: int = 1
    warnings: list[str] = field(default_factory=list)
    provenance: str = ""
    section: dict | None = None
    method_metrics: dict = field(default_factory=dict)
    summary_rows: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exact(self) -> dict | None:
        """Method ``exact``'s report section (objective, primal, dual bound, gap, replay,
        trace); ``None`` for the other methods."""
        return self.section if self.bounds.method == "exact" else None

    @property
    def nominal_diverged(self) -> bool:
        """The ordinary training on clean data itself produced NaN/inf parameters."""
        return not bool(np.all(np.isfinite(self.nominal.thetas)))

    @property
    def nominal_inside(self) -> bool:
        """Self-check: clean training is one of the attacks, so it must lie inside every box
        (checked on the steps before the ordinary training diverged, if it did)."""
        finite = np.all(np.isfinite(self.nominal.thetas), axis=1)
        ok = self.bounds.contains(self.nominal.thetas)
        return bool(np.all(ok | ~finite))

    @property
    def failed_solves(self) -> int:
        """Solves of this run that failed (solver error, or lost with their worker): their
        coordinates or points kept an earlier, weaker proven bound."""
        n = sum(int(s.get("failed_solves", 0) or 0) for s in self.bounds.step_info)
        n += int(self.test.metrics.get("mip_failed_solves", 0) or 0)
        return n + int(self.method_metrics.get("failed_solves", 0) or 0)

    @property
    def degraded(self) -> bool:
        """Some solves failed: the bounds are sound, but partly fallbacks, not the method's own."""
        return self.failed_solves > 0

    @property
    def metrics(self) -> dict:
        widths = self.bounds.widths()
        m = dict(self.test.metrics)
        m.update(
            {
                "final_max_width": float(widths[-1].max()),
                "final_mean_width": float(widths[-1].mean()),
                "seconds_per_epoch": float(sum(self.bounds.step_seconds) / max(1, self.n_epochs)),
            }
        )
        m.update(self.method_metrics)
        m["failed_solves"] = self.failed_solves
        m["degraded"] = self.degraded
        return m

    @property
    def n_epochs(self) -> int:
        return max(1, self.bounds.n_steps // max(1, self.steps_per_epoch))

    def steps(self) -> list[dict]:
        """Per-step box-width summary (step 0 = initial parameters)."""
        widths = self.bounds.widths()
        secs = [0.0] + list(self.bounds.step_seconds)
        out = []
        for t in range(widths.shape[0]):
            row = {
                "step": t,
                "epoch": t / self.steps_per_epoch,
                "max_width": float(widths[t].max()),
                "mean_width": float(widths[t].mean()),
                "seconds": float(secs[t]) if t < len(secs) else None,
            }
            if 0 < t <= len(self.bounds.step_info):
                row.update(self.bounds.step_info[t - 1])
            out.append(row)
        return out

    def to_dict(self) -> dict:
        return {
            "mibpcert_report": 1,
            "method": self.bounds.method,
            "config": self.config,
            "problem": self.problem,
            "versions": versions(),
            "metrics": self.metrics,
            "soundness": {
                "bounds": self.provenance or self.bounds.method,
                "relaxations": list(self.bounds.notes),
                "sets": self.bounds.sets,
                "budget_scope": (self.problem.get("threat") or {}).get("budget_scope", "global"),
                "nominal_inside_boxes": self.nominal_inside,
                "degraded": self.degraded,
                "failed_solves": self.failed_solves,
            },
            "warnings": list(self.warnings),
            "timings": self.timings,
            "steps": self.steps(),
            "test": self.test.to_dict(),
            **({} if self.section is None else {self.bounds.method: self.section}),
        }

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``report.json`` and ``boxes.npz`` (with affine sets also ``affine_sets.npz``)
        into ``out_dir``; return their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = out / REPORT_FILE
        report.write_text(json.dumps(_jsonable(self.to_dict()), indent=2) + "\n")
        boxes = out / BOXES_FILE
        np.savez_compressed(
            boxes,
            lower=self.bounds.lower,
            upper=self.bounds.upper,
            nominal=self.nominal.thetas,
            param_names=np.asarray(self.param_names),
        )
        paths = {"report": report, "boxes": boxes}
        if self.bounds.affine is not None:
            paths["affine_sets"] = out / AFFINE_FILE
            np.savez_compressed(paths["affine_sets"], **self.bounds.affine.arrays())
        return paths

    def summary(self) -> str:
        """A readable table of the run (printed by the CLI)."""
        from tabulate import tabulate

        p = self.problem
        m = self.metrics
        rows = [("method", self.bounds.method)]
        if self.degraded:
            rows.append(
                (
                    "DEGRADED",
                    f"{self.failed_solves} solve(s) failed; those bounds fell back to weaker "
                    "proven ones (sound, but not the method's own result)",
                )
            )
        rows += [
            (
                "dataset",
                f"{p['data']['name']} ({p['data']['n_train']} train / {p['data']['n_test']} test)",
            ),
            ("model", f"{p['arch']} ({p['n_params']} parameters), loss {p['recipe']['loss']}"),
            (
                "training",
                f"{p['n_steps']} steps, lr {p['recipe']['lr']}, batch "
                f"{p['recipe']['batch_size'] or 'full'}",
            ),
            ("threat", _threat_line(p["threat"])),
            ("parameter sets", self.bounds.sets),
        ]
        if self.test.task == "classification":
            rows += [
                ("nominal accuracy", f"{m['nominal_accuracy']:.2%}"),
                ("certified accuracy", f"{m['certified_accuracy']:.2%}"),
                ("stable predictions", f"{m['stable_rate']:.2%}"),
            ]
        else:
            rows += [
                ("nominal test MSE", f"{m['nominal_mse']:.6g}"),
                ("worst-case test MSE <=", f"{m['worst_case_mse_bound']:.6g}"),
            ]
        rows += list(self.summary_rows)
        rows += [
            (
                "final box width (max / mean)",
                f"{m['final_max_width']:.3g} / {m['final_mean_width']:.3g}",
            ),
            (
                "time (bounds / total)",
                f"{self.timings.get('bounds', 0):.2f} s / {self.timings.get('total', 0):.2f} s",
            ),
        ]
        for note in self.bounds.notes:
            rows.append(("relaxation", note))
        for w in self.warnings:
            rows.append(("WARNING", w))
        return tabulate(rows, tablefmt="simple", disable_numparse=True)


def _threat_line(t: dict) -> str:
    parts = []
    if t["eps"] > 0:
        where = "all points" if t["points"] is None else f"{len(t['points'])} points"
        if t["k"] is not None:
            where = f"any {t['k']} of {where}"
        parts.append(f"l-inf eps={t['eps']:g} on {where}")
    if t["discrete"]:
        parts.append(f"{len(t['discrete'])} discrete feature(s)")
    if t["label_k"]:
        parts.append(f"{t['label_k']} label change(s) ({t['label_mode']})")
    if t["test_eps"] > 0:
        parts.append(f"test eps={t['test_eps']:g}")
    return ", ".join(parts) or "none (clean training)"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)  # JSON has no inf/nan: "inf", "-inf", "nan"
    return obj


def load_report(path: str | Path) -> dict:
    """Read a ``report.json`` (or the directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_FILE
    return json.loads(path.read_text())
