"""Penalized SGD (paper eq. 13): SGD on the loss plus a penalty of the constraints."""

from __future__ import annotations

import numpy as np

from fairbench.algorithms.base import Algorithm
from fairbench.algorithms.sgd import SGD
from fairbench.errors import check_in, check_positive
from fairbench.problems.penalized import PenalizedOracle
from fairbench.problems.penalty import PENALTIES


class SGDPenalized(SGD):
    """SGD on ``f(x) + weight * sum_j penalty(c_j(x))`` (paper eq. 13), on a constrained problem.

    The constrained oracle given to :meth:`setup` is wrapped in
    :class:`~fairbench.problems.penalized.PenalizedOracle` and :class:`SGD` runs on it::

        x_{k+1} = x_k - lr * [grad f(x_k; zeta_k) + weight * sum_j penalty'(c_j(x_k; xi_k)) grad c_j(x_k; xi_k)]

    with ``zeta_k`` an objective batch of ``batch_size`` rows and ``xi_k`` a balanced
    constraint batch of ``per_group`` rows per group (constraint stream 0), one backward pass.
    Penalties (:mod:`fairbench.problems.penalty`): ``positive`` ``max(c, 0)`` (exact penalty:
    for ``weight`` above the largest KKT multiplier its minimisers are the constrained ones),
    ``squared`` ``max(c, 0)^2``, ``abs`` ``|c + delta|`` (``delta`` is the problem's bound when
    the oracle carries fairness constraints, else 0).

    This is the same computation as ``algo=sgd problem=penalized``; this class lets the penalty
    be chosen in the ``algo`` group and run on ``problem=constrained``, like the other
    constrained methods. Settings: batch 8, lr 5e-3 (the SGD baseline's), multiplier 0.4 (the
    paper's pick on its validation grid {0, 0.3, 0.4, 0.5}, experiment 2).
    """

    needs_constraints = True
    samples_constraints = True  # the penalty sum over S, scaled by m/k (PenalizedOracle)

    def __init__(self, lr: float, batch_size: int, weight: float,
                 penalty: str, per_group: int, lr_rule: str):
        super().__init__(lr=lr, batch_size=batch_size, lr_rule=lr_rule)
        check_positive("algo.weight", weight, allow_zero=True)
        check_in("algo.penalty", penalty, PENALTIES)
        check_positive("algo.per_group", per_group, integer=True)
        self.weight, self.penalty, self.per_group = float(weight), penalty, int(per_group)

    def setup(self, oracle, rng: np.random.Generator) -> None:
        Algorithm.setup(self, oracle, rng)  # checks the constraints on the constrained oracle
        self.k = 0
        self.check_per_group("algo.per_group", self.per_group)
        spec = getattr(getattr(oracle, "group_constraints", None), "spec", None)
        delta = float(spec.delta) if spec is not None else 0.0
        self.constrained_oracle = oracle
        self.oracle = PenalizedOracle(oracle, self.weight, self.penalty, self.per_group, delta)
