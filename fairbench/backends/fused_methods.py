"""Variants of the methods that use the oracles' fused calls.

The fast MLP oracles compute several of the core calls in one pass
(:meth:`~fairbench.problems.base.Oracle.objective_and_constraints`,
:meth:`~fairbench.problems.base.Oracle.objective_and_constraints_halves`,
:meth:`~fairbench.problems.base.Oracle.sample_lagrangian_grad_and_values`); a method's own rule
makes the core calls, and the variants here (registered in :mod:`fairbench.backends.variants`)
route it through the fused ones.
"""

from __future__ import annotations


def bind_ghost(algo) -> None:
    """Stochastic Ghost with ``f, grad f, c, J`` of a sample set from one
    ``objective_and_constraints`` call (one forward and backward pass over both batches on the
    numpy MLP oracle), and those of S1, S2 and S3 from one ``objective_and_constraints_halves``
    call (one pass over S3's rows on the compiled oracle)."""
    algo._set_values = algo.oracle.objective_and_constraints
    algo._halves_values = algo.oracle.objective_and_constraints_halves
