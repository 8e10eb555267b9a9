"""Stochastic Ghost's subproblems for one or two constraints, on their dots: straight-line scalar code.

With ``m <= 2`` constraints both subproblems (the feasibility-level LP and the direction QP,
docs/ghost_subproblems.md) are decided by a handful of dots ``J_i . J_j``, ``J_i . g``,
``g . g`` and closed forms in ``R^m``. The functions here are that closed form as plain Python
on floats and arrays, shared by two callers:

- the Python fast path :func:`fairbench.algorithms.subproblems.small._solve_small`, which uses
  :func:`_box_free_pair` (the box-free pass of the exact QP for ``m <= 2``);
- its numba twin :mod:`fairbench.backends.compiled.ghost_subproblems`, which compiles
  :func:`_pair_pass` (and the three helpers it calls) into one call per sample set.

This module imports only ``math`` and numpy, never the dispatcher nor the compiled kernels:
the kernels import it, and the dispatcher loads the kernels by name. Numba's disk cache is keyed
on the file that defines a compiled function, so everything the kernel compiles lives in this
file, the tolerances it reads included (:data:`_KKT_RTOL`, which the exact solvers share, is
defined here for that reason): an edit here recompiles the kernel instead of leaving a stale one
in ``__pycache__``.
"""

from __future__ import annotations

import math

import numpy as np

#: Relative tolerance of the accepted KKT conditions (feasibility, ``u >= 0``) of every exact
#: solver of :mod:`fairbench.algorithms.subproblems`.
_KKT_RTOL = 1e-9

#: Relative margin of the norm bounds that let the ``m <= 2`` path skip an exact pass over an
#: n-vector (``||x||_1 >= ||x||_2 >= ||x||_inf``); the dots they use are accurate to about
#: ``n eps`` (1e-12 at n = 10^4), far inside it.
_BOUND_RTOL = 1e-9

#: :func:`_pair_pass` outcomes
PAIR_SOLVED = 1            # box-free solution: ``d`` filled, ``(t, kappa, u0, u1)`` valid
PAIR_NOT_FINITE = 0        # a dot is not finite: the general code decides
PAIR_BOX_OR_NO_SUPPORT = 2  # ``t`` and ``kappa`` valid; the QP needs the general dual method
PAIR_PYTHON_PATH = 3       # the LP needs more than its L2 bound: the Python path from the start


def _box_free_pair(G00: float, G01: float, G11: float, Jg0: float, Jg1: float, b0: float, b1: float,
                   tau: float) -> tuple[float, float] | None:
    """:func:`~fairbench.algorithms.subproblems.qp_exact._qp_box_free`'s support enumeration for ``m <= 2`` on Python floats.

    The same supports in the same order (``{}``, ``{0}``, ``{1}``, ``{0, 1}``), the same solves
    and the same KKT test, hence the same multipliers ``(u_0, u_1)`` from the same Gram entries;
    ``None`` when no support is accepted. ``m = 1`` is the call with ``G01 = G11 = Jg1 = 0`` and
    ``b1 = inf`` (row 1 never carries a multiplier nor violates). For a signed pair
    (``G01 = -G00 = -G11``) ``det`` is exactly 0, so only single supports are tried: then
    ``u`` is the root of the 1-D complementarity ``J_i d(u) = b_i``, ``d(u) = -(g + u J_i)/tau``,
    i.e. ``u_i = -(J_i g + tau b_i) / ||J_i||^2``.
    """
    rhs0, rhs1 = -(Jg0 + tau * b0), -(Jg1 + tau * b1)

    def meets(u0: float, u1: float) -> bool:  # J d(u) <= b as in _qp_box_free, J d = -(J g + G u)/tau
        Gu0, Gu1 = G00 * u0 + G01 * u1, G01 * u0 + G11 * u1
        return not (-(Jg0 + Gu0) / tau - b0 > _KKT_RTOL * (1.0 + abs(b0) + (abs(Jg0) + abs(Gu0)) / tau)
                    or -(Jg1 + Gu1) / tau - b1 > _KKT_RTOL * (1.0 + abs(b1) + (abs(Jg1) + abs(Gu1)) / tau))

    if meets(0.0, 0.0):
        return 0.0, 0.0
    if G00 > 0.0:
        u0 = rhs0 / G00
        if u0 >= 0.0 and meets(u0, 0.0):
            return u0, 0.0
    if G11 > 0.0:
        u1 = rhs1 / G11
        if u1 >= 0.0 and meets(0.0, u1):
            return 0.0, u1
    det = G00 * G11 - G01 * G01
    if det > 1e-12 * G00 * G11:
        u0, u1 = (rhs0 * G11 - G01 * rhs1) / det, (G00 * rhs1 - G01 * rhs0) / det
        if u0 >= 0.0 and u1 >= 0.0 and meets(u0, u1):
            return u0, u1
    return None


def _pair_dots(g, J, both):
    """``(J_1.J_1, J_1.g, g.g, J_1.J_2, J_2.J_2, J_2.g)`` in float64 (the last three 0 unless
    ``both``). The products of float32 entries are exact in float64; compiled with ``reassoc``
    (this function's operations only), the sums run in vector lanes: their rounding depends on
    the vector width, as BLAS's dots do."""
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


def _pair_is_signed(J):
    """``numpy.array_equal(J[1], -J[0])``: NaN unequal, 0 == -0 (no early exit: the loop vectorises)."""
    j1, j2 = J[0], J[1]
    unequal = False
    for i in range(J.shape[1]):
        unequal |= j2[i] != -j1[i]
    return not unequal


def _pair_pass(g, J, c1, c2, rho, lam, tau, beta, d):
    """Ghost's LP and box-free QP for ``m = J.shape[0]`` in {1, 2} (float32 or float64 ``g``, ``J``).

    ``c2`` is ignored for ``m = 1``. Returns ``(outcome, t, kappa, u0, u1)`` (the ``PAIR_*``
    outcomes); on ``PAIR_SOLVED`` the direction is in ``d`` (float64, length n), computed as the Python path
    computes it: ``-(g + (u0 - u1) J_1)/tau`` for a signed pair or one row, with ``tau = 1``
    as ``(-v) J_1 - g``; ``(g + u0 J_1 + u1 J_2) (-1/tau)`` for a general pair.
    """
    m, n = J.shape
    signed = m == 2 and _pair_is_signed(J)
    G00, Jg0, gg, G01, G11, Jg1 = _pair_dots(g, J, m == 2 and not signed)
    if signed:
        G01, G11, Jg1 = -G00, G00, -Jg0
    if not math.isfinite(G00 + G11 + gg + c1 + (c2 if m == 2 else 0.0)):
        return PAIR_NOT_FINITE, 0.0, 0.0, 0.0, 0.0

    # LP (t*) where the L2 bound decides it, then the level kappa
    l2_bound = rho * math.sqrt(G00) * (1.0 - _BOUND_RTOL)
    if m == 1:
        if not c1 <= l2_bound:
            return PAIR_PYTHON_PATH, 0.0, 0.0, 0.0, 0.0
        t = 0.0
    elif signed:
        y = 0.5 * (c2 - c1)
        if abs(y) > l2_bound:
            return PAIR_PYTHON_PATH, 0.0, 0.0, 0.0, 0.0
        t = max(0.0, c1 + y, c2 - y)
    elif c1 <= 0.0 and c2 <= 0.0:
        t = 0.0
    else:
        return PAIR_PYTHON_PATH, 0.0, 0.0, 0.0, 0.0
    kappa = (1.0 - lam) * max(0.0, c1, c2) + lam * t

    # QP: the box-free candidate
    b0, b1 = kappa - c1, (kappa - c2 if m == 2 else math.inf)
    u = _box_free_pair(G00, G01, G11, Jg0, Jg1, b0, b1, tau)
    if u is None:
        return PAIR_BOX_OR_NO_SUPPORT, t, kappa, 0.0, 0.0
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
    inside = dd + _BOUND_RTOL * scale_dd <= (tau * beta) ** 2
    # as the Python path (numba's max, like numpy's, is NaN if any entry is)
    if inside or np.abs(d).max() <= beta:
        return PAIR_SOLVED, t, kappa, u0, u1
    return PAIR_BOX_OR_NO_SUPPORT, t, kappa, u0, u1
