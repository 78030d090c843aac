"""Certification methods: training-loop algorithms over the bounds domain."""

from __future__ import annotations

from mibpcert.bounds.parameters import ParameterBounds
from mibpcert.errors import ConfigError
from mibpcert.methods.agt import AGTMethod
from mibpcert.methods.base import Method, MethodResult, StepCallback, TestMIP
from mibpcert.methods.exact import ExactMethod
from mibpcert.methods.interval import IntervalMethod
from mibpcert.methods.mibp import MIBPMethod

METHODS: dict[str, type] = {
    "interval": IntervalMethod,
    "agt": AGTMethod,
    "mibp": MIBPMethod,
    "exact": ExactMethod,
}


def get_method(name: str, **options) -> Method:
    """Instantiate a method by name."""
    if name in METHODS:
        return METHODS[name](**options)
    raise ConfigError(f"unknown method {name!r}; available: {', '.join(METHODS)}.")


__all__ = [
    "METHODS",
    "Method",
    "MethodResult",
    "ParameterBounds",
    "StepCallback",
    "TestMIP",
    "get_method",
]
