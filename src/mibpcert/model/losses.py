"""Losses of the ordinary trainer: value and gradient with respect to the network output.

Conventions (shared by every method; the interval versions live in :mod:`mibpcert.bounds.ops`):

* ``hinge``: binary, one output o, label y in {-1, +1} (class 1 -> +1, class 0 -> -1);
  loss max(0, 1 - y o); gradient -y if y o < 1, else 0. With C outputs (one per class) the
  one-vs-rest hinge: output k has target y_k = +1 for the label's class and -1 otherwise, loss
  sum_k max(0, 1 - y_k o_k), gradient -y_k [y_k o_k < 1]. Targets stay encoded as 2 c - 1 for
  class c (one column); the C-output loss recovers c from them.
* ``bce``: binary, one logit o, target c in {0, 1}; loss softplus(o) - c o; gradient sigmoid(o) - c.
* ``ce``: C >= 2 logits, class label c; loss logsumexp(o) - o_c; gradient softmax(o) - e_c.
* ``mse``: q outputs and targets t; loss mean_j (o_j - t_j)^2; gradient 2 (o - t) / q. For a
  binary classification set with one output the targets are y in {-1, +1}.

The training loss is the mean over the batch, so the batch gradient is the mean of the per-sample
gradients.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_softmax, softmax

from mibpcert.errors import ModelError

LOSSES = ("hinge", "mse", "bce", "ce")


def check_loss(loss: str, n_outputs: int, task: str, n_classes: int | None, n_targets: int = 1):
    """Raise :class:`ModelError` when ``loss`` does not fit the model output and the task."""
    if loss not in LOSSES:
        raise ModelError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}.")
    if task == "regression":
        if loss != "mse":
            raise ModelError(f"regression data needs loss 'mse', got {loss!r}.")
        if n_outputs != n_targets:
            raise ModelError(
                f"the model has {n_outputs} output(s) but the regression data has {n_targets} "
                f"target(s); make the last layer size {n_targets}."
            )
        return
    if loss == "hinge" and n_outputs > 1:
        if n_outputs != n_classes:
            raise ModelError(
                f"one-vs-rest hinge needs one output per class: the data has {n_classes} "
                f"classes, the model has {n_outputs} outputs."
            )
        return
    if loss in ("hinge", "bce", "mse"):
        if n_classes != 2:
            raise ModelError(
                f"loss {loss!r} is binary but the data has {n_classes} classes; use loss 'ce' "
                f"(or the one-vs-rest 'hinge') with {n_classes} outputs."
            )
        if n_outputs != 1:
            raise ModelError(
                f"loss {loss!r} needs a model with 1 output (sign = class), got {n_outputs}; "
                "make the last layer size 1."
            )
    elif n_outputs != n_classes:
        raise ModelError(
            f"loss 'ce' needs one output per class: the data has {n_classes} classes, the model "
            f"has {n_outputs} outputs."
        )


def encode_targets(loss: str, y: np.ndarray, task: str) -> np.ndarray:
    """Numeric targets used by the loss: (n, 1) signs/0-1 values, (n, q) regression targets, or
    (n,) integer classes for ``ce``."""
    if task == "regression":
        y = np.asarray(y, dtype=np.float64)
        return y.reshape(len(y), -1)
    y = np.asarray(y)
    if loss in ("hinge", "mse"):
        return (2.0 * y - 1.0).reshape(-1, 1)
    if loss == "bce":
        return y.astype(np.float64).reshape(-1, 1)
    return y.astype(np.int64)


def hinge_signs(out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(n, C) targets +-1 of the hinge loss: ``t`` itself for one output, else one-vs-rest
    signs of the classes c = (t + 1) / 2 encoded in ``t``."""
    if out.shape[1] == 1:
        return t[:, :1]
    cls = np.rint((t[:, 0] + 1.0) / 2.0).astype(np.int64)
    return np.where(np.arange(out.shape[1])[None, :] == cls[:, None], 1.0, -1.0)


def loss_values(loss: str, out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample loss values for outputs ``out`` (n, k) and encoded targets ``t``."""
    if loss == "hinge":
        return np.maximum(0.0, 1.0 - hinge_signs(out, t) * out).sum(axis=1)
    if loss == "bce":
        return np.logaddexp(0.0, out[:, 0]) - t[:, 0] * out[:, 0]
    if loss == "ce":
        return -log_softmax(out, axis=1)[np.arange(len(t)), t]
    if loss == "mse":
        return np.mean((out - t) ** 2, axis=1)
    raise ModelError(f"unknown loss {loss!r}.")


def loss_grad(loss: str, out: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-sample gradient of the loss with respect to the output, shape (n, k)."""
    if loss == "hinge":
        y = hinge_signs(out, t)
        return np.where(y * out < 1.0, -y, 0.0)
    if loss == "bce":
        return expit(out) - t
    if loss == "ce":
        g = softmax(out, axis=1)
        g[np.arange(len(t)), t] -= 1.0
        return g
    if loss == "mse":
        return 2.0 * (out - t) / out.shape[1]
    raise ModelError(f"unknown loss {loss!r}.")


def predict_classes(out: np.ndarray) -> np.ndarray:
    """Class predictions: sign for one output (o > 0 -> class 1), argmax otherwise."""
    if out.shape[1] == 1:
        return (out[:, 0] > 0).astype(np.int64)
    return np.argmax(out, axis=1).astype(np.int64)
