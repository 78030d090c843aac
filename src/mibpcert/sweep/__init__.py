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

from mibpcert.sweep.cells import (
    COLUMNS,
    EXECUTION_KEYS,
    TIMING_COLUMNS,
    comparable_config,
    row_from_report,
)
from mibpcert.sweep.execute import _Progress, resolve_out_dir, run_sweep
from mibpcert.sweep.spec import SWEEP_KEYS, Cell, SweepSpec, cell_id, load_sweep
from mibpcert.sweep.table import summary_rows, summary_table, write_table

__all__ = [
    "COLUMNS",
    "EXECUTION_KEYS",
    "SWEEP_KEYS",
    "TIMING_COLUMNS",
    "Cell",
    "SweepSpec",
    "_Progress",
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
