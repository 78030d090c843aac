"""The sweep file: an ordinary run configuration plus a ``[sweep]`` grid, validated."""

from __future__ import annotations

import copy
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mibpcert.config import Config, MethodConfig, read_config_file
from mibpcert.errors import ConfigError

SWEEP_KEYS = ("methods", "eps", "k", "seeds", "options")
"""Keys of the ``[sweep]`` section."""

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
