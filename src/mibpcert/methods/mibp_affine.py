"""``mibp --sets affine``: the affine sets over the attack symbols between the steps of
:class:`~mibpcert.methods.mibp.MIBPMethod` (docs/methods.md section 13).

Each step's program is tied to the current set ``theta = c + G u + r`` through a low-rank basis
of the generators (:func:`tie_basis`); the residual objectives ``theta'_j - G_next_j u`` bound
the next remainder, which is intersected with the solver-free affine step
(:func:`mibpcert.bounds.affine_pass.step`), and a sampling self-check guards both sets.
"""

from __future__ import annotations

import numpy as np

from mibpcert.errors import CheckpointError
from mibpcert.model.trainer import batch_gradient
from mibpcert.ops import sgd
from mibpcert.ops.loss import encode_targets
from mibpcert.problem import Problem

#: the tie rows of ``--sets affine`` use at most this many directions of the symbols (the
#: generators' leading singular vectors); what the rest carries goes to the rows' ranges
MAX_TIE_RANK = 16
#: ... and as few as keep that rest below this share of the generators' own range
TIE_RANK_TOLERANCE = 1e-3


def tie_basis(attack, G: np.ndarray, G_free: np.ndarray):
    """``(basis, G_next, drop, pad)``: an orthonormal basis (K x r) of the leading directions of
    the current and next generators (``None``: use every symbol), the next generators projected
    on it, a bound on what the projection drops from each next parameter (added to its
    solver-free remainder: sound for any projection), and a bound on the rounding of
    ``G_next u`` against the program's ``(G_next basis) z`` (added to both remainders)."""
    from mibpcert.domains.interval import UNIT

    K = attack.size
    if K <= MAX_TIE_RANK:
        zero = np.zeros(G_free.shape[0])
        return None, G_free, zero, zero
    _, sv, Vt = np.linalg.svd(np.vstack([G, G_free]), full_matrices=False)
    scale = max(float(np.max(attack.range(G_free)[1], initial=0.0)), 1e-300)
    basis = Vt[:MAX_TIE_RANK].T
    for r in range(1, MAX_TIE_RANK + 1):
        V = Vt[:r].T
        lo, hi = attack.range(G_free - (G_free @ V) @ V.T)
        if max(np.abs(lo).max(), np.abs(hi).max()) <= TIE_RANK_TOLERANCE * scale:
            basis = V
            break
    coef = G_free @ basis
    G_next = coef @ basis.T
    lo, hi = attack.range(G_free - G_next)
    r = basis.shape[1]
    drop = np.maximum(np.abs(lo), np.abs(hi))
    pad = 4 * (r + 2) * UNIT * (np.abs(coef) @ np.abs(basis).T).sum(axis=1) + 1e-300
    return basis, G_next, drop, pad


def start(method, problem: Problem, start: int) -> dict:
    """The affine sets' state: the symbols and the sets of every step done (from the
    checkpoint when resuming)."""
    from mibpcert.bounds import affine_pass
    from mibpcert.methods.base import attack_symbols

    attack = attack_symbols(problem, problem.threat.k)
    affine_pass.check_size(problem.arch, max(len(b) for b in problem.batches()), attack)
    first = affine_pass.AffineSet.point(problem.theta0, attack.size)
    state = {"attack": attack, "c": [first.c], "G": [first.G], "rho": [first.rho]}
    if start:
        loaded = method._loaded_affine
        if loaded is None:
            raise CheckpointError(
                "the checkpoint holds no affine sets; resume with the same --sets, or "
                "start over without --resume."
            )
        for key in ("c", "G", "rho"):
            state[key] = list(loaded[key][: start + 1])
    state["X_box"], state["labels"] = problem.input_box(), problem.label_set()
    return state


def step(method, problem, step, idx, box, itv, nominal, executor, affine, rng):
    """One step with affine sets: the solver-free affine step gives the next generators
    and a sound remainder; the step's program, tied to the current set, bounds the next
    box and the next remainder; both remainders and boxes are intersected."""
    from mibpcert.bounds import affine_pass

    attack = affine["attack"]
    state = affine_pass.AffineSet(affine["c"][-1], affine["G"][-1], affine["rho"][-1])
    lr = problem.recipe.lr_at(step)
    free, row = affine_pass.step(
        problem.arch,
        state,
        attack,
        problem.data.X_train,
        idx,
        affine["labels"],
        problem.recipe.loss,
        lr,
        None,
        box,
        affine["X_box"],
        problem.recipe.weight_decay,
        problem.recipe.l1,
    )
    basis, G_next, drop, pad = tie_basis(attack, state.G, free.G)
    free_rho = free.rho + drop + pad
    lo, hi, stats, (rlo, rhi) = method._solve_step(
        problem, step, idx, box, itv, nominal, executor, (attack, state, G_next, basis)
    )
    free = affine_pass.AffineSet(free.c, G_next, free_rho)
    rlo, rhi = rlo - pad, rhi + pad  # the objectives read G_next u through the basis
    # the residual theta' - c_free - G_free u lies in [rlo - c, rhi - c] and in +-rho_free
    r_lo = np.maximum(np.nextafter(rlo - free.c, -np.inf), -free.rho)
    r_hi = np.minimum(np.nextafter(rhi - free.c, np.inf), free.rho)
    crossed = r_lo > r_hi
    r_lo[crossed], r_hi[crossed] = -free.rho[crossed], free.rho[crossed]
    mid = 0.5 * r_lo + 0.5 * r_hi
    c = free.c + mid
    rho = np.maximum(np.nextafter(r_hi - mid, np.inf), np.nextafter(mid - r_lo, np.inf))
    rho = rho + 4 * np.finfo(np.float64).eps * (np.abs(c) + np.abs(mid))
    nxt = affine_pass.AffineSet(c, free.G, rho)
    bb = nxt.box(attack)
    lo, hi = np.maximum(lo, bb.lo), np.minimum(hi, bb.hi)
    bad, bad_box = self_check(method, problem, box, attack, state, nxt, lo, hi, idx, lr, rng)
    if bad.any():  # keep the solver-free remainder there
        nxt = affine_pass.AffineSet(
            np.where(bad, free.c, nxt.c), free.G, np.where(bad, free.rho, nxt.rho)
        )
    if bad_box.any():  # keep the interval/agt bound there (and the free set's box)
        fb = nxt.box(attack)
        lo[bad_box] = np.maximum(itv.lo, fb.lo)[bad_box]
        hi[bad_box] = np.minimum(itv.hi, fb.hi)[bad_box]
    stats["box_self_check_fallbacks"] = int(bad_box.sum())
    affine["c"].append(nxt.c)
    affine["G"].append(nxt.G)
    affine["rho"].append(nxt.rho)
    stats.update(row)
    stats["affine_self_check_fallbacks"] = int(bad.sum())
    stats["tie_rank"] = int(basis.shape[1]) if basis is not None else attack.size
    stats["remainder_max"] = float(nxt.rho.max())
    stats["remainder_max_solver_free"] = float(free.rho.max())
    return lo, hi, stats


def self_check(method, problem, box, attack, state, nxt, lo, hi, idx, lr, rng):
    """Random single steps from parameters of both current sets (``c + G u* + r`` for a
    random attack's symbols ``u*`` and a random remainder, inside the box) on that attack
    must land in the next set and the next box ``[lo, hi]``; returns the coordinates of
    the set and of the box that did not."""
    bad = np.zeros(state.c.size, dtype=bool)
    bad_box = np.zeros(state.c.size, dtype=bool)
    if method.self_check_samples <= 0:
        return bad, bad_box
    data = problem.data
    for s in range(method.self_check_samples):
        X, y = problem.sample_poisoned(rng, vertex_prob=0.7)
        u = attack.coordinates(X)
        r = (
            np.where(rng.random(state.c.size) < 0.5, -1.0, 1.0)
            if s % 2 == 0
            else (rng.uniform(-1.0, 1.0, state.c.size))
        )
        theta = state.c + state.G @ u + r * state.rho
        if not np.all((box.lo <= theta) & (theta <= box.hi)):
            theta = np.clip(theta, box.lo, box.hi)
            if np.any(np.abs(theta - state.c - state.G @ u) > state.rho):
                continue  # not a point of both sets
        t = encode_targets(problem.recipe.loss, y, data.task)
        g, _ = batch_gradient(
            problem.arch, theta, X[idx], t[idx], problem.recipe.loss, problem.recipe.clip
        )
        out = sgd.update(theta, g, lr, problem.recipe.weight_decay, problem.recipe.l1)
        bad |= np.abs(out - nxt.c - nxt.G @ u) > nxt.rho
        bad_box |= (out < lo) | (out > hi)
    return bad, bad_box
