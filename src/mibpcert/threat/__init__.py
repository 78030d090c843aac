"""What the attacker may do to the training data; validation of budgets; the label sets."""

from mibpcert.threat.labels import LabelSet
from mibpcert.threat.model import DiscreteFeature, ThreatModel

__all__ = ["DiscreteFeature", "LabelSet", "ThreatModel"]
