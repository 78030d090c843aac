"""Concrete attacks: poisoned datasets, their replay through the ordinary trainer, and a cheap
primal heuristic that finds them."""

from mibpcert.attacks.heuristic import coordinate_search
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
    "coordinate_search",
    "project_attack",
    "replay",
    "threat_violations",
]
