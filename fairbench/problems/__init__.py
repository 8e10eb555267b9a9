"""Stochastic problems as seen by algorithms (:class:`Oracle`) and their formulations."""

from fairbench.problems.base import Batch, Counters, Oracle
from fairbench.problems.constraints import ConstraintSpec, GroupConstraints
from fairbench.problems.fairness import FairnessOracle, TensorSplit
from fairbench.problems.penalized import PenalizedOracle
from fairbench.problems.problem import (
    ConstrainedProblem,
    FairnessProblem,
    PenalizedProblem,
    SplitEvaluation,
    UnconstrainedProblem,
)

__all__ = [
    "Batch", "Counters", "Oracle", "ConstraintSpec", "GroupConstraints", "FairnessOracle", "TensorSplit",
    "PenalizedOracle", "ConstrainedProblem", "FairnessProblem", "PenalizedProblem", "SplitEvaluation",
    "UnconstrainedProblem",
]
