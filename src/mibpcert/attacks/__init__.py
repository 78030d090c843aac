"""Concrete attacks: poisoned datasets, their replay through the ordinary trainer, and a cheap
primal heuristic that finds them, and linearised one-replay attacks for feature threats."""

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
    "linearized_attack",
    "project_attack",
    "replay",
    "threat_violations",
]
