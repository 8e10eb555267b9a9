"""SSL-ALM's step on k of its m constraints (``problem.constraints_per_step``; docs/scale.md).

With constraints S drawn uniformly (k of m, without replacement), ``J^T w`` is estimated by
``(m/k) J_S^T w_S`` (unbiased), and only S's multipliers, slacks and slack centres take their
step (randomized block-coordinate updates); the other slack centres are brought up to date when
next drawn (their slacks did not move meanwhile), and the ``all`` safeguard keeps a running
squared norm of the multipliers, so a step does O(k) work.
"""

from __future__ import annotations

import math

import numpy as np


class SampledConstraintSteps:
    """:class:`~fairbench.algorithms.ssl_alm.SSLALM`'s step on a sampled subset of constraints."""

    def _sampled_step(self) -> dict[str, int]:
        """The step on k constraints S: ``g = grad f + (m/k) J_S^T w_S`` (module doc)."""
        oracle = self.oracle
        subset = oracle.draw_constraint_subset(0)
        idx, scale = subset.indices, subset.scale
        zeta = oracle.sample_objective(self.batch_size)
        xi_1 = oracle.sample_constraints(self.per_group, stream=0, subset=subset)
        xi_2 = oracle.sample_constraints(self.per_group, stream=1, subset=subset)
        c_xi2, _ = oracle.constraints(xi_2)
        self._steps += 1
        slack = self.slack[idx]
        if self.mu > 0:   # the centres of S's slacks, brought up to date (slack fixed meanwhile)
            lag = (1.0 - self.beta) ** (self._steps - 1 - self._z_seen[idx])
            z_s = slack + lag * (self.z_slack[idx] - slack)
        w_s = np.zeros(len(idx), dtype=self.lam.dtype)

        def weights(c: np.ndarray) -> np.ndarray:
            old = self.lam[idx]
            new = old + self.eta * (c + slack)
            self._lam_sq += float(new @ new - old @ old)
            self.lam[idx] = new
            self._reset = self._sampled_safeguard(idx)
            np.add(self.lam[idx], self.rho * (c_xi2 + slack), out=w_s)
            return w_s * scale

        _, _, g = oracle.lagrangian_grad(zeta, xi_1, weights)
        tau, mu, x = self.tau, self.mu, oracle.x
        g_s = w_s + mu * (slack - z_s) if mu > 0 else w_s
        if mu > 0:
            d = x - self.z
            g += mu * d
            d *= self.beta
            self.z += d
            self.z_slack[idx] = z_s + self.beta * (slack - z_s)
            self._z_seen[idx] = self._steps
        if self.plain_primal:
            x -= tau * g
        else:
            self._primal.step(x, g)
        self.slack[idx] = np.maximum(slack - tau * g_s, 0.0)
        return {"dual_resets": self._reset}

    def _sampled_safeguard(self, idx: np.ndarray) -> int:
        """The safeguard after a dual step on ``idx`` only: ``component`` tests those multipliers,
        ``all`` the kept norm (recomputed exactly after a reset)."""
        lam = self.lam
        if self.dual_reset == "all":
            if math.sqrt(max(self._lam_sq, 0.0)) > self.dual_bound:
                lam[:] = 0.0
                self._lam_sq = 0.0
                return 1
            return 0
        over = np.abs(lam[idx]) > self.dual_bound
        if over.any():
            hit = idx[over]
            self._lam_sq -= float(lam[hit] @ lam[hit])
            lam[hit] = 0.0
            return 1
        return 0
