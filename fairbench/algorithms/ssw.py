"""Stochastic switching subgradient method (Huang & Lin 2023)."""

from __future__ import annotations

import math

import numpy as np

from fairbench.algorithms.base import Algorithm
from fairbench.errors import check_in, check_positive

OBJECTIVE_STEP_RULES = ("constant", "diminishing")
CONSTRAINT_STEP_RULES = ("constant", "diminishing", "adaptive")
TOLERANCE_RULES = ("constant", "diminishing")
OUTPUTS = ("last", "random")


class SwitchingSubgradient(Algorithm):
    """Stochastic switching subgradient method (Huang & Lin 2023; Polyak's switching scheme).

    Iteration k (counted from 0)::

        c      = c(x_k; xi)                      # balanced constraint batch, stream 0, no gradient
        i      = argmax_j c_j,   c_max = c_i
        if c_max > tol_k:                        # constraint step, on a FRESH batch xi' (stream 1)
            x_{k+1} = x_k - eta_c,k * grad c_i(x_k; xi')
        else:                                    # objective step (objective batch zeta)
            x_{k+1} = x_k - eta_f,k * grad f(x_k; zeta)

    ``grad c_i`` is the gradient of the constraint that attains the maximum on ``xi`` (a
    subgradient of ``max_j c_j``), taken on the independent batch ``xi'`` with one backward
    pass (``lagrangian_grad`` with the weights ``e_i``).

    Step rules (``step_f`` for ``eta_f``, ``step_c`` for ``eta_c``):

    - ``constant``: ``eta``;
    - ``diminishing``: ``eta / sqrt(k + 1)``;
    - ``adaptive`` (constraint step only; Polyak-like): ``c_max / ||grad c_i(x_k; xi')||^2``
      with ``c_max`` from the switching batch ``xi`` (positive by construction); ``eta_c`` is
      then unused.

    Tolerance rule (``tol_rule``): ``constant`` (``tol_k = tol``) or ``diminishing``
    (``tol_k = tol / sqrt(k + 1)``).

    Output (``output``): ``last``, the last iterate; or ``random``, one iterate ``x_k`` drawn
    among the objective-step iterations with ``k >= random_start`` with probability
    proportional to ``eta_f,k`` (as in the paper's analysis: the iterate at which the
    objective step was taken, i.e. one judged feasible). It is drawn online by weighted
    reservoir sampling from ``self.rng``, holding a single copy of the parameters. If no
    objective step happened after ``random_start``, the last iterate is returned.

    ``step`` returns ``{"constraint_steps": 1}`` on a constraint step (else 0). Experiment-1
    settings: ``tol = 1e-4``, ``eta_f = 0.5`` and ``eta_c = 0.05``, both constant.

    Parameters
    ----------
    eta_f, eta_c : objective and constraint step sizes (> 0).
    step_f : ``constant`` or ``diminishing``.  step_c : ``constant``, ``diminishing`` or ``adaptive``.
    tol : switching tolerance (>= 0).  tol_rule : ``constant`` or ``diminishing``.
    batch_size : objective rows per objective step.
    per_group : constraint rows per group, for the switching batch and for the fresh batch.
    output : ``last`` or ``random``.  random_start : first iteration eligible for ``random``.
    """

    needs_constraints = True
    sampling_refusal = ("its switching test needs max_j c_j, and the maximum over k sampled constraints "
                        "underestimates it (no unbiased estimate)")

    def __init__(
        self,
        eta_f: float,
        eta_c: float,
        step_f: str,
        step_c: str,
        tol: float,
        tol_rule: str,
        batch_size: int,
        per_group: int,
        output: str,
        random_start: int,
    ):
        check_positive("algo.eta_f", eta_f)
        check_positive("algo.eta_c", eta_c)
        check_in("algo.step_f", step_f, OBJECTIVE_STEP_RULES)
        check_in("algo.step_c", step_c, CONSTRAINT_STEP_RULES)
        check_positive("algo.tol", tol, allow_zero=True)
        check_in("algo.tol_rule", tol_rule, TOLERANCE_RULES)
        check_positive("algo.batch_size", batch_size, integer=True)
        check_positive("algo.per_group", per_group, integer=True)
        check_in("algo.output", output, OUTPUTS)
        check_positive("algo.random_start", random_start, integer=True, allow_zero=True)
        self.eta_f, self.eta_c, self.step_f, self.step_c = float(eta_f), float(eta_c), step_f, step_c
        self.tol, self.tol_rule = float(tol), tol_rule
        self.batch_size, self.per_group = int(batch_size), int(per_group)
        self.output, self.random_start = output, int(random_start)

    def setup(self, oracle, rng: np.random.Generator) -> None:
        super().setup(oracle, rng)
        self.check_per_group("algo.per_group", self.per_group)
        self.k = 0                      # iterations done
        self.last_step = 0.0            # step size of the last iteration
        self.last_c_max = float("nan")  # c_max on the last switching batch
        self._unit = np.eye(oracle.n_constraints, dtype=oracle.x.dtype)
        self._weight_sum = 0.0          # reservoir: total eta_f of the eligible iterates so far
        self._candidate: np.ndarray | None = None

    def step(self) -> dict[str, int]:
        oracle, k = self.oracle, self.k
        decay = 1.0 / math.sqrt(k + 1)
        c, _ = oracle.constraints(oracle.sample_constraints(self.per_group, stream=0))
        i = int(np.argmax(c))
        c_max = float(c[i])
        self.last_c_max = c_max
        tol = self.tol * decay if self.tol_rule == "diminishing" else self.tol
        self.k = k + 1
        if c_max > tol:
            fresh = oracle.sample_constraints(self.per_group, stream=1)
            _, _, g = oracle.lagrangian_grad(None, fresh, self._unit[i])
            if self.step_c == "adaptive":
                sq = float(g @ g)
                eta = c_max / sq if sq > 0 else 0.0
            else:
                eta = self.eta_c * decay if self.step_c == "diminishing" else self.eta_c
            oracle.x -= eta * g
            self.last_step = eta
            return {"constraint_steps": 1}
        eta = self.eta_f * decay if self.step_f == "diminishing" else self.eta_f
        if self.output == "random" and k >= self.random_start:
            self._weight_sum += eta
            if self.rng.random() * self._weight_sum < eta:  # replace with probability eta / sum
                self._candidate = oracle.x.copy()
        _, g = oracle.objective(oracle.sample_objective(self.batch_size), grad=True)
        oracle.x -= eta * g
        self.last_step = eta
        return {"constraint_steps": 0}

    def state(self) -> dict[str, float]:
        return {"step_size": self.last_step, "c_max": self.last_c_max}

    def final_params(self) -> np.ndarray | None:
        return None if self._candidate is None else self._candidate.copy()
