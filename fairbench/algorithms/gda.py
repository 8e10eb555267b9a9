"""Gradient descent–ascent on the Lagrangian (simultaneous or alternating), as in Cooper."""

from __future__ import annotations

import numpy as np

from fairbench.algorithms.primal_dual import PrimalDual
from fairbench.errors import check_in, check_positive

ORDERS = ("simultaneous", "primal_dual", "dual_primal")


class GDA(PrimalDual):
    """Projected gradient descent–ascent on ``L(x, lam) = f(x) + lam^T c(x)``, ``lam >= 0``
    (Arrow, Hurwicz & Uzawa 1958; the Lagrangian game of Cooper, Gallego-Posada et al. 2025).

    Per iteration, with minibatches ``zeta`` (objective) and ``xi`` (constraints)::

        simultaneous:  g = grad f(x; zeta) + J(x; xi)^T lam;   lam <- [lam + eta c(x; xi)]_+;  x <- P(x, g)
        primal_dual:   x <- P(x, grad f(x; zeta) + J(x; xi)^T lam);  lam <- [lam + eta c(x_new; xi)]_+
        dual_primal:   lam <- [lam + eta c(x; xi)]_+;  x <- P(x, grad f(x; zeta) + J(x; xi)^T lam_new)

    ``P`` is the primal optimizer (``primal=sgd``: ``x - lr g``; ``adam``). ``primal_dual`` is
    Cooper's ``AlternatingPrimalDualOptimizer`` (the constraint re-evaluated at the new ``x``
    on the same batch: one more forward pass), ``dual_primal`` its
    ``AlternatingDualPrimalOptimizer``, ``simultaneous`` its ``SimultaneousOptimizer``; the
    dual step is Cooper's SGD ascent followed by the multiplier's projection onto ``lam >= 0``.
    Cooper's defaults: SGD primal and dual steps; its examples use ``lr = eta``. State: the
    multipliers (``lambda_<j>``).
    """

    def __init__(self, order: str, eta: float, primal: str, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, batch_size: int, per_group: int, output: str, tail_fraction: float):
        check_in("algo.order", order, ORDERS)
        check_positive("algo.eta", eta)
        self._init_primal_dual(primal, lr, beta1, beta2, eps, weight_decay, batch_size, per_group, output, tail_fraction)
        self.order, self.eta = order, float(eta)

    def _ascent(self, c: np.ndarray) -> np.ndarray:
        lam = self.multipliers
        lam += self.eta * c
        np.maximum(lam, 0.0, out=lam)
        return lam

    def step(self) -> None:
        oracle = self.oracle
        zeta, xi = self._batches()
        if self.order == "dual_primal":
            _, _, g = oracle.lagrangian_grad(zeta, xi, self._ascent)
            self.primal_step(g)
            return
        old = self.multipliers.copy()
        _, c, g = oracle.lagrangian_grad(zeta, xi, old)
        self.primal_step(g)
        if self.order == "primal_dual":
            c, _ = oracle.constraints(xi)
        self._ascent(c)
