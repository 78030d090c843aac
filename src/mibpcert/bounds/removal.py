"""The batch-mean gradient when up to K of the batch's points may be deleted (removal threat).

With per-sample gradient boxes ``[g_i^L, g_i^U]`` over the parameter box and a set R of r removed
points (``r <= K``, only points in the attacker's scope), the mean over the kept points is
``sum_{i not in R} g_i / (b - r)``; for every R of size r

    sum_{i not in R} g_i >= sum_i g_i^L - (sum of the r largest g_i^L over removable i)
    sum_{i not in R} g_i <= sum_i g_i^U - (sum of the r smallest g_i^U over removable i)

(per coordinate, each choice of R relaxed separately). The bound is the union over r = 0..K of
these sums divided by ``b - r``; an emptied batch (``r = b``) has gradient 0 (the trainer's
convention: regularisation and momentum still act). Sums are rounded outward
(:func:`~mibpcert.domains.interval.sum_axis`).
"""

from __future__ import annotations

import numpy as np

from mibpcert.domains.interval import Interval, divide, sum_axis


def removal_mean(per: Interval, removable: np.ndarray, k: int) -> Interval:
    """Box of the kept points' mean gradient; ``per``: (b, m) per-sample boxes, ``removable``:
    (b,) mask of the points that may be deleted, ``k``: at most this many deleted."""
    b = per.shape[0]
    K = int(min(k, int(np.sum(removable))))
    full = divide(sum_axis(per, axis=0), float(b))
    if K == 0:
        return full
    lo_rm = -np.sort(-per.lo[removable], axis=0)[:K]  # largest lower bounds first
    hi_rm = np.sort(per.hi[removable], axis=0)[:K]  # smallest upper bounds first
    lo, hi = full.lo.copy(), full.hi.copy()
    for r in range(1, K + 1):
        if r == b:  # the whole batch deleted: no loss gradient
            lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
            continue
        kept = sum_axis(  # the lower and the upper sides are summed independently
            Interval(
                np.concatenate([per.lo, -lo_rm[:r]]), np.concatenate([per.hi, -hi_rm[:r]])
            ),
            axis=0,
        )
        mean = divide(kept, float(b - r))
        lo, hi = np.minimum(lo, mean.lo), np.maximum(hi, mean.hi)
    return Interval(lo, hi)
