"""Stochastic linearized augmented Lagrangian method (ALM): SSL-ALM without smoothing."""

from __future__ import annotations

from fairbench.algorithms.ssl_alm import SSLALM


class ALM(SSLALM):
    """Stochastic linearized augmented Lagrangian method with slacks (the paper's "ALM").

    :class:`~fairbench.algorithms.ssl_alm.SSLALM` with the smoothing switched off
    (``mu = 0``, ``beta = 1``): per iteration, with independent minibatches ``zeta`` (objective),
    ``xi_1`` and ``xi_2`` (balanced constraint batches, streams 0 and 1)::

        lam    = lam + eta * (c(x; xi_1) + s)         # then the dual safeguard
        c2     = c(x; xi_2) + s
        (x, s) = (x - tau [grad f(x; zeta) + J(x; xi_1)^T (lam + rho c2)],
                  max(s - tau (lam + rho c2), 0))

    Experiment-1 settings: ``tau=0.01, eta=0.05, rho=1``, batch 8, multiplier bound 10. The
    safeguard (``dual_bound``, ``dual_reset``) and the returned ``{"dual_resets": n}`` are those
    of SSL-ALM, and so is the primal optimizer (``primal=adam``: Adam with learning rate ``tau``).
    """

    def __init__(
        self,
        tau: float,
        eta: float,
        rho: float,
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
        super().__init__(tau=tau, eta=eta, rho=rho, mu=0.0, beta=1.0, batch_size=batch_size,
                         per_group=per_group, dual_bound=dual_bound, dual_reset=dual_reset, primal=primal,
                         beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
