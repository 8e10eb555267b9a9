"""The three problem formulations of the ``problem`` config group.

- :class:`UnconstrainedProblem` (``conf/problem/unconstrained.yaml``): minimise the loss; the
  algorithm sees no constraints.
- :class:`ConstrainedProblem` (``conf/problem/constrained.yaml``): minimise the loss subject
  to the fairness constraints with bound ``delta``.
- :class:`PenalizedProblem` (``conf/problem/penalized.yaml``): minimise
  ``loss + weight * sum_j penalty(c_j)`` (paper eq. 13); the algorithm sees no constraints.

Whatever the formulation, every run *reports* the same fairness constraints (the spec built
from ``delta``, ``family``, ``form``, ``statistic``), so an unconstrained baseline's
violation can be compared with a constrained method's.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from fairbench.backends.oracles import FAST_PATHS, build_fairness_oracle, compiled_installed
from fairbench.errors import ConfigError, check_in, check_positive
from fairbench.problems.base import Oracle
from fairbench.problems.constraints import ConstraintSpec, GroupConstraints
from fairbench.problems.evaluation import SplitEvaluation, SplitsEvaluator
from fairbench.problems.fairness import TensorSplit
from fairbench.problems.penalized import PenalizedOracle
from fairbench.problems.penalty import PENALTIES


class FairnessProblem:
    """Common part: the reported constraint spec and whole-split evaluation."""

    kind = "base"

    def __init__(self, delta: float, family: str, form: str, statistic: str,
                 fast_path: str):
        self.spec = ConstraintSpec(delta=delta, family=family, form=form, statistic=statistic)
        check_in("problem.fast_path", fast_path, FAST_PATHS)
        if fast_path == "compiled" and not compiled_installed():
            raise ConfigError("problem.fast_path", fast_path,
                              "needs numba, which is not installed (pip install -e '.[fast]'); "
                              "accepted without it: auto, numpy, off")
        self.fast_path = fast_path

    def bind(self, proportions: np.ndarray, group_names: list[str]) -> GroupConstraints:
        return self.spec.bind(proportions, group_names)

    def visible_constraints(self, bound: GroupConstraints) -> GroupConstraints | None:
        """The constraints the algorithm sees."""
        return None

    def oracle(self, model: nn.Module, train: TensorSplit, bound: GroupConstraints, seed: int) -> Oracle:
        """Build the oracle an algorithm trains through, for one seed."""
        n_groups = bound.matrix.shape[1]
        return build_fairness_oracle(model, train, n_groups, self.visible_constraints(bound), seed, self.fast_path)

    @staticmethod
    def evaluate(model: nn.Module, split: TensorSplit, bound: GroupConstraints) -> SplitEvaluation:
        """Loss, exact per-group mean losses, constraint values and scores on a whole split
        (the runner evaluates all its splits together: :class:`SplitsEvaluator`)."""
        return SplitsEvaluator({"split": split}, bound.matrix.shape[1]).evaluate(model, bound)["split"]


class UnconstrainedProblem(FairnessProblem):
    """Minimise the mean BCE loss; constraints are reported, not imposed."""

    kind = "unconstrained"


class ConstrainedProblem(FairnessProblem):
    """Minimise the mean BCE loss subject to ``c(x) <= 0`` (paper eqs. 3-4)."""

    kind = "constrained"

    def visible_constraints(self, bound: GroupConstraints) -> GroupConstraints:
        return bound


class PenalizedProblem(FairnessProblem):
    """Minimise ``loss + weight * sum_j penalty(c_j)`` (paper eq. 13).

    The penalty is estimated on a balanced batch of ``per_group`` rows of every group drawn
    with each objective batch.
    """

    kind = "penalized"

    def __init__(self, weight: float, penalty: str, per_group: int, **spec):
        super().__init__(**spec)
        check_positive("problem.weight", weight, allow_zero=True)
        check_in("problem.penalty", penalty, PENALTIES)
        check_positive("problem.per_group", per_group, integer=True)
        self.weight, self.penalty, self.per_group = float(weight), penalty, int(per_group)

    def oracle(self, model: nn.Module, train: TensorSplit, bound: GroupConstraints, seed: int) -> Oracle:
        inner = build_fairness_oracle(model, train, bound.matrix.shape[1], bound, seed, self.fast_path)
        return PenalizedOracle(inner, self.weight, self.penalty, self.per_group, self.spec.delta)
