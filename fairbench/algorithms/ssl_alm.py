"""Stochastic smoothed linearized augmented Lagrangian method (SSL-ALM), and ALM as its special case."""

from __future__ import annotations

import numpy as np

from fairbench.algorithms.base import Algorithm
from fairbench.backends.oracles import compiled_oracle
from fairbench.errors import check, check_in, check_positive

DUAL_RESETS = ("component", "all")


class SSLALM(Algorithm):
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
    oracle does one backward pass: ``lagrangian_grad_and_values(zeta, xi_1, xi_2, weights)``
    with a weights callable that gets ``c(x; xi_1)`` and ``c(x; xi_2)``, makes the dual step and
    returns ``lam + rho c2`` (the compiled oracle runs one forward pass over all three batches);
    the step asks for it together with the three draws
    (``sample_lagrangian_grad_and_values``, which the compiled oracles draw into one array).
    The term
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
    kept). ``state()`` reports ``lambda_<j>`` and ``slack_<j>``.

    Batch sizes: ``batch_size`` objective rows plus ``2 x per_group x n_groups`` constraint
    rows per iteration; the backward pass covers the objective rows and ``xi_1`` only.
    The paper's code also took one extra full-batch step after the time budget; that option
    is not implemented (the reported parameters are the last iterate).

    Stacks seeds (``supports_stacking``): on a stacked oracle every state array gets the
    leading seed axis (``lam``, ``slack``, ``z_slack`` (S, m), ``z`` (S, P)), the safeguard acts
    per seed (``all``: each seed's norm), ``dual_resets`` is an (S,) array of 0/1 and ``state()``
    gives (S,) arrays; the update is otherwise the same elementwise code.

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
    """

    needs_constraints = True
    supports_stacking = True
    _stacked = False  # set by setup: True on a stacked oracle

    def __init__(
        self,
        tau: float = 0.01,
        eta: float = 0.05,
        rho: float = 1.0,
        mu: float = 2.0,
        beta: float = 0.5,
        batch_size: int = 8,
        per_group: int = 8,
        dual_bound: float = 10.0,
        dual_reset: str = "component",
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

    def setup(self, oracle, rng: np.random.Generator) -> None:
        super().setup(oracle, rng)
        self.check_per_group("algo.per_group", self.per_group)
        m, dtype = oracle.n_constraints, oracle.x.dtype
        shape = oracle.x.shape[:-1] + (m,)  # (m,), or (S, m) for stacked seeds
        self._stacked = self.is_stacked(oracle)
        self.lam = np.zeros(shape, dtype=dtype)
        self.slack = np.zeros(shape, dtype=dtype)
        self.z = oracle.x.copy() if self.mu > 0 else None
        self.z_slack = np.zeros(shape, dtype=dtype)
        self._c2 = np.zeros(shape, dtype=dtype)
        self._w = np.zeros(shape, dtype=dtype)
        self._reset = 0
        self._kernels = None
        if compiled_oracle(oracle) and dtype == np.float32:
            self._bind_kernels()

    def _bind_kernels(self) -> None:
        """Run the updates as compiled kernels (:mod:`~fairbench.backends.compiled.ssl_alm`,
        same numbers): on 2-D views of the state, with the scalars as float32, both taken here.
        The state arrays are updated in place from then on: replacing one (``algo.lam = ...``)
        or changing a hyperparameter after ``setup`` is not supported (call ``setup`` again)."""
        from fairbench.algorithms import ssl_alm_kernels

        def rows(a):
            return None if a is None else (a if a.ndim == 2 else a.reshape(1, -1))

        f32 = np.float32
        self._kernels = ssl_alm_kernels
        self._rows = {name: rows(getattr(self, name)) for name in ("lam", "slack", "z", "z_slack", "_c2", "_w")}
        self._rows["x"] = rows(self.oracle.x)
        self._resets = np.zeros(self._rows["lam"].shape[0], dtype=np.int64)
        self._scalars = dict(tau=f32(self.tau), eta=f32(self.eta), rho=f32(self.rho), mu=f32(self.mu),
                             beta=f32(self.beta), bound=f32(self.dual_bound))

    def _safeguard(self) -> int | np.ndarray:
        """Reset multipliers beyond ``dual_bound``; 1 if anything was reset (per seed when stacked)."""
        lam = self.lam
        if self._stacked:
            if self.dual_reset == "all":
                # each seed's norm as the single-seed code computes it
                reset = np.array([np.linalg.norm(row) > self.dual_bound for row in lam])
                lam[reset] = 0.0
                return reset.astype(np.int64)
            over = np.abs(lam) > self.dual_bound
            lam[over] = 0.0
            return over.any(axis=1).astype(np.int64)
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
        """Dual step from ``c(x; xi_1)``; returns the constraint weights ``lam + rho c2`` with
        ``c2 = c(x; xi_2) + s``."""
        np.add(c_xi2, self.slack, out=self._c2)
        if self._kernels is not None:
            r, k = self._rows, self._scalars
            self._kernels.dual_step(r["lam"], c.reshape(r["lam"].shape), r["slack"], r["_c2"], r["_w"], k["eta"],
                                    k["rho"], k["bound"], self.dual_reset == "all", self._resets)
            # (a copy: a caller may keep each step's counts; the kernel reuses its buffer)
            self._reset = self._resets.copy() if self._stacked else int(self._resets[0])
            return self._w
        self.lam += self.eta * (c + self.slack)
        self._reset = self._safeguard()
        np.add(self.lam, self.rho * self._c2, out=self._w)
        return self._w

    def step(self) -> dict[str, int]:
        oracle, tau, mu = self.oracle, self.tau, self.mu
        _, _, _, g = oracle.sample_lagrangian_grad_and_values(self.batch_size, self.per_group, self._weights)
        if self._kernels is not None:
            r, k = self._rows, self._scalars
            g2 = g.reshape(r["x"].shape)
            if mu > 0:
                self._kernels.primal_step(r["x"], g2, r["z"], r["slack"], r["z_slack"], r["_w"], k["tau"], k["mu"],
                                          k["beta"])
            else:
                self._kernels.primal_step_plain(r["x"], g2, r["slack"], r["_w"], k["tau"])
            return {"dual_resets": self._reset}
        g_s = self._w + mu * (self.slack - self.z_slack) if mu > 0 else self._w
        x = oracle.x
        if mu > 0:
            d = x - self.z        # (x - z_x), used by the gradient and by the centre update
            g += mu * d
            d *= self.beta
            self.z += d           # z_x <- z_x + beta (x_old - z_x)
            self.z_slack += self.beta * (self.slack - self.z_slack)
        x -= tau * g
        np.maximum(self.slack - tau * g_s, 0.0, out=self.slack)
        return {"dual_resets": self._reset}

    def state(self) -> dict[str, float]:
        if self._stacked:  # per-seed copies, (S,) each
            out = {f"lambda_{j}": v.copy() for j, v in enumerate(self.lam.T)}
            out.update({f"slack_{j}": v.copy() for j, v in enumerate(self.slack.T)})
            return out
        out = {f"lambda_{j}": float(v) for j, v in enumerate(self.lam)}
        out.update({f"slack_{j}": float(v) for j, v in enumerate(self.slack)})
        return out
