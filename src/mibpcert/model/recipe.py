"""Training recipe: loss, SGD learning rate and schedule, epochs, batch order."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mibpcert.errors import ModelError
from mibpcert.ops.loss import LOSSES

LR_SCHEDULES = ("constant", "inverse", "exponential")


@dataclass(frozen=True)
class TrainingRecipe:
    """How the ordinary trainer (and every method) trains.

    Attributes:
        loss: one of ``hinge``, ``mse``, ``bce``, ``ce``.
        lr: SGD learning rate (step 0).
        epochs: passes over the training set.
        batch_size: ``None`` (or >= n) for full batch, one step per epoch.
        shuffle: reshuffle the batch order every epoch (seeded); ignored for full batch.
        seed: seed of the batch order. The order is fixed before training and does not depend
            on the data, so the attacker changes points but never the order.
        lr_schedule: ``constant``; ``inverse``: lr / (1 + lr_decay * t);
            ``exponential``: lr * lr_decay ** t, with t the step index.
        lr_decay: decay parameter of the schedule.
        lr_min: floor for the learning rate.
        clip: per-sample gradient clipping: every coordinate of each sample's gradient is
            clipped to [-clip, clip] before averaging (``None``: no clipping).
        weight_decay: L2 regularisation ``wd/2 |theta|^2`` (PyTorch SGD's ``weight_decay``):
            ``theta' = (1 - lr wd) theta - lr g``.
        l1: L1 regularisation ``l1 |theta|_1``: ``- lr l1 sign(theta)`` more per step.
        clip_norm: per-sample l2-norm clipping: each sample's gradient is scaled by
            ``min(1, clip_norm / |g|)`` (after elementwise ``clip``, if both are set).
        clip_scope: ``layer`` (the norm of each parameter tensor, W1, b1, ...; as the AGT
            library) or ``global`` (the norm over all parameters).
        momentum: SGD momentum ``mu`` (PyTorch's, dampening 0): the velocity
            ``v' = mu v + g + wd theta + l1 sign(theta)`` is state, ``theta' = theta - lr v'``
            (:mod:`mibpcert.ops.sgd`).
        nesterov: Nesterov momentum, ``theta' = theta - lr (d + mu v')`` (needs momentum > 0).
    """

    loss: str = "hinge"
    lr: float = 0.1
    epochs: int = 10
    batch_size: int | None = None
    shuffle: bool = True
    seed: int = 0
    lr_schedule: str = "constant"
    lr_decay: float = 0.0
    lr_min: float = 0.0
    clip: float | None = None
    weight_decay: float = 0.0
    l1: float = 0.0
    clip_norm: float | None = None
    clip_scope: str = "layer"
    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ModelError(f"unknown loss {self.loss!r}; use one of {', '.join(LOSSES)}.")
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise ModelError(f"learning rate must be a positive finite number, got {self.lr}.")
        if not isinstance(self.epochs, (int, np.integer)) or self.epochs < 1:
            raise ModelError(f"epochs must be a positive integer, got {self.epochs!r}.")
        if self.batch_size is not None and (
            not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1
        ):
            raise ModelError(
                f"batch_size must be a positive integer or None (full batch), got "
                f"{self.batch_size!r}."
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ModelError(
                f"unknown lr_schedule {self.lr_schedule!r}; use one of {', '.join(LR_SCHEDULES)}."
            )
        if not np.isfinite(self.lr_decay) or self.lr_decay < 0:
            raise ModelError(f"lr_decay must be >= 0, got {self.lr_decay}.")
        if self.lr_schedule == "exponential" and not 0 < self.lr_decay <= 1:
            raise ModelError(
                f"exponential lr schedule needs 0 < lr_decay <= 1, got {self.lr_decay}."
            )
        if not np.isfinite(self.lr_min) or self.lr_min < 0:
            raise ModelError(f"lr_min must be >= 0, got {self.lr_min}.")
        if self.clip is not None and not (np.isfinite(self.clip) and self.clip > 0):
            raise ModelError(f"clip must be a positive finite number or None, got {self.clip}.")
        if self.clip_norm is not None and not (
            np.isfinite(self.clip_norm) and self.clip_norm > 0
        ):
            raise ModelError(
                f"clip_norm must be a positive finite number or None, got {self.clip_norm}."
            )
        if self.clip_scope not in ("layer", "global"):
            raise ModelError(
                f"unknown clip_scope {self.clip_scope!r}; use 'layer' (per parameter tensor) or "
                "'global'."
            )
        if not (np.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise ModelError(
                f"momentum must be a number in [0, 1), got {self.momentum}; 0.9 is usual."
            )
        if self.nesterov and self.momentum == 0:
            raise ModelError("nesterov needs momentum > 0 (e.g. --momentum 0.9 --nesterov).")
        for name in ("weight_decay", "l1"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ModelError(f"{name} must be a finite number >= 0, got {v}.")

    @property
    def has_momentum(self) -> bool:
        """Whether the optimiser carries a velocity (momentum > 0)."""
        return self.momentum > 0

    def sgd_args(self) -> dict:
        """The keyword arguments of :func:`mibpcert.ops.sgd.step` (after ``lr``)."""
        return {
            "wd": self.weight_decay,
            "l1": self.l1,
            "mu": self.momentum,
            "nesterov": self.nesterov,
        }

    @property
    def clips(self) -> bool:
        """Whether per-sample gradients are clipped (elementwise or by their norm)."""
        return self.clip is not None or self.clip_norm is not None

    def clipping(self, arch):
        """What the gradient functions take as ``clip``: ``None``, the elementwise bound, or a
        :class:`~mibpcert.ops.clip.Clipping` with the norm groups of ``arch``."""
        if self.clip_norm is None:
            return self.clip
        from mibpcert.ops.clip import Clipping

        if self.clip_scope == "global":
            groups = ((0, arch.n_params),)
        else:
            groups = tuple(
                (s.start, s.stop) for pair in arch.slices() for s in pair
            )
        return Clipping(self.clip, float(self.clip_norm), groups)

    def batches(self, n: int) -> list[np.ndarray]:
        """The fixed batch schedule: one index array per step, ``epochs * ceil(n / b)`` steps."""
        b = n if self.batch_size is None else min(int(self.batch_size), n)
        if b >= n:
            return [np.arange(n) for _ in range(self.epochs)]
        rng = np.random.default_rng(self.seed)
        steps = []
        for _ in range(self.epochs):
            order = rng.permutation(n) if self.shuffle else np.arange(n)
            steps += [np.sort(order[s : s + b]) for s in range(0, n, b)]
        return steps

    def n_steps(self, n: int) -> int:
        b = n if self.batch_size is None else min(int(self.batch_size), n)
        return self.epochs * (-(-n // b))

    def steps_per_epoch(self, n: int) -> int:
        return self.n_steps(n) // self.epochs

    def lr_at(self, t: int) -> float:
        """Learning rate of step ``t`` (0-based)."""
        if self.lr_schedule == "inverse":
            lr = self.lr / (1.0 + self.lr_decay * t)
        elif self.lr_schedule == "exponential":
            lr = self.lr * self.lr_decay**t
        else:
            lr = self.lr
        return float(max(lr, self.lr_min))

    def to_dict(self) -> dict:
        return asdict(self)
