"""One cell of a sweep: its run directory, its cached result and its row of the table."""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

import mibpcert.pipeline as pipeline
from mibpcert.config import Config
from mibpcert.sweep.spec import Cell

COLUMNS = (
    "cell",
    "method",
    "eps",
    "k",
    "seed",
    "nominal_accuracy",
    "certified_accuracy",
    "stable_rate",
    "nominal_mse",
    "worst_case_mse_bound",
    "final_max_width",
    "final_mean_width",
    "statuses",
    "fallbacks",
    "nominal_inside",
    "warnings",
    "seconds_bounds",
    "seconds_total",
    "seconds_per_epoch",
    "dir",
)
"""Columns of ``sweep.csv`` / the rows of ``sweep.json``, in order."""

TIMING_COLUMNS = ("seconds_bounds", "seconds_total", "seconds_per_epoch")
"""Columns that hold wall-clock times (they differ between runs; all others are reproducible)."""

EXECUTION_KEYS = ("workers", "executor", "ray_address", "resume")
"""``[method]`` keys that do not change results; ignored when a finished cell is looked up."""

CELL_FILE = "cell.json"


def plain(obj: Any) -> Any:
    """JSON-comparable form (as stored in report.json: non-finite floats as strings)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def comparable_config(config: dict | Config) -> dict:
    """A run's configuration without the settings that cannot change its results."""
    raw = config.to_dict() if isinstance(config, Config) else copy.deepcopy(config)
    raw = plain(raw)
    for key in EXECUTION_KEYS:
        raw.get("method", {}).pop(key, None)
    raw.pop("output", None)
    return raw


def _num(v: Any) -> float | None:
    if v is None:
        return None
    return float(v)  # report.json stores inf / nan as strings


def row_from_report(report: dict, cell: Cell, rel_dir: str) -> dict:
    """The sweep row of one finished cell, from its report."""
    m = report.get("metrics", {})
    statuses: Counter = Counter()
    fallbacks = 0
    for step in report.get("steps", [])[1:]:
        statuses.update(step.get("statuses", {}) or {})
        fallbacks += int(step.get("fallbacks", 0) or 0) + int(
            step.get("self_check_fallbacks", 0) or 0
        )
    statuses.update(m.get("mip_statuses", {}) or {})
    timings = report.get("timings", {})
    row = {
        "cell": cell.id,
        "method": cell.method,
        "eps": cell.eps,
        "k": cell.k,
        "seed": cell.seed,
        "nominal_accuracy": _num(m.get("nominal_accuracy")),
        "certified_accuracy": _num(m.get("certified_accuracy")),
        "stable_rate": _num(m.get("stable_rate")),
        "nominal_mse": _num(m.get("nominal_mse")),
        "worst_case_mse_bound": _num(m.get("worst_case_mse_bound")),
        "final_max_width": _num(m.get("final_max_width")),
        "final_mean_width": _num(m.get("final_mean_width")),
        "statuses": dict(sorted(statuses.items())),
        "fallbacks": fallbacks,
        "nominal_inside": bool(report.get("soundness", {}).get("nominal_inside_boxes", False)),
        "warnings": len(report.get("warnings", [])),
        "seconds_bounds": _num(timings.get("bounds")),
        "seconds_total": _num(timings.get("total")),
        "seconds_per_epoch": _num(m.get("seconds_per_epoch")),
        "dir": rel_dir,
    }
    assert tuple(row) == COLUMNS
    return row


def finished_report(cell_dir: Path, cell: Cell) -> dict | None:
    """The stored report of ``cell`` if it is complete and has the cell's configuration."""
    from mibpcert.certify.report import BOXES_FILE, REPORT_FILE

    report_path = cell_dir / REPORT_FILE
    if not report_path.exists() or not (cell_dir / BOXES_FILE).exists():
        return None
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or "config" not in report:
        return None
    if comparable_config(report["config"]) != comparable_config(cell.config):
        return None
    return report


def _prepare(cell_dir: Path, cell: Cell) -> Config:
    """Mark the cell directory with the cell's configuration; resume a matching checkpoint."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    marker = cell_dir / CELL_FILE
    want = comparable_config(cell.config)
    same = False
    if marker.exists():
        try:
            same = json.loads(marker.read_text()) == want
        except (OSError, ValueError):
            same = False
    if not same:
        for stale in ("report.json", "boxes.npz", "mibp_checkpoint.npz"):
            (cell_dir / stale).unlink(missing_ok=True)
        marker.write_text(json.dumps(want, indent=2, sort_keys=True) + "\n")
    cfg = copy.deepcopy(cell.config)
    cfg.output.dir = str(cell_dir)
    cfg.method.resume = same  # an interrupted mibp cell continues from its checkpoint
    return cfg


def run_cell(cell: Cell, cell_dir: Path, rel_dir: str, on_step=None, on_solves=None) -> dict:
    from mibpcert.certify.report import load_report

    cfg = _prepare(cell_dir, cell)
    pipeline.run(cfg, on_step=on_step, out_dir=cell_dir, on_solves=on_solves)
    return row_from_report(load_report(cell_dir), cell, rel_dir)


def run_cell_task(args: tuple) -> dict:
    """Executor task of ``--parallel-cells``: one whole cell in a worker."""
    cell, cell_dir, rel_dir = args
    return run_cell(cell, Path(cell_dir), rel_dir)
