"""Compiled (numba) multiplier solve of SGD-Fairret's exact KL projection.

Imported only by :class:`fairbench.algorithms.sgd_fairret.SGDFairret` on a compiled oracle,
where numba is already loaded. Why: with the MLP's passes compiled, an SGD-Fairret step was
mostly the projection's Newton solve, one multiplier per group in Python floats (about 4.6
evaluations of a 12-row sum per group and step).

:func:`group_multiplier` is :func:`fairbench.algorithms.fairret_numpy._group_multiplier` in
its Python-float form (groups of up to ``SCALAR_ROWS`` rows): the same float64 operations in
the same order, the same bracket, caps and stopping rules, so the same multiplier bit for bit
(tested); for larger groups the numpy form there evaluates ``h`` with vector operations,
whose sums round differently (the tests compare those to 1e-12).
"""

from __future__ import annotations

import math

from numba import njit

_jit = njit(cache=True, error_model="numpy")


@_jit
def _h_and_slope(z, beta, intercept, lam):
    h, slope = intercept, 0.0
    for i in range(z.shape[0]):
        bi = beta[i]
        t = bi * lam - z[i]
        if t > 0.0:  # q = sigmoid(-t) without overflow
            e = math.exp(-t)
            q = e / (1.0 + e)
        else:
            q = 1.0 / (1.0 + math.exp(t))
        bq = bi * q
        h += bq
        slope += bq * bi * (1.0 - q)
    return h, slope


@_jit
def group_multiplier(z, beta, intercept, threshold, max_iter):
    """The root ``lam`` of ``h(lam) = intercept + sum_i beta_i sigmoid(z_i - beta_i lam)``
    (see ``fairret_numpy._group_multiplier``: Newton from 0 inside a maintained bracket)."""
    top = 0.0  # max |beta_i|, NaN if any is (as numpy's max)
    for i in range(beta.shape[0]):
        a = abs(beta[i])
        if a != a:
            top = a
            break
        if a > top:
            top = a
    first_step = 4.0 / (1e-300 if 1e-300 > top else top)
    lam, lo, hi = 0.0, -math.inf, math.inf
    for _ in range(max_iter):
        h, slope = _h_and_slope(z, beta, intercept, lam)
        if abs(h) <= threshold:
            break
        if h > 0.0:
            lo = lam
        else:
            hi = lam
        cap = max(abs(lam), first_step)
        if slope > 0.0:
            step = lam + min(h / slope, cap) if h > 0.0 else lam - min(-h / slope, cap)
        else:
            step = math.nan
        if not lo < step < hi:  # also catches nan
            if math.isfinite(lo) and math.isfinite(hi):
                step = 0.5 * (lo + hi)
            else:
                step = lam + cap if h > 0.0 else lam - cap
        if step == lam:  # the bracket is down to adjacent floats
            break
        lam = step
    return lam
