"""The interval domain and per-operation transformers (affine, ReLU, ReLU', loss gradients, SGD)."""

from mibpcert.bounds import ops
from mibpcert.bounds.interval import Interval, round_out
from mibpcert.bounds.network import (
    ForwardBounds,
    batch_gradient,
    forward,
    per_sample_gradients,
    sample_gradients,
)
from mibpcert.bounds.ops import LabelSet

__all__ = [
    "ForwardBounds",
    "Interval",
    "LabelSet",
    "batch_gradient",
    "forward",
    "ops",
    "per_sample_gradients",
    "round_out",
    "sample_gradients",
]
