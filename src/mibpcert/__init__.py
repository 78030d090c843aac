"""mibpcert: certify machine-learning training against data poisoning.

Sound bounds on every parameter after every training step, certified test predictions and
accuracy, and worst-case test-loss bounds, for small ReLU networks and linear models.

Quick start::

    from mibpcert import Config, run
    result = run(Config())            # Two-Moons, 2-10-1, hinge, interval method
    print(result.summary())

Importing mibpcert imports no optimisation solver.
"""

from __future__ import annotations

from mibpcert._version import __version__
from mibpcert.config import Config, load_config
from mibpcert.errors import (
    ConfigError,
    DataError,
    MibpcertError,
    ModelError,
    ThreatModelError,
    UnsupportedError,
)
from mibpcert.pipeline import build_problem, certify_problem, run
from mibpcert.problem import Problem
from mibpcert.threat import DiscreteFeature, ThreatModel

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "DiscreteFeature",
    "MibpcertError",
    "ModelError",
    "Problem",
    "ThreatModel",
    "ThreatModelError",
    "UnsupportedError",
    "__version__",
    "build_problem",
    "certify_problem",
    "load_config",
    "run",
]
