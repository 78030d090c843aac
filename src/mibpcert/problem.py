"""A certification problem: data, model, training recipe, threat model and initial parameters.

This is the one description every method works from. Construction validates that the pieces fit
together (input size, loss vs. task, threat model vs. data) and raises specific errors otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mibpcert.data.datasets import Dataset
from mibpcert.domains.interval import Interval
from mibpcert.errors import ModelError
from mibpcert.model.losses import check_loss, encode_targets
from mibpcert.model.network import Architecture
from mibpcert.model.recipe import TrainingRecipe
from mibpcert.model.trainer import Trajectory, train
from mibpcert.threat.labels import LabelSet
from mibpcert.threat.model import ThreatModel


@dataclass(frozen=True)
class Problem:
    """Everything a method needs to bound training under attack."""

    data: Dataset
    arch: Architecture
    recipe: TrainingRecipe
    threat: ThreatModel
    theta0: np.ndarray

    def __post_init__(self) -> None:
        if self.arch.n_inputs != self.data.n_features:
            hidden = "-".join(str(s) for s in self.arch.sizes[1:])
            raise ModelError(
                f"model {self.arch} has {self.arch.n_inputs} inputs but dataset "
                f"{self.data.name!r} has {self.data.n_features} features; use "
                f"'{self.data.n_features}-{hidden}'."
            )
        check_loss(
            self.recipe.loss,
            self.arch.n_outputs,
            self.data.task,
            self.data.n_classes,
            self.data.n_targets,
        )
        theta0 = np.asarray(self.theta0, dtype=np.float64)
        if theta0.shape != (self.arch.n_params,):
            raise ModelError(
                f"initial parameters have shape {theta0.shape}, model {self.arch} needs "
                f"({self.arch.n_params},)."
            )
        if not np.all(np.isfinite(theta0)):
            raise ModelError("initial parameters contain NaN or inf.")
        object.__setattr__(self, "theta0", theta0)
        object.__setattr__(self, "threat", self.threat.validate(self.data))

    def with_threat(self, threat: ThreatModel) -> Problem:
        return replace(self, threat=threat)

    @property
    def n_steps(self) -> int:
        return self.recipe.n_steps(self.data.n_train)

    def batches(self) -> list[np.ndarray]:
        return self.recipe.batches(self.data.n_train)

    def targets(self) -> np.ndarray:
        """Clean training targets encoded for the loss."""
        return encode_targets(self.recipe.loss, self.data.y_train, self.data.task)

    def input_box(self) -> Interval:
        """Per-point hull of the training inputs the attacker may produce (n, d)."""
        return Interval(*self.threat.feature_box(self.data.X_train))

    def label_set(self) -> LabelSet:
        """Per-point labels the attacker may produce (every point may be a changed one)."""
        if self.data.task == "regression":
            lo, hi = self.threat.target_box(self.data.y_train)
            return LabelSet(targets=Interval(lo.reshape(len(lo), -1), hi.reshape(len(hi), -1)))
        return LabelSet(mask=self.threat.label_mask(self.data.y_train, int(self.data.n_classes)))

    def clean_label_set(self) -> LabelSet:
        """The clean training labels as a (degenerate) label set."""
        return replace(self, threat=ThreatModel()).label_set()

    def train_nominal(self) -> Trajectory:
        """Ordinary training on the clean data."""
        return train(
            self.arch,
            self.recipe,
            self.data.X_train,
            self.data.y_train,
            self.theta0,
            self.data.task,
        )

    def train_poisoned(self, X: np.ndarray, y: np.ndarray) -> Trajectory:
        """Ordinary training on a poisoned copy of the training set (same order, same init)."""
        return train(self.arch, self.recipe, X, y, self.theta0, self.data.task)

    def train_removed(self, removed: np.ndarray) -> Trajectory:
        """Ordinary training with the points ``removed`` deleted (same schedule, same init)."""
        X, y = self.data.X_train, self.data.y_train
        return train(self.arch, self.recipe, X, y, self.theta0, self.data.task, removed=removed)

    def train_schedule(self, schedule: list[tuple[np.ndarray, np.ndarray]]) -> Trajectory:
        """Ordinary training with a poisoned training set per step (a per-batch attack)."""
        X, y = self.data.X_train, self.data.y_train
        return train(self.arch, self.recipe, X, y, self.theta0, self.data.task, schedule)

    def sample_attack(
        self, rng: np.random.Generator, vertex_prob: float = 0.5
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """A random attack inside the threat model, one training set per step
        (:meth:`~mibpcert.threat.ThreatModel.sample_schedule`)."""
        d = self.data
        return self.threat.sample_schedule(
            d.X_train, d.y_train, rng, self.batches(), d.task, d.n_classes, vertex_prob
        )
