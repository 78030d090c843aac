"""What the attacker may do to the training data; validation of budgets."""

from mibpcert.threat.model import DiscreteFeature, ThreatModel

__all__ = ["DiscreteFeature", "ThreatModel"]
