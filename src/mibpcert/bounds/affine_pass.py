"""Affine parameter sets through a training step, composed from the affine versions of
:mod:`mibpcert.ops` (no solver).

The parameters after step t are ``Theta_t = {c_t + G_t u + r : u in A, |r| <= rho_t}``
(:class:`AffineSet`): ``u`` are the attack symbols (:class:`~mibpcert.domains.affine.SymbolSet`)
shared by every step, so the set keeps that one poisoned dataset drives the whole run and that
the parameters move together. One step propagates the set through the forward pass, the loss
gradient, the backward pass and the SGD update with affine forms over ``[u | r]``; every
nonlinearity's error is a local error; at the end the ``r`` coefficients and the local errors are
folded into the next remainder ``rho_{t+1}`` and the ``u`` coefficients become ``G_{t+1}``.

The ranges that decide ReLU and hinge patterns (and bound their relaxations) are the forms' own
bounds intersected with the interval pass from the step's parameter box: the true parameters lie
in both sets, so the intersection holds them too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.bounds import network
from mibpcert.domains import affine as aff
from mibpcert.domains.affine import AffineForm, Symbols, SymbolSet
from mibpcert.domains.interval import UNIT, Interval
from mibpcert.errors import UnsupportedError
from mibpcert.model.network import Architecture
from mibpcert.ops import affine, relu, sgd
from mibpcert.ops import clip as ops_clip
from mibpcert.ops import loss as loss_ops
from mibpcert.threat.labels import LabelSet

#: the affine step refuses problems whose forms would need more memory than this (bytes)
MAX_FORM_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class AffineSet:
    """``{c + G u + r : u in A, |r| <= rho}`` over the attack symbols (see the module)."""

    c: np.ndarray  # (m,)
    G: np.ndarray  # (m, K)
    rho: np.ndarray  # (m,)

    @classmethod
    def point(cls, theta: np.ndarray, n_symbols: int) -> AffineSet:
        theta = np.asarray(theta, dtype=np.float64)
        return cls(theta.copy(), np.zeros((theta.size, n_symbols)), np.zeros(theta.size))

    def box(self, attack: SymbolSet) -> Interval:
        """The bounding box of the set, rounded outward."""
        lo, hi = attack.range(self.G)
        return Interval(
            np.nextafter(np.nextafter(self.c + lo, -np.inf) - self.rho, -np.inf),
            np.nextafter(np.nextafter(self.c + hi, np.inf) + self.rho, np.inf),
        )

    def form(self, sym: Symbols) -> AffineForm:
        """The set as a form over the step's symbols ``[u | r]`` (``r`` scaled by ``rho``)."""
        m = self.c.size
        return AffineForm(self.c, np.concatenate([self.G, np.diag(self.rho)], axis=1), np.zeros(m))

    @classmethod
    def at(cls, trajectory, t: int = -1) -> AffineSet:
        """Step ``t`` of an :class:`~mibpcert.bounds.parameters.AffineTrajectory`."""
        return cls(trajectory.c[t], trajectory.G[t], trajectory.rho[t])

    def residual(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``theta - c - G u`` for parameters ``theta`` reached with attack symbols ``u``."""
        return theta - self.c - self.G @ u


def check_size(arch: Architecture, n: int, attack: SymbolSet) -> None:
    """Raise :class:`UnsupportedError` when the forms of a step would not fit in memory."""
    S = attack.size + arch.n_params
    widest = max(arch.sizes)
    need = 8 * S * max(n * widest * 6, arch.n_params * 4)
    if need > MAX_FORM_BYTES:
        raise UnsupportedError(
            f"affine parameter sets need about {need / 1024**3:.1f} GiB per step here "
            f"({attack.size} attack symbols x {arch.n_params} parameters, batch {n}); they are "
            "meant for small problems: use --sets box, a subset of points (--points), or "
            "smaller batches."
        )


def split_params(arch: Architecture, theta: AffineForm) -> list[tuple[AffineForm, AffineForm]]:
    """Form views ``[(W1, b1), ...]`` of a flat parameter form."""
    out = []
    for (ws, bs), (o, i) in zip(arch.slices(), arch.layer_shapes, strict=True):
        out.append((theta[ws].reshape(o, i), theta[bs]))
    return out


def input_form(
    attack: SymbolSet, X: np.ndarray, idx: np.ndarray, n_symbols: int
) -> AffineForm:
    """The batch ``idx``'s poisoned inputs (len(idx), d): ``mid + rad u`` for points with
    symbols, the clean input otherwise."""
    d = X.shape[1]
    c = np.array(X[idx], dtype=np.float64)
    G = np.zeros((len(idx), d, n_symbols))
    row_of = {int(p): r for r, p in enumerate(idx)}
    for k in range(attack.size):
        r = row_of.get(int(attack.point[k]))
        if r is None:
            continue
        f = int(attack.feature[k])
        c[r, f] = attack.mid[k]
        G[r, f, k] = attack.rad[k]
    return AffineForm(c, G, np.zeros(c.shape))


@dataclass
class AffineForward:
    """Forms of every layer's pre-activations and activations, and the pre-activations' ranges."""

    pre: list[AffineForm]
    acts: list[AffineForm]
    ranges: list[Interval]


def forward(
    arch: Architecture,
    theta: AffineForm,
    x: AffineForm,
    sym: Symbols,
    itv: network.ForwardBounds | None = None,
) -> AffineForward:
    """Forms of every layer; ``itv``: an interval pass of the same batch from a box that holds
    the parameters too, whose ranges are intersected with the forms' own."""
    layers = split_params(arch, theta)
    pre, acts, ranges = [], [x], []
    a = x
    for k, (W, b) in enumerate(layers):
        z = affine.affine_set(a, W, b, sym)
        rng = sym.bounds(z)
        if itv is not None:
            rng = rng.intersect(itv.pre[k])
        pre.append(z)
        ranges.append(rng)
        a = relu.affine_set(z, rng) if k < len(layers) - 1 else z
        acts.append(a)
    return AffineForward(pre, acts, ranges)


def batch_gradient(
    arch: Architecture,
    theta: AffineForm,
    fwd: AffineForward,
    labels: LabelSet,
    loss: str,
    sym: Symbols,
    clip: float | None = None,
) -> AffineForm:
    """The batch-mean gradient (m,) as a form."""
    layers = split_params(arch, theta)
    out_rng = fwd.ranges[-1]
    g = loss_ops.get_loss(loss).grad_affine_set(fwd.acts[-1], out_rng, labels, sym)
    n = g.shape[0]
    parts: list[AffineForm] = []
    for k in range(len(layers) - 1, -1, -1):
        W, _ = layers[k]
        a = fwd.acts[k]
        if clip is None:
            gW, gb, ga = affine.backward_affine_set(g, a, W if k > 0 else None, sym)
            parts = [gb, *parts]
            parts = [gW.reshape(-1), *parts]
        else:
            gW = affine.sample_weight_grad_affine_set(g, a, sym)
            parts = [gW, g, *parts]
            ga = None if k == 0 else aff.contract("no,oi->ni", g, W, sym)
        if k > 0:
            g = relu.backward_affine_set(ga, fwd.ranges[k - 1], sym)
    if clip is None:
        return aff.concat(parts, axis=0)
    per = ops_clip.affine_set(aff.concat(parts, axis=1), clip, sym)
    del n
    return aff.mean(per, axis=0)


def step(
    arch: Architecture,
    state: AffineSet,
    attack: SymbolSet,
    X: np.ndarray,
    idx: np.ndarray,
    labels: LabelSet,
    loss: str,
    lr: float,
    clip: float | None = None,
    box: Interval | None = None,
    X_box: Interval | None = None,
    weight_decay: float = 0.0,
    l1: float = 0.0,
) -> tuple[AffineSet, dict]:
    """One training step of the set ``state`` on batch ``idx``; ``box`` (with the inputs' box
    ``X_box``): a box that also holds the parameters, for the interval ranges;
    ``weight_decay``, ``l1``: the recipe's regularisation (:mod:`mibpcert.ops.sgd`)."""
    sym = Symbols(attack, arch.n_params)
    theta = state.form(sym)
    x = input_form(attack, X, idx, sym.size)
    itv = None
    if box is not None and X_box is not None:
        itv = network.forward(arch, box, X_box[idx])
    fwd = forward(arch, theta, x, sym, itv)
    g = batch_gradient(arch, theta, fwd, labels[idx], loss, sym, clip)
    tbox = None
    if l1:
        tbox = state.box(attack) if box is None else box.intersect(state.box(attack))
    nxt = sgd.affine_set(theta, g, lr, weight_decay, l1, tbox)
    K = attack.size
    r = np.abs(nxt.G[:, K:]).sum(axis=1) + nxt.e
    rho = r * (1.0 + 2.0 * (arch.n_params + 3) * UNIT) + 1e-300
    undecided = sum(
        int(np.sum((rng.lo <= 0) & (rng.hi >= 0))) for rng in fwd.ranges[:-1]
    )
    info = {"undecided_relu": undecided}
    return AffineSet(nxt.c, nxt.G[:, :K].copy(), rho), info


def output_forms(
    arch: Architecture,
    state: AffineSet,
    attack: SymbolSet,
    X: Interval,
    box: Interval | None = None,
) -> tuple[AffineForm, Symbols, Interval]:
    """Forms of the outputs at test inputs in ``X`` (a box: fixed points, or a test-time
    perturbation, as local errors) for every parameter vector of the set, and their ranges
    (intersected with the interval pass from ``box``)."""
    sym = Symbols(attack, arch.n_params)
    theta = state.form(sym)
    x = AffineForm.hull(X, sym.size)
    itv = None if box is None else network.forward(arch, box, X)
    fwd = forward(arch, theta, x, sym, itv)
    return fwd.acts[-1], sym, fwd.ranges[-1]
