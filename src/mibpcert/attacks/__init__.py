"""Concrete attacks: poisoned datasets, their replay through the ordinary trainer, and a cheap
primal heuristic that finds them, first-order attacks that reach interior optima and repair
solver incumbents, and linearised one-replay attacks for feature threats."""

from mibpcert.attacks.gradient import gradient_attack, repair_attack
from mibpcert.attacks.heuristic import coordinate_search
from mibpcert.attacks.linearized import attack_targets, feature_sensitivities, linearized_attack
from mibpcert.attacks.replay import (
    Attack,
    TestObjective,
    project_attack,
    replay,
    threat_violations,
)

__all__ = [
    "Attack",
    "TestObjective",
    "attack_targets",
    "coordinate_search",
    "feature_sensitivities",
    "gradient_attack",
    "linearized_attack",
    "project_attack",
    "repair_attack",
    "replay",
    "threat_violations",
]
