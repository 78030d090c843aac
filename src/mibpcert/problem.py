"""A certification problem: data, model, training recipe, threat model and initial parameters.

This is the one description every method works from. Construction validates that the pieces fit
together (input size, loss vs. task, threat model vs. data) and raises specific errors otherwise.

Fine-tuning (:func:`fine_tune`, :func:`freeze_layers`): with a frozen prefix (a fixed feature map,
:mod:`mibpcert.model.prefix`) ``data`` holds the *features* the trained layers see, ``raw_data``
the inputs the attacker moves, and the threat model is checked against the raw inputs; the
per-point boxes of the features come from :meth:`Problem.input_box` (the prefix's sound image of
the raw boxes) and random attacks are drawn on the raw inputs and mapped through the prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from mibpcert.data.datasets import Dataset
from mibpcert.domains.interval import Interval
from mibpcert.errors import ModelError
from mibpcert.model.losses import check_loss, encode_targets
from mibpcert.model.network import Architecture
from mibpcert.model.prefix import FrozenPrefix
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
    #: a frozen feature-extractor prefix in front of ``arch`` (``None``: none); with it, ``data``
    #: holds the prefix's features and ``raw_data`` the raw inputs (build with :func:`fine_tune`)
    prefix: FrozenPrefix | None = None
    raw_data: Dataset | None = None

    def __post_init__(self) -> None:
        if (self.prefix is None) != (self.raw_data is None):
            raise ModelError(
                "a frozen prefix needs its raw dataset and vice versa; build the problem with "
                "mibpcert.problem.fine_tune(...)."
            )
        if self.arch.n_inputs != self.data.n_features:
            hidden = "-".join(str(s) for s in self.arch.sizes[1:])
            what = (
                f"dataset {self.data.name!r} has"
                if self.prefix is None
                else f"the frozen prefix ({self.prefix.source}) gives"
            )
            raise ModelError(
                f"model {self.arch} has {self.arch.n_inputs} inputs but {what} "
                f"{self.data.n_features} features; use '{self.data.n_features}-{hidden}'."
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
        object.__setattr__(self, "threat", self.threat.validate(self.raw_data or self.data))

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

    @property
    def raw(self) -> Dataset:
        """The inputs the attacker moves: ``raw_data`` with a prefix, else ``data``."""
        return self.data if self.raw_data is None else self.raw_data

    def input_box(self) -> Interval:
        """Per-point hull of the training inputs (of the trained layers) the attacker may
        produce (n, d); with a prefix, the prefix's image of the raw boxes."""
        return self._input_box

    @cached_property
    def _input_box(self) -> Interval:
        box = self.threat.feature_box(self.raw.X_train)
        if self.prefix is None:
            return Interval(*box)
        return self.prefix.image(*box, features=self.data.X_train)

    def test_box(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-point box of the test inputs (of the trained layers) under ``test_eps``
        (``None`` when it is 0); with a prefix, the prefix's image of the raw boxes."""
        if self.threat.test_eps == 0:
            return None
        box = self.threat.test_box(self.raw.X_test)
        if self.prefix is None:
            return box
        img = self.prefix.image(*box, features=self.data.X_test)
        return img.lo, img.hi

    def param_names(self) -> list[str]:
        """Names of the trained parameters; with ``--freeze N`` the layers are numbered as in
        the whole model (the first trained layer is ``N + 1``)."""
        names = self.arch.param_names()
        shift = self.frozen_layers
        if not shift:
            return names
        return [re.sub(r"^([Wb])(\d+)", lambda m: f"{m[1]}{int(m[2]) + shift}", n) for n in names]

    @property
    def frozen_layers(self) -> int:
        """Number of the model's own affine layers frozen by ``--freeze`` (0 without)."""
        return 0 if self.prefix is None else self.prefix.model_layers

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
        (:meth:`~mibpcert.threat.ThreatModel.sample_schedule`); with a prefix, drawn on the raw
        inputs and mapped to features."""
        d = self.raw
        schedule = self.threat.sample_schedule(
            d.X_train, d.y_train, rng, self.batches(), d.task, d.n_classes, vertex_prob
        )
        if self.prefix is None:
            return schedule
        mapped: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # one set for all steps stays one
        for X, y in schedule:
            if id(X) not in mapped:
                mapped[id(X)] = (self._features(X), y)
        return [mapped[id(X)] for X, _ in schedule]

    def sample_poisoned(
        self,
        rng: np.random.Generator,
        vertex_prob: float = 0.5,
        within: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One random poisoned training set (:meth:`~mibpcert.threat.ThreatModel.sample`) as
        the trained layers see it (features, with a prefix); ``within``: only these points
        change."""
        d = self.raw
        X, y = self.threat.sample(
            d.X_train, d.y_train, rng, d.task, d.n_classes, vertex_prob, within=within
        )
        return self._features(X), y

    def _features(self, X: np.ndarray) -> np.ndarray:
        if self.prefix is None:
            return X
        out = self.data.X_train.copy()
        moved = np.any(X != self.raw.X_train, axis=1)
        if moved.any():
            out[moved] = self.prefix.forward(X[moved])
        return out


def fine_tune(
    raw_data: Dataset,
    prefix: FrozenPrefix,
    arch: Architecture,
    recipe: TrainingRecipe,
    threat: ThreatModel,
    theta0: np.ndarray,
) -> Problem:
    """The problem of training ``arch`` on the features ``prefix`` gives of ``raw_data``
    (train, validation and test inputs), the attacker moving the raw inputs."""
    if prefix.n_inputs != raw_data.n_features:
        raise ModelError(
            f"the frozen prefix takes {prefix.n_inputs} inputs but dataset {raw_data.name!r} "
            f"has {raw_data.n_features} features."
        )
    feats = replace(
        raw_data,
        name=f"{raw_data.name} (features of {prefix.source})",
        X_train=prefix.forward(raw_data.X_train),
        X_test=prefix.forward(raw_data.X_test),
        X_val=None if raw_data.X_val is None else prefix.forward(raw_data.X_val),
        feature_names=tuple(f"phi{j}" for j in range(prefix.n_outputs)),
    )
    if not (np.all(np.isfinite(feats.X_train)) and np.all(np.isfinite(feats.X_test))):
        raise ModelError("the frozen prefix gives NaN or inf features on the data.")
    return Problem(feats, arch, recipe, threat, theta0, prefix=prefix, raw_data=raw_data)


def freeze_layers(problem: Problem, n_frozen: int) -> Problem:
    """``problem`` with the first ``n_frozen`` affine layers of its model fixed at their initial
    values: the rest is trained on their features (after any prefix the problem already has)."""
    arch = problem.arch
    prefix = FrozenPrefix.from_arch(arch, problem.theta0, n_frozen)
    offset = arch.slices()[n_frozen][0].start  # where the first trained layer's W begins
    suffix = Architecture(arch.sizes[n_frozen:])
    if problem.prefix is not None:
        prefix = problem.prefix.then(prefix)
    return fine_tune(
        problem.raw, prefix, suffix, problem.recipe, problem.threat, problem.theta0[offset:]
    )
