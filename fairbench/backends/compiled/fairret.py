"""The compiled variant of SGD-Fairret: the exact KL projection's multiplier solve in numba.

:func:`bind` (chosen by :mod:`fairbench.backends.variants` on a compiled oracle, where numba is
already loaded) gives the method :func:`group_multiplier` for its closed-form numpy loss
(``SGDFairret._objective_numpy`` with an exact ``KLProjectionLoss``); its step is unchanged.
Why: with the MLP's passes compiled, an SGD-Fairret step was mostly the projection's Newton
solve, one multiplier per group in Python floats (about 4.6 evaluations of a 12-row sum per
group and step).

:func:`group_multiplier` compiles :mod:`fairbench.algorithms.fairret_numpy`'s own Newton
iteration (``_newton_multiplier``, through ``_group_multiplier_loops``) with its row-by-row
``h`` (``_h_and_slope_scalars``): one source, so the same float64 operations in the same order
and the same multiplier bit for bit as ``_group_multiplier``'s Python-float form (groups of up
to ``SCALAR_ROWS`` rows; tested). For larger groups the numpy form evaluates ``h`` with vector
operations, whose sums round differently (the tests compare those to 1e-12). The compiled
functions are all defined in ``fairret_numpy``: numba's disk cache is keyed on the file that
defines a function, so an edit there recompiles them (this module holds only compile
directives; changing one of them needs ``fairbench/algorithms/__pycache__`` cleared)."""

from __future__ import annotations

from numba import njit
from numba.extending import overload, register_jitable

from fairbench.algorithms import fairret_numpy

_OPTIONS = {"error_model": "numpy"}
_jit = njit(cache=True, **_OPTIONS)

register_jitable(**_OPTIONS)(fairret_numpy._h_and_slope_scalars)
register_jitable(**_OPTIONS)(fairret_numpy._newton_multiplier)


@overload(fairret_numpy._h_and_slope, jit_options=_OPTIONS, strict=False)
def _compiled_h_and_slope(z, beta, intercept, lam):
    """Compiled, the Newton iteration's ``h`` is always the row-by-row form."""
    return fairret_numpy._h_and_slope_scalars


#: the compiled :func:`fairret_numpy._group_multiplier`, for float64 arrays (its source lives in
#: fairret_numpy: numba's cache is keyed on the file that defines a function)
group_multiplier = _jit(fairret_numpy._group_multiplier_loops)


def bind(algo) -> None:
    """Solve ``algo``'s exact projection (an :class:`~fairbench.algorithms.sgd_fairret.SGDFairret`
    after ``setup``) with the compiled :func:`group_multiplier` (same roots), where it takes the
    closed-form numpy path with the exact projection."""
    if algo._numpy and algo._exact_projection:
        algo._multiplier = group_multiplier
