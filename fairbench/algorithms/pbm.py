"""Stochastic penalty–barrier multiplier method (PBM), as in humancompatible-train's ``PBM``."""

from __future__ import annotations

import math

import numpy as np

from fairbench.algorithms.primal_dual import PrimalDual
from fairbench.errors import check, check_in, check_positive

PBFS = ("quadratic_logarithmic", "quadratic_reciprocal")
PENALTY_UPDATES = ("const", "dimin", "dimin_dual", "dimin_adapt", "aimd", "alm")
AIMD_STEP = 0.1   # additive penalty increase of the aimd rule on a satisfied constraint (the reference's)


def pbf(name: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(phi(t), phi'(t))`` of a penalty–barrier function (Ben-Tal & Zibulevsky 1997):
    quadratic for ``t >= t0`` and a barrier below, joined with matching value and slope:

    - ``quadratic_logarithmic``: ``t + t^2/2`` for ``t >= -1/2``, else ``-log(-2t)/4 - 3/8``;
    - ``quadratic_reciprocal``: ``t + t^2/2`` for ``t >= -1/3``, else ``(32/27)/(1 - t) - 7/6``.
    """
    if name == "quadratic_logarithmic":
        quad = t >= -0.5
        safe = np.where(quad, -1.0, t)
        return (np.where(quad, t + 0.5 * t * t, -0.25 * np.log(-2.0 * safe) - 0.375),
                np.where(quad, 1.0 + t, -1.0 / (4.0 * safe)))
    quad = t >= -1.0 / 3.0
    safe = np.where(quad, 0.0, t)
    return (np.where(quad, t + 0.5 * t * t, (32.0 / 27.0) / (1.0 - safe) - 7.0 / 6.0),
            np.where(quad, 1.0 + t, (32.0 / 27.0) / (1.0 - safe) ** 2))


def annealed(value0: float, epoch: int) -> float:
    """``1 - 1 / (sqrt(e) + 1/(1 - value0))``: ``value0`` at epoch 0, rising towards 1 (1 stays 1)."""
    if value0 == 1.0:
        return 1.0
    return 1.0 - 1.0 / (math.sqrt(epoch) + 1.0 / (1.0 - value0))


class PBM(PrimalDual):
    """Stochastic penalty–barrier multiplier method (Ben-Tal & Zibulevsky 1997, "Penalty/barrier
    multiplier methods for convex programming problems"; the stochastic variant of
    humancompatible-train 0.4.2, one primal step per dual step).

    Surrogate ``L(x; lam, p) = f(x) + sum_i lam_i p_i phi(c_i(x) / p_i)`` with a penalty–barrier
    function ``phi`` (``pbf``, :func:`pbf`), multipliers ``lam`` and penalties ``p``. Iteration
    k, with ``c = c(x; xi)`` on a balanced constraint batch and ``e`` the annealing epoch::

        g    = grad f(x; zeta) + J(x; xi)^T (lam * phi'(c / p))        # lam, p before the update
        lam  <- clip(gamma_e lam + (1 - gamma_e) lam * phi'(c / p),  dual_min, dual_max)
        p    <- clip(update(p, K_e, lam, phi'(c), c / p),  penalty_min, penalty_max)
        x    <- P(x, g)

    Penalty updates (``penalty_update``, multiplier ``K = penalty_mult``): ``const``;
    ``dimin`` ``p K``; ``dimin_dual`` ``p K lam``; ``dimin_adapt``
    ``K p + (1 - K) p / d`` with ``d = phi'(c)`` where ``phi'(c) < 1``, else ``delta phi'(c)``
    (plus 1e-8); ``aimd`` ``(p + 0.1) K`` ... precisely ``p + 0.1`` where ``c/p <= 0`` and
    ``p K`` where ``c/p > 0``; ``alm`` ``rho lam`` (which turns the method into an ALM).
    ``dimin_adapt`` evaluates ``phi'`` at ``c`` and not at ``c / p``, as the reference does.
    Annealing: with ``gamma_annealing`` ``gamma_e = annealed(gamma, e)``, with
    ``penalty_annealing`` ``K_e = annealed(penalty_mult, e)`` (:func:`annealed`), the epoch
    ``e`` advancing every ``epoch_length`` iterations; otherwise constant. (The reference
    advances its epoch only under ``gamma_annealing``, so there ``penalty_annealing`` alone
    keeps K constant.)

    The paper's multiplier update is ``lam <- lam phi'(c/p)`` after an (approximate) minimisation
    of the surrogate in ``x``, and its penalty rule ``p <- K p`` (``dimin``); ``gamma = 0``
    without ``gamma_annealing`` is that update (one primal step per update, as the reference).
    The reference damps it (``gamma > 0``, annealed towards 1) and adds the other penalty
    rules; tests/algorithms/test_peers_hct_papers.py shows the difference (docs/methods.md).

    The surrogate uses a copy of ``(lam, p)`` taken before the update, so the primal gradient
    and the dual update do not share the constraint estimate's noise. The multipliers start
    at ``dual_min`` and the penalties at ``penalty_max``, as in the reference; its defaults
    are in ``conf/algo/pbm.yaml``. State: ``lambda_<j>`` and ``penalty_<j>``.
    """

    def __init__(self, pbf: str, penalty_update: str, penalty_mult: float, gamma: float, delta: float,
                 rho: float, dual_min: float, dual_max: float, penalty_min: float, penalty_max: float,
                 gamma_annealing: bool, penalty_annealing: bool, epoch_length: int, primal: str, lr: float,
                 beta1: float, beta2: float, eps: float, weight_decay: float, batch_size: int, per_group: int,
                 output: str, tail_fraction: float):
        def unit(key, v):
            check(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 < v < 1.0,
                  f"algo.{key}", v, "must be a number in (0, 1)")
        check_in("algo.pbf", pbf, PBFS)
        check_in("algo.penalty_update", penalty_update, PENALTY_UPDATES)
        unit("penalty_mult", penalty_mult)
        check(isinstance(gamma, (int, float)) and not isinstance(gamma, bool) and 0.0 <= gamma < 1.0,
              "algo.gamma", gamma, "must be a number in [0, 1) (0: the paper's update lam <- lam phi'(c/p))")
        check_positive("algo.delta", delta)
        check_positive("algo.rho", rho)
        check_positive("algo.dual_min", dual_min)
        check(dual_max > dual_min, "algo.dual_max", dual_max, f"must be > dual_min ({dual_min})")
        check_positive("algo.penalty_min", penalty_min)
        check(penalty_max >= penalty_min, "algo.penalty_max", penalty_max, f"must be >= penalty_min ({penalty_min})")
        check(isinstance(gamma_annealing, bool), "algo.gamma_annealing", gamma_annealing, "must be true or false")
        check(isinstance(penalty_annealing, bool), "algo.penalty_annealing", penalty_annealing, "must be true or false")
        check_positive("algo.epoch_length", epoch_length, integer=True)
        self._init_primal_dual(primal, lr, beta1, beta2, eps, weight_decay, batch_size, per_group, output, tail_fraction)
        self.pbf, self.penalty_update = pbf, penalty_update
        self.penalty_mult, self.gamma, self.delta, self.rho = float(penalty_mult), float(gamma), float(delta), float(rho)
        self.dual_min, self.dual_max = float(dual_min), float(dual_max)
        self.penalty_min, self.penalty_max = float(penalty_min), float(penalty_max)
        self.gamma_annealing, self.penalty_annealing = gamma_annealing, penalty_annealing
        self.epoch_length = int(epoch_length)

    def setup(self, oracle, rng: np.random.Generator) -> None:
        super().setup(oracle, rng)
        self.multipliers[:] = self.dual_min
        self.penalties = np.full_like(self.multipliers, self.penalty_max)
        self.k = 0

    def _weights(self, c: np.ndarray) -> np.ndarray:
        lam, p = self.multipliers, self.penalties
        epoch = self.k // self.epoch_length
        gamma = annealed(self.gamma, epoch) if self.gamma_annealing else self.gamma
        mult = annealed(self.penalty_mult, epoch) if self.penalty_annealing else self.penalty_mult
        ratio = c / p
        d_ratio = pbf(self.pbf, ratio)[1]
        w = lam * d_ratio                                 # the surrogate's weights, before the update
        new_lam = np.clip(gamma * lam + (1.0 - gamma) * w, self.dual_min, self.dual_max)
        rule = self.penalty_update
        if rule == "dimin":
            p = p * mult
        elif rule == "dimin_dual":
            p = p * mult * new_lam
        elif rule == "dimin_adapt":
            d = pbf(self.pbf, c)[1]
            d = np.where(d < 1.0, d, self.delta * d)
            p = mult * p + (1.0 - mult) * p / (d + 1e-8)
        elif rule == "aimd":
            p = (p + np.where(ratio <= 0.0, AIMD_STEP, 0.0)) * np.where(ratio > 0.0, mult, 1.0)
        elif rule == "alm":
            p = new_lam * self.rho
        self.multipliers[:] = new_lam
        np.clip(p, self.penalty_min, self.penalty_max, out=self.penalties)
        self.k += 1
        return w

    def step(self) -> None:
        zeta, xi = self._batches()
        _, _, g = self.oracle.lagrangian_grad(zeta, xi, self._weights)
        self.primal_step(g)

    def state(self) -> dict[str, float]:
        out = super().state()
        out.update({f"penalty_{j}": float(v) for j, v in enumerate(self.penalties)})
        return out
