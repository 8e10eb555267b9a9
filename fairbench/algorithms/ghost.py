"""Stochastic Ghost (Facchinei & Kungurtsev 2023): SQP-type steps debiased by multilevel Monte Carlo."""

from __future__ import annotations

import math

import numpy as np

from fairbench.algorithms.base import Algorithm
from fairbench.algorithms.output import check_output
from fairbench.algorithms.subproblems import INACCURATE, INFEASIBLE, SOLVERS, GhostSubproblems
from fairbench.errors import check, check_in, check_positive
from fairbench.problems.base import split_batch

STEP_RULES = ("dimin", "power")

#: Event counts :meth:`StochasticGhost.step` returns (the runner sums them over the run).
COUNT_KEYS = ("truncations", "qp_failures", "qp_infeasible", "lp_fallbacks", "qp_inaccurate", "skipped_steps",
              "lp_highs_fallbacks", "qp_osqp_fallbacks")

#: Constraint sampling streams: S0's balanced batch and S3's come from independent streams.
S0_STREAM, S3_STREAM = 0, 1


class StochasticGhost(Algorithm):
    """Stochastic Ghost: a feasibility-restoring SQP step per sample set, combined by MLMC.

    Per iteration k (paper-methods.md, "Stochastic Ghost"):

    1. Step size: ``dimin``: ``gamma_0``, then ``gamma_k = gamma_{k-1} (1 - zeta gamma_{k-1})``;
       ``power``: ``gamma_k = gamma_0 / (k + 1)^zeta``.
    2. Level ``N = Geometric(p) - 1`` from the algorithm's own rng, so ``P(N = n) = p (1-p)^n``
       for ``n >= 0`` (the "- 1" matters: without it the estimator is biased). For ``p <= 0.5``
       the expected batch ``E[2^(N+1)]`` is infinite, so ``N`` is capped at ``n_max`` (default:
       the largest ``N`` with ``b 2^(N+1)`` rows of the smallest group, or ``n_max_fallback``
       when the oracle reports no group-size limit) and every cap is counted
       (``truncations``). The MLMC weight uses the law of the capped level,
       ``P(N = n) = p (1-p)^n`` for ``n < n_max`` and ``P(N = n_max) = (1-p)^n_max`` (the tail),
       so the estimator stays exactly unbiased for the level-``n_max`` direction
       (``E[d] = E[d(S of b 2^(n_max+1) rows)]``, ``b = batch0`` below) instead of
       mis-weighting the capped draws.
    3. Sample sets: ``S0`` (``b = batch0`` objective rows, ``b`` constraint rows per group;
       the paper's code: 1); ``S3`` (``b 2^(N+1)`` objective rows, ``b 2^(N+1)`` rows per
       group), drawn once from the oracle; ``S1`` / ``S2`` its odd / even halves
       (:func:`~fairbench.problems.base.split_batch`: disjoint, union exactly ``S3``). The
       levels are counted in units of ``b`` rows so that the telescoping sum starts at S0's
       size: ``E[d] = E[d(b rows)] + sum_n (E[d(b 2^(n+1))] - E[d(b 2^n)])``; with S3 of
       ``2^(N+1)`` rows whatever ``b``, ``batch0 > 1`` would leave ``E[d(b)] - E[d(1)]`` in the
       sum (biased wherever the direction map is nonlinear).
    4. On each set j: ``g = grad f`` and ``c``, ``J`` from ``oracle.objective`` and
       ``oracle.constraints`` (S1 and S2 are S3's halves, so S3's rows can give all three:
       :mod:`fairbench.backends` does where the oracle can); the level
       ``kappa = (1 - w) max_i [c_i]_+ + w t*`` with ``w = kappa_weight`` and ``t*`` the LP
       ``min t s.t. c + J d <= t, t >= 0, |d| <= rho`` (``rho`` the radius, ``w`` the weight:
       the paper's code swapped them; the paper calls ``w`` lambda, which fairbench keeps for
       the multipliers of the primal–dual methods); the direction ``d_j`` solves
       ``min g^T d + (tau/2)||d||^2 s.t. c + J d <= kappa, |d| <= beta``
       (:mod:`fairbench.algorithms.subproblems`, ``solver`` exact or osqp).
    5. ``d = d_0 + (d_3 - d_1/2 - d_2/2) / P(N)`` and ``x <- x + gamma_k d``.

    Independence of the sample sets and the handling of failed subproblems (a skipped step,
    counted) are set out in docs/methods.md ("Stochastic Ghost").

    State: ``k`` (iterations done), ``gamma`` (the step size of the next iteration),
    ``last_gamma``, ``level`` (last N, after capping), ``weight`` (its MLMC weight),
    ``n_max_used``, ``totals`` (event counts since :meth:`setup`).
    """

    needs_constraints = True
    sampling_refusal = ("its subproblem c + J d <= kappa needs every constraint's value and Jacobian row; "
                        "a subset drops constraints instead of estimating them")

    def __init__(
        self,
        p: float,
        rho: float,
        beta: float,
        kappa_weight: float,
        gamma0: float,
        zeta: float,
        tau: float,
        step_rule: str,
        solver: str,
        n_max: int | None,
        n_max_fallback: int,
        osqp_eps_abs: float,
        osqp_eps_rel: float,
        osqp_max_iter: int,
        osqp_polishing: bool,
        batch0: int,
        output: str,
        tail_fraction: float,
    ):
        def is_number(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        check(is_number(p) and 0.0 < p < 1.0, "algo.p", p, "must be a number in (0, 1)")
        for key, value in (("rho", rho), ("beta", beta), ("tau", tau), ("gamma0", gamma0)):
            check_positive(f"algo.{key}", value)
        check(is_number(kappa_weight) and 0.0 <= kappa_weight <= 1.0, "algo.kappa_weight", kappa_weight,
              "must be a number in [0, 1]")
        check_positive("algo.batch0", batch0, integer=True)
        check_output(output, tail_fraction)
        check_positive("algo.zeta", zeta, allow_zero=True)
        check_in("algo.step_rule", step_rule, STEP_RULES)
        check_in("algo.solver", solver, SOLVERS)
        if step_rule == "dimin":
            check(zeta * gamma0 < 1.0, "algo.zeta", zeta,
                  f"with step_rule=dimin, zeta * gamma0 must be < 1 (gamma0={gamma0}) to keep steps positive")
        if n_max is not None:
            check_positive("algo.n_max", n_max, integer=True, allow_zero=True)
        check_positive("algo.n_max_fallback", n_max_fallback, integer=True, allow_zero=True)
        check_positive("algo.osqp_eps_abs", osqp_eps_abs, allow_zero=True)
        check_positive("algo.osqp_eps_rel", osqp_eps_rel, allow_zero=True)
        check_positive("algo.osqp_max_iter", osqp_max_iter, integer=True)
        check(isinstance(osqp_polishing, bool), "algo.osqp_polishing", osqp_polishing, "must be true or false")
        self.p, self.rho, self.beta, self.kappa_weight = float(p), float(rho), float(beta), float(kappa_weight)
        self.batch0, self.output, self.tail_fraction = int(batch0), output, float(tail_fraction)
        self.gamma0, self.zeta, self.tau = float(gamma0), float(zeta), float(tau)
        self.step_rule, self.solver = step_rule, solver
        self.n_max = None if n_max is None else int(n_max)
        self.n_max_fallback = int(n_max_fallback)
        self.osqp_eps_abs, self.osqp_eps_rel = float(osqp_eps_abs), float(osqp_eps_rel)
        self.osqp_max_iter, self.osqp_polishing = int(osqp_max_iter), osqp_polishing
        self._reset_state()

    _HYPERPARAMETERS = ("p", "rho", "beta", "kappa_weight", "gamma0", "zeta", "tau", "step_rule", "solver", "n_max", "n_max_fallback",
                        "osqp_eps_abs", "osqp_eps_rel", "osqp_max_iter", "osqp_polishing", "batch0", "output",
                        "tail_fraction")

    def hyperparameters(self) -> dict:
        """The constructor's hyperparameters (state attributes such as ``gamma`` excluded)."""
        return {k: getattr(self, k) for k in self._HYPERPARAMETERS}

    def _reset_state(self) -> None:
        self.k = 0
        self.gamma = self.gamma0
        self.last_gamma = self.gamma0
        self.level = -1
        self.weight = float("nan")
        self.n_max_used: int | None = self.n_max
        self.totals = {key: 0 for key in COUNT_KEYS}

    # -- setup -------------------------------------------------------------------------
    def setup(self, oracle, rng: np.random.Generator) -> None:
        super().setup(oracle, rng)
        self.check_per_group("algo.batch0", self.batch0)
        self._reset_state()
        smallest = getattr(oracle, "smallest_group", None)
        b = self.batch0
        if smallest is not None and b > 1:
            check(2 * b <= smallest, "algo.batch0", b,
                  f"2 batch0 rows per group (the level-0 set S3) must be at most the smallest group's "
                  f"training size ({smallest})")
        # largest N with batch0 2^(N+1) <= smallest (a one-row group gets 0)
        largest = None if smallest is None else max(0, (int(smallest) // b).bit_length() - 2)
        if self.n_max is None:
            # an oracle with no group-size limit (deterministic problems, custom oracles) gets n_max_fallback
            self.n_max_used = self.n_max_fallback if smallest is None else largest
        else:
            if smallest is not None:
                check(b * 2 ** (self.n_max + 1) <= smallest, "algo.n_max", self.n_max,
                      f"batch0 2^(n_max+1) rows per group must be at most the smallest group's training size "
                      f"({smallest}); largest allowed: {largest}")
            self.n_max_used = self.n_max
        self._subproblems = self._build_subproblems()

    def _build_subproblems(self, **options) -> GhostSubproblems:
        """The direction QP's and feasibility LP's solver with this method's settings."""
        return GhostSubproblems(
            self.solver, rho=self.rho, lam=self.kappa_weight, tau=self.tau, beta=self.beta,
            osqp_settings=dict(eps_abs=self.osqp_eps_abs, eps_rel=self.osqp_eps_rel,
                               max_iter=self.osqp_max_iter, polishing=self.osqp_polishing),
            **options,
        )

    # -- pieces ------------------------------------------------------------------------
    def step_size(self, k: int) -> float:
        """``gamma_k`` (for ``dimin`` this replays the recursion from ``gamma_0``)."""
        if self.step_rule == "power":
            return self.gamma0 / (k + 1) ** self.zeta
        gamma = self.gamma0
        for _ in range(k):
            gamma *= 1.0 - self.zeta * gamma
        return gamma

    def draw_level(self) -> tuple[int, bool]:
        """``(N, truncated)``: ``N = min(Geometric(p) - 1, n_max)``, ``P(raw N = n) = p (1-p)^n``."""
        raw = int(self.rng.geometric(self.p)) - 1
        return (self.n_max_used, True) if raw > self.n_max_used else (raw, False)

    def level_probability(self, n: int) -> float:
        """``P(N = n)`` for the capped level: ``p (1-p)^n`` below ``n_max``, the tail at ``n_max``."""
        if n >= self.n_max_used:
            return (1.0 - self.p) ** self.n_max_used
        return self.p * (1.0 - self.p) ** n

    def _set_direction(self, g: np.ndarray, c: np.ndarray, J: np.ndarray, counts: dict) -> np.ndarray | None:
        """The direction QP's solution at one sample set's ``g``, ``c``, ``J``; ``None`` (and the
        event counted) when the QP is infeasible or fails."""
        sub = self._subproblems.solve(g, c, J)
        counts["lp_fallbacks"] += int(sub.lp.fallback)
        qp = sub.qp
        if not qp.ok:
            counts["qp_infeasible" if qp.status == INFEASIBLE else "qp_failures"] += 1
            return None
        counts["qp_inaccurate"] += int(qp.status == INACCURATE)
        return qp.d

    def _set_values(self, obj_batch, con_batch) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """``(f, grad f, c, J)`` on one sample set."""
        f, g = self.oracle.objective(obj_batch, grad=True)
        c, J = self.oracle.constraints(con_batch, jac=True)
        return f, g, c, J

    def _halves_values(self, obj_batch, con_batch) -> tuple[tuple, tuple, tuple]:
        """:meth:`_set_values` on S1, S2 (the odd and even halves of S3: :func:`split_batch`) and S3."""
        (o1, o2), (c1, c2) = split_batch(obj_batch), split_batch(con_batch)
        return self._set_values(o1, c1), self._set_values(o2, c2), self._set_values(obj_batch, con_batch)

    def direction(self) -> tuple[np.ndarray | None, dict[str, int]]:
        """The MLMC direction at the current ``x`` (``x`` is not moved) and the event counts.

        Draws the level and the sample sets; returns ``(None, counts)`` when a subproblem of
        any set was infeasible or failed (the subproblems stop at the first such set: S0 is
        evaluated alone first, then S1, S2 and S3 by one :meth:`_halves_values` call).
        """
        oracle = self.oracle
        counts = {key: 0 for key in COUNT_KEYS}
        n, truncated = self.draw_level()
        counts["truncations"] = int(truncated)
        self.level, self.weight = n, 1.0 / self.level_probability(n)
        size = self.batch0 * 2 ** (n + 1)
        s0 = (oracle.sample_objective(self.batch0), oracle.sample_constraints(self.batch0, stream=S0_STREAM))
        s3 = (oracle.sample_objective(size), oracle.sample_constraints(size, stream=S3_STREAM))
        _, g, c, J = self._set_values(*s0)
        d0 = self._set_direction(g, c, J, counts)
        if d0 is None:
            return None, counts
        directions = []
        for _, g, c, J in self._halves_values(*s3):
            d = self._set_direction(g, c, J, counts)
            if d is None:
                return None, counts
            directions.append(d)
        d1, d2, d3 = directions
        d = d0 + (d3 - 0.5 * d1 - 0.5 * d2) * self.weight
        if not np.isfinite(d).all():
            counts["qp_failures"] += 1
            return None, counts
        return d, counts

    # -- iteration ---------------------------------------------------------------------
    def step(self) -> dict[str, int]:
        handed_over = dict(self._subproblems.fallbacks)
        d, counts = self.direction()
        # exact-path subproblems handed to HiGHS/OSQP this iteration (0 on the census tasks)
        for key, before in handed_over.items():
            counts[f"{key}_fallbacks"] = self._subproblems.fallbacks[key] - before
        gamma = self.gamma
        if d is None:
            counts["skipped_steps"] = 1
        else:
            self.oracle.x += gamma * d
        self.last_gamma = gamma
        self.k += 1
        if self.step_rule == "power":
            self.gamma = self.gamma0 / (self.k + 1) ** self.zeta
        else:
            self.gamma = gamma * (1.0 - self.zeta * gamma)
        for key, value in counts.items():
            self.totals[key] += value
        return counts

    def state(self) -> dict[str, float]:
        """Step size of the last iteration and its level N (-1 before the first)."""
        return {"gamma": float(self.last_gamma), "level": float(self.level)}
