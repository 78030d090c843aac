"""The labels each training point may carry under a threat model (the loss gradients' input)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.domains.interval import Interval


@dataclass(frozen=True)
class LabelSet:
    """The labels each training point may carry.

    Classification: ``mask`` (n, C) of allowed classes. Regression: ``targets`` interval (n, q).
    """

    mask: np.ndarray | None = None
    targets: Interval | None = None

    def __getitem__(self, idx) -> LabelSet:
        return LabelSet(
            None if self.mask is None else self.mask[idx],
            None if self.targets is None else self.targets[idx],
        )
