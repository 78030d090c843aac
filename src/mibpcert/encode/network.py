"""A ReLU MLP's parameters and forward pass as program expressions (program versions of
:mod:`mibpcert.ops.affine` and :mod:`mibpcert.ops.relu`)."""

from __future__ import annotations

from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval
from mibpcert.model.network import Architecture
from mibpcert.ops import affine, relu

Layers = list[tuple[list[list[Expr]], list[Expr]]]


def layers_of(arch: Architecture, theta: list[Expr]) -> Layers:
    """Arrange flat parameter expressions as ``[(W, bias), ...]`` (``W[r][c]``)."""
    layers: Layers = []
    for (ws, bs), (o, i) in zip(arch.slices(), arch.layer_shapes, strict=True):
        W = [[theta[ws.start + r * i + c] for c in range(i)] for r in range(o)]
        layers.append((W, [theta[bs.start + r] for r in range(o)]))
    return layers


def parameter_exprs(b: Builder, arch: Architecture, box: Interval) -> tuple[list[Expr], Layers]:
    """One variable per parameter, bounded by ``box``; also arranged as ``[(W, bias), ...]``."""
    names = arch.param_names()
    theta = [
        b.var(float(lo), float(hi), names[j])
        for j, (lo, hi) in enumerate(zip(box.lo, box.hi, strict=True))
    ]
    return theta, layers_of(arch, theta)


def forward_exprs(
    b: Builder, layers: Layers, x: list[Expr], tag: str
) -> tuple[list[list[Expr]], list[list[Expr]]]:
    """Activations of every layer (``acts[0] = x``, ``acts[-1]`` = outputs, materialised) and the
    ReLU' masks of every hidden layer."""
    acts, masks = [x], []
    a = x
    for L, (W, bias) in enumerate(layers):
        z = affine.program(b, W, bias, a, f"{tag}_{L}")
        if L < len(layers) - 1:
            pairs = [relu.program(b, zz, f"a{tag}_{L}_{r}") for r, zz in enumerate(z)]
            a = [p[0] for p in pairs]
            masks.append([p[1] for p in pairs])
        else:
            a = [b.materialize(zz, f"o{tag}_{r}") for r, zz in enumerate(z)]
        acts.append(a)
    return acts, masks
