"""The ordinary trainer: plain float64 SGD in numpy.

It is the reference every method is checked against: the sampling soundness tests train on
poisoned data with :func:`train` and check that the trajectory stays inside the certified boxes,
and attacks are replayed with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.model.losses import encode_targets, loss_grad, loss_values
from mibpcert.model.network import Architecture
from mibpcert.model.recipe import TrainingRecipe


@dataclass(frozen=True)
class Trajectory:
    """Parameters before every step and after the last: ``thetas[t]`` for t = 0..T."""

    thetas: np.ndarray  # (T + 1, m)
    losses: np.ndarray  # (T,) mean training loss of the batch at each step, before the update

    @property
    def final(self) -> np.ndarray:
        return self.thetas[-1]


def batch_gradient(
    arch: Architecture,
    theta: np.ndarray,
    X: np.ndarray,
    t: np.ndarray,
    loss: str,
    clip: float | None = None,
) -> tuple[np.ndarray, float]:
    """Mean-over-batch gradient of the loss at ``theta`` and the mean loss value.

    ``t`` are targets encoded with :func:`mibpcert.model.losses.encode_targets`. ReLU'(0) = 0.
    With ``clip``, each sample's gradient is clipped elementwise to [-clip, clip] first.
    """
    if clip is not None:
        per, value = per_sample_gradients(arch, theta, X, t, loss)
        return np.clip(per, -clip, clip).mean(axis=0), value
    layers = arch.unflatten(theta)
    acts = [X]
    pre = []
    a = X
    for k, (W, b) in enumerate(layers):
        z = a @ W.T + b
        pre.append(z)
        a = np.maximum(z, 0.0) if k < len(layers) - 1 else z
        acts.append(a)
    out = acts[-1]
    n = len(X)
    g = loss_grad(loss, out, t)  # (n, out)
    grads = []
    for k in range(len(layers) - 1, -1, -1):
        W, _ = layers[k]
        grads.append((g.T @ acts[k] / n, g.sum(axis=0) / n))
        if k > 0:
            g = (g @ W) * (pre[k - 1] > 0)
    grads.reverse()
    return arch.flatten(grads), float(np.mean(loss_values(loss, out, t)))


def per_sample_gradients(
    arch: Architecture, theta: np.ndarray, X: np.ndarray, t: np.ndarray, loss: str
) -> tuple[np.ndarray, float]:
    """Each sample's loss gradient (n, m) at ``theta`` and the mean loss value."""
    layers = arch.unflatten(theta)
    acts, pre, a = [X], [], X
    for k, (W, b) in enumerate(layers):
        z = a @ W.T + b
        pre.append(z)
        a = np.maximum(z, 0.0) if k < len(layers) - 1 else z
        acts.append(a)
    n = len(X)
    g = loss_grad(loss, acts[-1], t)
    parts = []
    for k in range(len(layers) - 1, -1, -1):
        W, _ = layers[k]
        parts.append((g[:, :, None] * acts[k][:, None, :]).reshape(n, -1))
        parts.append(g)
        if k > 0:
            g = (g @ W) * (pre[k - 1] > 0)
    # parts hold (b_L, W_L, ..., b_1, W_1) reversed pairs: restore parameter order W1, b1, ...
    ordered = []
    for k in range(len(layers)):
        ordered += [parts[2 * (len(layers) - 1 - k)], parts[2 * (len(layers) - 1 - k) + 1]]
    return np.concatenate(ordered, axis=1), float(np.mean(loss_values(loss, acts[-1], t)))


def train(
    arch: Architecture,
    recipe: TrainingRecipe,
    X: np.ndarray,
    y: np.ndarray,
    theta0: np.ndarray,
    task: str = "classification",
) -> Trajectory:
    """Train with SGD from ``theta0`` on ``(X, y)`` following ``recipe``; return the trajectory.

    ``y`` holds class ids (classification) or targets (regression); the loss encodes them.
    """
    X = np.asarray(X, dtype=np.float64)
    t_all = encode_targets(recipe.loss, y, task)
    theta = np.array(theta0, dtype=np.float64, copy=True)
    batches = recipe.batches(len(X))
    thetas = np.empty((len(batches) + 1, theta.size))
    thetas[0] = theta
    losses = np.empty(len(batches))
    for step, idx in enumerate(batches):
        g, losses[step] = batch_gradient(arch, theta, X[idx], t_all[idx], recipe.loss, recipe.clip)
        theta = theta - recipe.lr_at(step) * g
        thetas[step + 1] = theta
    return Trajectory(thetas, losses)
