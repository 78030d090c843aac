"""PNG plots of a run directory (``report.json``) or a sweep directory (``sweep.json``).

Needs matplotlib (``pip install 'mibpcert[plot]'``), imported only when a plot is drawn. Figures
are drawn with matplotlib's Agg backend through :class:`matplotlib.figure.Figure`, so pyplot's
global state (and a notebook's backend) is left alone.

* sweep directory (:func:`plot_sweep`): ``certified_accuracy_vs_eps.png`` (per method, mean ±
  std over seeds, log eps axis, nominal accuracy as a reference band) and
  ``box_width_per_step.png`` (per method, the median over seeds of the maximum parameter-box
  width after every step, log scale, one panel per eps);
* run directory (:func:`plot_run`): ``box_width_per_step.png`` (maximum and mean width), and with
  an ``exact`` section in the report ``exact_bounds.png`` (primal and dual bound over solve time).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mibpcert.errors import ConfigError, UnsupportedError

__all__ = [
    "MAX_TRACE_POINTS",
    "SWEEP_FILE",
    "plot_dir",
    "plot_run",
    "plot_sweep",
    "plot_width_panels",
]

MessageCallback = Callable[[str], None]
SWEEP_FILE = "sweep.json"
"""The file that marks a sweep directory (written by :mod:`mibpcert.sweep`)."""
MAX_TRACE_POINTS = 4
"""How many test points' traces ``exact_bounds.png`` shows for a per-point objective."""


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UnsupportedError("plots need matplotlib: pip install 'mibpcert[plot]'") from None
    return Figure(figsize=(width, height))


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    return path


def _float(v: Any) -> float:
    """A plottable number: ``None`` and non-finite values (stored as strings) become NaN."""
    if v is None:
        return math.nan
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def _default_message(msg: str) -> None:
    logging.getLogger(__name__).info(msg)


def _step_widths(run_dir: Path, report: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, max width, mean width) per step, from the report (else ``boxes.npz``)."""
    steps = report.get("steps") or []
    if steps and all("max_width" in s for s in steps):
        epochs = np.array([_float(s.get("epoch", s.get("step"))) for s in steps])
        return (
            epochs,
            np.array([_float(s["max_width"]) for s in steps]),
            np.array([_float(s.get("mean_width")) for s in steps]),
        )
    from mibpcert.certify.report import BOXES_FILE

    with np.load(run_dir / BOXES_FILE) as boxes:
        width = boxes["upper"] - boxes["lower"]
    return np.arange(width.shape[0], dtype=float), width.max(axis=1), width.mean(axis=1)


def _positive(y: np.ndarray) -> np.ndarray:
    """Values for a log axis: zero, negative and non-finite widths are not drawn."""
    y = np.asarray(y, dtype=float).copy()
    y[~(np.isfinite(y) & (y > 0))] = np.nan
    return y


# ----------------------------------------------------------------------------- run directory


def plot_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    on_message: MessageCallback | None = None,
) -> list[Path]:
    """Plots of one run directory; returns the paths written."""
    from mibpcert.certify.report import load_report

    note = on_message or _default_message
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir
    report = load_report(run_dir)
    written = []
    epochs, wmax, wmean = _step_widths(run_dir, report)
    fig = _figure(5.5, 3.8)
    ax = fig.add_subplot()
    ax.plot(epochs[1:], _positive(wmax[1:]), marker="o", ms=3, label="max width")
    ax.plot(epochs[1:], _positive(wmean[1:]), marker=".", ms=3, label="mean width")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("parameter box width")
    eps = (report.get("problem", {}).get("threat") or {}).get("eps")
    ax.set_title(f"{report.get('method', '?')}" + (f", eps = {_float(eps):g}" if eps else ""))
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    written.append(_save(fig, out / "box_width_per_step.png"))
    if "exact" in report:
        path = _plot_exact(report["exact"], out / "exact_bounds.png", note)
        if path is not None:
            written.append(path)
    return written


def _trace_arrays(trace: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    if not isinstance(trace, list) or not trace:
        return None
    rows = [r for r in trace if isinstance(r, dict) and "t" in r]
    if not rows:
        return None
    t = np.array([_float(r["t"]) for r in rows])
    primal = np.array([_float(r.get("primal")) for r in rows])
    dual = np.array([_float(r.get("dual")) for r in rows])
    if np.all(np.isnan(primal)) and np.all(np.isnan(dual)):
        return None
    return t, primal, dual


def _draw_trace(ax, arrays, title: str) -> None:
    t, primal, dual = arrays
    ax.plot(t, primal, drawstyle="steps-post", marker=".", ms=3, label="primal (best found)")
    ax.plot(t, dual, drawstyle="steps-post", marker=".", ms=3, label="dual bound (proven)")
    ax.set_xlabel("solve time (s)")
    ax.set_ylabel("objective")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def _plot_exact(exact: Any, path: Path, note: MessageCallback) -> Path | None:
    if not isinstance(exact, dict):
        note("exact_bounds.png skipped: the report's 'exact' section is not a table.")
        return None
    name = exact.get("objective", "")
    if "points" in exact:
        points = exact.get("points") or []
        traces = []
        for k, p in enumerate(points):
            arrays = _trace_arrays(p.get("trace")) if isinstance(p, dict) else None
            if arrays is not None:
                label = p.get("index", k)
                traces.append((f"test point {label}", arrays))
            if len(traces) == MAX_TRACE_POINTS:
                break
        if not traces:
            note("exact_bounds.png skipped: no test point of the exact section has a trace.")
            return None
        fig = _figure(4.2 * len(traces), 3.6)
        for k, (title, arrays) in enumerate(traces):
            _draw_trace(fig.add_subplot(1, len(traces), k + 1), arrays, title)
        return _save(fig, path)
    arrays = _trace_arrays(exact.get("trace"))
    if arrays is None:
        note("exact_bounds.png skipped: the exact section has no (or an empty) trace.")
        return None
    fig = _figure(5.5, 3.8)
    _draw_trace(fig.add_subplot(), arrays, f"exact: {name}" if name else "exact")
    return _save(fig, path)


# ----------------------------------------------------------------------------- sweep directory


STYLES = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", "-"), ("P", "--")]
"""(marker, line style) per curve, so identical curves of two methods stay visible."""


def _label(method: str, k: Any, ks: set, base_k: Any) -> str:
    if len(ks) <= 1:
        return method
    k = base_k if k is None else k
    return f"{method}, all points" if k is None else f"{method}, k = {k}"


def _eps_axis(ax, eps_values: list[float]) -> None:
    positive = [e for e in eps_values if e > 0 and math.isfinite(e)]
    if not positive:
        return
    if len(positive) < len(eps_values):  # eps = 0 in the grid: linear around 0
        ax.set_xscale("symlog", linthresh=min(positive))
    else:
        ax.set_xscale("log")


def plot_width_panels(
    panels: dict[float, list[tuple]],
    path: str | Path,
    styles: dict[Any, tuple[str, str]] | None = None,
) -> Path | None:
    """Max parameter-box width per epoch, one log-scale panel per eps; returns the path written,
    or ``None`` when no panel has a curve.

    ``panels[eps]`` lists ``(key, label, epochs, widths)`` with ``widths`` of shape (seeds,
    points) at the x values ``epochs``: each draws the median over seeds (from the second point
    on: the first is the degenerate initial box) with the min-max band over seeds. A ``key``
    keeps its colour across panels; ``styles[key]`` is its ``(marker, linestyle)``.
    """
    styles = dict(styles or {})
    eps_all = list(panels)
    fig = _figure(4.2 * len(eps_all), 3.8)
    axes = [fig.add_subplot(1, len(eps_all), k + 1) for k in range(len(eps_all))]
    colors: dict[Any, str] = {}
    drawn = False
    for panel, e in zip(axes, eps_all, strict=True):
        for key, label, epochs, arr in panels[e]:
            med = np.median(arr, axis=0)
            kw = {"color": colors[key]} if key in colors else {}
            marker, ls = styles.setdefault(key, STYLES[len(styles) % len(STYLES)])
            (line,) = panel.plot(
                epochs[1:],
                _positive(med[1:]),
                marker=marker,
                ls=ls,
                ms=4,
                mfc="none",
                label=label,
                **kw,
            )
            colors[key] = line.get_color()
            if arr.shape[0] > 1:
                panel.fill_between(
                    epochs[1:],
                    _positive(arr[:, 1:].min(axis=0)),
                    _positive(arr[:, 1:].max(axis=0)),
                    color=line.get_color(),
                    alpha=0.1,
                )
            drawn = True
        panel.set_yscale("log")
        panel.set_xlabel("epoch")
        panel.set_title(f"eps = {e:g}")
        panel.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("max parameter box width")
    axes[0].legend(fontsize="small")
    if not drawn:
        return None
    return _save(fig, Path(path))


def plot_sweep(
    sweep_dir: str | Path,
    out_dir: str | Path | None = None,
    on_message: MessageCallback | None = None,
) -> list[Path]:
    """Plots of a sweep directory (``sweep.json``); returns the paths written."""
    from mibpcert.certify.report import load_report

    note = on_message or _default_message
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir
    doc = json.loads((sweep_dir / SWEEP_FILE).read_text())
    rows = doc.get("rows", [])
    base_k = ((doc.get("base_config") or {}).get("threat") or {}).get("k")
    if not rows:
        note("no finished cells in this sweep: nothing to plot.")
        return []
    ks = {r["k"] for r in rows}
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["k"]), []).append(r)
    style = {key: STYLES[i % len(STYLES)] for i, key in enumerate(groups)}
    eps_all = sorted({_float(r["eps"]) for r in rows})
    written = []

    # certified accuracy vs eps
    if any(r.get("certified_accuracy") is not None for r in rows):
        fig = _figure(6.0, 4.0)
        ax = fig.add_subplot()
        nominal = {}
        for r in rows:
            if r.get("nominal_accuracy") is not None:
                nominal.setdefault(r["seed"], r["nominal_accuracy"])
        if nominal:
            nom = np.array(list(nominal.values())) * 100
            mu, sd = nom.mean(), (nom.std(ddof=1) if nom.size > 1 else 0.0)
            ax.axhline(mu, color="0.3", ls="--", lw=1, label="nominal accuracy")
            ax.axhspan(mu - sd, mu + sd, color="0.5", alpha=0.15, lw=0)
        for (method, k), rs in groups.items():
            eps = sorted({_float(r["eps"]) for r in rs})
            mean, std = [], []
            for e in eps:
                v = np.array(
                    [
                        _float(r["certified_accuracy"])
                        for r in rs
                        if _float(r["eps"]) == e and r.get("certified_accuracy") is not None
                    ]
                )
                v = v * 100
                mean.append(v.mean() if v.size else np.nan)
                std.append(v.std(ddof=1) if v.size > 1 else 0.0)
            mean, std = np.array(mean), np.array(std)
            marker, ls = style[(method, k)]
            (line,) = ax.plot(
                eps, mean, marker=marker, ls=ls, mfc="none", label=_label(method, k, ks, base_k)
            )
            ax.fill_between(eps, mean - std, mean + std, color=line.get_color(), alpha=0.1)
        _eps_axis(ax, eps_all)
        ax.set_xlabel("eps (l-inf radius of the poisoning)")
        ax.set_ylabel("certified accuracy (%)")
        n_seeds = len({r["seed"] for r in rows})
        ax.set_title(f"certified accuracy, mean ± std over {n_seeds} seed(s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
        written.append(_save(fig, out / "certified_accuracy_vs_eps.png"))
    else:
        note("certified_accuracy_vs_eps.png skipped: no cell has a certified accuracy.")

    # box width per step, one panel per eps
    panels: dict[float, list[tuple]] = {}
    for e in eps_all:
        for (method, k), rs in groups.items():
            curves, epochs = [], None
            for r in rs:
                if _float(r["eps"]) != e:
                    continue
                cell_dir = sweep_dir / r["dir"]
                try:
                    ep, wmax, _ = _step_widths(cell_dir, load_report(cell_dir))
                except (OSError, ValueError, KeyError) as exc:
                    note(f"cell {r['cell']} left out of box_width_per_step.png: {exc}")
                    continue
                curves.append(wmax)
                epochs = ep
            if not curves or epochs is None:
                continue
            n = min(len(c) for c in curves)
            curve = (epochs[:n], np.array([c[:n] for c in curves]))
            panels.setdefault(e, []).append(((method, k), _label(method, k, ks, base_k), *curve))
    path = plot_width_panels(
        {e: panels.get(e, []) for e in eps_all}, out / "box_width_per_step.png", style
    )
    if path is not None:
        written.append(path)
    else:
        note("box_width_per_step.png skipped: no cell's widths could be read.")
    return written


def plot_dir(
    path: str | Path,
    out_dir: str | Path | None = None,
    on_message: MessageCallback | None = None,
) -> list[Path]:
    """Plots of a sweep directory (with ``sweep.json``) or a run directory (``report.json``)."""
    from mibpcert.certify.report import REPORT_FILE

    path = Path(path)
    if (path / SWEEP_FILE).exists():
        return plot_sweep(path, out_dir, on_message)
    if (path / REPORT_FILE).exists() or (path.is_file() and path.name == REPORT_FILE):
        return plot_run(path.parent if path.is_file() else path, out_dir, on_message)
    raise ConfigError(
        f"{str(path)!r} is neither a run directory (report.json) nor a sweep directory "
        "(sweep.json)."
    )
