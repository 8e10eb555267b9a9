"""Ghost's two subproblems for one or two constraints: the straight-line fast path.

With ``m <= 2`` (the census task: a signed pair ``J_2 = -J_1``) the LP has a closed form and the
QP's box-free pass is a ``2 x 2`` system on the dots ``J_i . J_j``, ``J_i . g``, ``g . g``
(docs/ghost_subproblems.md, "One or two constraints"). :func:`_solve_small` computes both from
those dots, in numpy and Python floats, with the answers of the general exact path;
:func:`_solve_small_compiled` runs its common case as one call of the numba twin
(:mod:`fairbench.backends.compiled.ghost_subproblems`, compiled from
:mod:`fairbench.algorithms.subproblem_pair`). Anything else goes to the general
code: the LP's formula (:mod:`.lp`) and the dual method (:mod:`.qp_exact`).
"""

from __future__ import annotations

import math

import numpy as np

from fairbench.algorithms.subproblem_pair import (
    _BOUND_RTOL,
    PAIR_BOX_OR_NO_SUPPORT,
    PAIR_NOT_FINITE,
    PAIR_SOLVED,
    _box_free_pair,
)
from fairbench.algorithms.subproblems.common import SOLVED, LPResult, QPResult, Subproblem
from fairbench.algorithms.subproblems.lp import _level_lp_small
from fairbench.algorithms.subproblems.qp_exact import _qp_exact


def _is_signed_pair(J: np.ndarray) -> bool:
    """``numpy.array_equal(J[1], -J[0])`` (so ``0 == -0``, NaN unequal), with the boolean row
    compared as bytes to all ``True`` (a byte comparison is cheaper than ``.all()`` here)."""
    return np.equal(J[1], np.negative(J[0])).tobytes() == b"\x01" * J.shape[1]


def _solve_small(g: np.ndarray, c: np.ndarray, J: np.ndarray, rho: float, lam: float, tau: float,
                 beta: float) -> Subproblem | None:
    """Both subproblems for ``m`` in {1, 2} in closed form, or ``None`` to leave them to the general code.

    The answers of the general ``exact`` path (:func:`_level_lp_small`, then :func:`_qp_exact`:
    the same ``kappa``, ``t*`` and statuses, ``d`` and ``u`` to about 1e-12 relative, since the
    dots below round differently from its matrix product), from a handful of passes over
    n-vectors: the float64 copies of ``g`` and
    ``J`` (float32 products are exact in float64, so the dots below only round their sums), the
    dots ``J_i . J_j``, ``J_i . g``, ``g . g``, and the direction itself.

    *Data check.* ``g . g`` and ``J_i . J_i`` are finite iff every entry is (or the squares
    overflow); otherwise ``None`` and the general code decides (HiGHS / failed QP).

    *LP.* ``m = 1``: ``t* = max(0, c_1 - rho ||J_1||_1)``. Signed pair (``J_2 = -J_1``):
    ``t* = max(0, c_1 + y, c_2 - y)``, ``y = clip((c_2 - c_1)/2, -R, R)``, ``R = rho ||J_1||_1``.
    Since ``||J_1||_1 >= ||J_1||_2 = sqrt(J_1 . J_1)``, a ``c_1`` resp. ``|c_2 - c_1|/2`` below
    ``rho ||J_1||_2`` (less the margin :data:`_BOUND_RTOL`) gives ``t* = 0`` resp. ``y = (c_2 - c_1)/2``
    without the L1 norm, bitwise as the general code (it does not round across the margin). A
    general pair with ``c <= 0`` has ``t* = 0`` (``mu^T c <= 0`` on the simplex); otherwise
    :func:`_level_lp_small`.

    *QP.* First the box-free pass: ``d(u) = -(g + J^T u)/tau`` and the KKT system in ``R^m`` on
    ``G = J J^T`` and ``J g`` (:func:`_box_free_pair`, the enumeration of :func:`_qp_box_free`).
    For a signed pair ``G = ||J_1||^2 [[1, -1], [-1, 1]]`` is singular: the rank-one case, in
    which only single supports exist and ``d = -(g + (u_1 - u_2) J_1)/tau``. The candidate is
    the solution iff ``|d| <= beta``; ``||d||_inf <= ||d||_2`` and
    ``tau^2 ||d||^2 = g.g + 2 u^T J g + u^T G u`` settle that from the dots (with a margin for the
    cancellation in that sum), else ``max |d_j|``. If the box binds or no support is accepted,
    :func:`_qp_exact` on the float64 data (the general dual method).
    """
    m = J.shape[0]
    cl = c.tolist()
    c1 = cl[0]
    c2 = cl[1] if m == 2 else -math.inf
    signed = m == 2 and _is_signed_pair(J)
    g64 = g.astype(np.float64)
    J64 = J[:1].astype(np.float64) if signed or m == 1 else J.astype(np.float64)
    a = J64[0]
    G00, Jg0, gg = float(np.dot(a, a)), float(np.dot(a, g64)), float(np.dot(g64, g64))
    if signed:
        G01, G11, Jg1 = -G00, G00, -Jg0
    elif m == 2:
        j2 = J64[1]
        G01, G11, Jg1 = float(np.dot(a, j2)), float(np.dot(j2, j2)), float(np.dot(j2, g64))
    else:
        G01 = G11 = Jg1 = 0.0
    # one test for all: a sum of finite numbers is finite unless it overflows (then the general
    # code decides too); c2 = -inf for m = 1 enters as its own finite stand-in
    if not math.isfinite(G00 + G11 + gg + c1 + (c2 if m == 2 else 0.0)):
        return None

    # LP (t*), then the level kappa
    l2_bound = rho * math.sqrt(G00) * (1.0 - _BOUND_RTOL)  # <= rho ||J_1||_1 as computed
    if m == 1:
        t = 0.0 if c1 <= l2_bound else max(0.0, c1 - rho * float(np.abs(a).sum()))
    elif signed:
        y = 0.5 * (c2 - c1)
        if abs(y) > l2_bound:
            R = rho * float(np.abs(a).sum())
            y = min(R, max(-R, y))
        t = max(0.0, c1 + y, c2 - y)
    elif c1 <= 0.0 and c2 <= 0.0:
        t = 0.0
    else:
        t = _level_lp_small(np.array(cl), J64, rho)
    kappa = (1.0 - lam) * max(0.0, c1, c2) + lam * t
    lp = LPResult(t, SOLVED)

    # QP: box-free candidate
    b0, b1 = kappa - c1, (kappa - c2 if m == 2 else math.inf)
    u = _box_free_pair(G00, G01, G11, Jg0, Jg1, b0, b1, tau)
    if u is not None:
        u0, u1 = u
        # d = -(g + J^T u)/tau rounded as the general code rounds (g + u @ J) * (-1/tau); with
        # tau = 1 that factor is an exact negation, folded into the first product: one pass less
        if signed or m == 1:
            v = u0 - u1  # J^T u = (u_0 - u_1) J_1 (one of them is 0)
            if tau == 1.0:
                d = np.negative(g64) if v == 0.0 else np.multiply(a, -v)
                if v != 0.0:
                    d -= g64
            else:
                d = g64 + np.multiply(a, v) if v != 0.0 else g64.copy()
                d *= -1.0 / tau
        else:
            d = (g64 + np.array(u) @ J64) * (-1.0 / tau)
        # tau^2 ||d||^2; its rounding (dots of n terms, then this sum) is below n eps times
        # (||g|| + |u_0| ||J_1|| + |u_1| ||J_2||)^2 <= 3 scale: far inside the margin
        dd = gg + 2.0 * (u0 * Jg0 + u1 * Jg1) + G00 * u0 * u0 + 2.0 * G01 * u0 * u1 + G11 * u1 * u1
        scale = gg + G00 * u0 * u0 + G11 * u1 * u1
        inside = dd + _BOUND_RTOL * scale <= (tau * beta) ** 2
        if inside or float(np.abs(d).max()) <= beta:
            # through _qp_exact all the same: the exact path's QP has one entry point
            return Subproblem(kappa, lp, _qp_exact(g64, c, J64, kappa, tau, beta, (d, np.array(u[:m]))))
    if J64.shape[0] != m:
        J64 = J.astype(np.float64)
    return Subproblem(kappa, lp, _qp_exact(g64, np.array(cl), J64, kappa, tau, beta))


_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _solve_small_compiled(g: np.ndarray, c: np.ndarray, J: np.ndarray, rho: float, lam: float, tau: float,
                          beta: float, kernels) -> Subproblem | None:
    """:func:`_solve_small` with its common case in one compiled call (``kernels``: the module
    :mod:`fairbench.backends.compiled.ghost_subproblems`, which imports numba); the same answers, and
    :func:`_solve_small` itself where the kernel leaves the case to it."""
    if g.dtype not in _KERNEL_DTYPES or J.dtype not in _KERNEL_DTYPES:  # (float16, non-native byte order)
        return _solve_small(g, c, J, rho, lam, tau, beta)
    m = J.shape[0]
    cl = c.tolist()
    c1, c2 = cl[0], (cl[1] if m == 2 else -math.inf)
    d = np.empty(J.shape[1])
    outcome, t, kappa, u0, u1 = kernels.pair_pass(g, J, c1, c2, rho, lam, tau, beta, d)
    if outcome == PAIR_SOLVED:
        return Subproblem(kappa, LPResult(t, SOLVED), QPResult(d, SOLVED, np.array((u0, u1)[:m])))
    if outcome == PAIR_BOX_OR_NO_SUPPORT:
        qp = _qp_exact(g.astype(np.float64), np.array(cl), J.astype(np.float64), kappa, tau, beta)
        return Subproblem(kappa, LPResult(t, SOLVED), qp)
    if outcome == PAIR_NOT_FINITE:
        return None
    # (the Python path computes the dots again: only off the census case, where the LP needs
    # the L1 norm or a general pair has a violated constraint)
    return _solve_small(g, c, J, rho, lam, tau, beta)


def _is_small_problem(g, c, J) -> bool:
    """Whether :func:`_solve_small` takes ``(g, c, J)``: float arrays ``(n,)``, ``(m,)``,
    ``(m, n)`` with ``m`` in {1, 2} and ``n >= 1`` (anything else goes the general way)."""
    return (type(J) is np.ndarray and type(g) is np.ndarray and type(c) is np.ndarray  # no subclasses
            and J.ndim == 2 and g.ndim == c.ndim == 1 and 0 < c.size <= 2 and g.size > 0
            and J.shape == (c.size, g.size) and J.dtype.kind == g.dtype.kind == c.dtype.kind == "f")
