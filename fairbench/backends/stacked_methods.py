"""The stacked variants of the methods: S seeds trained in lockstep on a stacked oracle.

On a stacked oracle (:mod:`fairbench.backends.stacked`: ``oracle.x`` of shape (S, P), one row per
seed; values, gradients and counters with a leading seed axis) a method's state gets the same
leading axis and its per-seed decisions are made seed by seed, so that every seed gets exactly
the numbers of its single-seed run. ``setup`` then gets a list of S generators (seed s's own
``rng``); ``step``, ``state`` and ``final_params`` return per-seed values: event counts and state
values are scalars (the same for every seed) or (S,) arrays; ``final_params`` is ``None`` or a
list of S entries (a (P,) array, or ``None`` for the last iterate).

Each ``bind_*`` function here takes a method after its ``setup`` on the stacked oracle and
makes it stacked; :mod:`fairbench.backends.variants` registers and calls them. A method whose
rule is elementwise with no per-seed decision (SGD) is declared seed-axis safe there instead
and runs its own step.
"""

from __future__ import annotations

import math
from types import MethodType

import numpy as np

from fairbench.backends.stacked import StackedPenalizedOracle


# -- SSL-ALM and ALM: per-seed state and safeguard ---------------------------------------------
def bind_ssl_alm(algo) -> None:
    """SSL-ALM (and ALM) on stacked seeds: ``lam``, ``slack``, ``z_slack`` (S, m) and ``z`` (S, P)
    (the copy of ``x`` ``setup`` made); the safeguard acts per seed (``all``: each seed's norm),
    ``dual_resets`` is an (S,) array of 0/1 and ``state()`` gives (S,) arrays. The method's own
    step runs unchanged: the rest of its update is elementwise."""
    shape = algo.oracle.x.shape[:-1] + (algo.oracle.n_constraints,)
    dtype = algo.oracle.x.dtype
    for name in ("lam", "slack", "z_slack", "_c2", "_w"):
        setattr(algo, name, np.zeros(shape, dtype=dtype))
    algo._safeguard = MethodType(_ssl_alm_safeguard, algo)
    algo.state = MethodType(_ssl_alm_state, algo)


def _ssl_alm_safeguard(algo) -> np.ndarray:
    """``SSLALM._safeguard`` per seed: an (S,) array of 0/1."""
    lam = algo.lam
    if algo.dual_reset == "all":
        # each seed's norm as the single-seed code computes it
        reset = np.array([np.linalg.norm(row) > algo.dual_bound for row in lam])
        lam[reset] = 0.0
        return reset.astype(np.int64)
    over = np.abs(lam) > algo.dual_bound
    lam[over] = 0.0
    return over.any(axis=1).astype(np.int64)


def _ssl_alm_state(algo) -> dict[str, np.ndarray]:
    """``SSLALM.state`` per seed: (S,) copies."""
    out = {f"lambda_{j}": v.copy() for j, v in enumerate(algo.lam.T)}
    out.update({f"slack_{j}": v.copy() for j, v in enumerate(algo.slack.T)})
    return out


# -- SGD-Penalized: the stacked penalized oracle ------------------------------------------------
def bind_sgd_penalized(algo) -> None:
    """SGD-Penalized on stacked seeds: the penalized view of the stacked oracle
    (:class:`~fairbench.backends.stacked.StackedPenalizedOracle`, the same formula per seed);
    SGD's own step runs on it."""
    view = algo.oracle
    algo.oracle = StackedPenalizedOracle(algo.constrained_oracle, view.weight, view.penalty, view.per_group,
                                         view.delta)


# -- the switching subgradient: each seed switches on its own c_max -----------------------------
def bind_ssw(algo) -> None:
    """The switching subgradient on stacked seeds (:func:`ssw_step`): ``constraint_steps``,
    ``step_size`` and ``c_max`` are (S,) arrays; ``output=random`` keeps one reservoir per seed,
    drawn from that seed's own generator."""
    n_seeds = algo.oracle.x.shape[0]
    algo.last_step = np.zeros(n_seeds)
    algo.last_c_max = np.full(n_seeds, np.nan)
    algo._weight_sum = np.zeros(n_seeds)
    algo._candidates = [None] * n_seeds
    algo.step = MethodType(ssw_step, algo)
    algo.state = MethodType(_ssw_state, algo)
    algo.final_params = MethodType(_ssw_final_params, algo)


def ssw_step(algo) -> dict[str, np.ndarray]:
    """``SwitchingSubgradient.step`` for stacked seeds: the same decisions and updates, seed by
    seed. Only the seeds taking a constraint step draw the fresh batch ``xi'`` and only those
    taking an objective step draw ``zeta`` (the other seeds' streams do not move), so every seed
    sees the batches of its single-seed run. The gradients of both kinds are evaluated for the
    whole stack (each only when some seed needs it) and applied per seed."""
    oracle, k = algo.oracle, algo.k
    decay = 1.0 / math.sqrt(k + 1)
    c, _ = oracle.constraints(oracle.sample_constraints(algo.per_group, stream=0))
    seeds = np.arange(c.shape[0])
    i = np.argmax(c, axis=1)
    c_max = c[seeds, i].astype(np.float64)  # float(c[i]) of each seed
    algo.last_c_max = c_max
    tol = algo.tol * decay if algo.tol_rule == "diminishing" else algo.tol
    algo.k = k + 1
    con = c_max > tol
    obj = ~con
    x = oracle.x
    eta = np.zeros(c.shape[0])               # each seed's step size (float64, as Python floats)
    every_con = bool(con.all())              # (most steps: no seed takes an objective step)
    direction = None if every_con else np.empty_like(x)
    if con.any():
        fresh = oracle.sample_constraints(algo.per_group, stream=1, active=None if every_con else con)
        _, _, g = oracle.lagrangian_grad(None, fresh, algo._unit[i])
        if algo.step_c == "adaptive":
            for s in np.flatnonzero(con):
                sq = float(g[s] @ g[s])
                eta[s] = c_max[s] / sq if sq > 0 else 0.0
        else:
            eta[con] = algo.eta_c * decay if algo.step_c == "diminishing" else algo.eta_c
        if every_con:
            direction = g
        else:
            direction[con] = g[con]
    if not every_con:
        eta_f = algo.eta_f * decay if algo.step_f == "diminishing" else algo.eta_f
        eta[obj] = eta_f
        if algo.output == "random" and k >= algo.random_start:
            for s in np.flatnonzero(obj):
                algo._weight_sum[s] += eta_f
                if algo.rng[s].random() * algo._weight_sum[s] < eta_f:
                    algo._candidates[s] = x[s].copy()
        _, g = oracle.objective(oracle.sample_objective(algo.batch_size, active=None if obj.all() else obj),
                                grad=True)
        direction[obj] = g[obj]
    # x -= eta * g per seed, with the step size as float32 (as a Python float meets a float32 array)
    x -= eta.astype(np.float32)[:, None] * direction
    algo.last_step = eta
    return {"constraint_steps": con.astype(np.int64)}


def _ssw_state(algo) -> dict[str, np.ndarray]:
    return {"step_size": algo.last_step.copy(), "c_max": algo.last_c_max.copy()}


def _ssw_final_params(algo) -> list | None:
    if all(c is None for c in algo._candidates):
        return None
    return [None if c is None else c.copy() for c in algo._candidates]


# -- the Lagrangian primal-dual methods (PBM, iALM, nuPI, GDA, extragradient) -----------------
def bind_primal_dual(algo) -> None:
    """A primal–dual method (:class:`~fairbench.algorithms.primal_dual.PrimalDual`) on stacked
    seeds: the multipliers (and PBM's penalties) become (S, m), each row starting at the
    values ``setup`` gave; ``state()`` gives (S,) arrays, each seed's value as the method's own
    ``state`` computes it. The method's own step runs unchanged: its updates are elementwise
    (PBM's weights, multipliers and penalties, nuPI's error average, GDA's and extragradient's
    projected ascent, the SGD and Adam primal steps), the counters that schedule them (PBM's
    annealing epoch, Adam's ``t``, iALM's penalty) are the same for every seed, and it makes no
    per-seed decision (iALM's dual step length is per seed: :func:`bind_ialm`)."""
    n_seeds = algo.oracle.x.shape[0]
    algo.multipliers = np.repeat(algo.multipliers[None], n_seeds, axis=0)
    if isinstance(getattr(algo, "penalties", None), np.ndarray):
        algo.penalties = np.repeat(algo.penalties[None], n_seeds, axis=0)
    algo.state = MethodType(_primal_dual_state, algo)


def _primal_dual_state(algo) -> dict[str, np.ndarray]:
    """The method's ``state()`` of each seed (its rows of the multipliers and penalties), as (S,) arrays."""
    lam, penalties = algo.multipliers, getattr(algo, "penalties", None)
    stacked_penalties = isinstance(penalties, np.ndarray) and penalties.ndim == 2
    rows = []
    try:
        for s in range(lam.shape[0]):
            algo.multipliers = lam[s]
            if stacked_penalties:
                algo.penalties = penalties[s]
            rows.append(type(algo).state(algo))
    finally:
        algo.multipliers = lam
        if stacked_penalties:
            algo.penalties = penalties
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}


def bind_ialm(algo) -> None:
    """iALM on stacked seeds: :func:`bind_primal_dual`, with each seed's dual step
    ``min(beta_k, gamma / ||c_s||)`` from its own constraint values (:func:`ialm_weights`)."""
    bind_primal_dual(algo)
    algo._weights = MethodType(ialm_weights, algo)


def ialm_weights(algo, c: np.ndarray) -> np.ndarray:
    """``IALM._weights`` per seed: the same dual gradient, norm (a row's ``d @ d``, as the
    single-seed code computes it), step (as float32, as a Python float meets a float32 array)
    and updates."""
    lam, beta = algo.multipliers, algo.penalty
    paper = algo.form == "paper"
    d = np.maximum(c, -lam / beta) if paper else c
    step = np.empty((c.shape[0], 1), dtype=c.dtype)
    for s, row in enumerate(d):
        norm = float(np.sqrt(row @ row))
        step[s, 0] = beta if norm == 0.0 else min(beta, algo.gamma / norm)
    lam += step * d
    np.clip(lam, 0.0, algo.dual_max, out=lam)
    return np.maximum(lam + beta * c, 0.0) if paper else lam + beta * np.maximum(c, 0.0)
