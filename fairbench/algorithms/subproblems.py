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
    For ``m <= 2`` :class:`GhostSubproblems` runs the LP and this pass as straight-line code
    (:func:`_solve_small`: the dots ``J_i . J_j``, ``J_i . g``, ``g . g`` shared by both, the
    signed pair ``J_2 = -J_1`` as the rank-one case, norm bounds in place of exact passes where
    they decide): the same level, LP value and statuses, and directions and multipliers to
    about 1e-12 relative (separate dots where the general code makes one matrix product).

    If no ``A`` is accepted, the exact LP below decides: ``min_{|d|<=beta} max_i (J_i d - b_i)
    > 0`` means infeasible, otherwise the solve is reported failed. This enumeration serves
    ``m <= ENUM_MAX_M`` (4).

    *QP, general m* (``ENUM_MAX_M < m <= EXACT_MAX_M``, e.g. experiment 2's 20 signed pair
    constraints), an active-set method on the same dual, in two stages:

    1. Box-free: the dual is then the bound-constrained QP
       ``min_{u >= 0} (1/2) u^T G u + (J g + tau b)^T u`` on the Gram matrix ``G = J J^T``
       (m x m; for the signed layout ``J = [A; -A]`` from ``A A^T``), solved by a primal
       active-set method (:func:`_nnls_gram`): Newton steps on the free face (Cholesky when
       ``G_WW`` is regular, else an eigendecomposition: a component of the gradient in its null
       space, e.g. both rows of a signed pair, or a pair difference that is the sum of two
       others, is followed as a ray to the next bound), the most negative gradient entry
       entering at stationary points. ``G`` may be singular (the census ``J`` has rank 4 for
       m = 20); ``d`` is unique even when ``u`` is not. Accepted iff ``|d| <= beta`` and the
       KKT conditions hold in ``R^n`` (:func:`_kkt_ok`). The usual case.
    2. Box binding: :func:`_dual_active_set`, warm-started from stage 1: the same active set on
       ``u`` with, on the working set, the Newton direction of the current piece of ``q`` (the
       free coordinates' Gram) and the exact line search :func:`_ray_root` along it, cut where a
       multiplier reaches 0. Verified by the same KKT check.

    An unbounded dual ray (either stage) means infeasible, confirmed by the exact LP
    ``min_{|d|<=beta} max_i (J_i d - b_i) > 0``. Anything not certified is reported
    ``failed``, and :class:`GhostSubproblems` then hands the QP to OSQP (counted in
    ``GhostSubproblems.fallbacks``). Above :data:`EXACT_MAX_M` the QP goes to OSQP.

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
    attained at ``y = clip((c_2 - c_1)/2, -R, R)``.

    *LP, general m* (:func:`_level_lp_general`): ``t* = 0`` iff ``S(0) = {c + J d <= 0,
    |d| <= rho}`` is not empty, which the QP machinery above decides on its minimum-norm point
    (``g = 0``, ``tau = 1``, ``beta = rho``): a point certifies ``t* = 0`` (the usual case in
    Ghost, ``rho ||J_i||_1 >> c``), an unbounded dual ray ``mu`` a lower bound
    ``mu^T c - rho ||J^T mu||_1 > 0``. Then ``t* > 0``: the signed-pair bound
    ``max (c_+ + c_-)/2`` tested as a level, a bounded dual simplex in the m-dimensional
    basis (bound-flipping ratio test = exact line search along an edge of the piecewise-linear
    dual; certified by the primal-dual gap), and, where dual degeneracy stalls it, the level
    iteration ``l <- value of the ray of S(l + delta)`` until ``S(l + delta)`` has a point.
    The value returned is always attained by a box point and within ``_LP_GAP_RTOL`` (relative
    to ``1 + |c| + rho ||J_i||_1``) of a certified dual bound; if none is certified, HiGHS.

``osqp``
    OSQP for the QP, one solver object reused across calls (the sparsity pattern of
    ``[J; I]`` is fixed: ``J`` is stored dense, so only values are updated), warm-started from
    the previous solution, and scipy's HiGHS (``linprog(method="highs")``) for the LP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from itertools import combinations

import numpy as np
from scipy.linalg import lu_factor, lu_solve
from scipy.linalg.lapack import dpotrf, dpotrs

# scipy.optimize (HiGHS) and scipy.sparse (OSQP's matrices) are imported where the
# reference and fallback paths use them: the exact path never does, and scipy.optimize
# alone costs about 0.2 s to import in every process that builds a Ghost

SOLVERS = ("exact", "osqp")

#: Largest number of constraints the ``exact`` QP path enumerates (2^m multiplier supports);
#: above it the general active-set dual method is used.
ENUM_MAX_M = 4

#: Largest number of constraints the ``exact`` path handles (the active-set methods work in
#: R^m with dense m x m factorisations); above it the QP goes to OSQP and the LP to HiGHS.
EXACT_MAX_M = 64

SOLVED, INACCURATE, INFEASIBLE, FAILED = "solved", "inaccurate", "infeasible", "failed"

_NEWTON_MAX_ITER = 60
_KKT_RTOL = 1e-9      # relative tolerance of the accepted KKT conditions (feasibility, u >= 0)
_STATIONARY_RTOL = 1e-12
_ADD_RTOL = 1e-12     # a constraint enters the active set when violated beyond this (relative)
_NNLS_RTOL = 1e-13    # the R^m active set's gradient tolerance (relative)
_EIG_RTOL = 1e-12     # eigenvalues below this fraction of the largest count as zero
_NULL_CLEAN_RTOL = 1e-12  # entries of a null direction below this fraction of its largest are zero
_RAY_BIG = 1e12       # a dual step this many times longer than |u| counts as an unbounded ray
_CHOL_RTOL = 1e-10    # R^m active set: Cholesky pivots^2 above this fraction of max diag(G_WW): regular
_LP_FEAS_RTOL = 1e-11  # dual simplex: bound violations (relative to rho, or to the constraint scale)
_LP_PIVOT_RTOL = 1e-9  # dual simplex: smallest pivot, relative to the largest entry of the pivot row
_LP_GAP_RTOL = 1e-12   # LP: accepted primal-dual gap, relative to 1 + |c| + rho ||J_i||_1
_LP_LEVEL_RTOL = 1e-14  # LP: level offset of the level tests (same scale); a few hundred roundings
_LEVEL_MAX_ITER = 100  # LP: level-iteration steps after a stalled simplex
_SIMPLEX_MAX_STALLS = 3  # LP: degenerate simplex steps in a row before the level iteration takes over


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


def _all_finite(*arrays: np.ndarray) -> bool:
    """Whether every entry of the float64 ``arrays`` is finite.

    A sum of squares with a NaN or infinite term is not finite, so one BLAS dot per array
    settles the usual case (half the cost of ``isfinite(a).all()`` at Ghost's sizes); the
    elementwise test runs only when a dot is not finite (such an entry, or finite ones whose
    squares overflow).
    """
    for a in arrays:
        if not math.isfinite(np.vdot(a, a)) and not np.isfinite(a).all():
            return False
    return True


# ------------------------------------------------------------------------------------------
# feasibility-level LP


def level_lp_exact(c, J, rho: float) -> float | None:
    """``t*`` exactly (module docstring): closed form for ``m <= 2``, the minimum-norm point /
    dual simplex for ``2 < m <= EXACT_MAX_M``; ``None`` above, on non-finite data, or when the
    general method cannot certify its answer."""
    c, J = _as_problem(c, J)
    if len(c) > EXACT_MAX_M or not (np.isfinite(c).all() and np.isfinite(J).all()):
        return None
    return _level_lp_small(c, J, rho) if len(c) <= 2 else _level_lp_general(c, J, rho)


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
    from scipy.optimize import linprog

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

    ``exact`` uses :func:`level_lp_exact` and HiGHS where that gives no answer. On failure
    ``t* = rho`` with status ``"fallback"``.
    """
    t = level_lp_exact(c, J, rho) if method == "exact" else None
    if t is None:
        t = level_lp_highs(c, J, rho)
    if t is None:
        return LPResult(float(rho), "fallback")
    return LPResult(t, SOLVED)


def _lp_value(c: np.ndarray, J: np.ndarray, rho: float, G: np.ndarray | None = None) -> float | None:
    """``t*`` on finite float64 data: exact (any ``m <= EXACT_MAX_M``), else HiGHS, else None."""
    m = len(c)
    if m <= 2:
        return _level_lp_small(c, J, rho)
    t = _level_lp_general(c, J, rho, G) if m <= EXACT_MAX_M else None
    return level_lp_highs(c, J, rho) if t is None else t


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

    ``min_d g^T d + (tau/2)||d||^2  s.t.  c + J d <= kappa, -beta <= d <= beta``. Support
    enumeration for ``m <= ENUM_MAX_M``, the active-set dual method above (status ``"failed"``
    when it cannot certify its answer).
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


# ------------------------------------------------------------------------------------------
# shared by the general-m LP and QP: a bound-constrained QP in R^m on the Gram matrix


def _nnls_gram(G: np.ndarray, v: np.ndarray, floor: np.ndarray, u: np.ndarray | None = None,
               max_iter: int | None = None) -> tuple[np.ndarray, str, int]:
    """``argmin_{u >= 0} (1/2) u^T G u + v^T u`` for a PSD ``G`` (m x m): primal active set.

    The working set ``W`` holds the coordinates allowed to be positive (the others are 0). On
    ``W`` the quadratic is minimised by one Newton step ``G_WW s = -grad_W`` (pseudo-inverse
    on the range of ``G_WW``); if ``-grad_W`` has a component in the null space of ``G_WW``
    (dependent rows, e.g. a signed pair ``J_- = -J_+`` or a pair difference that is the sum of
    two others) the objective is linear along it and the step follows it instead. Either step
    is cut where a coordinate of ``u_W`` reaches 0 (it leaves ``W``); after a full Newton step
    the point is stationary on ``W`` and the most negative gradient entry outside ``W`` (if any,
    beyond ``_NNLS_RTOL`` relative to ``floor + |v| + |G||u|``) enters. A ray with no cut means
    the objective is unbounded below on ``u >= 0``. Finite in exact arithmetic (the objective
    decreases strictly between two stationary points; no working set repeats); capped.

    Returns ``(u, status, iterations)``, status ``"solved"``, ``"unbounded"`` (then ``u`` is the
    ray, ``>= 0``) or ``"failed"`` (cap reached). The caller verifies the result in R^n
    (:func:`_kkt_ok`).
    """
    m = len(v)
    Gabs = np.abs(G)
    base = floor + np.abs(v)
    u = np.zeros(m) if u is None else np.maximum(u, 0.0)
    W = [int(i) for i in np.flatnonzero(u > 0.0)]
    stationary = not W
    tabu: set[int] = set()  # entered and dropped again without progress (rounding): not re-entered
    max_iter = max_iter or 20 * m + 50
    for it in range(1, max_iter + 1):
        fresh = stationary
        if stationary:
            grad = G @ u + v
            tol = _NNLS_RTOL * (base + Gabs @ u)
            crit = grad / tol
            crit[W] = np.inf
            if tabu:
                crit[list(tabu)] = np.inf
            p = int(np.argmin(crit))
            if not crit[p] < -1.0:
                return u, SOLVED, it
            W.append(p)
            stationary = False
        Wa = np.array(W)
        uW = u[Wa]
        if fresh:
            rW, tolW = -grad[Wa], tol[Wa]  # descent direction of the objective on W
        else:
            rW = -(G[Wa] @ u + v[Wa])
            tolW = _NNLS_RTOL * (base[Wa] + Gabs[Wa] @ u)
        GW = G[Wa][:, Wa]
        # the usual case: G_WW well conditioned (Cholesky pivots), one Newton step
        L, info = dpotrf(GW, lower=1)
        regular = info == 0 and float(L.diagonal().min()) ** 2 > _CHOL_RTOL * float(GW.diagonal().max())
        if regular:
            if np.all(np.abs(rW) <= tolW):
                stationary = True
                continue
            s, t = dpotrs(L, rW, lower=1)[0], 1.0
        else:
            evals, evecs = np.linalg.eigh(GW)
            top = float(evals[-1])
            pos = evals > _EIG_RTOL * top if top > 0.0 else np.zeros(len(Wa), dtype=bool)
            coef = evecs.T @ rW
            null = evecs[:, ~pos] @ coef[~pos]
            if float(null @ null) > float(tolW @ tolW):
                s, t = null, np.inf  # linear along the null direction: go until a bound
            else:
                if np.all(np.abs(rW) <= tolW):
                    stationary = True
                    continue
                s, t = evecs[:, pos] @ (coef[pos] / evals[pos]), 1.0
        neg = np.flatnonzero(s < 0.0)
        k = -1
        if neg.size:
            ratios = uW[neg] / -s[neg]
            j = int(np.argmin(ratios))
            if ratios[j] < t:
                t, k = float(ratios[j]), int(neg[j])
        if not np.isfinite(t):
            return _ray(m, Wa, s), "unbounded", it
        stationary = _advance(u, W, Wa, uW, s, t, k, tabu)
    return u, FAILED, max_iter


def _advance(u: np.ndarray, W: list, Wa: np.ndarray, uW: np.ndarray, s: np.ndarray, t: float, k: int,
             tabu: set) -> bool:
    """Move the working-set multipliers ``t`` along ``s``; drop the blocking one (index ``k``
    into ``W``, or -1 for none) and keep the anti-cycling ``tabu`` set of rows dropped by a
    zero step. Returns True when no multiplier blocked (a full step was taken)."""
    u[Wa] = np.maximum(uW + t * s, 0.0)
    if k < 0:
        tabu.clear()
        return True
    dropped = W.pop(k)
    u[dropped] = 0.0
    if t == 0.0:
        tabu.add(dropped)
    else:
        tabu.clear()
    return False


def _ray(m: int, Wa: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The unbounded ray ``s`` (on the working set ``Wa``, ``>= 0``) as an m-vector."""
    ray = np.zeros(m)
    ray[Wa] = np.maximum(s, 0.0)
    return ray


def _signed_half(J: np.ndarray) -> int:
    """``h`` if ``J = [A; -A]`` with ``A`` of ``h`` rows (the census ``signed`` layout), else 0."""
    m = J.shape[0]
    h = m // 2
    return h if m >= 2 and m % 2 == 0 and np.array_equal(J[h:], -J[:h]) else 0


def _gram(J: np.ndarray) -> np.ndarray:
    """``J J^T``; for the signed layout ``J = [A; -A]`` from ``A A^T`` (a quarter of the work,
    and exactly sign-symmetric)."""
    h = _signed_half(J)
    if h:
        Ga = J[:h] @ J[:h].T
        G = np.empty((2 * h, 2 * h))
        G[:h, :h] = G[h:, h:] = Ga
        G[:h, h:] = G[h:, :h] = -Ga
        return G
    return J @ J.T


def _kkt_ok(J: np.ndarray, Jabs: np.ndarray, b: np.ndarray, d: np.ndarray, u: np.ndarray) -> bool:
    """KKT of ``J d <= b`` at ``(d, u)`` (``d`` already the box minimiser of the Lagrangian):
    ``u >= 0``, ``J d - b <= tol`` and ``u_i |J_i d - b_i| <= tol (1 + u_i)``, with
    ``tol = _KKT_RTOL (1 + |b| + |J||d|)`` (sufficient for the convex QP)."""
    r = J @ d - b
    tol = _KKT_RTOL * (1.0 + np.abs(b) + Jabs @ np.abs(d))
    return bool((u >= 0.0).all() and (r <= tol).all() and (u * np.abs(r) <= tol * (1.0 + u)).all())


# ------------------------------------------------------------------------------------------
# feasibility-level LP, general m


def _level_lp_general(c: np.ndarray, J: np.ndarray, rho: float, G: np.ndarray | None = None,
                      Jabs: np.ndarray | None = None) -> float | None:
    """``t*`` for any ``m`` on finite float64 data, certified; ``None`` if not certified.

    ``t* = max(0, v)`` with ``v = min_{|d| <= rho} max_i (c + J d)_i``; the set
    ``S(l) = {c + J d <= l, |d| <= rho}`` is not empty iff ``l >= v``.

    1. ``max c <= 0``: ``d = 0`` is feasible, ``t* = 0``.
    2. Level test at ``l = 0`` (:func:`_lp_level_test`, the direction QP's machinery): a point of
       ``S(0)`` gives ``t* = 0`` (its residual is at rounding level). The usual case in
       Ghost (``rho ||J_i||_1 >> c``): one R^m solve on ``G = J J^T`` and a few products with
       ``J``. Otherwise the test returns a ray ``mu`` of the unbounded dual, whose value
       ``mu^T c - rho ||J^T mu||_1 > 0`` (``mu`` normalised) is a certified lower bound.
    3. ``t* > 0``. For the signed layout ``J = [A; -A]`` first the pair bound
       ``max (c_+ + c_-)/2`` (``mu = (1/2, 1/2)`` on a pair, ``J^T mu = 0``: dual degenerate, and
       often the optimum when ``c_+ + c_- > 0``) by one level test. Then the bounded dual simplex
       :func:`_level_lp_simplex` (certified by the primal-dual gap). If it stalls on dual
       degeneracy, the level iteration from its best lower bound ``l``: test ``S(l + delta)`` (``delta = _LP_LEVEL_RTOL`` times the scale
       ``1 + |c| + rho ||J_i||_1``); a point certifies ``v`` (its value, within ``delta`` plus
       rounding, is returned: an attained value, so the QP at ``kappa >= t*`` stays feasible),
       a ray gives a strictly larger lower bound ``l``. Every returned value is an attained
       primal value within ``_LP_GAP_RTOL`` times the scale of a certified dual bound.
    """
    if float(c.max()) <= 0.0:
        return 0.0
    G = _gram(J) if G is None else G
    Jabs = np.abs(J) if Jabs is None else Jabs
    kind, value = _lp_level_test(c, J, Jabs, rho, G, 0.0)
    if kind == "point" and value <= 0.0:
        return 0.0  # a box point with max(c + J d) <= 0
    cscale = 1.0 + float(np.abs(c).max()) + rho * float(Jabs.sum(axis=1).max())
    delta, gap = _LP_LEVEL_RTOL * cscale, _LP_GAP_RTOL * cscale
    if kind == "point" and value <= gap:
        return 0.0  # the same up to rounding
    lower = value if kind == "ray" else 0.0
    h = _signed_half(J)
    if h:
        # signed pairs: mu = (1/2, 1/2) on a pair has J^T mu = 0, value (c_+ + c_-)/2, often t*
        pair = float(np.max(c[:h] + c[h:])) * 0.5
        if pair > lower:
            lower = pair
            kind, value = _lp_level_test(c, J, Jabs, rho, G, lower + delta)
            if kind == "point" and value - lower <= gap:
                return max(0.0, value)
            lower = max(lower, value)
    kind, value = _level_lp_simplex(c, J, rho, G, Jabs, lower)
    if kind == "value":
        return max(0.0, value)
    lower = max(lower, value)
    for _ in range(_LEVEL_MAX_ITER):
        if not np.isfinite(lower):
            return None
        kind, value = _lp_level_test(c, J, Jabs, rho, G, lower + delta)
        if kind == "point":
            return max(0.0, value) if value - lower <= gap else None
        if kind != "ray" or not value > lower:
            return None
        lower = value
    return None


def _lp_level_test(c: np.ndarray, J: np.ndarray, Jabs: np.ndarray, rho: float, G: np.ndarray,
                   level: float) -> tuple[str, float]:
    """Whether ``S(level) = {c + J d <= level, |d| <= rho}`` is empty, by the direction QP's
    methods on its minimum-norm point (``g = 0``, ``tau = 1``, ``beta = rho``, ``b = level - c``).

    ``("point", max_i (c + J d)_i)`` for a point ``d`` meeting the KKT check (so
    ``max_i (c + J d)_i <= level`` up to that tolerance); ``("ray", lower)`` when the dual is
    unbounded along a ray ``mu >= 0``: then ``lower = mu^T c - rho ||J^T mu||_1`` (``mu``
    normalised to sum 1) is a lower bound on ``v`` above ``level``; ``("unknown", -inf)``.
    """
    b = level - c
    u, status, _ = _nnls_gram(G, b, 1.0 + np.abs(b))
    if status != "unbounded":
        d = -(u @ J)
        if status != SOLVED or float(np.abs(d).max()) > rho or not _kkt_ok(J, Jabs, b, d, u):
            u, status, _ = _dual_active_set(np.zeros(J.shape[1]), J, Jabs, b, 1.0, rho, G, u)
            d = _box_point(u @ J, 1.0, rho)
            if status == SOLVED and not _kkt_ok(J, Jabs, b, d, u):
                status = FAILED
        if status == SOLVED:
            return "point", float((c + J @ d).max())
    if status == "unbounded" and float(u.sum()) > 0.0:
        mu = u / float(u.sum())
        return "ray", float(mu @ c) - rho * float(np.abs(mu @ J).sum())
    return "unknown", -np.inf


def _level_lp_simplex(c: np.ndarray, J: np.ndarray, rho: float, G: np.ndarray, Jabs: np.ndarray,
                      lower: float = -np.inf, max_iter: int | None = None) -> tuple[str, float]:
    """``v = min_{|d| <= rho} max_i (c + J d)_i`` (``t* = max(0, v)``) by a bounded dual simplex.

    The LP ``min t  s.t.  J d - t 1 + s = -c,  s >= 0,  -rho <= d <= rho`` has ``m`` rows; a
    basis holds ``t`` (free, always basic) and ``m - 1`` of the ``d_j`` and ``s_i``. With the
    duals ``mu = -y`` (``B^T y = e_t``, so ``sum mu = 1``) the reduced cost of ``d_j`` is
    ``(J^T mu)_j`` and every nonbasic ``d_j`` sits at the bound ``-rho sign((J^T mu)_j)``: the
    basis is always dual feasible for the boxed ``d`` (and for the slacks by the ratio test),
    and the dual objective is ``mu^T c - rho ||J^T mu||_1``, the LP's dual. Each iteration
    takes the basic variable with the largest bound violation out, and the bound-flipping
    ratio test (the exact line search of that concave piecewise-linear dual along the edge:
    breakpoints ``theta_j = r_j / alpha_j`` sorted, the slope ``|delta|`` decreasing by
    ``2 rho |alpha_j|`` at each) picks the entering variable. Start: ``mu = e_i`` for the best
    vertex ``i = argmax c_i - rho ||J_i||_1`` (basis: ``t`` and the other slacks).

    Everything is recomputed from the basis each iteration (an ``m x m`` LU, three products with
    ``J``). At the end the answer is certified: ``d`` clipped to the box gives an upper bound
    ``max(c + J d)``, ``mu`` (clipped, normalised) the lower bound ``mu^T c - rho ||J^T mu||_1``;
    they must agree to ``_LP_GAP_RTOL``. ``None`` if not (or on the iteration cap).

    Dual degeneracy. If ``J^T mu = 0`` at a vertex (a signed pair ``J_- = -J_+`` with
    ``mu = (1/2, 1/2)``, value ``(c_+ + c_-)/2``; or any dependent rows) every ``d_j`` has zero
    reduced cost and the simplex can stall there. So whenever a step leaves the dual value ``l``
    unchanged, ``S(l + delta)`` is tested (:func:`_lp_level_test`; ``l`` the best bound so far):
    a point certifies ``v`` within ``delta``; a ray raises the bound. After
    ``_SIMPLEX_MAX_STALLS`` stalls in a row the simplex stops and :func:`_level_lp_general`
    goes on with the level iteration from the best bound.

    Returns ``("value", v)`` (certified), else ``("bound", l)`` with the best certified lower
    bound ``l`` (``-inf`` if none).
    """
    m, n = J.shape
    rowsum = Jabs.sum(axis=1)
    cscale = 1.0 + float(np.abs(c).max()) + rho * float(rowsum.max())
    delta, gap = _LP_LEVEL_RTOL * cscale, _LP_GAP_RTOL * cscale
    i0 = int(np.argmax(c - rho * rowsum))
    codes = np.array([-1] + [-2 - i for i in range(m) if i != i0], dtype=np.int64)  # d_j: j; t: -1; s_i: -2-i
    dbasic = np.zeros(n, dtype=bool)
    sbasic = np.ones(m, dtype=bool)
    sbasic[i0] = False
    xd = np.where(J[i0] > 0.0, -rho, rho)
    B = np.zeros((m, m))
    e = np.zeros(m)
    ftol_d, ftol_s = _LP_FEAS_RTOL * rho, _LP_FEAS_RTOL * cscale
    best, last, tested = lower, -np.inf, -np.inf  # best: certified lower bound (from the caller, then duals)
    stalls = 0
    for _ in range(max_iter or 10 * m + 50):
        isd, iss = codes >= 0, codes <= -2
        B[:] = 0.0
        B[:, isd] = J[:, codes[isd]]
        B[:, codes == -1] = -1.0
        B[-2 - codes[iss], np.flatnonzero(iss)] = 1.0
        try:
            lu = lu_factor(B, check_finite=False)
        except (ValueError, np.linalg.LinAlgError):
            return "bound", best
        diag = np.abs(np.diag(lu[0]))
        if not diag.min() > 1e-14 * diag.max():
            return "bound", best
        mu = -lu_solve(lu, (codes == -1).astype(np.float64), trans=1, check_finite=False)
        rd = mu @ J
        mu_n = np.maximum(mu, 0.0)
        lower = float(mu_n @ c) - rho * float(np.abs(mu_n @ J).sum()) if float(mu_n.sum()) > 0.0 else -np.inf
        if lower > -np.inf:
            lower /= float(mu_n.sum())  # the value of mu_n / sum(mu_n): a certified bound
        stalled = lower <= last + 1e-14 * cscale and lower > -np.inf
        last = lower
        best = max(best, lower)
        if stalled:
            # no dual progress (a degenerate step): test the level directly
            stalls += 1
            if best > tested:
                tested = best
                kind, value = _lp_level_test(c, J, Jabs, rho, G, best + delta)
                if kind == "point" and value - best <= gap:
                    return "value", value
                best = max(best, value)
            if stalls >= _SIMPLEX_MAX_STALLS:
                return "bound", best
        else:
            stalls = 0
        nbd = ~dbasic
        xd[nbd & (rd > 0.0)] = -rho
        xd[nbd & (rd < 0.0)] = rho
        xB = lu_solve(lu, -c - J @ np.where(dbasic, 0.0, xd), check_finite=False)
        viol = np.zeros(m)
        viol[isd] = (np.abs(xB[isd]) - rho) / ftol_d
        viol[iss] = -xB[iss] / ftol_s
        r = int(np.argmax(viol))
        d = xd.copy()
        d[codes[isd]] = xB[isd]
        np.clip(d, -rho, rho, out=d)
        upper = float((c + J @ d).max())
        if upper <= 0.0:
            return "value", upper  # a box point with every c_i + J_i d <= 0: t* = 0
        if upper - best <= delta:
            return "value", upper  # certified by the best dual bound so far
        if not viol[r] > 1.0:  # an optimal basis: the gap is zero up to rounding
            return ("value", upper) if upper - best <= gap else ("bound", best)
        code, x = int(codes[r]), float(xB[r])
        up = code >= 0 and x > rho
        slope = (x - rho) if up else ((-rho - x) if code >= 0 else -x)  # the infeasibility |delta|
        e[:] = 0.0
        e[r] = 1.0
        rho_r = lu_solve(lu, e, trans=1, check_finite=False)
        if not up:
            rho_r = -rho_r
        ad = rho_r @ J
        piv = _LP_PIVOT_RTOL * max(float(np.abs(ad).max()), float(np.abs(rho_r).max()))
        jd = np.flatnonzero(nbd & (((ad > piv) & (xd < 0.0)) | ((ad < -piv) & (xd > 0.0))))
        js = np.flatnonzero(~sbasic & (rho_r > piv))
        theta = np.concatenate([np.maximum(rd[jd] / ad[jd], 0.0), np.maximum(mu[js] / rho_r[js], 0.0)])
        if theta.size == 0:
            return "bound", best  # dual unbounded: impossible for this (always feasible) LP
        weight = np.concatenate([2.0 * rho * np.abs(ad[jd]), np.full(js.size, np.inf)])
        order = np.argsort(theta, kind="stable")
        k = int(np.searchsorted(np.cumsum(weight[order]), slope, side="left"))
        if k >= order.size:
            return "bound", best
        xd[jd[order[:k]]] *= -1.0  # passed breakpoints: bound flips (all boxed d_j)
        if code >= 0:
            dbasic[code] = False
            xd[code] = rho if up else -rho
        else:
            sbasic[-2 - code] = False
        q = int(order[k])
        if q < jd.size:
            dbasic[jd[q]] = True
            codes[r] = jd[q]
        else:
            i = int(js[q - jd.size])
            sbasic[i] = True
            codes[r] = -2 - i
    return "bound", best


# ------------------------------------------------------------------------------------------
# direction QP: active-set dual method for general m


def direction_qp_active_set(g, c, J, kappa: float, *, tau: float, beta: float) -> QPResult:
    """The direction QP by the general-``m`` dual active-set method (module docstring).

    Status ``"failed"`` when the method cannot certify a solution or infeasibility (the
    :class:`GhostSubproblems` wrapper then hands the QP to OSQP).
    """
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    c, J = _as_problem(c, J, g.size)
    if not (np.isfinite(g).all() and np.isfinite(c).all() and np.isfinite(J).all() and np.isfinite(kappa)):
        return QPResult(None, FAILED)
    return _qp_active_set(g, c, J, float(kappa), tau, beta)


def _qp_active_set(g: np.ndarray, c: np.ndarray, J: np.ndarray, kappa: float, tau: float, beta: float,
                   G: np.ndarray | None = None, Jabs: np.ndarray | None = None) -> QPResult:
    """:func:`direction_qp_active_set` on finite float64 data (``G = J J^T``, ``|J|`` if known)."""
    m = len(c)
    b = kappa - c
    if m == 0:
        return QPResult(_box_point(g, tau, beta), SOLVED, np.zeros(0))
    G = _gram(J) if G is None else G
    Jabs = np.abs(J) if Jabs is None else Jabs
    Jg = J @ g
    # 1. box-free: the bound-constrained QP in R^m on the Gram matrix
    u, status, iterations = _nnls_gram(G, Jg + tau * b, np.abs(Jg) + tau * (1.0 + np.abs(b)))
    if status == SOLVED:
        d = (g + u @ J) * (-1.0 / tau)
        if float(np.abs(d).max()) <= beta and _kkt_ok(J, Jabs, b, d, u):
            return QPResult(d, SOLVED, u, iterations)
    if status == "unbounded":  # infeasible even without the box (certified by the LP below)
        u = np.zeros(m)
    else:  # 2. the box binds (or the R^m solve was not accurate enough): the full dual, warm-started
        u, status, its = _dual_active_set(g, J, Jabs, b, tau, beta, G, u)
        iterations += its
        if status == SOLVED:
            d = _box_point(g + u @ J, tau, beta)
            if _kkt_ok(J, Jabs, b, d, u):
                return QPResult(d, SOLVED, u, iterations)
    # 3. infeasible (certified by the LP min_{|d| <= beta} max_i (J d - b)_i > 0), or failed
    if _qp_infeasible(b, J, Jabs, beta, G):
        return QPResult(None, INFEASIBLE, iterations=iterations)
    return QPResult(None, FAILED, iterations=iterations)


def _qp_infeasible(b: np.ndarray, J: np.ndarray, Jabs: np.ndarray, beta: float, G: np.ndarray | None = None) -> bool:
    """Whether ``{J d <= b, |d| <= beta}`` is empty, by the level LP (exact, else HiGHS)."""
    level = _lp_value(-b, J, beta, G)
    return level is not None and level > _KKT_RTOL * float(np.max(1.0 + np.abs(b) + beta * Jabs.sum(axis=1)))


def _ascent_step(H: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(direction, is_newton)``: the Newton direction ``H^+ r`` of the dual on the current piece
    (``H = J_WF J_WF^T / tau``), or, when ``r`` has a component in ``H``'s null space, that
    component (the dual is linear along it), as in :func:`_ascent_direction`."""
    evals, evecs = np.linalg.eigh(H)
    coef = evecs.T @ r
    top = float(evals[-1]) if evals.size else 0.0
    pos = evals > _EIG_RTOL * top if top > 0.0 else np.zeros(len(evals), dtype=bool)
    null = evecs[:, ~pos] @ coef[~pos]
    if float(null @ null) > 1e-20 * float(r @ r):
        return null, False
    return evecs[:, pos] @ (coef[pos] / evals[pos]), True


def _dual_active_set(g, J, Jabs, b, tau, beta, G, u, max_iter: int | None = None):
    """Maximise the dual ``q`` over ``u >= 0`` with the box: active set on ``u`` + Newton on pieces.

    The working set ``W`` holds the multipliers allowed to be positive. On ``W`` the ascent
    direction is the Newton direction of ``q``'s current piece (Hessian ``-(1/tau) J_WF J_WF^T``
    over the coordinates ``F`` not clipped to the box, from the Gram matrix when few are clipped)
    or a null-space direction along which ``q`` is linear (:func:`_ascent_step`); the step is the
    exact line search along the ray (:func:`_ray_root`, the sorted breakpoints of the clipped
    coordinates), cut where a ``u_i`` reaches 0 (``i`` leaves ``W``). A full Newton step, or a
    gradient ``|J_W d - b_W|`` below ``_STATIONARY_RTOL``, marks the point stationary on ``W``;
    then the most violated constraint outside ``W`` (beyond ``_ADD_RTOL``) enters, and none left
    means the KKT conditions hold. An uncut ray along which ``q`` keeps increasing proves the QP
    infeasible (``"unbounded"``; ``u`` is then that ray, ``>= 0``). Returns
    ``(u, status, iterations)``.
    """
    m, n = J.shape
    tb = tau * beta
    u = np.maximum(u, 0.0)
    W = [int(i) for i in np.flatnonzero(u > 0.0)]
    stationary = False
    tabu: set[int] = set()
    max_iter = max_iter or 20 * m + 100
    for it in range(1, max_iter + 1):
        w = g + u @ J
        d = _box_point(w, tau, beta)
        r = J @ d - b
        scale = 1.0 + np.abs(b) + Jabs @ np.abs(d)
        if W and not stationary:
            stationary = bool(np.all(np.abs(r[W]) <= _STATIONARY_RTOL * scale[W]))
        if stationary or not W:
            crit = r / scale
            crit[W] = -np.inf
            if tabu:
                crit[list(tabu)] = -np.inf
            p = int(np.argmax(crit))
            if not crit[p] > _ADD_RTOL:
                return u, SOLVED, it
            W.append(p)
            stationary = False
        Wa = np.array(W)
        rW = r[Wa]
        JW = J[Wa]
        free = np.abs(w) < tb
        n_clipped = n - int(np.count_nonzero(free))
        if n_clipped == 0:
            H = G[np.ix_(Wa, Wa)] / tau
        elif 2 * n_clipped < n:
            JC = JW[:, ~free]
            H = (G[np.ix_(Wa, Wa)] - JC @ JC.T) / tau
        else:
            JF = JW[:, free]
            H = (JF @ JF.T) / tau
        s, newton = _ascent_step(H, rW)
        v = s @ JW
        if not newton:
            # a null direction: J_WF^T s = 0 exactly in exact arithmetic; rounding-level entries
            # of s or of v on the free coordinates would put spurious blocks or breakpoints far out
            s[np.abs(s) <= _NULL_CLEAN_RTOL * float(np.abs(s).max())] = 0.0
            v = s @ JW
            v[free] = 0.0
        t = _ray_root(w, v, float(s @ b[Wa]), tau, beta)
        uW = u[Wa]
        neg = np.flatnonzero(s < 0.0)
        k = -1
        if neg.size:
            ratios = uW[neg] / -s[neg]
            j = int(np.argmin(ratios))
            if ratios[j] <= t:
                t, k = float(ratios[j]), int(neg[j])
        if not np.isfinite(t) or t * float(np.abs(s).max()) > _RAY_BIG * (1.0 + float(np.abs(uW).max())):
            # no finite maximiser along s, or one only at a rounding-level breakpoint far out
            return _ray(m, Wa, s), "unbounded", it
        if t == 0.0 and k < 0:
            # rounding leaves no ascent along s: stationary if the gradient is at the KKT level
            if np.all(np.abs(rW) <= _KKT_RTOL * scale[Wa]):
                stationary = True
                continue
            return u, FAILED, it
        stationary = _advance(u, W, Wa, uW, s, t, k, tabu) and newton and abs(t - 1.0) <= 1e-12
    return u, FAILED, max_iter


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
        import scipy.sparse as sp

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
# both subproblems for m <= 2: the straight-line path


#: Relative margin of the norm bounds that let the ``m <= 2`` path skip an exact pass over an
#: n-vector (``||x||_1 >= ||x||_2 >= ||x||_inf``); the dots they use are accurate to about
#: ``n eps`` (1e-12 at n = 10^4), far inside it.
_BOUND_RTOL = 1e-9


def _is_signed_pair(J: np.ndarray) -> bool:
    """``numpy.array_equal(J[1], -J[0])`` (so ``0 == -0``, NaN unequal), with the boolean row
    compared as bytes to all ``True`` (a byte comparison is cheaper than ``.all()`` here)."""
    return np.equal(J[1], np.negative(J[0])).tobytes() == b"\x01" * J.shape[1]


def _box_free_pair(G00: float, G01: float, G11: float, Jg0: float, Jg1: float, b0: float, b1: float,
                   tau: float) -> tuple[float, float] | None:
    """:func:`_qp_box_free`'s support enumeration for ``m <= 2`` on Python floats.

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


# -- the compiled form of the m <= 2 closed form -------------------------------------------
# Plain functions that :mod:`fairbench.algorithms.subproblem_kernels` compiles with numba. They
# live here, beside the Python path they mirror, because numba's disk cache is keyed on the
# file that defines a function: kept in this file, an edit to them, to _box_free_pair or to the
# tolerances above recompiles the kernel instead of leaving a stale one in __pycache__.

#: :func:`_pair_pass` outcomes
PAIR_SOLVED = 1            # box-free solution: ``d`` filled, ``(t, kappa, u0, u1)`` valid
PAIR_NOT_FINITE = 0        # a dot is not finite: the general code decides
PAIR_BOX_OR_NO_SUPPORT = 2  # ``t`` and ``kappa`` valid; the QP needs the general dual method
PAIR_PYTHON_PATH = 3       # the LP needs more than its L2 bound: the Python path from the start


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


_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _solve_small_compiled(g: np.ndarray, c: np.ndarray, J: np.ndarray, rho: float, lam: float, tau: float,
                          beta: float, kernels) -> Subproblem | None:
    """:func:`_solve_small` with its common case in one compiled call (``kernels``: the module
    :mod:`fairbench.algorithms.subproblem_kernels`, which imports numba); the same answers, and
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


# ------------------------------------------------------------------------------------------
# both subproblems


class GhostSubproblems:
    """Ghost's LP + QP at one sample set, by the ``exact`` or the ``osqp`` path.

    ``solve(g, c, J)`` returns a :class:`Subproblem` (``kappa``, LP and QP outcomes). The
    ``exact`` path handles ``m <= EXACT_MAX_M`` (closed forms for ``m <= 2``, the active-set
    methods above, sharing one Gram matrix ``J J^T`` between the LP and the QP); where the
    general methods cannot certify an answer the LP goes to HiGHS and the QP to OSQP, and
    ``fallbacks`` counts those hand-overs (``"lp_highs"``, ``"qp_osqp"``). Above
    ``EXACT_MAX_M`` the QP goes to OSQP and the LP to HiGHS (not counted).

    ``compiled=True`` (numba required) runs the ``m <= 2`` closed form as one compiled call
    (:func:`_solve_small_compiled`): the same answers, in one call.
    """

    def __init__(self, solver: str = "exact", *, rho: float, lam: float, tau: float, beta: float,
                 osqp_settings: dict | None = None, compiled: bool = False):
        if solver not in SOLVERS:
            raise ValueError(f"solver={solver!r}: accepted {', '.join(SOLVERS)}")
        self.solver, self.rho, self.lam, self.tau, self.beta = solver, rho, lam, tau, beta
        self.compiled = compiled
        self._small = _solve_small
        if compiled:
            from fairbench.algorithms import subproblem_kernels

            self._small = partial(_solve_small_compiled, kernels=subproblem_kernels)
        self._osqp = OSQPDirection(**(osqp_settings or {}))
        self.fallbacks = {"lp_highs": 0, "qp_osqp": 0}

    def qp(self, g, c, J, kappa: float) -> QPResult:
        m = np.asarray(c).size
        if self.solver == "exact" and m <= EXACT_MAX_M:
            res = direction_qp_exact(g, c, J, kappa, tau=self.tau, beta=self.beta)
            if res.status == FAILED and m > ENUM_MAX_M:
                return self._osqp_fallback(g, c, J, kappa)
            return res
        return self._osqp.solve(g, c, J, kappa, tau=self.tau, beta=self.beta)

    def _osqp_fallback(self, g, c, J, kappa: float) -> QPResult:
        self.fallbacks["qp_osqp"] += 1
        return self._osqp.solve(g, c, J, kappa, tau=self.tau, beta=self.beta)

    def solve(self, g, c, J) -> Subproblem:
        if self.solver == "exact" and _is_small_problem(g, c, J):
            # the census case (m = 2, a signed pair) in closed form; None on non-finite data
            small = self._small(g, c, J, self.rho, self.lam, self.tau, self.beta)
            if small is not None:
                return small
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        c, J = _as_problem(c, J, g.size)
        m = len(c)
        finite = _all_finite(g, c, J)
        if self.solver == "exact" and finite and m <= 2:
            # the common case without re-validation: closed-form LP, then the dual QP
            lp = LPResult(_level_lp_small(c, J, self.rho), SOLVED)
            kappa = (1.0 - self.lam) * max(0.0, float(c.max())) + self.lam * lp.t
            return Subproblem(kappa, lp, _qp_exact(g, c, J, kappa, self.tau, self.beta))
        if self.solver == "exact" and finite and m <= EXACT_MAX_M:
            G, Jabs = _gram(J), np.abs(J)  # shared by the LP's and the QP's solves
            t = _level_lp_general(c, J, self.rho, G, Jabs)
            if t is None:
                self.fallbacks["lp_highs"] += 1
                t = level_lp_highs(c, J, self.rho)
            lp = LPResult(float(self.rho), "fallback") if t is None else LPResult(t, SOLVED)
            kappa = (1.0 - self.lam) * max(0.0, float(c.max())) + self.lam * lp.t
            if m <= ENUM_MAX_M:
                return Subproblem(kappa, lp, _qp_exact(g, c, J, kappa, self.tau, self.beta))
            qp = _qp_active_set(g, c, J, kappa, self.tau, self.beta, G, Jabs)
            if qp.status == FAILED:
                qp = self._osqp_fallback(g, c, J, kappa)
            return Subproblem(kappa, lp, qp)
        kappa, lp = feasibility_level(c, J, rho=self.rho, lam=self.lam,
                                      method="exact" if self.solver == "exact" else "highs")
        return Subproblem(kappa, lp, self.qp(g, c, J, kappa))
