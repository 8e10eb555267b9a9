"""Stochastic inexact augmented Lagrangian method (iALM), as in humancompatible-train's ``iALM``."""

from __future__ import annotations

import numpy as np

from fairbench.algorithms.primal_dual import PrimalDual
from fairbench.errors import check, check_in, check_positive


FORMS = ("paper", "reference")


class IALM(PrimalDual):
    """Stochastic inexact augmented Lagrangian method (Li, Chen, Xu & Yin, "Stochastic inexact
    augmented Lagrangian method for nonconvex expectation constrained optimization", Comput.
    Optim. Appl. 2024, Algorithm 1), one primal step per dual step as in humancompatible-train.

    ``form=paper`` (the default) uses the paper's augmented Lagrangian for inequalities,
    ``L_beta(x, lam) = f(x) + beta/2 ||[c(x) + lam/beta]_+||^2 - ||lam||^2/(2 beta)`` (Rockafellar's
    form), with ``grad_lam L = max(c, -lam/beta)``. Per iteration, with ``c = c(x; xi)`` on a
    balanced constraint batch and ``beta_k`` the penalty of iteration k::

        d     = max(c, -lam / beta_k)                                   # the dual gradient
        lam   <- clip(lam + min(beta_k, gamma / ||d||) d,  0, dual_max)  # the adaptive dual step
        g      = grad f(x; zeta) + J(x; xi)^T [lam + beta_k c]_+          # grad_x L_beta at the new lam
        x     <- P(x, g);      beta_{k+1} = sigma beta_k

    ``form=reference`` is humancompatible-train 0.4.2's ``iALM``: the term
    ``lam^T c + beta/2 ||[c]_+||^2`` with ``lam >= 0`` kept by projection, so ``d = c``, the dual
    step ``clip(lam + min(beta_k, gamma/||c||) c, 0, dual_max)`` and the primal weights
    ``lam + beta_k [c]_+``. The two agree where every constraint is violated; on a satisfied
    constraint the reference keeps the multiplier's whole pull ``lam``, the paper's
    ``[lam + beta c]_+`` shrinks it (tests/algorithms/test_peers_hct_papers.py).

    ``beta`` is at once the penalty and the cap of the dual step (``min(beta, gamma/||d||)``
    bounds the dual step's length by ``gamma``; with a step at most ``beta`` the paper's update
    keeps ``lam >= 0``); ``sigma >= 1`` grows it geometrically. The surrogate uses the updated
    multipliers. The paper minimises the augmented Lagrangian inexactly (many primal steps)
    between dual steps; fairbench keeps the reference's single-loop variant (docs/methods.md).

    Parameters: ``form``, ``beta`` (> 0), ``sigma`` (>= 1), ``gamma`` (> 0), ``dual_max`` (> 0),
    and the primal optimizer's settings. humancompatible-train's defaults: ``beta = sigma =
    gamma = 1``, multipliers in ``[0, 100]``.
    """

    def __init__(self, form: str, beta: float, sigma: float, gamma: float, dual_max: float, primal: str, lr: float,
                 beta1: float, beta2: float, eps: float, weight_decay: float, batch_size: int, per_group: int,
                 output: str, tail_fraction: float):
        check_in("algo.form", form, FORMS)
        check_positive("algo.beta", beta)
        check_positive("algo.sigma", sigma)
        check(sigma >= 1.0, "algo.sigma", sigma, "must be a number >= 1 (the penalty must not shrink)")
        check_positive("algo.gamma", gamma)
        check_positive("algo.dual_max", dual_max)
        self._init_primal_dual(primal, lr, beta1, beta2, eps, weight_decay, batch_size, per_group, output, tail_fraction)
        self.form = form
        self.beta, self.sigma, self.gamma, self.dual_max = float(beta), float(sigma), float(gamma), float(dual_max)

    def setup(self, oracle, rng: np.random.Generator) -> None:
        super().setup(oracle, rng)
        self.penalty = self.beta   # beta_k

    def _weights(self, c: np.ndarray) -> np.ndarray:
        lam, beta = self.multipliers, self.penalty
        paper = self.form == "paper"
        d = np.maximum(c, -lam / beta) if paper else c
        norm = float(np.sqrt(d @ d))
        step = beta if norm == 0.0 else min(beta, self.gamma / norm)
        lam += step * d
        np.clip(lam, 0.0, self.dual_max, out=lam)
        return np.maximum(lam + beta * c, 0.0) if paper else lam + beta * np.maximum(c, 0.0)

    def step(self) -> None:
        zeta, xi = self._batches()
        _, _, g = self.oracle.lagrangian_grad(zeta, xi, self._weights)
        self.primal_step(g)
        self.penalty *= self.sigma

    def state(self) -> dict[str, float]:
        return {**super().state(), "penalty": float(self.penalty)}
