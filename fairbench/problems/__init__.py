"""Stochastic problems as seen by algorithms (:class:`Oracle`) and their formulations."""

from fairbench.problems.base import Batch, Counters, Oracle
from fairbench.problems.constraints import ConstraintSpec, GroupConstraints
from fairbench.problems.fairness import FairnessOracle, TensorSplit
from fairbench.problems.penalized import PenalizedOracle

#: names of :mod:`fairbench.problems.problem`, imported on first use (PEP 562): the problems build
#: their oracles through :mod:`fairbench.backends`, whose oracles import the modules above, so
#: importing this package must not import ``problem`` (that would be an import cycle)
_LAZY = ("ConstrainedProblem", "FairnessProblem", "PenalizedProblem", "SplitEvaluation", "UnconstrainedProblem")


def __getattr__(name: str):
    if name in _LAZY:
        from fairbench.problems import problem

        return getattr(problem, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Batch", "Counters", "Oracle", "ConstraintSpec", "GroupConstraints", "FairnessOracle", "TensorSplit",
    "PenalizedOracle", "ConstrainedProblem", "FairnessProblem", "PenalizedProblem", "SplitEvaluation",
    "UnconstrainedProblem",
]
