"""Sweeps: a grid of certification runs (methods x eps x k x seeds) and one table of results.

A sweep file is an ordinary run configuration (TOML or YAML; its sections are the base of every
cell) plus a ``[sweep]`` section::

    [sweep]
    methods = ["interval", "agt", "mibp"]   # method names (required)
    eps = [1e-4, 1e-3, 1e-2]                # training-feature radii (required)
    k = [10]                                # any-k budgets; "-" / "base" (YAML: null) = the base
    seeds = [0, 1, 2]                       # data.seed = model.init_seed = seed (optional)

    [sweep.options.mibp]                    # [method] overrides for one method (optional)
    relax = "lp"
    solver = "highs"

Every cell runs through :func:`mibpcert.pipeline.run` into ``OUT/cells/<cell id>/`` (cell ids
read ``mibp_eps0.01_k-_seed0``). A cell whose ``report.json`` exists and whose stored configuration
equals the cell's is not run again (its row is read back), so an interrupted sweep resumes where
it stopped; execution settings (``workers``, ``executor``, ``ray_address``, ``resume``, the output
directory) are not part of that comparison, since they do not change results. An interrupted
``mibp`` cell continues from its checkpoint.

The sweep writes ``OUT/sweep.csv`` and ``OUT/sweep.json``: one row per cell (:data:`COLUMNS`);
the columns in :data:`TIMING_COLUMNS` are wall-clock times and differ between runs, every other
column is reproducible.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import mibpcert.pipeline as pipeline
from mibpcert.certify.plots import SWEEP_FILE
from mibpcert.config import Config, MethodConfig, read_config_file
from mibpcert.errors import ConfigError, MibpcertError

__all__ = [
    "COLUMNS",
    "EXECUTION_KEYS",
    "SWEEP_KEYS",
    "TIMING_COLUMNS",
    "Cell",
    "SweepSpec",
    "cell_id",
    "comparable_config",
    "load_sweep",
    "resolve_out_dir",
    "row_from_report",
    "run_sweep",
    "summary_rows",
    "summary_table",
    "write_table",
]

SWEEP_KEYS = ("methods", "eps", "k", "seeds", "options")
"""Keys of the ``[sweep]`` section."""

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

CSV_FILE = "sweep.csv"
JSON_FILE = SWEEP_FILE
CELL_FILE = "cell.json"
BASE = ("-", "base")


@dataclass
class Cell:
    """One run of a sweep."""

    id: str
    method: str
    eps: float
    k: int | None
    seed: int | None
    config: Config


@dataclass
class SweepSpec:
    """A validated sweep file: the base configuration and the grid."""

    base: Config
    methods: list[str]
    eps: list[float]
    k: list[int | None]
    seeds: list[int | None]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "sweep"
    default_out: str = "sweeps/sweep"

    def cells(
        self,
        executor: str | None = None,
        workers: int | None = None,
        ray_address: str | None = None,
    ) -> list[Cell]:
        """Every cell of the grid, in order methods x eps x k x seeds (execution overrides)."""
        out = []
        for method in self.methods:
            for eps in self.eps:
                for k in self.k:
                    for seed in self.seeds:
                        raw = self.base.to_dict()
                        raw["method"].update(self.options.get(method, {}))
                        raw["method"]["name"] = method
                        for key, value in (
                            ("executor", executor),
                            ("workers", workers),
                            ("ray_address", ray_address),
                        ):
                            if value is not None:
                                raw["method"][key] = value
                        raw["threat"]["eps"] = eps
                        if k is not None:
                            raw["threat"]["k"] = k
                        if seed is not None:
                            raw["data"]["seed"] = raw["model"]["init_seed"] = seed
                        cfg = Config.from_dict(raw, source=f"{self.source} [sweep] cell")
                        out.append(Cell(cell_id(method, eps, k, seed), method, eps, k, seed, cfg))
        return out


def cell_id(method: str, eps: float, k: int | None, seed: int | None) -> str:
    """A readable, file-system safe name: ``mibp_eps0.01_k-_seed0`` (``-``: the base value)."""
    return f"{method}_eps{eps:g}_k{'-' if k is None else k}_seed{'-' if seed is None else seed}"


# ----------------------------------------------------------------------------- validation


def load_sweep(path_or_dict: str | Path | dict | SweepSpec) -> SweepSpec:
    """Read and validate a sweep file (or a dict of the same tables)."""
    if isinstance(path_or_dict, SweepSpec):
        return path_or_dict
    if isinstance(path_or_dict, dict):
        raw, source, default_out = copy.deepcopy(path_or_dict), "sweep config", "sweeps/sweep"
    else:
        path = Path(path_or_dict)
        raw = read_config_file(path)
        source, default_out = str(path), f"sweeps/{path.stem}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a table of sections.")
    if "sweep" not in raw:
        raise ConfigError(
            f"{source}: no [sweep] section; a sweep file is a run configuration plus a [sweep] "
            "section with methods = [...] and eps = [...] (see mibpcert.sweep)."
        )
    sw = raw.pop("sweep")
    if not isinstance(sw, dict):
        raise ConfigError(f"{source}: [sweep] must be a table.")
    unknown = sorted(set(sw) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown} in [sweep]; valid keys are "
            f"{', '.join(SWEEP_KEYS)}."
        )
    if isinstance(raw.get("output"), dict) and "dir" in raw["output"]:
        default_out = str(raw["output"]["dir"])
    base = Config.from_dict(raw, source=source)
    methods = _methods(sw, source)
    eps = _list(sw, "eps", source, _eps)
    k = _list(sw, "k", source, _k) if "k" in sw else [None]
    seeds = _list(sw, "seeds", source, _seed) if "seeds" in sw else [None]
    options = _options(sw.get("options", {}), methods, source)
    spec = SweepSpec(base, methods, eps, k, seeds, options, source, default_out)
    spec.cells()  # validates every cell's configuration (types of the options)
    return spec


def _list(sw: dict, key: str, source: str, conv) -> list:
    if key not in sw:
        raise ConfigError(f"{source}: [sweep] needs {key} = [...].")
    values = sw[key]
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"{source}: [sweep] {key} must be a list, got {values!r}.")
    if not values:
        raise ConfigError(f"{source}: [sweep] {key} must not be empty.")
    out = [conv(v, f"{source}: [sweep] {key}") for v in values]
    dup = [v for v, n in Counter(out).items() if n > 1]
    if dup:
        raise ConfigError(f"{source}: [sweep] {key} lists {dup[0]!r} more than once.")
    return out


def _methods(sw: dict, source: str) -> list[str]:
    from mibpcert.methods import METHODS

    def conv(v, where):
        if not isinstance(v, str):
            raise ConfigError(f"{where}: method names must be strings, got {v!r}.")
        if v not in METHODS:
            raise ConfigError(f"{where}: unknown method {v!r}; available: {', '.join(METHODS)}.")
        return v

    return _list(sw, "methods", source, conv)


def _eps(v, where) -> float:
    if isinstance(v, bool):
        raise ConfigError(f"{where}: eps values must be numbers, got {v!r}.")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: eps values must be numbers, got {v!r}.") from None
    if math.isnan(x) or x < 0:
        raise ConfigError(f"{where}: eps values must be >= 0, got {v!r}.")
    return x


def _k(v, where) -> int | None:
    if v is None or (isinstance(v, str) and v.strip().lower() in BASE):
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(
            f'{where}: k values must be integers >= 0 or "-" (the base value), got {v!r}.'
        )
    return v


def _seed(v, where) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"{where}: seeds must be integers >= 0, got {v!r}.")
    return v


def _options(opts: Any, methods: list[str], source: str) -> dict[str, dict[str, Any]]:
    if not isinstance(opts, dict):
        raise ConfigError(f"{source}: [sweep.options] must be a table of [sweep.options.METHOD].")
    valid = {f for f in MethodConfig.__dataclass_fields__} - {"name"}
    out = {}
    for method, table in opts.items():
        where = f"{source}: [sweep.options.{method}]"
        if method not in methods:
            raise ConfigError(f"{where}: {method!r} is not one of the sweep's methods {methods}.")
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table of [method] keys.")
        bad = sorted(set(table) - valid)
        if bad:
            raise ConfigError(
                f"{where}: unknown key(s) {bad}; valid [method] keys are "
                f"{', '.join(sorted(valid))}."
            )
        out[method] = dict(table)
    return out


# ----------------------------------------------------------------------------- rows


def _plain(obj: Any) -> Any:
    """JSON-comparable form (as stored in report.json: non-finite floats as strings)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def comparable_config(config: dict | Config) -> dict:
    """A run's configuration without the settings that cannot change its results."""
    raw = config.to_dict() if isinstance(config, Config) else copy.deepcopy(config)
    raw = _plain(raw)
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


def _finished(cell_dir: Path, cell: Cell) -> dict | None:
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


def _run_cell(cell: Cell, cell_dir: Path, rel_dir: str, on_step=None, on_solves=None) -> dict:
    from mibpcert.certify.report import load_report

    cfg = _prepare(cell_dir, cell)
    pipeline.run(cfg, on_step=on_step, out_dir=cell_dir, on_solves=on_solves)
    return row_from_report(load_report(cell_dir), cell, rel_dir)


def _run_cell_task(args: tuple) -> dict:
    """Executor task of ``--parallel-cells``: one whole cell in a worker."""
    cell, cell_dir, rel_dir = args
    return _run_cell(cell, Path(cell_dir), rel_dir)


# ----------------------------------------------------------------------------- output


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dict):
        return "; ".join(f"{k} {n}" for k, n in v.items())
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_table(rows: list[dict], out: Path, spec: SweepSpec, complete: bool) -> None:
    """Write ``sweep.csv`` and ``sweep.json`` (rows of the finished cells, in grid order)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (CSV_FILE + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([_csv_value(r[c]) for c in COLUMNS])
    tmp.replace(out / CSV_FILE)
    doc = {
        "mibpcert_sweep": 1,
        "source": spec.source,
        "complete": complete,
        "grid": {
            "methods": spec.methods,
            "eps": spec.eps,
            "k": spec.k,
            "seeds": spec.seeds,
            "options": spec.options,
        },
        "base_config": spec.base.to_dict(),
        "columns": list(COLUMNS),
        "timing_columns": list(TIMING_COLUMNS),
        "rows": rows,
    }
    tmp = out / (JSON_FILE + ".tmp")
    tmp.write_text(json.dumps(_plain(doc), indent=2) + "\n")
    tmp.replace(out / JSON_FILE)


def _pm(values: list[float | None]) -> str:
    v = np.array([x for x in values if x is not None], dtype=float) * 100
    if v.size == 0:
        return "-"
    std = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    return f"{v.mean():.1f} ± {std:.1f}"


def summary_rows(rows: list[dict]) -> list[dict]:
    """Rows grouped by (method, eps, k) over seeds: accuracies as mean ± std (in %), the final
    max width and seconds as medians, statuses and fallbacks summed."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["eps"], r["k"]), []).append(r)
    out = []
    for (method, eps, k), rs in groups.items():
        st: Counter = Counter()
        for r in rs:
            st.update(r["statuses"])
        widths = [r["final_max_width"] for r in rs if r["final_max_width"] is not None]
        out.append(
            {
                "method": method,
                "eps": f"{eps:g}",
                "k": "-" if k is None else str(k),
                "seeds": len(rs),
                "nominal acc (%)": _pm([r["nominal_accuracy"] for r in rs]),
                "certified acc (%)": _pm([r["certified_accuracy"] for r in rs]),
                "final max width": f"{np.median(widths):.3g}" if widths else "-",
                "s (bounds)": f"{np.median([r['seconds_bounds'] or 0.0 for r in rs]):.3g}",
                "solver statuses": ", ".join(f"{s} {n}" for s, n in sorted(st.items())) or "-",
                "fallbacks": sum(r["fallbacks"] for r in rs),
                "sound": "yes" if all(r["nominal_inside"] for r in rs) else "NO",
            }
        )
    return out


def summary_table(rows: list[dict], tablefmt: str = "simple") -> str:
    """:func:`summary_rows` as a text table (``tablefmt="github"`` for Markdown)."""
    from tabulate import tabulate

    s = summary_rows(rows)
    if not s:
        return "(no finished cells)"
    return tabulate(
        [list(r.values()) for r in s],
        headers=list(s[0]),
        tablefmt=tablefmt,
        disable_numparse=True,
    )


# ----------------------------------------------------------------------------- running


class _Progress:
    """One tqdm bar for the whole sweep: cells (fractional within a cell by training steps)."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total,
            initial=done,
            unit="cell",
            disable=None if enabled else True,
            file=sys.stderr,
            bar_format="sweep {percentage:3.0f}%|{bar:24}| {desc} [{elapsed}<{remaining}]",
        )
        self.total, self.cells_done = total, done
        self.cell = ""
        self.step = (0, 0)
        self.solves_total = 0
        self._last_solves = 0
        self._show()

    def _show(self) -> None:
        if self.bar.disable:
            return
        parts = [f"cells {self.cells_done}/{self.total}"]
        if self.cell:
            parts.append(self.cell)
        if self.step[1]:
            parts.append(f"step {self.step[0]}/{self.step[1]}")
        if self.solves_total:
            parts.append(f"solves {self.solves_total}")
        self.bar.set_description_str(", ".join(parts), refresh=False)
        self.bar.refresh()

    def start(self, cell_id: str) -> None:
        self.cell, self.step = cell_id, (0, 0)
        self._show()

    def on_step(self, done: int, total: int) -> None:
        self.step = (done, total)
        self.bar.n = self.cells_done + (done / total if total else 0.0)
        self._show()

    def on_solves(self, done: int, total: int) -> None:
        if done < self._last_solves:  # a new step
            self._last_solves = 0
        self.solves_total += done - self._last_solves
        self._last_solves = done if done < total else 0
        self._show()

    def finish_cell(self) -> None:
        self.cells_done += 1
        self.cell, self.step = "", (0, 0)
        self.bar.n = self.cells_done
        self._show()

    def close(self) -> None:
        self.bar.close()


def resolve_out_dir(spec: SweepSpec, out_dir: str | Path | None) -> Path:
    """``out_dir``, else the sweep file's ``[output] dir``, else ``sweeps/<file stem>``."""
    return Path(out_dir if out_dir is not None else spec.default_out)


def run_sweep(
    path_or_dict: str | Path | dict | SweepSpec,
    out_dir: str | Path | None = None,
    *,
    executor: str | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    parallel_cells: bool = False,
    progress: bool = False,
    print_table: bool = False,
) -> list[dict]:
    """Run every cell of a sweep that is not done yet; return one row per cell (grid order).

    Args:
        path_or_dict: a sweep file (TOML/YAML), or a dict of its tables.
        out_dir: output directory (default: :func:`resolve_out_dir`).
        executor, workers, ray_address: execution settings for every cell (default: the base
            ``[method]`` values). Cells run one after another and each ``mibp`` cell fans its
            solves out over the executor.
        parallel_cells: run whole cells in parallel through the executor instead, each cell
            in one worker with one in-process solver (no per-step progress then).
        progress: show a progress bar on stderr.
        print_table: print the summary table (:func:`summary_table`) at the end.
    """
    from mibpcert.parallel import check_kind, make_executor

    spec = load_sweep(path_or_dict)
    out = resolve_out_dir(spec, out_dir)
    kind = executor if executor is not None else spec.base.method.executor
    check_kind(kind)
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}.")
    address = ray_address if ray_address is not None else spec.base.method.ray_address
    if parallel_cells:
        cells = spec.cells(executor="inprocess", workers=1, ray_address=address)
    else:
        cells = spec.cells(executor=kind, workers=workers, ray_address=address)
    rows: list[dict | None] = [None] * len(cells)
    todo = []
    for i, cell in enumerate(cells):
        report = _finished(out / "cells" / cell.id, cell)
        if report is not None:
            rows[i] = row_from_report(report, cell, f"cells/{cell.id}")
        else:
            todo.append(i)

    def flush(complete: bool) -> None:
        write_table([r for r in rows if r is not None], out, spec, complete)

    flush(not todo)
    bar = _Progress(len(cells), len(cells) - len(todo), progress)
    t0 = time.perf_counter()
    try:
        if todo and parallel_cells:
            args = [
                (cells[i], str(out / "cells" / cells[i].id), f"cells/{cells[i].id}") for i in todo
            ]

            def on_result(j: int, res: Any) -> None:
                if isinstance(res, dict):
                    rows[todo[j]] = res
                    flush(False)
                bar.finish_cell()

            with make_executor(workers, kind, address, retries=1) as ex:
                results = ex.map(_run_cell_task, args, on_result=on_result)
            failed = [
                f"{cells[i].id}: {res.message}"
                for i, res in zip(todo, results, strict=True)
                if not isinstance(res, dict)
            ]
            if failed:
                raise MibpcertError(
                    f"{len(failed)} sweep cell(s) failed (finished cells are kept; rerun the "
                    "sweep to retry):\n  " + "\n  ".join(failed)
                )
        elif todo:
            shared = make_executor(workers, "ray", address) if kind == "ray" else None
            try:
                for i in todo:
                    cell = cells[i]
                    bar.start(cell.id)
                    rows[i] = _run_cell(
                        cell,
                        out / "cells" / cell.id,
                        f"cells/{cell.id}",
                        on_step=bar.on_step,
                        on_solves=bar.on_solves,
                    )
                    bar.finish_cell()
                    flush(False)
            finally:
                if shared is not None:  # one Ray runtime for all cells
                    shared.close()
    finally:
        bar.close()
    flush(True)
    done_rows = [r for r in rows if r is not None]
    if print_table:
        print(summary_table(done_rows))
        print(
            f"\n{len(cells)} cells: {len(todo)} run, {len(cells) - len(todo)} reused "
            f"({time.perf_counter() - t0:.1f} s)"
        )
    return done_rows
