"""The ordinary trainer: plain float64 SGD in numpy, composed from the numpy versions of
:mod:`mibpcert.ops` (affine layer, ReLU, loss, clipping, SGD update).

It is the reference every method is checked against: the sampling soundness tests train on
poisoned data with :func:`train` and check that the trajectory stays inside the certified boxes,
and attacks are replayed with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.model.network import Architecture
from mibpcert.model.recipe import TrainingRecipe
from mibpcert.ops import affine, relu, sgd
from mibpcert.ops import clip as ops_clip
from mibpcert.ops import loss as loss_ops


@dataclass(frozen=True)
class Trajectory:
    """Parameters before every step and after the last: ``thetas[t]`` for t = 0..T; with
    momentum also the velocity after every step (``velocities[0] = 0``)."""

    thetas: np.ndarray  # (T + 1, m)
    losses: np.ndarray  # (T,) mean training loss of the batch at each step, before the update
    velocities: np.ndarray | None = None  # (T + 1, m) with momentum, else None

    @property
    def final(self) -> np.ndarray:
        return self.thetas[-1]


def _forward(layers: list, X: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pre-activations and activations of every layer (``acts[0] = X``, ``acts[-1]`` = output)."""
    acts, pre, a = [X], [], X
    for k, (W, b) in enumerate(layers):
        z = affine.forward(a, W, b)
        pre.append(z)
        a = relu.forward(z) if k < len(layers) - 1 else z
        acts.append(a)
    return pre, acts


def _backward(layers: list, pre: list, acts: list, g: np.ndarray, weight_grad) -> list:
    """Back-propagate the output gradient ``g``; ``weight_grad(g, a)`` reduces each layer's
    ``(dL/dW, dL/db)`` (batch mean or per sample). Returned in layer order."""
    grads = []
    for k in range(len(layers) - 1, -1, -1):
        W, _ = layers[k]
        grads.append(weight_grad(g, acts[k]))
        if k > 0:
            g = relu.backward(affine.input_grad(g, W), pre[k - 1])
    grads.reverse()
    return grads


def batch_gradient(
    arch: Architecture,
    theta: np.ndarray,
    X: np.ndarray,
    t: np.ndarray,
    loss: str,
    clip: float | None = None,
) -> tuple[np.ndarray, float]:
    """Mean-over-batch gradient of the loss at ``theta`` and the mean loss value.

    ``t`` are targets encoded with :func:`mibpcert.ops.loss.encode_targets`. ReLU'(0) = 0.
    With ``clip``, each sample's gradient is clipped elementwise to [-clip, clip] first.
    """
    if clip is not None:
        per, value = per_sample_gradients(arch, theta, X, t, loss)
        return ops_clip.forward(per, clip).mean(axis=0), value
    layers = arch.unflatten(theta)
    pre, acts = _forward(layers, X)
    n = len(X)
    g = loss_ops.grad(loss, acts[-1], t)  # (n, out)
    grads = _backward(layers, pre, acts, g, lambda g, a: affine.mean_weight_grad(g, a, n))
    return arch.flatten(grads), float(np.mean(loss_ops.value(loss, acts[-1], t)))


def per_sample_gradients(
    arch: Architecture, theta: np.ndarray, X: np.ndarray, t: np.ndarray, loss: str
) -> tuple[np.ndarray, float]:
    """Each sample's loss gradient (n, m) at ``theta`` and the mean loss value."""
    layers = arch.unflatten(theta)
    pre, acts = _forward(layers, X)
    g = loss_ops.grad(loss, acts[-1], t)
    grads = _backward(layers, pre, acts, g, affine.sample_weight_grad)
    parts = [part for pair in grads for part in pair]  # W1, b1, W2, b2, ...
    return np.concatenate(parts, axis=1), float(np.mean(loss_ops.value(loss, acts[-1], t)))


def train(
    arch: Architecture,
    recipe: TrainingRecipe,
    X: np.ndarray,
    y: np.ndarray,
    theta0: np.ndarray,
    task: str = "classification",
    schedule: list[tuple[np.ndarray, np.ndarray]] | None = None,
    removed: np.ndarray | None = None,
) -> Trajectory:
    """Train with SGD from ``theta0`` on ``(X, y)`` following ``recipe``; return the trajectory.

    ``y`` holds class ids (classification) or targets (regression); the loss encodes them.
    ``schedule``: a training set ``(X_t, y_t)`` per step (a per-batch attack that poisons every
    step afresh); step t then reads its batch from ``X_t, y_t``.
    """
    X = np.asarray(X, dtype=np.float64)
    t_all = loss_ops.encode_targets(recipe.loss, y, task)
    theta = np.array(theta0, dtype=np.float64, copy=True)
    batches = recipe.batches(len(X))
    if schedule is not None and len(schedule) != len(batches):
        raise ValueError(f"schedule has {len(schedule)} training sets for {len(batches)} steps")
    thetas = np.empty((len(batches) + 1, theta.size))
    thetas[0] = theta
    losses = np.empty(len(batches))
    v = None
    vels = np.zeros_like(thetas) if recipe.has_momentum else None
    clip, args = recipe.clipping(arch), recipe.sgd_args()
    keep = np.ones(len(X), dtype=bool)
    if removed is not None:
        keep[np.asarray(removed, dtype=np.int64)] = False
    for step, idx in enumerate(batches):
        idx = idx[keep[idx]]
        Xs, ts = X, t_all
        if schedule is not None:
            Xs = np.asarray(schedule[step][0], dtype=np.float64)
            ts = loss_ops.encode_targets(recipe.loss, schedule[step][1], task)
        if len(idx):
            g, losses[step] = batch_gradient(arch, theta, Xs[idx], ts[idx], recipe.loss, clip)
        else:
            g, losses[step] = np.zeros_like(theta), np.nan
        theta, v = sgd.step(theta, v, g, recipe.lr_at(step), **args)
        thetas[step + 1] = theta
        if vels is not None:
            vels[step + 1] = v
    return Trajectory(thetas, losses, vels)
