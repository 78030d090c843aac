"""Interval passes through a ReLU MLP, composed from the interval versions of
:mod:`mibpcert.ops`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.domains.interval import Interval, add, divide, sum_axis
from mibpcert.model.network import Architecture
from mibpcert.ops import affine, relu
from mibpcert.ops import clip as ops_clip
from mibpcert.ops import loss as loss_ops
from mibpcert.threat.labels import LabelSet


def split_params(arch: Architecture, theta: Interval) -> list[tuple[Interval, Interval]]:
    """Interval views ``[(W1, b1), ...]`` of a flat parameter interval."""
    los, his = arch.unflatten(theta.lo), arch.unflatten(theta.hi)
    return [
        (Interval(Wl, Wh), Interval(bl, bh)) for (Wl, bl), (Wh, bh) in zip(los, his, strict=True)
    ]


@dataclass(frozen=True)
class ForwardBounds:
    """Pre-activations ``pre[k]`` of every layer and activations ``acts[k]`` (acts[0] = input,
    acts[-1] = output)."""

    pre: list[Interval]
    acts: list[Interval]

    @property
    def output(self) -> Interval:
        return self.acts[-1]


def forward(arch: Architecture, theta: Interval, X: Interval) -> ForwardBounds:
    """Bounds on every layer for all parameters in ``theta`` and inputs in ``X`` (n, d)."""
    layers = split_params(arch, theta)
    pre, acts = [], [X]
    a = X
    for k, (W, b) in enumerate(layers):
        z = affine.interval(a, W, b)
        pre.append(z)
        a = relu.interval(z) if k < len(layers) - 1 else z
        acts.append(a)
    return ForwardBounds(pre, acts)


def per_sample_gradients(
    arch: Architecture, theta: Interval, fwd: ForwardBounds, g_out: Interval
) -> Interval:
    """Bounds on each sample's parameter gradient (n, m), from output gradients ``g_out`` (n, out).

    Back-propagation with interval weights and ReLU' masks; the result is laid out like the flat
    parameter vector.
    """
    layers = split_params(arch, theta)
    parts: list[tuple[Interval, Interval]] = []
    g = g_out
    for k in range(len(layers) - 1, -1, -1):
        W, _ = layers[k]
        gW, gb, ga = affine.backward_interval(g, fwd.acts[k], W if k > 0 else None)
        parts.append((gW, gb))
        if k > 0:
            g = relu.backward_interval(ga, fwd.pre[k - 1])
    parts.reverse()
    lo = np.concatenate([p.lo for pair in parts for p in pair], axis=1)
    hi = np.concatenate([p.hi for pair in parts for p in pair], axis=1)
    return Interval(lo, hi)


def sample_gradients(
    arch: Architecture,
    theta: Interval,
    X: Interval,
    labels: LabelSet,
    loss: str,
    clip: float | None = None,
) -> Interval:
    """Bounds on each sample's (clipped) gradient (n, m) for every parameter in ``theta``, input in
    ``X`` and label in ``labels``."""
    fwd = forward(arch, theta, X)
    g_out = loss_ops.grad_interval(loss, fwd.output, labels)
    per = per_sample_gradients(arch, theta, fwd, g_out)
    return per if clip is None else ops_clip.interval(per, clip)


FRAGMENT_ENTRIES = 1 << 18
"""Per-sample gradient entries (samples x parameters) bounded at once: a batch is processed in
fragments of at most this many entries (at least one sample), so memory stays bounded and the
working arrays stay in cache."""


def fragments(n: int, n_params: int, entries: int | None = None) -> list[slice]:
    """Consecutive slices of ``n`` samples, each holding at most ``entries`` (default
    :data:`FRAGMENT_ENTRIES`) per-sample gradient entries of ``n_params`` parameters."""
    size = max(1, int(entries or FRAGMENT_ENTRIES) // max(int(n_params), 1))
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def accumulate(total: Interval | None, part: Interval) -> Interval:
    """``total + part`` (outward rounded); ``part`` when ``total`` is None."""
    return part if total is None else add(total, part)


def batch_gradient(
    arch: Architecture,
    theta: Interval,
    X: Interval,
    labels: LabelSet,
    loss: str,
    clip: float | None = None,
) -> Interval:
    """Bounds on the mean-over-batch gradient for every parameter in ``theta``, input in ``X`` and
    label in ``labels`` (each sample independently: the interval relaxation); the batch is
    summed in :func:`fragments`."""
    total = None
    for sl in fragments(X.shape[0], arch.n_params):
        per = sample_gradients(arch, theta, X[sl], labels[sl], loss, clip)
        total = accumulate(total, sum_axis(per, axis=0))
    return divide(total, float(X.shape[0]))
