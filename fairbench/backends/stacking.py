"""Stacking seeds: whether a run's seeds can train together, and the stacked oracle they train on.

:func:`can_stack` says whether :func:`stacked_oracle` reproduces a problem's per-seed oracles
(the oracles are in :mod:`fairbench.backends.stacked`); whether a *method* can train stacked
seeds is decided by :func:`fairbench.backends.variants.can_stack_method`.
"""

from __future__ import annotations

from torch import nn

from fairbench.backends.oracles import compiled_unavailable, use_compiled
from fairbench.backends.stacked import StackedMLPOracle, StackedPenalizedOracle
from fairbench.problems.base import Oracle
from fairbench.problems.constraints import GroupConstraints
from fairbench.problems.fairness import TensorSplit
from fairbench.problems.problem import FairnessProblem, PenalizedProblem, oracle_cells
from fairbench.problems.weight_norm import WeightNormOracle, WeightNormProblem, weight_slices


def can_stack(problem: FairnessProblem, model: nn.Module) -> bool:
    """True when :func:`stacked_oracle` reproduces ``problem.oracle`` for ``model``'s seeds: the
    fast path is on (``fast_path`` other than ``off``), the model is one the fast paths support, and the
    problem builds its oracle with the stock :meth:`FairnessProblem.oracle` or
    :meth:`PenalizedProblem.oracle` (a subclass that overrides ``oracle`` is not stacked), and
    every constraint is used each step (no ``constraints_per_step``)."""
    return (
        getattr(problem, "fast_path", None) in ("auto", "compiled", "numpy")
        and getattr(problem, "constraints_per_step", None) is None
        and type(problem).oracle in (FairnessProblem.oracle, PenalizedProblem.oracle, WeightNormProblem.oracle)
        and StackedMLPOracle.supports(model)
    )


def stacked_oracle(problem: FairnessProblem, models: list[nn.Module], train: TensorSplit,
                   bound: GroupConstraints, seeds: list[int]) -> Oracle:
    """The stacked form of ``problem.oracle(model_s, train, bound, seed_s)`` for every seed
    (call only when :func:`can_stack` holds), on the compiled kernels where the single-seed
    oracle would be (:func:`~fairbench.backends.oracles.use_compiled`)."""
    visible = problem.visible_constraints(bound)
    oracle_class = StackedMLPOracle
    if use_compiled(problem.fast_path):
        from fairbench.backends.compiled.mlp import CompiledStackedMLPOracle

        oracle_class = CompiledStackedMLPOracle
    elif problem.fast_path == "compiled":
        raise compiled_unavailable()
    if type(problem).oracle is WeightNormProblem.oracle:
        bound.attach(models[0])
        inner = oracle_class(models, train, bound.n_groups, None, seeds)
        return WeightNormOracle(inner, weight_slices(models[0], inner.flat[0]), problem.spec.radius)
    if type(problem).oracle is PenalizedProblem.oracle:
        inner = oracle_class(models, train, bound.n_cells, bound, seeds)
        return StackedPenalizedOracle(inner, problem.weight, problem.penalty, problem.per_group, problem.spec.delta)
    return oracle_class(models, train, oracle_cells(bound, visible), visible, seeds)
