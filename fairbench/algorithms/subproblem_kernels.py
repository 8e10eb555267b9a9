"""Compiled (numba) closed form of Stochastic Ghost's subproblems for one or two constraints.

Imported only by :class:`fairbench.algorithms.subproblems.GhostSubproblems` built with
``compiled=True``, which :class:`~fairbench.algorithms.ghost.StochasticGhost` asks for on a
compiled oracle, where numba is already loaded. Why: with the MLP's passes compiled, a Ghost
iteration spent about a third of its time in :func:`~fairbench.algorithms.subproblems._solve_small`,
some 40 µs per sample set (four per iteration) of numpy calls and Python floats around a few
passes over the n = 2,753 parameters. Here the passes and the scalar logic are one call.

:func:`pair_pass` is :func:`~fairbench.algorithms.subproblems._solve_small`'s common case:
the signed-pair check, the dots ``J_i . J_j``, ``J_i . g``, ``g . g`` (float64 sums, in index
order), the level LP where its L2 bound decides, the box-free pass
(:func:`~fairbench.algorithms.subproblems._box_free_pair`, compiled from the same source) and
the direction. Where the Python code would take a longer road (the L1 norm for the LP, a
general pair with a violated constraint, a binding box, no accepted support, non-finite data)
it says so and the caller takes that road.

Same answers as the Python path: the same level ``kappa``, ``t*`` and statuses (their
decisions are the same comparisons on the same values, with margins far wider than the dots'
rounding), and ``d``, ``u`` to about 1e-16 relative, since the dots here are sequential sums
where numpy's are BLAS's (tested against the Python path to 1e-12, as it is against the
general code).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import register_jitable

from fairbench.algorithms import subproblems

_OPTIONS = {"error_model": "numpy"}
_jit = njit(cache=True, **_OPTIONS)

register_jitable(**_OPTIONS)(subproblems._box_free_pair)

#: :func:`pair_pass` outcomes
SOLVED = 1         # box-free solution: ``d`` filled, ``(t, kappa, u0, u1)`` valid
NOT_FINITE = 0     # a dot is not finite: the general code decides
BOX_OR_NO_SUPPORT = 2  # ``t`` and ``kappa`` valid; the QP needs the general dual method
PYTHON_PATH = 3    # the LP needs more than its L2 bound: the Python path from the start


@njit(cache=True, fastmath={"reassoc"}, **_OPTIONS)
def _dots(g, J, both):
    """``(J_1.J_1, J_1.g, g.g, J_1.J_2, J_2.J_2, J_2.g)`` in float64 (the last three 0 unless
    ``both``). The products of float32 entries are exact in float64; ``reassoc`` (this
    function's operations only) lets the sums run in vector lanes: their rounding depends on the
    vector width, as BLAS's dots do."""
    n = J.shape[1]
    j1 = J[0]
    G00 = Jg0 = gg = 0.0
    G01 = G11 = Jg1 = 0.0
    if both:
        j2 = J[1]
        for i in range(n):
            a, b, gi = np.float64(j1[i]), np.float64(j2[i]), np.float64(g[i])
            G00 += a * a
            Jg0 += a * gi
            gg += gi * gi
            G01 += a * b
            G11 += b * b
            Jg1 += b * gi
    else:
        for i in range(n):
            a, gi = np.float64(j1[i]), np.float64(g[i])
            G00 += a * a
            Jg0 += a * gi
            gg += gi * gi
    return G00, Jg0, gg, G01, G11, Jg1


@_jit
def _is_signed_pair(J):
    """``numpy.array_equal(J[1], -J[0])``: NaN unequal, 0 == -0 (no early exit: the loop vectorises)."""
    j1, j2 = J[0], J[1]
    unequal = False
    for i in range(J.shape[1]):
        unequal |= j2[i] != -j1[i]
    return not unequal


@_jit
def pair_pass(g, J, c1, c2, rho, lam, tau, beta, d):
    """Ghost's LP and box-free QP for ``m = J.shape[0]`` in {1, 2} (float32 or float64 ``g``, ``J``).

    ``c2`` is ignored for ``m = 1``. Returns ``(outcome, t, kappa, u0, u1)`` (outcomes above); on
    ``SOLVED`` the direction is in ``d`` (float64, length n), computed as the Python path
    computes it: ``-(g + (u0 - u1) J_1)/tau`` for a signed pair or one row, with ``tau = 1``
    as ``(-v) J_1 - g``; ``(g + u0 J_1 + u1 J_2) (-1/tau)`` for a general pair.
    """
    m, n = J.shape
    signed = m == 2 and _is_signed_pair(J)
    G00, Jg0, gg, G01, G11, Jg1 = _dots(g, J, m == 2 and not signed)
    if signed:
        G01, G11, Jg1 = -G00, G00, -Jg0
    if not math.isfinite(G00 + G11 + gg + c1 + (c2 if m == 2 else 0.0)):
        return NOT_FINITE, 0.0, 0.0, 0.0, 0.0

    # LP (t*) where the L2 bound decides it, then the level kappa
    l2_bound = rho * math.sqrt(G00) * (1.0 - subproblems._BOUND_RTOL)
    if m == 1:
        if not c1 <= l2_bound:
            return PYTHON_PATH, 0.0, 0.0, 0.0, 0.0
        t = 0.0
    elif signed:
        y = 0.5 * (c2 - c1)
        if abs(y) > l2_bound:
            return PYTHON_PATH, 0.0, 0.0, 0.0, 0.0
        t = max(0.0, c1 + y, c2 - y)
    elif c1 <= 0.0 and c2 <= 0.0:
        t = 0.0
    else:
        return PYTHON_PATH, 0.0, 0.0, 0.0, 0.0
    kappa = (1.0 - lam) * max(0.0, c1, c2) + lam * t

    # QP: the box-free candidate
    b0, b1 = kappa - c1, (kappa - c2 if m == 2 else math.inf)
    u = subproblems._box_free_pair(G00, G01, G11, Jg0, Jg1, b0, b1, tau)
    if u is None:
        return BOX_OR_NO_SUPPORT, t, kappa, 0.0, 0.0
    u0, u1 = u
    if signed or m == 1:
        v = u0 - u1
        if tau == 1.0:
            for i in range(n):
                d[i] = -np.float64(g[i]) if v == 0.0 else np.float64(J[0, i]) * -v - np.float64(g[i])
        else:
            scale = -1.0 / tau
            for i in range(n):
                d[i] = (np.float64(g[i]) + np.float64(J[0, i]) * v) * scale if v != 0.0 else np.float64(g[i]) * scale
    else:
        scale = -1.0 / tau
        for i in range(n):
            d[i] = (np.float64(g[i]) + (u0 * np.float64(J[0, i]) + u1 * np.float64(J[1, i]))) * scale
    dd = gg + 2.0 * (u0 * Jg0 + u1 * Jg1) + G00 * u0 * u0 + 2.0 * G01 * u0 * u1 + G11 * u1 * u1
    scale_dd = gg + G00 * u0 * u0 + G11 * u1 * u1
    inside = dd + subproblems._BOUND_RTOL * scale_dd <= (tau * beta) ** 2
    if inside:
        return SOLVED, t, kappa, u0, u1
    top = 0.0  # max |d_i|; a NaN is the maximum, as numpy's
    for i in range(n):
        a = abs(d[i])
        if a != a:
            top = a
            break
        if a > top:
            top = a
    if top <= beta:
        return SOLVED, t, kappa, u0, u1
    return BOX_OR_NO_SUPPORT, t, kappa, u0, u1
