"""The affine layer ``z = a W^T + b`` and its backward pass, in every domain.

Forward: inputs ``a`` (n, i), weights ``W`` (o, i), bias ``b`` (o,). Backward, from the gradient
``g = dL/dz`` (n, o): the weight gradient ``g^T a`` (per sample: the outer product ``g_s a_s^T``),
the bias gradient ``g``, and the input gradient ``g W`` (n, i).

* numpy: :func:`forward`, :func:`input_grad`, :func:`mean_weight_grad` (batch mean),
  :func:`sample_weight_grad` (per sample, flattened row-major like ``W``);
* interval: :func:`interval`, :func:`backward_interval` -- each scalar product of two intervals
  is bounded by the min/max of its endpoint products (the exact product range), so weights and
  inputs may both be intervals; the matrix products run through BLAS
  (:func:`~mibpcert.domains.interval.matmul`);
* program: :func:`program`, :func:`backward_program` -- weight x input products are bilinear
  (exact in the bilinear program, McCormick in its relaxations), or exact linearisations when one
  factor is binary or constant (:meth:`~mibpcert.domains.builder.Builder.mul`);
* affine sets: :func:`affine_set`, :func:`backward_affine_set` -- products of two forms over the
  shared attack and remainder symbols (:mod:`mibpcert.domains.affine`).
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains import affine as aff
from mibpcert.domains.affine import AffineForm, Symbols
from mibpcert.domains.builder import Builder, Expr
from mibpcert.domains.interval import Interval, add, matmul, mul

# ----------------------------------------------------------------------------- numpy


def forward(a: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ W.T + b``."""
    return a @ W.T + b


def input_grad(g: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``dL/da = g @ W``."""
    return g @ W


def mean_weight_grad(g: np.ndarray, a: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch-mean ``(dL/dW, dL/db) = (g^T a / n, sum_s g_s / n)``."""
    return g.T @ a / n, g.sum(axis=0) / n


def sample_weight_grad(g: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ``(dL/dW, dL/db)``: ``(n, o * i)`` outer products ``g_s a_s^T`` and ``g``."""
    n = len(g)
    return (g[:, :, None] * a[:, None, :]).reshape(n, -1), g


# ----------------------------------------------------------------------------- interval


def interval(a: Interval, W: Interval, b: Interval) -> Interval:
    """Bounds on ``a @ W.T + b`` for inputs a (n, i), weights W (o, i), bias b (o,)."""
    return add(matmul(a, Interval(W.lo.T, W.hi.T)), b.reshape(1, -1))


def backward_interval(
    g: Interval, a: Interval, W: Interval | None
) -> tuple[Interval, Interval, Interval | None]:
    """Per-sample bounds ``(dL/dW (n, o*i), dL/db (n, o), dL/da (n, i) or None)`` from
    ``g = dL/dz`` (n, o), the layer's inputs ``a`` and weights ``W`` (``None``: no input
    gradient, e.g. the first layer)."""
    n = g.shape[0]
    gW = mul(g.reshape(n, -1, 1), a.reshape(n, 1, -1))  # (n, o, i)
    ga = None if W is None else matmul(g, W)
    return gW.reshape(n, -1), g, ga


# ----------------------------------------------------------------------------- program


def program(
    b: Builder, W: list[list[Expr]], bias: list[Expr], a: list[Expr], tag: str
) -> list[Expr]:
    """Pre-activations ``z_r = sum_c W_rc a_c + bias_r`` (products named ``Wx{tag}_{r}_{c}``)."""
    return [
        b.affine(
            [(1.0, b.mul(W[r][c], a[c], f"Wx{tag}_{r}_{c}")) for c in range(len(a))]
            + [(1.0, bias[r])]
        )
        for r in range(len(W))
    ]


def backward_program(
    b: Builder,
    delta: list[Expr],
    a: list[Expr],
    W: list[list[Expr]] | None,
    tag: str,
) -> tuple[list[list[Expr]], list[Expr], list[Expr] | None]:
    """``(dL/dW (o x i), dL/db (o), dL/da (i) or None)`` of one sample from ``delta = dL/dz``.

    Each ``delta_r`` that is neither constant nor affine in binaries is first made a variable,
    so that every product with it is one bilinear product (named ``gW{tag}_{r}_{c}`` for the
    weight gradient, ``Wd{tag}_{r}_{c}`` for ``W_rc delta_r`` of the input gradient).
    """
    delta = [dl if dl.is_const or b.is_binary_combo(dl) else b.materialize(dl) for dl in delta]
    gW = [
        [b.mul(dl, ap, f"gW{tag}_{r}_{c}") for c, ap in enumerate(a)] for r, dl in enumerate(delta)
    ]
    ga = None
    if W is not None:
        ga = [
            b.affine(
                [(1.0, b.mul(W[r][c], delta[r], f"Wd{tag}_{r}_{c}")) for r in range(len(delta))]
            )
            for c in range(len(a))
        ]
    return gW, delta, ga


# ----------------------------------------------------------------------------- affine sets


def affine_set(a: AffineForm, W: AffineForm, b: AffineForm, sym: Symbols) -> AffineForm:
    """``a W^T + b`` for forms ``a`` (n, i), ``W`` (o, i), ``b`` (o,) over shared symbols: the
    linear part is kept, the product of the two deviations bounded (:func:`aff.contract`)."""
    return aff.add(aff.contract("ni,oi->no", a, W, sym), b)


def backward_affine_set(
    g: AffineForm, a: AffineForm, W: AffineForm | None, sym: Symbols
) -> tuple[AffineForm, AffineForm, AffineForm | None]:
    """Batch-mean ``(dL/dW (o, i), dL/db (o,))`` and the per-sample ``dL/da (n, i)`` (or
    ``None``) from ``g = dL/dz`` (n, o) over shared symbols."""
    n = g.shape[0]
    gW = aff.scale(aff.contract("no,ni->oi", g, a, sym), 1.0 / n)
    gb = aff.mean(g, axis=0)
    ga = None if W is None else aff.contract("no,oi->ni", g, W, sym)
    return gW, gb, ga


def sample_weight_grad_affine_set(g: AffineForm, a: AffineForm, sym: Symbols) -> AffineForm:
    """Per-sample ``dL/dW`` (n, o * i) (for per-sample clipping)."""
    n = g.shape[0]
    return aff.contract("no,ni->noi", g, a, sym).reshape(n, -1)
