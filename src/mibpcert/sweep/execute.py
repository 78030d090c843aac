"""Running a sweep: every cell not done yet, one after another or side by side."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from mibpcert.errors import ConfigError, MibpcertError
from mibpcert.sweep.cells import finished_report, row_from_report, run_cell, run_cell_task
from mibpcert.sweep.spec import SweepSpec, load_sweep
from mibpcert.sweep.table import summary_table, write_table


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
        report = finished_report(out / "cells" / cell.id, cell)
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
                results = ex.map(run_cell_task, args, on_result=on_result)
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
                    rows[i] = run_cell(
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
