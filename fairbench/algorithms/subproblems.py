"""Stochastic Ghost's two subproblems at one sample set: the feasibility-level LP and the direction QP.

Given, at one sample set, the objective gradient ``g`` (n,), the constraint values ``c`` (m,)
and their Jacobian ``J`` (m, n) (``c <= 0`` is feasible), Ghost solves

1. the **feasibility-level LP** (radius ``rho``)::

       t* = min_{t, d}  t   s.t.  c_i + J_i d <= t  (all i),  t >= 0,  -rho <= d <= rho

   and sets the level ``kappa = (1 - lam) max_i [c_i]_+ + lam t*``. ``rho`` is the LP's box
   radius and ``lam`` the weight of ``t*``: the paper's code passed the two swapped (effective
   weight 0.8, radius 0.5); here they are keyword arguments with those names. If the LP cannot
   be solved, ``t* = rho`` (the paper's fallback) and the fallback is reported
   (:attr:`LPResult.fallback`) so that callers count it.

2. the **direction QP** (box ``beta``, proximal weight ``tau``)::

       min_d  g^T d + (tau/2) ||d||^2   s.t.  c + J d <= kappa,  -beta <= d <= beta.

   Since ``t* <= kappa`` and the LP's minimiser lies in the box ``rho``, the QP is feasible
   whenever ``rho <= beta`` and the LP was solved; otherwise it may not be, and an infeasible or
   failed QP is reported as such (:class:`QPResult` ``status``), never as a zero direction.

Two solver paths (``solver=`` in :class:`GhostSubproblems`):

``exact`` (closed forms, no iterative tolerance)
    *QP, by its dual.* With ``b = kappa - c`` and multipliers ``u >= 0`` (one per row of
    ``J d <= b``) the Lagrangian minimised over the box gives
    ``d(u) = clip(-(g + J^T u)/tau, -beta, beta)`` and the dual function
    ``q(u) = sum_i psi(w_i) - b^T u`` with ``w = g + J^T u`` and ``psi`` the Huber-like
    ``psi(w) = -w^2/(2 tau)`` for ``|w| <= tau beta``, ``-beta |w| + tau beta^2/2`` otherwise.
    ``q`` is concave, C^1 and piecewise quadratic, ``grad q(u) = J d(u) - b``, and the primal
    solution ``d(u*)`` is unique (strongly convex objective). The dual is maximised over
    ``u >= 0`` by enumerating the set ``A`` of constraints with positive multiplier (``2^m``
    sets, small ``m``; the empty set first, single constraints only if violated at the
    unconstrained point): for each ``A``, ``q`` is maximised over ``u_A`` in ``R^|A|`` (``u``
    zero off ``A``), and the candidate is accepted iff ``u_A >= 0`` and ``J d(u) <= b``
    (the KKT conditions, sufficient for a convex QP). Taking ``A`` as the support of a
    minimal-support optimal multiplier, every maximiser of ``q`` on ``R^A`` is ``>= 0`` (else
    the segment to it would cross ``u_i = 0`` inside the optimal set), so the enumeration
    finds the solution whenever the subproblem solves are exact.

    - ``|A| = 1``: ``u`` solves the monotone piecewise-linear equation
      ``phi(u) = J_i clip(-(g + u J_i)/tau) - b_i = 0`` on ``u >= 0``. Its ``2n`` breakpoints
      ``u = (+-tau beta - g_j)/J_ij`` are sorted, ``phi`` is accumulated over them to find the
      segment of the root, and the root is recomputed on that segment from its pattern of
      free/clipped coordinates (a linear equation): exact up to rounding, O(n log n).
      No root (``phi(inf) = -beta ||J_i||_1 - b_i > 0``) means constraint i alone cannot be met
      in the box: the QP is infeasible.
    - ``|A| >= 2`` (for ``m = 2`` the 2x2 complementarity system): Newton's method on the
      piece of ``q`` (Hessian ``-(1/tau) J_AF J_AF^T`` over the free coordinates ``F``; when it
      is singular, e.g. parallel constraint rows, and the gradient has a component in its null
      space, ``q`` is linear along that component and the search follows it instead) with an
      *exact* line search, which is the same sorted breakpoint root as above along the ray. Once the iterate is on the right piece the
      Newton step lands on the maximiser exactly; unbounded ``q`` along a ray rules ``A`` out.

    Before the enumeration, a box-free pass: if no box bound is active at the solution, ``d = -(g + J^T u)/tau``
    and the whole KKT system lives in ``R^m`` through ``J g`` and the Gram matrix ``J J^T``
    (O(mn) work, then 2^m tiny solves); its solution is accepted iff it lies in the box. This
    is the usual case on the census task (``beta = 10``) and costs a few matrix-vector products.

    If no ``A`` is accepted, the exact LP below decides: ``min_{|d|<=beta} max_i (J_i d - b_i)
    > 0`` means infeasible, otherwise the solve is reported failed. ``m`` above
    :data:`EXACT_MAX_M` (2^m sets) uses OSQP for the QP instead.

    *LP, by duality.* By the minimax theorem
    ``t* = max_{mu >= 0, sum mu <= 1} mu^T c - rho ||J^T mu||_1``, and since the objective is
    positively homogeneous, ``t* = max(0, max_{mu in simplex} mu^T c - rho ||J^T mu||_1)``.
    For ``m = 1``: ``t* = max(0, c_1 - rho ||J_1||_1)``. For ``m = 2``, ``mu = (1 - s, s)``::

        psi(s) = c_1 + s (c_2 - c_1) - rho sum_j |J_1j + s delta_j|,   delta = J_2 - J_1
               = const + s (c_2 - c_1) - rho sum_{delta_j != 0} |delta_j| |s - sigma_j|,

    ``sigma_j = -J_1j / delta_j``: a concave piecewise-linear function whose maximiser on
    ``[0, 1]`` is a weighted quantile of the ``sigma_j`` with weights ``|delta_j|``: the
    smallest ``sigma_k`` with ``sum_{sigma_j <= sigma_k} |delta_j| >= (W + (c_2 - c_1)/rho)/2``
    (``W`` the total weight), clipped to ``[0, 1]`` (the weighted median when ``c_1 = c_2``).
    ``psi`` is then evaluated at that point directly; only breakpoints inside ``(0, 1)`` are
    sorted. For a signed pair (``J_2 = -J_1``, the census constraints ``+-(L_0 - L_1) - delta``)
    it collapses to ``t* = max(0, min_{|y| <= R} max(c_1 + y, c_2 - y))``, ``R = rho ||J_1||_1``,
    attained at ``y = clip((c_2 - c_1)/2, -R, R)``. ``m > 2`` uses HiGHS.

``osqp``
    OSQP for the QP, one solver object reused across calls (the sparsity pattern of
    ``[J; I]`` is fixed: ``J`` is stored dense, so only values are updated), warm-started from
    the previous solution, and scipy's HiGHS (``linprog(method="highs")``) for the LP.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

SOLVERS = ("exact", "osqp")

#: Largest number of constraints the ``exact`` QP path enumerates (2^m multiplier supports);
#: above it the QP goes to OSQP.
EXACT_MAX_M = 4

SOLVED, INACCURATE, INFEASIBLE, FAILED = "solved", "inaccurate", "infeasible", "failed"

_NEWTON_MAX_ITER = 60
_KKT_RTOL = 1e-9      # relative tolerance of the accepted KKT conditions (feasibility, u >= 0)
_STATIONARY_RTOL = 1e-12


# ------------------------------------------------------------------------------------------
# results


@dataclass
class QPResult:
    """Outcome of one direction QP.

    ``d`` is the direction (``None`` unless ``ok``); ``status`` one of ``"solved"``,
    ``"inaccurate"`` (OSQP's "solved inaccurate": the direction is used), ``"infeasible"``,
    ``"failed"``; ``u`` the multipliers of ``c + J d <= kappa`` when known.
    """

    d: np.ndarray | None
    status: str
    u: np.ndarray | None = None
    iterations: int = 0

    @property
    def ok(self) -> bool:
        return self.status in (SOLVED, INACCURATE) and self.d is not None


@dataclass
class LPResult:
    """Outcome of the feasibility-level LP: ``t`` (= ``rho`` on fallback) and its status."""

    t: float
    status: str  # "solved" or "fallback"

    @property
    def fallback(self) -> bool:
        return self.status != SOLVED


@dataclass
class Subproblem:
    """Both subproblems at one sample set: the level ``kappa``, the LP and the QP outcomes."""

    kappa: float
    lp: LPResult
    qp: QPResult


def _as_problem(c, J, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(c, dtype=np.float64).reshape(-1)
    J = np.asarray(J, dtype=np.float64)
    if J.ndim == 1:
        J = J.reshape(len(c), -1) if len(c) else J.reshape(0, -1 if n is None else n)
    if J.shape[0] != len(c):
        raise ValueError(f"J has {J.shape[0]} rows for {len(c)} constraints")
    return c, J


# ------------------------------------------------------------------------------------------
# feasibility-level LP


def level_lp_exact(c, J, rho: float) -> float | None:
    """``t*`` in closed form for ``m <= 2`` (see module docstring); ``None`` for ``m > 2``."""
    c, J = _as_problem(c, J)
    if len(c) > 2 or not (np.isfinite(c).all() and np.isfinite(J).all()):
        return None
    return _level_lp_small(c, J, rho)


def _level_lp_small(c: np.ndarray, J: np.ndarray, rho: float) -> float:
    """``t*`` for ``m <= 2`` on finite float64 data."""
    m = len(c)
    if m == 0:
        return 0.0
    if m == 1:
        return max(0.0, float(c[0] - rho * np.abs(J[0]).sum()))
    j1, j2 = J[0], J[1]
    c1, c2 = float(c[0]), float(c[1])
    if np.array_equal(j2, -j1):
        # a signed pair +-(L_0 - L_1) - delta: with y = J_1 d in [-R, R], R = rho ||J_1||_1,
        # t* = max(0, min_y max(c_1 + y, c_2 - y)), attained at y = clip((c_2 - c_1)/2, -R, R)
        R = rho * float(np.abs(j1).sum())
        y = min(R, max(-R, 0.5 * (c2 - c1)))
        return max(0.0, c1 + y, c2 - y)
    delta = j2 - j1
    dc = c2 - c1
    nz = delta != 0.0
    weights = np.abs(delta[nz])
    total = float(weights.sum())
    target = 0.5 * (total + dc / rho)
    # s* = smallest breakpoint sigma_k with W(sigma_k) = sum_{sigma_j <= sigma_k} w_j >= target,
    # clipped to [0, 1]; only breakpoints inside (0, 1) need sorting
    s = 1.0
    if target <= 0.0:
        s = 0.0
    elif target <= total:
        sigma = -j1[nz] / delta[nz]
        below = sigma <= 0.0
        w_below = float(weights[below].sum())
        if w_below >= target:
            s = 0.0
        else:
            inner = ~below & (sigma < 1.0)
            s_in, w_in = sigma[inner], weights[inner]
            if s_in.size and w_below + float(w_in.sum()) >= target:
                order = np.argsort(s_in)
                cum = w_below + np.cumsum(w_in[order])
                k = min(int(np.searchsorted(cum, target, side="left")), len(order) - 1)
                s = float(s_in[order[k]])
    value = c1 + s * dc - rho * float(np.abs(j1 + s * delta).sum())
    return max(0.0, value)


def level_lp_highs(c, J, rho: float) -> float | None:
    """``t*`` from scipy's HiGHS; ``None`` when HiGHS does not report an optimum."""
    c, J = _as_problem(c, J)
    m, n = J.shape
    if m == 0:
        return 0.0
    if not (np.isfinite(c).all() and np.isfinite(J).all()):
        return None
    cost = np.zeros(n + 1)
    cost[-1] = 1.0
    A_ub = np.hstack([J, -np.ones((m, 1))])  # c + J d <= t
    bounds = [(-rho, rho)] * n + [(0.0, None)]
    try:
        res = linprog(cost, A_ub=A_ub, b_ub=-c, bounds=bounds, method="highs",
                      options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10})
    except (ValueError, RuntimeError):
        return None
    if res.status != 0 or res.fun is None or not np.isfinite(res.fun):
        return None
    return max(0.0, float(res.fun))


def level_lp(c, J, rho: float, method: str = "exact") -> LPResult:
    """The feasibility-level LP's value ``t*`` (``method``: ``exact`` or ``highs``).

    ``exact`` uses the closed form for ``m <= 2`` and HiGHS above. On failure ``t* = rho``
    with status ``"fallback"``.
    """
    t = level_lp_exact(c, J, rho) if method == "exact" else None
    if t is None:
        t = level_lp_highs(c, J, rho)
    if t is None:
        return LPResult(float(rho), "fallback")
    return LPResult(t, SOLVED)


def feasibility_level(c, J, *, rho: float, lam: float, method: str = "exact") -> tuple[float, LPResult]:
    """``kappa = (1 - lam) max_i [c_i]_+ + lam t*`` with ``t*`` the LP of radius ``rho``.

    ``rho`` is the LP's box radius and ``lam`` the weight (keyword-only, so they cannot be
    swapped by position as in the paper's code).
    """
    c = np.asarray(c, dtype=np.float64).reshape(-1)
    lp = level_lp(c, J, rho, method)
    viol = float(np.maximum(c, 0.0).max()) if c.size else 0.0
    return (1.0 - lam) * viol + lam * lp.t, lp


# ------------------------------------------------------------------------------------------
# direction QP: exact dual method


def _box_point(w: np.ndarray, tau: float, beta: float) -> np.ndarray:
    """``clip(-w / tau, -beta, beta)`` (the box minimiser of ``w^T d + (tau/2)||d||^2``)."""
    out = np.multiply(w, -1.0 / tau)
    np.maximum(out, -beta, out=out)
    return np.minimum(out, beta, out=out)


def _ray_root(w0: np.ndarray, v: np.ndarray, const: float, tau: float, beta: float) -> float:
    """Smallest ``t >= 0`` with ``phi(t) = v . clip(-(w0 + t v)/tau, -beta, beta) - const <= 0``.

    ``phi`` is continuous, nonincreasing and piecewise linear (each term ``v_j d_j(t)`` runs
    from ``|v_j| beta`` down to ``-|v_j| beta``, linearly between its two breakpoints). Returns
    ``inf`` when ``phi`` stays positive. Exact up to rounding: the segment holding the root is
    found over the sorted breakpoints and the root recomputed from that segment's pattern.
    """
    tb = tau * beta
    if (np.abs(w0) < tb).all():
        # fast path: every coordinate free at 0, phi(t) = f0 - t v.v/tau until one clips; done if
        # none has clipped at the root (each coordinate's free set is an interval in t)
        f0 = -float(v @ w0) / tau - const
        if f0 <= 0.0:
            return 0.0
        vv = float(v @ v)
        if vv > 0.0:
            t = f0 * tau / vv
            if (np.abs(w0 + t * v) <= tb).all():
                return t
    f0 = float(v @ _box_point(w0, tau, beta)) - const
    if f0 <= 0.0:
        return 0.0
    nz = v != 0.0
    vn, wn = (v, w0) if nz.all() else (v[nz], w0[nz])
    if -beta * float(np.abs(vn).sum()) - const > 0.0:
        return np.inf
    t1, t2 = (-tb - wn) / vn, (tb - wn) / vn
    lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
    v2 = vn * vn / tau
    ml, mh = lo > 0.0, hi > 0.0
    s0 = -float(v2[mh & ~ml].sum())  # slope of phi just right of 0 (free: lo <= 0 < hi)
    if s0 < 0.0:
        # fast path: phi = f0 + s0 t up to the first breakpoint; done if none precedes the root
        t = -f0 / s0
        if not ((lo[ml] < t).any() or (hi[mh] < t).any()):
            return t
    T = np.concatenate([lo[ml], hi[mh]])
    if T.size == 0:  # phi constant on t >= 0 (cannot be: f0 > 0 >= phi(inf)); be safe
        return 0.0
    dS = np.concatenate([-v2[ml], v2[mh]])
    order = np.argsort(T)
    T, dS = T[order], dS[order]
    slopes = np.empty_like(T)
    slopes[0] = s0
    np.cumsum(dS[:-1], out=slopes[1:])
    slopes[1:] += s0
    gaps = np.diff(T, prepend=0.0)
    vals = f0 + np.cumsum(slopes * gaps)
    hit = np.flatnonzero(vals <= 0.0)
    k = int(hit[0]) if hit.size else len(T) - 1
    left = 0.0 if k == 0 else float(T[k - 1])
    right = float(T[k])
    # phi on [left, right]: the pattern at the midpoint is constant there
    wm = wn + 0.5 * (left + right) * vn
    free = np.abs(wm) < tb
    slope = -float(v2[free].sum())
    clipped = ~free
    base = float(vn[clipped] @ _box_point(wm[clipped], tau, beta)) - float(vn[free] @ wn[free]) / tau - const
    if slope < 0.0:
        t = -base / slope
        return min(right, max(left, t))
    return left


def _kkt_scale(J: np.ndarray, b: np.ndarray, d: np.ndarray) -> np.ndarray:
    return 1.0 + np.abs(b) + np.abs(J) @ np.abs(d)


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


def direction_qp_exact(g, c, J, kappa: float, *, tau: float, beta: float) -> QPResult:
    """The direction QP by its dual (module docstring), for ``m <= EXACT_MAX_M``.

    ``min_d g^T d + (tau/2)||d||^2  s.t.  c + J d <= kappa, -beta <= d <= beta``.
    """
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    c, J = _as_problem(c, J, g.size)
    if len(c) > EXACT_MAX_M:
        raise ValueError(f"the exact QP enumerates 2^m supports; m={len(c)} > {EXACT_MAX_M}: use OSQP")
    if not (np.isfinite(g).all() and np.isfinite(c).all() and np.isfinite(J).all() and np.isfinite(kappa)):
        return QPResult(None, FAILED)
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
    Jg = (J @ g).tolist()  # the R^m part runs on Python floats: m is tiny, numpy calls are not
    G = (J @ J.T).tolist()
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


def _qp_exact(g: np.ndarray, c: np.ndarray, J: np.ndarray, kappa: float, tau: float, beta: float) -> QPResult:
    """:func:`direction_qp_exact` on finite float64 data."""
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
    level = _level_lp_small(-b, J, beta) if m <= 2 else level_lp_highs(-b, J, beta)
    if level is not None and level > _KKT_RTOL * float(np.max(1.0 + np.abs(b) + beta * Jabs.sum(axis=1))):
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


# ------------------------------------------------------------------------------------------
# direction QP: OSQP


class OSQPDirection:
    """The direction QP by OSQP, one solver object reused while ``(m, n)`` stays the same.

    Variables ``d`` (n); ``P = tau I``; constraints ``[J; I] d`` in ``[-inf, b] x [-beta, beta]``.
    ``J`` is stored as a dense block (explicit zeros kept), so every call only updates values
    (``q``, ``u``, ``Ax``, and ``Px`` if ``tau`` changed); OSQP warm-starts from the previous
    solution.
    """

    def __init__(self, eps_abs: float = 1e-6, eps_rel: float = 1e-6, max_iter: int = 10000,
                 polishing: bool = True, **settings):
        self.settings = dict(eps_abs=eps_abs, eps_rel=eps_rel, max_iter=int(max_iter),
                             polishing=bool(polishing), warm_starting=True, verbose=False, **settings)
        self._solver = None
        self._shape: tuple[int, int] | None = None
        self._tau: float | None = None

    @staticmethod
    def _A_values(J: np.ndarray) -> np.ndarray:
        m, n = J.shape
        return np.vstack([J, np.ones((1, n))]).T.ravel()  # column-major: J[:, j] then I's 1

    def _setup(self, g, J, l, u, tau):
        import osqp

        m, n = J.shape
        P = sp.csc_matrix((np.full(n, tau), np.arange(n), np.arange(n + 1)), shape=(n, n))
        rows = np.concatenate([np.tile(np.arange(m), (n, 1)), (m + np.arange(n))[:, None]], axis=1).ravel()
        A = sp.csc_matrix((self._A_values(J), rows, np.arange(0, n * (m + 1) + 1, m + 1)), shape=(m + n, n))
        solver = osqp.OSQP()
        solver.setup(P, g, A, l, u, **self.settings)
        self._solver, self._shape, self._tau = solver, (m, n), tau

    def solve(self, g, c, J, kappa: float, *, tau: float, beta: float) -> QPResult:
        import osqp

        g = np.asarray(g, dtype=np.float64).reshape(-1)
        c, J = _as_problem(c, J, g.size)
        m, n = J.shape
        if not (np.isfinite(g).all() and np.isfinite(c).all() and np.isfinite(J).all() and np.isfinite(kappa)):
            return QPResult(None, FAILED)
        b = float(kappa) - c
        lower = np.concatenate([np.full(m, -np.inf), np.full(n, -beta)])
        upper = np.concatenate([b, np.full(n, beta)])
        try:
            if self._solver is None or self._shape != (m, n):
                self._setup(g, J, lower, upper, tau)
            else:
                kw = dict(q=g, l=lower, u=upper, Ax=self._A_values(J))
                if tau != self._tau:
                    kw["Px"] = np.full(n, tau)
                    self._tau = tau
                self._solver.update(**kw)
            res = self._solver.solve(raise_error=False)
        except (ValueError, osqp.OSQPException):  # setup/update rejected the data
            self._solver = None
            return QPResult(None, FAILED)
        status = res.info.status_val
        S = osqp.SolverStatus
        iters = int(res.info.iter)
        if status in (S.OSQP_PRIMAL_INFEASIBLE, S.OSQP_PRIMAL_INFEASIBLE_INACCURATE):
            return QPResult(None, INFEASIBLE, iterations=iters)
        if status not in (S.OSQP_SOLVED, S.OSQP_SOLVED_INACCURATE):
            return QPResult(None, FAILED, iterations=iters)
        d = np.array(res.x, dtype=np.float64)
        if d.shape != (n,) or not np.isfinite(d).all():
            return QPResult(None, FAILED, iterations=iters)
        y = np.array(res.y[:m], dtype=np.float64)
        return QPResult(d, SOLVED if status == S.OSQP_SOLVED else INACCURATE, y, iters)


# ------------------------------------------------------------------------------------------
# both subproblems


class GhostSubproblems:
    """Ghost's LP + QP at one sample set, by the ``exact`` or the ``osqp`` path.

    ``solve(g, c, J)`` returns a :class:`Subproblem` (``kappa``, LP and QP outcomes). The
    ``exact`` path hands the QP to OSQP when ``m > EXACT_MAX_M`` and the LP to HiGHS when
    ``m > 2``.
    """

    def __init__(self, solver: str = "exact", *, rho: float, lam: float, tau: float, beta: float,
                 osqp_settings: dict | None = None):
        if solver not in SOLVERS:
            raise ValueError(f"solver={solver!r}: accepted {', '.join(SOLVERS)}")
        self.solver, self.rho, self.lam, self.tau, self.beta = solver, rho, lam, tau, beta
        self._osqp = OSQPDirection(**(osqp_settings or {}))

    def qp(self, g, c, J, kappa: float) -> QPResult:
        m = np.asarray(c).size
        if self.solver == "exact" and m <= EXACT_MAX_M:
            return direction_qp_exact(g, c, J, kappa, tau=self.tau, beta=self.beta)
        return self._osqp.solve(g, c, J, kappa, tau=self.tau, beta=self.beta)

    def solve(self, g, c, J) -> Subproblem:
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        c, J = _as_problem(c, J, g.size)
        m = len(c)
        finite = bool(np.isfinite(g).all() and np.isfinite(c).all() and np.isfinite(J).all())
        if self.solver == "exact" and finite and m <= 2:
            # the common case without re-validation: closed-form LP, then the dual QP
            lp = LPResult(_level_lp_small(c, J, self.rho), SOLVED)
            kappa = (1.0 - self.lam) * max(0.0, float(c.max())) + self.lam * lp.t
            return Subproblem(kappa, lp, _qp_exact(g, c, J, kappa, self.tau, self.beta))
        kappa, lp = feasibility_level(c, J, rho=self.rho, lam=self.lam,
                                      method="exact" if self.solver == "exact" else "highs")
        return Subproblem(kappa, lp, self.qp(g, c, J, kappa))
