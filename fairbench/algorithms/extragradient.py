"""Extragradient on the Lagrangian game, as in Cooper's ExtrapolationConstrainedOptimizer."""

from __future__ import annotations

import numpy as np

from fairbench.algorithms.primal_dual import PrimalDual
from fairbench.errors import check_in, check_positive

SAMPLES = ("same", "fresh")


class Extragradient(PrimalDual):
    """Extragradient (Korpelevich 1976; stochastic, Gidel et al. 2019) on
    ``L(x, lam) = f(x) + lam^T c(x)``, ``lam >= 0``.

    Per iteration, from ``(x, lam)``, with minibatches ``B_1`` and ``B_2``::

        x~   = P(x,   grad f(x; zeta_1) + J(x; xi_1)^T lam)         lam~ = [lam + eta c(x; xi_1)]_+
        x    = P(x,   grad f(x~; zeta_2) + J(x~; xi_2)^T lam~)      lam  = [lam + eta c(x~; xi_2)]_+

    ``P(x, g)`` is the primal optimizer's step from ``x`` (``sgd``: ``x - lr g``; ``adam``:
    its moments advance at both half-steps, as Cooper's ``ExtraAdam``). ``sample``: ``same``
    (``B_2 = B_1``, as Cooper's ``roll`` evaluates its problem twice on the inputs it is
    given) or ``fresh`` (an independent ``B_2``, the stochastic extragradient of the
    analysis). Two backward passes per iteration. Cooper's weight decay is applied at the
    extrapolated point in the second half-step; here at ``x`` (identical with
    ``weight_decay=0``, its default). State: the multipliers (``lambda_<j>``).
    """

    def __init__(self, eta: float, sample: str, primal: str, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, batch_size: int, per_group: int, output: str, tail_fraction: float):
        check_positive("algo.eta", eta)
        check_in("algo.sample", sample, SAMPLES)
        self._init_primal_dual(primal, lr, beta1, beta2, eps, weight_decay, batch_size, per_group, output, tail_fraction)
        self.eta, self.sample = float(eta), sample

    def step(self) -> None:
        oracle = self.oracle
        x, lam = oracle.x, self.multipliers
        zeta, xi = self._batches()
        x0, lam0 = x.copy(), lam.copy()
        _, c, g = oracle.lagrangian_grad(zeta, xi, lam0)
        self.primal_step(g)                          # x <- x~
        lam_t = np.maximum(lam0 + self.eta * c, 0.0)
        if self.sample == "fresh":
            zeta, xi = self._batches()
        _, c, g = oracle.lagrangian_grad(zeta, xi, lam_t)
        x[...] = x0
        self.primal_step(g)
        np.maximum(lam0 + self.eta * c, 0.0, out=lam)
