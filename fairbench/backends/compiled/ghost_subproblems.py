"""Compiled (numba) closed form of Stochastic Ghost's subproblems for one or two constraints.

Loaded by name only by :class:`fairbench.algorithms.subproblems.GhostSubproblems` built with
``compiled=True``, which :class:`~fairbench.algorithms.ghost.StochasticGhost` asks for on a
compiled oracle, where numba is already loaded. Why: with the MLP's passes compiled, a Ghost
iteration spent about a third of its time in
:func:`~fairbench.algorithms.subproblems.small._solve_small`, numpy calls and Python floats
around a few passes over the n = 2,753 parameters, four sample sets per iteration. Here the
passes and the scalar logic are one call.

:func:`pair_pass` (compiled from :func:`fairbench.algorithms.subproblem_pair._pair_pass`) is
:func:`~fairbench.algorithms.subproblems.small._solve_small`'s common case: the signed-pair
check, the dots ``J_i . J_j``, ``J_i . g``, ``g . g`` (float64 sums), the level LP where its L2
bound decides, the box-free pass (:func:`~fairbench.algorithms.subproblem_pair._box_free_pair`,
compiled from the same source) and the direction. Where the Python code would take a longer
road (the L1 norm for the LP, a general pair with a violated constraint, a binding box, no
accepted support, non-finite data) it says so and the caller takes that road.

Same answers as the Python path: the same level ``kappa``, ``t*`` and statuses (their
decisions are the same comparisons on the same values, with margins far wider than the dots'
rounding), and ``d``, ``u`` to about 1e-16 relative, since the dots here are sequential sums
where numpy's are BLAS's (tested against the Python path to 1e-12, as it is against the
general code).

The functions compiled here are defined in :mod:`fairbench.algorithms.subproblem_pair`, which
imports neither the dispatcher nor this module: numba's disk cache is keyed on the file that
defines a function, so an edit there recompiles the kernel. This module holds only the compile
directives (changing one of them needs ``fairbench/algorithms/__pycache__`` cleared).
"""

from __future__ import annotations

from numba import njit
from numba.extending import register_jitable

from fairbench.algorithms import subproblem_pair

_OPTIONS = {"error_model": "numpy"}

register_jitable(**_OPTIONS)(subproblem_pair._box_free_pair)
register_jitable(**_OPTIONS)(subproblem_pair._pair_is_signed)
# reassoc on the dots' sums only (their own instructions keep the flag when inlined)
register_jitable(fastmath={"reassoc"}, **_OPTIONS)(subproblem_pair._pair_dots)

pair_pass = njit(cache=True, **_OPTIONS)(subproblem_pair._pair_pass)
