"""Stochastic smoothed linearized augmented Lagrangian method (SSL-ALM), and ALM as its special case."""

from __future__ import annotations

import numpy as np

from fairbench.algorithms.base import PER_CONSTRAINT_STATE_LIMIT, Algorithm, constraint_state_summary
from fairbench.algorithms.primal import PrimalStep
from fairbench.algorithms.ssl_alm_sampled import SampledConstraintSteps
from fairbench.errors import check, check_in, check_positive

DUAL_RESETS = ("component", "all")


class SSLALM(SampledConstraintSteps, Algorithm):
    """Stochastic smoothed linearized augmented Lagrangian method (Huang, Zhang & Alacaoglu 2025).

    The inequalities ``c(x) <= 0`` become equalities with slacks, ``c_i(x) + s_i = 0`` with
    ``s >= 0``; the primal variable is ``(x, s)`` and ``z = (z_x, z_s)`` is a proximal centre.
    Iteration k, with three independent minibatches: ``zeta`` (``batch_size`` rows, objective
    stream), ``xi_1`` and ``xi_2`` (``per_group`` rows of every group, constraint streams 0 and 1)::

        c1     = c(x; xi_1) + s                       # sampled, with the Jacobian J at xi_1
        lam    = lam + eta * c1                       # dual step, then the safeguard below
        c2     = c(x; xi_2) + s                       # independent sample, no gradient
        G_x    = grad f(x; zeta) + J^T (lam + rho c2) + mu (x - z_x)
        G_s    =                   (lam + rho c2) + mu (s - z_s)
        z      = z + beta ((x, s) - z)                # with the iterate before the step
        (x, s) = (x - tau G_x,  max(s - tau G_s, 0))  # projection: only s is clipped at 0

    ``G_x`` is the gradient of ``f + (lam + rho c2)^T c`` with ``c2`` held constant, so the
    oracle does one backward pass: ``lagrangian_grad(zeta, xi_1, weights)`` with a weights
    callable that gets ``c(x; xi_1)``, makes the dual step and returns ``lam + rho c2``. The term
    ``rho J^T c2`` is an unbiased estimate of the gradient of the augmented term
    ``rho/2 ||c(x) + s||^2`` because ``xi_1`` and ``xi_2`` are independent.

    Dual safeguard (``dual_bound``, ``dual_reset``), applied right after the dual step:

    - ``component`` (the paper's later code): every multiplier with ``|lam_i| > dual_bound``
      is reset to 0, the others are kept. (That code tested only ``lam_i >= bound``; the
      multipliers of the slack equalities are free in sign, so we test the absolute value.)
    - ``all`` (the paper's text): if ``||lam||_2 > dual_bound``, the whole vector is reset to 0.

    ``step`` returns ``{"dual_resets": 1}`` on an iteration where a reset happened (else 0).
    State: ``lam`` (multipliers), ``slack`` (s), ``z`` (centre of x) and ``z_slack``; all start
    at 0 except ``z``, which starts at ``x_0`` (and is ``None`` when ``mu = 0``: no centre is
    kept). ``state()`` reports ``lambda_<j>`` and ``slack_<j>`` (summaries beyond
    :data:`~fairbench.algorithms.base.PER_CONSTRAINT_STATE_LIMIT` constraints).

    With ``problem.constraints_per_step`` = k the step uses a uniform draw S of k constraints
    (:meth:`_sampled_step`): ``J^T w`` becomes ``(m/k) J_S^T w_S``, and only S's multipliers,
    slacks and slack centres move.

    Batch sizes: ``batch_size`` objective rows plus ``2 x per_group x n_groups`` constraint
    rows per iteration; the backward pass covers the objective rows and ``xi_1`` only.
    The paper's code also took one extra full-batch step after the time budget; that option
    is not implemented (the reported parameters are the last iterate).

    ALM (:class:`fairbench.algorithms.alm.ALM`) is this method with ``mu = 0`` and ``beta = 1``
    (no smoothing). Experiment-1 settings: ``tau=0.01, eta=0.05, rho=1, mu=2, beta=0.5``,
    batch 8, multiplier bound 10.

    Parameters
    ----------
    tau : primal step size (> 0).
    eta : dual step size (> 0).
    rho : augmented-Lagrangian penalty (>= 0).
    mu : smoothing (proximal) weight (>= 0; 0 switches the centre ``z`` off).
    beta : centre update weight, in (0, 1].
    batch_size : objective rows per iteration (``zeta``).
    per_group : constraint rows per group for each of ``xi_1`` and ``xi_2``.
    dual_bound : multiplier bound of the safeguard (> 0).
    dual_reset : ``component`` or ``all`` (see above).
    primal, beta1, beta2, eps, weight_decay : the primal optimizer of ``x``
        (:mod:`fairbench.algorithms.primal`; ``sgd`` with no weight decay is the step above,
        ``adam`` replaces ``x - tau G_x`` by Adam's step with learning rate ``tau``); the slack
        keeps its projected step.
    """

    needs_constraints = True
    samples_constraints = True

    def __init__(
        self,
        tau: float,
        eta: float,
        rho: float,
        mu: float,
        beta: float,
        batch_size: int,
        per_group: int,
        dual_bound: float,
        dual_reset: str,
        primal: str,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
    ):
        check_positive("algo.tau", tau)
        check_positive("algo.eta", eta)
        check_positive("algo.rho", rho, allow_zero=True)
        check_positive("algo.mu", mu, allow_zero=True)
        check_positive("algo.beta", beta)
        check(beta <= 1, "algo.beta", beta, "must be a number in (0, 1]")
        check_positive("algo.batch_size", batch_size, integer=True)
        check_positive("algo.per_group", per_group, integer=True)
        check_positive("algo.dual_bound", dual_bound)
        check_in("algo.dual_reset", dual_reset, DUAL_RESETS)
        self.tau, self.eta, self.rho, self.mu, self.beta = float(tau), float(eta), float(rho), float(mu), float(beta)
        self.batch_size, self.per_group = int(batch_size), int(per_group)
        self.dual_bound, self.dual_reset = float(dual_bound), dual_reset
        self._primal = PrimalStep(primal, tau, beta1, beta2, eps, weight_decay)
        self.primal, self.weight_decay = primal, float(weight_decay)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    @property
    def multipliers(self) -> np.ndarray:
        """The multipliers ``lam`` (the common name of every method's multipliers)."""
        return self.lam

    @property
    def plain_primal(self) -> bool:
        """Whether the primal step is ``x - tau G_x`` (sgd, no weight decay); faster variants
        of the step may implement only this one (fairbench.backends.variants)."""
        return self.primal == "sgd" and self.weight_decay == 0.0

    def setup(self, oracle, rng: np.random.Generator) -> None:
        super().setup(oracle, rng)
        self.check_per_group("algo.per_group", self.per_group)
        m, dtype = oracle.n_constraints, oracle.x.dtype
        self.lam = np.zeros(m, dtype=dtype)
        self.slack = np.zeros(m, dtype=dtype)
        self.z = oracle.x.copy() if self.mu > 0 else None
        self.z_slack = np.zeros(m, dtype=dtype)
        self._c2 = np.zeros(m, dtype=dtype)   # c(x; xi_2) + s
        self._w = np.zeros(m, dtype=dtype)    # the constraint weights lam + rho c2
        self._reset = 0
        self._primal.reset(oracle.x)
        self.sampled = getattr(oracle, "constraints_per_step", None) is not None
        if self.sampled:
            self._lam_sq = 0.0                               # ||lam||^2, kept up to date
            self._z_seen = np.zeros(m, dtype=np.int64)       # step at which z_slack[j] was last current
            self._steps = 0

    def _safeguard(self) -> int:
        """Reset multipliers beyond ``dual_bound``; 1 if anything was reset, else 0."""
        lam = self.lam
        if self.dual_reset == "all":
            if np.linalg.norm(lam) > self.dual_bound:
                lam[:] = 0.0
                return 1
            return 0
        over = np.abs(lam) > self.dual_bound
        if over.any():
            lam[over] = 0.0
            return 1
        return 0

    def _weights(self, c: np.ndarray, c_xi2: np.ndarray) -> np.ndarray:
        """Dual step from ``c = c(x; xi_1)`` and the safeguard; returns the constraint weights
        ``lam + rho c2`` with ``c2 = c(x; xi_2) + s``."""
        np.add(c_xi2, self.slack, out=self._c2)
        self.lam += self.eta * (c + self.slack)
        self._reset = self._safeguard()
        np.add(self.lam, self.rho * self._c2, out=self._w)
        return self._w

    def _primal_step(self, g: np.ndarray) -> None:
        """``(x, s) <- (x - tau G_x, max(s - tau G_s, 0))`` and the centre update, from
        ``g = grad f + J^T w`` (``g`` is overwritten)."""
        tau, mu, x = self.tau, self.mu, self.oracle.x
        g_s = self._w + mu * (self.slack - self.z_slack) if mu > 0 else self._w
        if mu > 0:
            d = x - self.z        # (x - z_x), used by the gradient and by the centre update
            g += mu * d
            d *= self.beta
            self.z += d           # z_x <- z_x + beta (x_old - z_x)
            self.z_slack += self.beta * (self.slack - self.z_slack)
        if self.plain_primal:
            x -= tau * g
        else:
            self._primal.step(x, g)
        np.maximum(self.slack - tau * g_s, 0.0, out=self.slack)

    def step(self) -> dict[str, int]:
        if self.sampled:
            return self._sampled_step()
        oracle = self.oracle
        zeta = oracle.sample_objective(self.batch_size)
        xi_1 = oracle.sample_constraints(self.per_group, stream=0)
        xi_2 = oracle.sample_constraints(self.per_group, stream=1)
        c_xi2, _ = oracle.constraints(xi_2)
        # one backward pass: grad f(zeta) + J(xi_1)^T w, the weights w from c(x; xi_1) and c_xi2
        _, _, g = oracle.lagrangian_grad(zeta, xi_1, lambda c: self._weights(c, c_xi2))
        self._primal_step(g)
        return {"dual_resets": self._reset}

    def state(self) -> dict[str, float]:
        if self.lam.size > PER_CONSTRAINT_STATE_LIMIT:
            return constraint_state_summary({"lambda": self.lam, "slack": self.slack})
        out = {f"lambda_{j}": float(v) for j, v in enumerate(self.lam)}
        out.update({f"slack_{j}": float(v) for j, v in enumerate(self.slack)})
        return out
