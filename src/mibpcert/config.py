"""Run configuration: a TOML or YAML file with sections, plus overrides.

Sections and keys (all optional; defaults give the built-in Two-Moons run)::

    [data]      dataset, n_train, n_test, noise, seed, standardize, test_fraction, task,
                label_column, test_path, poly_degree, n_val (clean validation points, taken
                from the test pool)
    [model]     arch, init_seed, init_file, freeze (the first N affine layers fixed: the rest
                is fine-tuned on their features), prefix (a saved torch nn.Sequential used as
                a fixed feature map in front of arch)
    [training]  loss, lr, epochs, batch_size, shuffle, seed, lr_schedule, lr_decay, lr_min, clip,
                steps (gradient steps; sets epochs), select_epoch (last | best-val: the
                epoch whose certified validation accuracy is highest)
    [threat]    eps, points, k, label_k, label_mode, label_eps, discrete, feature_bounds, test_eps,
                paired
    [method]    name, sets (box | affine: interval, agt), solver, relax, time_limit, workers,
                lp_first, test_mip, test_mip_time, resume, executor, ray_address (method 'mibp');
                objective, test_points, tighten, tighten_time, heuristic, heuristic_time, form,
                split, root_cuts (method 'exact'). Each method takes the keys its constructor
                accepts; time_limit is seconds per solve (mibp) or per program (exact).
    [output]    dir
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mibpcert.errors import ConfigError

DEFAULT_TIME_LIMIT = 10.0
"""The default of a method's main time budget (``[method] time_limit``): seconds per solve
(``mibp``, and each test-time margin solve) or per program (``exact``). The other budgets derive
from it (see the methods)."""


@dataclass
class DataConfig:
    dataset: str = "moons"
    n_train: int | None = None
    n_test: int | None = None
    noise: float = 0.1
    seed: int = 0
    standardize: bool = False
    test_fraction: float = 0.3
    task: str = "classification"
    label_column: str | None = None
    test_path: str | None = None
    poly_degree: int = 1
    n_val: int = 0


@dataclass
class ModelConfig:
    arch: str = "2-10-1"
    init_seed: int = 0
    init_file: str | None = None
    freeze: int = 0
    prefix: str | None = None


@dataclass
class TrainingConfig:
    loss: str = "hinge"
    lr: float = 0.1
    epochs: int = 10
    batch_size: int | None = None
    shuffle: bool = True
    seed: int = 0
    lr_schedule: str = "constant"
    lr_decay: float = 0.0
    lr_min: float = 0.0
    clip: float | None = None
    weight_decay: float = 0.0
    l1: float = 0.0
    clip_norm: float | None = None
    clip_scope: str = "layer"
    momentum: float = 0.0
    nesterov: bool = False
    steps: int | None = None
    select_epoch: str = "last"


@dataclass
class ThreatConfig:
    eps: float = 0.001
    points: list[int] | None = None
    k: int | None = None
    label_k: int = 0
    label_mode: str | int = "flip"
    label_eps: float = 0.0
    discrete: list[dict] = field(default_factory=list)
    feature_bounds: list | None = None
    test_eps: float = 0.0
    paired: bool = False
    n_trusted: int = 0
    budget_scope: str = "global"
    remove_k: int = 0


@dataclass
class MethodConfig:
    name: str = "interval"
    sets: str = "box"
    solver: str = "scip"
    relax: str = "bilinear"
    time_limit: float | None = DEFAULT_TIME_LIMIT
    test_mip_time: float | None = None
    workers: int | None = None
    lp_first: bool = True
    test_mip: bool = True
    resume: bool = False
    executor: str = "process"
    ray_address: str | None = None
    objective: str | None = None
    test_points: list[int] | None = None
    tighten: bool = True
    tighten_time: float | None = None
    heuristic: bool = True
    heuristic_time: float | None = None
    form: str = "auto"
    split: str = "auto"
    root_cuts: str = "auto"
    allow_degraded: bool = False
    solver_log: str | None = None
    interior_attack: bool = True
    repair: bool = True


@dataclass
class OutputConfig:
    dir: str = "runs/default"


@dataclass
class Config:
    """A full run description. Build from a file with :func:`load_config` or from a dict."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    threat: ThreatConfig = field(default_factory=ThreatConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> Config:
        """Build from nested dicts; unknown sections or keys raise :class:`ConfigError`."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: the top level must be a table of sections.")
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs = {}
        for name, value in raw.items():
            if name not in sections:
                raise ConfigError(
                    f"{source}: unknown section [{name}]; sections are {', '.join(sections)}."
                )
            kwargs[name] = _section(cls, name, value, source)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def override(self, dotted: dict[str, Any]) -> Config:
        """Copy with ``{"section.key": value}`` overrides applied (``None`` values are skipped)."""
        raw = self.to_dict()
        for key, value in dotted.items():
            if value is None:
                continue
            section, _, name = key.partition(".")
            if section not in raw or name not in raw[section]:
                raise ConfigError(f"unknown setting {key!r}.")
            raw[section][name] = value
        return Config.from_dict(raw)


def _section(cls: type, name: str, value: Any, source: str) -> Any:
    sec_cls = {f.name: f for f in dataclasses.fields(cls)}[name].default_factory
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{name}] must be a table of key = value pairs.")
    keys = {f.name for f in dataclasses.fields(sec_cls)}
    for key in value:
        if key not in keys:
            raise ConfigError(
                f"{source}: unknown key {key!r} in [{name}]; valid keys are "
                f"{', '.join(sorted(keys))}."
            )
    hints = typing.get_type_hints(sec_cls)
    return sec_cls(**{k: _coerce(v, hints[k], f"{source}: [{name}] {k}") for k, v in value.items()})


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check/convert a config value to its declared type (YAML reads 1e-3 as a string)."""
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if is_union else (hint,)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{where} must not be empty.")
    options = [a for a in args if a is not type(None)]
    for opt in options:
        origin = typing.get_origin(opt) or opt
        if origin is bool and isinstance(value, bool):
            return value
        if origin is bool and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if origin is int and not isinstance(value, bool):
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
        if origin is float and not isinstance(value, bool):
            if isinstance(value, (int, float)):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
        if origin is str and isinstance(value, str):
            return value
        if origin is list and isinstance(value, (list, tuple)):
            return list(value)
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"{where} must be {names}, got {value!r}.")


def load_config(path: str | Path) -> Config:
    """Read a ``.toml``, ``.yaml`` or ``.yml`` configuration file."""
    return Config.from_dict(read_config_file(path), source=str(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw tables of a ``.toml``, ``.yaml`` or ``.yml`` file (not validated)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist.")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            raw = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text) or {}
        else:
            raise ConfigError(
                f"config file {str(path)!r}: unknown extension {suffix!r}; "
                "use .toml, .yaml or .yml."
            )
    except ConfigError:
        raise
    except Exception as exc:
        what = " ".join(str(exc).split())  # YAML errors span several lines
        raise ConfigError(f"cannot parse config file {str(path)!r}: {what}") from exc
    return raw
