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
from fairbench.problems.constraint_sampling import check_constraints_per_step
from fairbench.problems.constraints import ConstraintSpec, GroupConstraints
from fairbench.problems.evaluation import SplitEvaluation, SplitsEvaluator
from fairbench.problems.fairness import TensorSplit
from fairbench.problems.penalized import PenalizedOracle
from fairbench.problems.penalty import PENALTIES
from fairbench.problems.statistics import label_counts


class FairnessProblem:
    """Common part: the reported constraint spec and whole-split evaluation."""

    kind = "base"

    def __init__(self, delta: float, family: str, form: str, statistic: str, temperature: float,
                 aggregate: str | None, fast_path: str, constraints_per_step: int | None):
        self.spec = ConstraintSpec(delta=delta, family=family, form=form, statistic=statistic,
                                   temperature=temperature, aggregate=aggregate)
        check_constraints_per_step(constraints_per_step)
        if constraints_per_step is not None and form == "aggregate":
            raise ConfigError("problem.constraints_per_step", constraints_per_step,
                              "form=aggregate is one constraint, nothing to sample: use null")
        self.constraints_per_step = constraints_per_step
        check_in("problem.fast_path", fast_path, FAST_PATHS)
        if fast_path == "compiled" and not compiled_installed():
            raise ConfigError("problem.fast_path", fast_path,
                              "needs numba, which is not installed (pip install -e '.[fast]'); "
                              "accepted without it: auto, numpy, off")
        self.fast_path = fast_path

    def bind(self, proportions: np.ndarray, group_names: list[str], counts: np.ndarray | None = None):
        """The reported constraints for these groups (``counts``: (G, 2) training rows per group
        and label, needed by the conditional rates)."""
        return self.spec.bind(proportions, group_names, counts)

    def bind_data(self, data):
        """:meth:`bind` to a :class:`~fairbench.data.prepared.PreparedData`'s training split."""
        train = data.train
        return self.bind(data.group_proportions(), data.group_names,
                         label_counts(train.group, train.y, data.n_groups))

    def visible_constraints(self, bound: GroupConstraints) -> GroupConstraints | None:
        """The constraints the algorithm sees."""
        return None

    def oracle(self, model: nn.Module, train: TensorSplit, bound: GroupConstraints, seed: int) -> Oracle:
        """Build the oracle an algorithm trains through, for one seed."""
        visible = self.visible_constraints(bound)
        return build_oracle(model, train, oracle_cells(bound, visible), visible, seed, self.fast_path,
                            self.constraints_per_step)

    @staticmethod
    def evaluate(model: nn.Module, split: TensorSplit, bound: GroupConstraints) -> SplitEvaluation:
        """Loss, exact per-group mean losses, constraint values and scores on a whole split
        (the runner evaluates all its splits together: :class:`SplitsEvaluator`)."""
        return SplitsEvaluator({"split": split}, bound.n_groups).evaluate(model, bound)["split"]


def build_oracle(model: nn.Module, train: TensorSplit, n_cells: int, constraints: GroupConstraints | None,
                 seed: int, fast_path: str, constraints_per_step: int | None) -> Oracle:
    """The oracle of :func:`build_fairness_oracle`, drawing k constraints per step where
    ``constraints_per_step`` is set and there are constraints to sample
    (:mod:`~fairbench.problems.constraint_sampling`; on the numpy and compiled oracles:
    :mod:`fairbench.backends.numpy_subset`)."""
    oracle = build_fairness_oracle(model, train, n_cells, constraints, seed, fast_path)
    if constraints_per_step is not None and constraints is not None:
        oracle.enable_constraint_sampling(constraints_per_step)
    return oracle


def oracle_cells(bound: GroupConstraints, visible: GroupConstraints | None) -> int:
    """The cells an oracle's balanced constraint batches draw from: the visible constraints'
    (group x label for a conditional rate), else the G groups."""
    return bound.n_groups if visible is None else visible.n_cells


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
        inner = build_oracle(model, train, bound.n_cells, bound, seed, self.fast_path, self.constraints_per_step)
        return PenalizedOracle(inner, self.weight, self.penalty, self.per_group, self.spec.delta)
