"""The sweep's table: ``sweep.csv``, ``sweep.json`` and the summary over seeds."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from mibpcert.certify.plots import SWEEP_FILE
from mibpcert.sweep.cells import COLUMNS, TIMING_COLUMNS, plain
from mibpcert.sweep.spec import SweepSpec

CSV_FILE = "sweep.csv"
JSON_FILE = SWEEP_FILE


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
    tmp.write_text(json.dumps(plain(doc), indent=2) + "\n")
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
