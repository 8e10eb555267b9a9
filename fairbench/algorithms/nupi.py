"""nuPI multiplier updates (Sohrabi et al. 2024) on the Lagrangian."""

from __future__ import annotations

import numpy as np

from fairbench.algorithms.primal_dual import PrimalDual
from fairbench.errors import check, check_in, check_positive

INITS = ("zeros", "sgd")
ORDERS = ("simultaneous", "dual_primal")


class NuPI(PrimalDual):
    """Lagrangian method with nuPI multipliers (Sohrabi, Ramirez, Zhang, Lacoste-Julien &
    Gallego-Posada, "On PI controllers for updating Lagrange multipliers in constrained
    optimization", ICML 2024, Algorithm 1).

    Error ``e_t = c(x_t; xi_t)`` (balanced constraint batch), its EMA and the multipliers::

        xi_t      = nu xi_{t-1} + (1 - nu) e_t
        lam_{t+1} = [lam_t + eta (K_I e_t + K_P (xi_t - xi_{t-1}))]_+        (then <= dual_max)

    ``init``: ``zeros`` (``xi_{-1} = 0``: first step ``eta (K_I + K_P (1-nu)) e_0``) or ``sgd``
    (``xi_{-1} = e_0``, so ``xi_0 = e_0`` and the first step is ``eta K_I e_0``, plain
    gradient ascent). ``K_P = 0`` is gradient ascent; ``nu = 0, K_P = K_I = 1`` is the
    optimistic gradient. The primal step uses the gradient of
    ``f + lam^T c + (penalty/2) ||[c]_+||^2``: ``order=simultaneous`` with the multipliers
    before the update (Cooper's ``SimultaneousOptimizer``), ``dual_primal`` with those after
    it (humancompatible-train's ``nuPI`` surrogate). ``penalty = 0`` is the plain Lagrangian.

    The references depart from the paper in the sgd initialisation: Cooper 1.0.1's
    ``init_type=SGD`` stores ``xi_0 = 0`` (not ``e_0``), so its second step misses
    ``-eta K_P (1-nu) e_0``; humancompatible-train 0.4.2 takes the sgd first step but
    continues from ``xi_0 = (1-nu) e_0`` (the ``zeros`` recursion). fairbench follows the
    paper (tests/algorithms/test_peers_nupi.py shows both differences).

    Parameters: ``eta`` dual step, ``kp``, ``ki`` gains (>= 0, not both 0), ``nu`` in [0, 1),
    ``init``, ``order``, ``penalty`` (>= 0), ``dual_max`` (> 0 or null: no upper bound), and the
    primal optimizer's settings (:mod:`fairbench.algorithms.primal`).
    """

    def __init__(self, eta: float, kp: float, ki: float, nu: float, init: str, order: str, penalty: float,
                 dual_max: float | None, primal: str, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, batch_size: int, per_group: int, output: str, tail_fraction: float):
        check_positive("algo.eta", eta)
        check_positive("algo.kp", kp, allow_zero=True)
        check_positive("algo.ki", ki, allow_zero=True)
        check(kp > 0 or ki > 0, "algo.ki", ki, "kp and ki must not both be 0")
        check(isinstance(nu, (int, float)) and not isinstance(nu, bool) and 0.0 <= nu < 1.0,
              "algo.nu", nu, "must be a number in [0, 1)")
        check_in("algo.init", init, INITS)
        check_in("algo.order", order, ORDERS)
        check_positive("algo.penalty", penalty, allow_zero=True)
        if dual_max is not None:
            check_positive("algo.dual_max", dual_max)
        self._init_primal_dual(primal, lr, beta1, beta2, eps, weight_decay, batch_size, per_group, output, tail_fraction)
        self.eta, self.kp, self.ki, self.nu = float(eta), float(kp), float(ki), float(nu)
        self.init, self.order, self.penalty = init, order, float(penalty)
        self.dual_max = None if dual_max is None else float(dual_max)

    def setup(self, oracle, rng: np.random.Generator) -> None:
        super().setup(oracle, rng)
        self.xi: np.ndarray | None = None   # xi_{t-1}; None before the first step

    def _dual(self, e: np.ndarray) -> None:
        lam, nu = self.multipliers, self.nu
        prev = (np.zeros_like(e) if self.init == "zeros" else e.copy()) if self.xi is None else self.xi
        new = nu * prev + (1.0 - nu) * e
        lam += self.eta * (self.ki * e + self.kp * (new - prev))
        np.maximum(lam, 0.0, out=lam)
        if self.dual_max is not None:
            np.minimum(lam, self.dual_max, out=lam)
        self.xi = new

    def _weights(self, c: np.ndarray, lam: np.ndarray) -> np.ndarray:
        return lam + self.penalty * np.maximum(c, 0.0) if self.penalty else lam

    def step(self) -> None:
        zeta, xi = self._batches()
        if self.order == "dual_primal":
            def weights(c):
                self._dual(c)
                return self._weights(c, self.multipliers)
            _, _, g = self.oracle.lagrangian_grad(zeta, xi, weights)
        else:
            old = self.multipliers.copy()
            _, c, g = self.oracle.lagrangian_grad(zeta, xi, lambda c: self._weights(c, old))
            self._dual(c)
        self.primal_step(g)
