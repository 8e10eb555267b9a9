"""Ghost's direction QP ``min_d g^T d + (tau/2)||d||^2  s.t.  c + J d <= kappa, |d| <= beta`` for
``m <= ENUM_MAX_M`` constraints, exactly, by its dual (docs/ghost_subproblems.md, "The QP by its
dual").

First the box-free pass (:func:`_qp_box_free`: the KKT system in ``R^m`` on ``J J^T`` and ``J g``,
accepted iff its point lies in the box), then the enumeration of the multiplier supports ``A``:
for each, the dual ``q`` is maximised over ``u_A`` (the root of a monotone piecewise-linear
equation for ``|A| = 1``, Newton with an exact line search for ``|A| >= 2``) and the candidate is
accepted iff it meets the KKT conditions, which are sufficient for a convex QP. If none is
accepted the level LP decides between infeasible and failed. Above ``ENUM_MAX_M``
:func:`direction_qp_exact` hands over to :mod:`.qp_active_set`. (Lagrangian duality and the KKT
conditions of a convex QP: Boyd & Vandenberghe, *Convex Optimization*, 2004, ch. 5.)
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from fairbench.algorithms.subproblems.common import (
    _KKT_RTOL,
    _STATIONARY_RTOL,
    ENUM_MAX_M,
    EXACT_MAX_M,
    FAILED,
    INFEASIBLE,
    SOLVED,
    QPResult,
    _as_problem,
)
from fairbench.algorithms.subproblems.dual import _box_point, _kkt_scale, _ray_root
from fairbench.algorithms.subproblems.lp import _qp_infeasible
from fairbench.algorithms.subproblems.qp_active_set import _qp_active_set

_NEWTON_MAX_ITER = 60


def direction_qp_exact(g, c, J, kappa: float, *, tau: float, beta: float) -> QPResult:
    """The direction QP by its dual (docs/ghost_subproblems.md), for ``m <= EXACT_MAX_M``.

    ``min_d g^T d + (tau/2)||d||^2  s.t.  c + J d <= kappa, -beta <= d <= beta``. Support
    enumeration for ``m <= ENUM_MAX_M``, above it the active-set dual method of
    :mod:`.qp_active_set` (status ``"failed"`` when it cannot certify its answer).
    """
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    c, J = _as_problem(c, J, g.size)
    if len(c) > EXACT_MAX_M:
        raise ValueError(f"the exact QP works with dense m x m factorisations; m={len(c)} > {EXACT_MAX_M}: use OSQP")
    if not (np.isfinite(g).all() and np.isfinite(c).all() and np.isfinite(J).all() and np.isfinite(kappa)):
        return QPResult(None, FAILED)
    if len(c) > ENUM_MAX_M:
        return _qp_active_set(g, c, J, float(kappa), tau, beta)
    return _qp_exact(g, c, J, float(kappa), tau, beta)


def _qp_box_free(g: np.ndarray, J: np.ndarray, b: np.ndarray, tau: float, beta: float):
    """The QP's solution if no box bound is active at it, else ``None`` (O(mn) + 2^m tiny solves).

    Without the box, ``d(u) = -(g + J^T u)/tau`` and ``J d(u) = -(J g + G u)/tau`` with the Gram
    matrix ``G = J J^T``: the KKT system lives in R^m. Supports ``A`` are enumerated with
    ``G_AA u_A = -(J_A g + tau b_A)``; singular ``G_AA`` are skipped (without the box some
    optimal multiplier has linearly independent support rows, by Caratheodory). The box-free
    solution is unique, so if it leaves the box the full method is needed.
    """
    m = len(b)
    # G and J g from one gemm J [J; g]^T (numpy computes J @ J.T by a syrk, about twice as slow
    # here); the R^m part runs on Python floats: m is tiny, numpy calls are not
    JY = J @ np.concatenate((J, g[None, :])).T
    G = JY[:, :m].tolist()
    Jg = JY[:, m].tolist()
    bl = b.tolist()
    rhs = [-(Jg[i] + tau * bl[i]) for i in range(m)]
    for k in range(m + 1):
        for A in combinations(range(m), k):
            if k == 0:
                uA = []
            elif k == 1:
                (i,) = A
                if not G[i][i] > 0.0:
                    continue
                uA = [rhs[i] / G[i][i]]
            elif k == 2:
                i, j = A
                det = G[i][i] * G[j][j] - G[i][j] * G[j][i]
                if not det > 1e-12 * G[i][i] * G[j][j]:
                    continue
                uA = [(rhs[i] * G[j][j] - G[i][j] * rhs[j]) / det, (G[i][i] * rhs[j] - G[j][i] * rhs[i]) / det]
            else:
                GA = np.array([[G[i][j] for j in A] for i in A])
                if np.linalg.cond(GA) > 1e12:
                    continue
                uA = np.linalg.solve(GA, [rhs[i] for i in A]).tolist()
            if any(x < 0.0 for x in uA):
                continue
            ok = True
            for i in range(m):
                Gu = sum(G[i][j] * x for j, x in zip(A, uA))
                if -(Jg[i] + Gu) / tau - bl[i] > _KKT_RTOL * (1.0 + abs(bl[i]) + (abs(Jg[i]) + abs(Gu)) / tau):
                    ok = False
                    break
            if ok:
                u = np.zeros(m)
                u[list(A)] = uA
                d = (g + u @ J) * (-1.0 / tau)
                return (d, u) if np.abs(d).max() <= beta else None
    return None


def _qp_exact(g: np.ndarray, c: np.ndarray, J: np.ndarray, kappa: float, tau: float, beta: float,
              box_free: tuple[np.ndarray, np.ndarray] | None = None) -> QPResult:
    """:func:`direction_qp_exact` on finite float64 data.

    ``box_free``: the box-free pass's ``(d, u)`` when the caller already has it (the ``m <= 2``
    path, :func:`_solve_small`, computes it in closed form); it is the solution.
    """
    if box_free is not None:
        return QPResult(box_free[0], SOLVED, box_free[1])
    m = len(c)
    b = kappa - c
    if m:
        free = _qp_box_free(g, J, b, tau, beta)
        if free is not None:
            return QPResult(free[0], SOLVED, free[1])
    u = np.zeros(m)
    d0 = _box_point(g, tau, beta)
    if m == 0:
        return QPResult(d0, SOLVED, u)
    Jabs = np.abs(J)
    slack0 = J @ d0 - b
    tol0 = _KKT_RTOL * (1.0 + np.abs(b) + Jabs @ np.abs(d0))
    if (slack0 <= tol0).all():
        return QPResult(d0, SOLVED, u)
    iterations = 0
    singles: dict[int, float] = {}
    # single supports: only constraints violated at d0 can carry the whole multiplier
    for i in np.argsort(-(slack0 / tol0)):
        i = int(i)
        if slack0[i] <= tol0[i]:
            break
        ui = _ray_root(g, J[i], float(b[i]), tau, beta)
        iterations += 1
        if not np.isfinite(ui):
            return QPResult(None, INFEASIBLE, iterations=iterations)  # constraint i alone is infeasible
        singles[i] = ui
        cand = _accept(g, J, Jabs, b, tau, beta, [i], np.array([ui]))
        if cand is not None:
            return QPResult(cand[0], SOLVED, cand[1], iterations)
    for k in range(2, m + 1):
        for A in combinations(range(m), k):
            A = list(A)
            u0 = np.array([singles.get(i, 0.0) for i in A])
            uA, its = _face_newton(g, J[A], b[A], tau, beta, u0)
            iterations += its
            if uA is None:
                continue
            cand = _accept(g, J, Jabs, b, tau, beta, A, uA)
            if cand is not None:
                return QPResult(cand[0], SOLVED, cand[1], iterations)
    # nothing satisfied the KKT conditions: infeasible, or a numerical failure
    if _qp_infeasible(b, J, Jabs, beta):
        return QPResult(None, INFEASIBLE, iterations=iterations)
    return QPResult(None, FAILED, iterations=iterations)


def _accept(g, J, Jabs, b, tau, beta, A, uA):
    """The candidate ``(d, u)`` of support ``A`` if it satisfies the KKT conditions, else None."""
    if (uA < -_KKT_RTOL * (1.0 + np.abs(uA).max())).any():
        return None
    u = np.zeros(len(b))
    u[A] = np.maximum(uA, 0.0)
    d = _box_point(g + u @ J, tau, beta)
    if (J @ d - b <= _KKT_RTOL * (1.0 + np.abs(b) + Jabs @ np.abs(d))).all():
        return d, u
    return None


def _face_newton(g, JA, bA, tau, beta, u):
    """Maximise the dual ``q`` over ``u_A`` in ``R^|A|`` (Newton + exact line search).

    Returns ``(u_A, iterations)`` or ``(None, iterations)`` when ``q`` is unbounded along a
    search ray or no stationary point was reached.
    """
    tb = tau * beta
    for it in range(1, _NEWTON_MAX_ITER + 1):
        w = g + u @ JA
        d = _box_point(w, tau, beta)
        r = JA @ d - bA  # gradient of q
        if np.all(np.abs(r) <= _STATIONARY_RTOL * _kkt_scale(JA, bA, d)):
            return u, it
        s = _ascent_direction(JA[:, np.abs(w) < tb], r, tau)
        t = _ray_root(w, s @ JA, float(s @ bA), tau, beta)
        if t == 0.0:  # rounding left no ascent along s: fall back to the gradient
            s = r
            t = _ray_root(w, s @ JA, float(s @ bA), tau, beta)
        if not np.isfinite(t) or t == 0.0:  # unbounded along the ray, or stuck
            return None, it
        u = u + t * s
    # last check with the final iterate
    w = g + u @ JA
    d = _box_point(w, tau, beta)
    r = JA @ d - bA
    if np.all(np.abs(r) <= _KKT_RTOL * _kkt_scale(JA, bA, d)):
        return u, _NEWTON_MAX_ITER
    return None, _NEWTON_MAX_ITER


def _ascent_direction(JF: np.ndarray, r: np.ndarray, tau: float) -> np.ndarray:
    """Newton direction of the dual on the current piece, or a direction along which it is linear.

    ``H = JF JF^T / tau`` is minus the Hessian of ``q`` on the piece (PSD). If the gradient
    ``r`` has a component in ``H``'s null space (singular H: parallel constraint rows on the
    free coordinates, or no free coordinate), ``q`` is linear along it on this piece and
    increases without bound there: that component is returned, and the exact line search
    moves to the next piece. Otherwise the Newton direction ``H^+ r``.
    """
    H = (JF @ JF.T) / tau
    evals, evecs = np.linalg.eigh(H)
    coef = evecs.T @ r
    top = float(evals[-1]) if evals.size else 0.0
    pos = evals > 1e-12 * top if top > 0.0 else np.zeros(len(evals), dtype=bool)
    null = evecs[:, ~pos] @ coef[~pos]
    if float(null @ null) > 1e-20 * float(r @ r):
        return null
    return evecs[:, pos] @ (coef[pos] / evals[pos])
