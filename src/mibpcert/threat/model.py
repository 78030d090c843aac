"""Threat models: what the attacker may change in the training data (and at test time).

The attacker of :class:`ThreatModel` may

* move the continuous features of training points within an l-infinity ball of radius ``eps``,
  on every point, on a given subset ``points``, or on any ``k`` of them;
* set a discrete feature (:class:`DiscreteFeature`) to another value of its finite domain on the
  same points (the l-infinity radius does not apply to discrete features);
* change the labels of any ``label_k`` points: binary flip, any class, or one target class;
  for regression, shift the targets of any ``label_k`` points by at most ``label_eps``;
* optionally keep every feature inside ``feature_bounds`` (e.g. [0, 1]);
* optionally also perturb each test input within ``test_eps`` (joint poisoning + evasion).

Feature and label budgets are independent by default: up to ``k`` points get new features and up
to ``label_k`` (possibly other) points get new labels. With ``paired=True`` the attacker picks at
most ``max(k, label_k)`` points and may change features and labels of those points only.

Removal (``remove_k``): the attacker deletes any ``remove_k`` training points of the scope
(the trusted points stay); each batch of the fixed schedule then averages over its kept points,
an emptied batch has gradient 0. Removal is a threat model of its own here (not combined with
feature or label changes).

Budget scope: with ``budget_scope="global"`` (the default) one poisoned training set is used at
every step, and ``k``/``label_k`` count points of the whole set. With ``"batch"`` (the AGT
library's threat model) they count points of each batch, and the attacker may poison every
step's batch afresh: a stronger attacker whenever there is more than one step. Methods that
bound each step from a box (interval, agt, mibp with boxes) bound both; methods that tie the
steps to one attack (exact, affine parameter sets) need ``"global"``.

``eps = inf`` is the unbounded adversary: the chosen ``k`` points' features may take any value
(inside ``feature_bounds`` if given). Only methods with gradient clipping give finite bounds then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mibpcert.data.datasets import Dataset
from mibpcert.errors import ThreatModelError

LabelMode = Literal["flip", "any"] | int
BUDGET_SCOPES = ("global", "batch")
UNBOUNDED_SAMPLE_RADIUS = 100.0
CHANGE_TOL = 1e-9
"""Attack values closer than this to the clean value count as "unchanged" (solver round-off)."""
"""Random attacks of an unbounded (eps = inf) adversary move features at most this far."""


@dataclass(frozen=True)
class DiscreteFeature:
    """A feature that takes values of a finite domain.

    ``mode="any"``: an attacked point may set the feature to any of ``values`` (or keep it) --
    e.g. a missing-value code. ``mode="shift"``: ``values`` are ordered levels, the clean value must
    be one of them, and it may move by at most ``max_shift`` levels in ``direction``
    (``"up"``, ``"down"`` or ``"both"``) -- e.g. a one-level shift of an ordinal answer.
    """

    feature: int
    values: tuple[float, ...]
    mode: Literal["any", "shift"] = "any"
    max_shift: int = 1
    direction: Literal["up", "down", "both"] = "both"

    def allowed(self, clean_value: float) -> np.ndarray:
        """Values the attacker may give this feature of a point whose clean value is given."""
        vals = np.asarray(self.values, dtype=np.float64)
        if self.mode == "any":
            return np.unique(np.append(vals, clean_value))
        levels = np.sort(vals)
        pos = int(np.flatnonzero(levels == clean_value)[0])
        lo = pos - self.max_shift if self.direction in ("down", "both") else pos
        hi = pos + self.max_shift if self.direction in ("up", "both") else pos
        return levels[max(lo, 0) : min(hi, len(levels) - 1) + 1]


@dataclass(frozen=True)
class ThreatModel:
    """What the attacker may do; see the module docstring. All budgets default to "nothing"."""

    eps: float = 0.0
    points: tuple[int, ...] | None = None
    k: int | None = None
    label_k: int = 0
    label_mode: LabelMode = "flip"
    label_eps: float = 0.0
    discrete: tuple[DiscreteFeature, ...] = field(default_factory=tuple)
    feature_bounds: tuple | None = None
    test_eps: float = 0.0
    paired: bool = False
    budget_scope: str = "global"
    remove_k: int = 0

    @property
    def removes(self) -> bool:
        """Whether the attacker deletes training points."""
        return self.remove_k > 0

    @property
    def per_batch(self) -> bool:
        """Whether budgets count per batch and every step may be poisoned afresh."""
        return self.budget_scope == "batch"

    # ------------------------------------------------------------------ validation
    def validate(self, data: Dataset) -> ThreatModel:
        """Check the threat model against ``data``; return it with target-class names resolved.

        Raises :class:`ThreatModelError` with a specific message on the first problem found.
        """
        n, d = data.X_train.shape
        if self.budget_scope not in BUDGET_SCOPES:
            raise ThreatModelError(
                f"unknown budget_scope {self.budget_scope!r}; use 'global' (k and label_k per "
                "training set, one poisoned set for all steps) or 'batch' (per batch, every "
                "step poisoned afresh)."
            )
        for name in ("eps", "test_eps", "label_eps"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating, np.integer)) or np.isnan(v):
                raise ThreatModelError(f"{name} must be a number, got {v!r}.")
            if v < 0:
                raise ThreatModelError(f"{name} must be >= 0, got {v}.")
            if np.isinf(v) and name != "eps":
                raise ThreatModelError(f"{name} must be finite, got {v}.")
        if np.isinf(self.eps) and self.k is None and self.points is None:
            raise ThreatModelError(
                "eps = inf (unbounded replacement) needs a budget: set k (any k points) or "
                "points (a subset)."
            )
        if self.paired and self.k is None:
            raise ThreatModelError(
                "paired = true needs k (the number of points whose features may change)."
            )
        if self.points is not None:
            pts = np.asarray(self.points)
            if pts.dtype.kind not in "iu" and pts.size:
                raise ThreatModelError(f"points must be integer indices, got {self.points!r}.")
            if pts.size == 0:
                raise ThreatModelError("points is empty; give at least one training index.")
            if pts.dtype.kind not in "iu":
                raise ThreatModelError(f"points must be integer indices, got {self.points!r}.")
            if pts.min() < 0 or pts.max() >= n:
                bad = int(pts[(pts < 0) | (pts >= n)][0])
                raise ThreatModelError(
                    f"points contains index {bad}, outside the training set 0..{n - 1}."
                )
            if len(np.unique(pts)) != len(pts):
                raise ThreatModelError("points contains duplicate indices.")
        scope = self.scope(n)
        if self.k is not None:
            if not isinstance(self.k, (int, np.integer)) or self.k < 0:
                raise ThreatModelError(f"k must be a non-negative integer, got {self.k!r}.")
            if self.k > len(scope):
                where = "training points" if self.points is None else "points in 'points'"
                raise ThreatModelError(
                    f"k = {self.k} exceeds the {len(scope)} {where}; use k <= {len(scope)}."
                )
        if not isinstance(self.label_k, (int, np.integer)) or self.label_k < 0:
            raise ThreatModelError(f"label_k must be a non-negative integer, got {self.label_k!r}.")
        if self.label_k > n:
            raise ThreatModelError(
                f"label_k = {self.label_k} exceeds the {n} training points; use label_k <= {n}."
            )
        self._validate_removal(n)
        resolved = self._validate_labels(data)
        self._validate_discrete(data)
        self._validate_feature_bounds(data)
        return resolved

    def _validate_removal(self, n: int) -> None:
        r = self.remove_k
        if not isinstance(r, (int, np.integer)) or isinstance(r, bool) or r < 0:
            raise ThreatModelError(f"remove_k must be a non-negative integer, got {r!r}.")
        if r == 0:
            return
        scope = len(self.scope(n))
        if r > scope:
            raise ThreatModelError(
                f"remove_k = {r} exceeds the {scope} points the attacker may touch; use "
                f"remove_k <= {scope}."
            )
        if self.eps > 0 or self.discrete or self.label_k > 0 or self.test_eps > 0:
            raise ThreatModelError(
                "remove_k (deleting training points) is a threat model of its own and cannot be "
                "combined with feature, label or test-time changes yet; set eps = 0 "
                "(--eps 0), label_k = 0 and test_eps = 0."
            )
        if self.per_batch:
            raise ThreatModelError(
                "remove_k deletes points from the training set once; use budget_scope = "
                "'global' with it."
            )

    def _validate_labels(self, data: Dataset) -> ThreatModel:
        if data.task == "regression":
            if self.label_k > 0 and self.label_eps == 0:
                raise ThreatModelError(
                    "label_k > 0 on regression data needs label_eps > 0 (how far a target may "
                    "shift); label flips apply to classification only."
                )
            if self.label_eps > 0 and self.label_k == 0:
                raise ThreatModelError(
                    f"label_eps = {self.label_eps} has no effect with label_k = 0; set label_k to "
                    f"the number of targets that may shift (at most {data.n_train})."
                )
            return self
        if self.label_eps > 0:
            raise ThreatModelError(
                "label_eps applies to regression targets only; for classification use label_k "
                "with label_mode 'flip', 'any' or a target class."
            )
        mode = self.label_mode
        C = int(data.n_classes or 0)
        if isinstance(mode, str) and mode not in ("flip", "any"):
            if mode in data.class_names:
                mode = data.class_names.index(mode)
            else:
                try:
                    mode = int(mode)
                except ValueError:
                    raise ThreatModelError(
                        f"unknown label_mode {self.label_mode!r}: use 'flip', 'any', or a target "
                        f"class (id 0..{C - 1} or one of {list(data.class_names)})."
                    ) from None
        if isinstance(mode, (int, np.integer)) and not isinstance(mode, bool):
            if not 0 <= mode < C:
                raise ThreatModelError(
                    f"target class {mode} is unknown: the data has classes 0..{C - 1} "
                    f"({list(data.class_names)})."
                )
            mode = int(mode)
        elif mode == "flip" and C != 2 and self.label_k > 0:
            raise ThreatModelError(
                f"label_mode 'flip' is for binary data, this data has {C} classes; use 'any' or "
                "a target class."
            )
        if mode == self.label_mode:
            return self
        from dataclasses import replace

        return replace(self, label_mode=mode)

    def _validate_discrete(self, data: Dataset) -> None:
        d = data.n_features
        seen: set[int] = set()
        for df in self.discrete:
            if not isinstance(df.feature, (int, np.integer)) or not 0 <= df.feature < d:
                raise ThreatModelError(
                    f"discrete feature index {df.feature!r} is outside 0..{d - 1}."
                )
            if df.feature in seen:
                raise ThreatModelError(f"discrete feature {df.feature} is declared twice.")
            seen.add(int(df.feature))
            vals = np.asarray(df.values, dtype=np.float64)
            if vals.size == 0 or not np.all(np.isfinite(vals)):
                raise ThreatModelError(
                    f"discrete feature {df.feature}: values must be a non-empty list of finite "
                    f"numbers, got {df.values!r}."
                )
            if df.mode not in ("any", "shift"):
                raise ThreatModelError(
                    f"discrete feature {df.feature}: mode must be 'any' or 'shift', got "
                    f"{df.mode!r}."
                )
            if df.mode == "shift":
                if df.direction not in ("up", "down", "both"):
                    raise ThreatModelError(
                        f"discrete feature {df.feature}: direction must be 'up', 'down' or "
                        f"'both', got {df.direction!r}."
                    )
                if not isinstance(df.max_shift, (int, np.integer)) or df.max_shift < 0:
                    raise ThreatModelError(
                        f"discrete feature {df.feature}: max_shift must be a non-negative "
                        f"integer, got {df.max_shift!r}."
                    )
                col = data.X_train[:, df.feature]
                bad = ~np.isin(col, vals)
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise ThreatModelError(
                        f"discrete feature {df.feature} (mode 'shift'): training point {i} has "
                        f"value {col[i]}, which is not one of the levels {sorted(vals.tolist())}."
                    )

    def _validate_feature_bounds(self, data: Dataset) -> None:
        if self.feature_bounds is None:
            return
        try:
            lo, hi = self.feature_bounds
        except (TypeError, ValueError):
            raise ThreatModelError(
                "feature_bounds must be a pair (low, high) of numbers or per-feature lists."
            ) from None
        d = data.n_features
        try:
            lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        except (TypeError, ValueError):
            raise ThreatModelError(
                f"feature_bounds must hold numbers, got {self.feature_bounds!r}."
            ) from None
        lo = np.broadcast_to(lo, (d,)) if lo.ndim == 0 else lo
        hi = np.broadcast_to(hi, (d,)) if hi.ndim == 0 else hi
        if lo.shape != (d,) or hi.shape != (d,):
            raise ThreatModelError(
                f"feature_bounds must give scalars or {d} values per side, got shapes "
                f"{lo.shape} and {hi.shape}."
            )
        if np.any(np.isnan(lo)) or np.any(np.isnan(hi)) or np.any(lo > hi):
            raise ThreatModelError("feature_bounds: every low must be <= its high (and not NaN).")
        for what, X in (("training", data.X_train), ("test", data.X_test)):
            bad = (X < lo) | (X > hi)
            if bad.any():
                i, j = np.argwhere(bad)[0]
                raise ThreatModelError(
                    f"{what} point {i}, feature {j} = {X[i, j]} lies outside feature_bounds "
                    f"[{lo[j]}, {hi[j]}]; widen the bounds or rescale the data."
                )

    # ------------------------------------------------------------------ sets
    def scope(self, n: int) -> np.ndarray:
        """Indices of training points whose features may change."""
        return np.arange(n) if self.points is None else np.asarray(self.points, dtype=np.int64)

    def bounds_arrays(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature (low, high) arrays; +-inf when no bounds are set."""
        if self.feature_bounds is None:
            return np.full(d, -np.inf), np.full(d, np.inf)
        lo, hi = self.feature_bounds
        return (
            np.broadcast_to(np.asarray(lo, dtype=np.float64), (d,)).copy(),
            np.broadcast_to(np.asarray(hi, dtype=np.float64), (d,)).copy(),
        )

    @property
    def discrete_features(self) -> set[int]:
        return {int(df.feature) for df in self.discrete}

    @property
    def perturbs_features(self) -> bool:
        return (self.eps > 0 or bool(self.discrete)) and self.k != 0

    @property
    def perturbs_labels(self) -> bool:
        return self.label_k > 0

    def counts_points(self, n: int) -> bool:
        """Whether the attacker's budget counts points (a k-of-n feature budget, or label
        changes on fewer than all ``n`` points), so a top-k bound (``agt``) can beat intervals."""
        return (self.k is not None and self.perturbs_features) or 0 < self.label_k < n

    @property
    def is_trivial(self) -> bool:
        """True when the attacker can change nothing in the training data."""
        return not self.perturbs_features and not self.perturbs_labels and not self.removes

    def feature_box(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-point, per-feature hull of the values the attacker may give (n, d) each.

        The k-of-n budget is not expressed here: every point in scope gets its full box, which
        is a sound over-approximation for any k.
        """
        X = np.asarray(X, dtype=np.float64)
        lo, hi = X.copy(), X.copy()
        if not self.perturbs_features:
            return lo, hi
        scope = self.scope(len(X))
        cont = np.ones(X.shape[1], dtype=bool)
        cont[list(self.discrete_features)] = False
        blo, bhi = self.bounds_arrays(X.shape[1])
        sub = X[scope][:, cont]
        lo[np.ix_(scope, cont)] = np.maximum(sub - self.eps, blo[cont])
        hi[np.ix_(scope, cont)] = np.minimum(sub + self.eps, bhi[cont])
        for df in self.discrete:
            j = int(df.feature)
            for i in scope:
                vals = df.allowed(X[i, j])
                lo[i, j], hi[i, j] = vals.min(), vals.max()
        return lo, hi

    def test_box(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Box of test inputs under the test-time radius ``test_eps`` (clipped to the bounds)."""
        X = np.asarray(X, dtype=np.float64)
        blo, bhi = self.bounds_arrays(X.shape[1])
        if self.test_eps == 0:
            return X.copy(), X.copy()
        return np.maximum(X - self.test_eps, blo), np.minimum(X + self.test_eps, bhi)

    def label_mask(self, y: np.ndarray, n_classes: int) -> np.ndarray:
        """Classification: (n, C) mask of the classes each label may take (all points may be
        among the ``label_k`` changed ones: a sound over-approximation)."""
        y = np.asarray(y, dtype=np.int64)
        mask = np.zeros((len(y), n_classes), dtype=bool)
        mask[np.arange(len(y)), y] = True
        if self.label_k == 0:
            return mask
        if self.label_mode == "any":
            mask[:] = True
        elif self.label_mode == "flip":
            mask[np.arange(len(y)), 1 - y] = True
        else:
            mask[:, int(self.label_mode)] = True
        return mask

    def target_box(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Regression: per-target (low, high) of the targets each point may take."""
        y = np.asarray(y, dtype=np.float64)
        if self.label_k == 0:
            return y.copy(), y.copy()
        return y - self.label_eps, y + self.label_eps

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        X: np.ndarray,
        y: np.ndarray,
        rng: np.random.Generator,
        task: str = "classification",
        n_classes: int | None = None,
        vertex_prob: float = 0.5,
        within: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One random attack inside the threat model: a poisoned copy ``(X', y')``.

        Exactly ``k`` points of the scope (all of them when ``k`` is None) get new features: with
        probability ``vertex_prob`` a vertex of their box, otherwise a uniform point; discrete
        features take a random allowed value. Exactly ``label_k`` random points get new labels.
        ``within``: only these training points change (a batch; budgets capped at its size).
        """
        X0 = np.asarray(X, dtype=np.float64)
        X = X0.copy()
        y = np.array(y, copy=True)
        n, d = X.shape
        label_pool = np.arange(n) if within is None else np.asarray(within, dtype=np.int64)
        scope_all = self.scope(n)
        if within is not None:
            scope_all = np.intersect1d(scope_all, label_pool)
        if self.paired:
            pool = scope_all
            budget = min(max(int(self.k or 0), self.label_k), len(pool))
            label_pool = rng.choice(pool, size=budget, replace=False)
        if self.perturbs_features:
            scope = label_pool if self.paired else scope_all
            size = len(scope) if self.k is None else min(int(self.k), len(scope))
            chosen = rng.choice(scope, size=size, replace=False)
            lo, hi = self.feature_box(X)
            if np.isinf(self.eps):  # unbounded: sample within +-UNBOUNDED_SAMPLE_RADIUS
                lo = np.where(np.isinf(lo), X0 - UNBOUNDED_SAMPLE_RADIUS, lo)
                hi = np.where(np.isinf(hi), X0 + UNBOUNDED_SAMPLE_RADIUS, hi)
            for i in chosen:
                if rng.random() < vertex_prob:
                    X[i] = np.where(rng.random(d) < 0.5, lo[i], hi[i])
                else:
                    X[i] = rng.uniform(lo[i], hi[i])
                for df in self.discrete:
                    j = int(df.feature)
                    X[i, j] = rng.choice(df.allowed(X0[i, j]))
        if self.label_k > 0:
            idx = rng.choice(label_pool, size=min(self.label_k, len(label_pool)), replace=False)
            if task == "regression":
                shape = y[idx].shape
                u = (
                    rng.choice([-1.0, 1.0], size=shape)
                    if rng.random() < vertex_prob
                    else (rng.uniform(-1.0, 1.0, size=shape))
                )
                y[idx] = y[idx] + self.label_eps * u
            else:
                C = int(n_classes or (int(y.max()) + 1))
                for i in idx:
                    if self.label_mode == "flip":
                        y[i] = 1 - y[i]
                    elif self.label_mode == "any":
                        y[i] = rng.integers(C)
                    else:
                        y[i] = int(self.label_mode)
        return X, y

    def describe(self) -> dict:
        """JSON-serialisable description (used in reports)."""
        return {
            "eps": float(self.eps),
            "points": None if self.points is None else [int(i) for i in self.points],
            "k": None if self.k is None else int(self.k),
            "label_k": int(self.label_k),
            "label_mode": self.label_mode,
            "label_eps": float(self.label_eps),
            "discrete": [
                {
                    "feature": int(df.feature),
                    "values": [float(v) for v in df.values],
                    "mode": df.mode,
                    "max_shift": int(df.max_shift),
                    "direction": df.direction,
                }
                for df in self.discrete
            ],
            "feature_bounds": None
            if self.feature_bounds is None
            else [np.asarray(b, dtype=float).tolist() for b in self.feature_bounds],
            "test_eps": float(self.test_eps),
            "paired": bool(self.paired),
            "budget_scope": self.budget_scope,
            "remove_k": int(self.remove_k),
        }

    def sample_removal(
        self, n: int, rng: np.random.Generator, full_prob: float = 0.8
    ) -> np.ndarray:
        """Random deleted points: ``remove_k`` of the scope with probability ``full_prob``,
        otherwise a random smaller number (sorted indices)."""
        scope = self.scope(n)
        r = self.remove_k if rng.random() < full_prob else int(rng.integers(0, self.remove_k + 1))
        return np.sort(rng.choice(scope, size=r, replace=False))

    def sample_schedule(
        self,
        X: np.ndarray,
        y: np.ndarray,
        rng: np.random.Generator,
        batches: list[np.ndarray],
        task: str = "classification",
        n_classes: int | None = None,
        vertex_prob: float = 0.5,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """One random attack per training step: the same poisoned set at every step
        (``global``), or each step's batch poisoned afresh within its budget (``batch``)."""
        if not self.per_batch:
            one = self.sample(X, y, rng, task, n_classes, vertex_prob)
            return [one] * len(batches)
        return [self.sample(X, y, rng, task, n_classes, vertex_prob, within=b) for b in batches]
