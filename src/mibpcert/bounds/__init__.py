"""The interval domain applied to training: interval passes through the network, the interval
domain's table of operations, and the parameter boxes every method returns."""

from mibpcert.bounds import ops
from mibpcert.bounds.network import (
    ForwardBounds,
    batch_gradient,
    forward,
    per_sample_gradients,
    sample_gradients,
)
from mibpcert.bounds.parameters import ParameterBounds
from mibpcert.domains.interval import Interval, round_out
from mibpcert.threat.labels import LabelSet

__all__ = [
    "ForwardBounds",
    "Interval",
    "LabelSet",
    "ParameterBounds",
    "batch_gradient",
    "forward",
    "ops",
    "per_sample_gradients",
    "round_out",
    "sample_gradients",
]
