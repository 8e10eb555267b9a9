"""Ghost's feasibility-level LP ``t* = min {t : c + J d <= t, t >= 0, |d| <= rho}`` and the level
``kappa = (1 - lam) max_i [c_i]_+ + lam t*`` (docs/ghost_subproblems.md, "The LP by duality").

- ``m <= 2``: closed form by LP duality (:func:`_level_lp_small`; a weighted quantile of the
  breakpoints for a general pair, ``y = clip((c_2 - c_1)/2, -R, R)`` for a signed pair).
- ``2 < m <= EXACT_MAX_M``: :func:`_level_lp_general`: level tests on the minimum-norm point of
  ``{c + J d <= l, |d| <= rho}`` by the QP's dual methods (:mod:`.dual`), then a bounded dual
  simplex with the bound-flipping ratio test (:func:`_level_lp_simplex`; Kostina, "The long
  step rule in the bounded-variable dual simplex method", *Math. Methods Oper. Res.* 55, 2002;
  Maros, "A generalized dual phase-2 simplex algorithm", *EJOR* 149, 2003), certified by the
  primal-dual gap.
- HiGHS (scipy's ``linprog(method="highs")``; Huangfu & Hall, "Parallelizing the dual revised
  simplex method", *Math. Prog. Comp.* 10, 2018): the ``osqp`` path's LP, and the exact path's
  where it cannot certify an answer.
- If no method answers, ``t* = rho`` (the paper's fallback), reported as ``"fallback"``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lu_factor, lu_solve

from fairbench.algorithms.subproblems.common import (
    _KKT_RTOL,
    EXACT_MAX_M,
    FAILED,
    SOLVED,
    LPResult,
    _as_problem,
)
from fairbench.algorithms.subproblems.dual import _box_point, _dual_active_set, _gram, _kkt_ok, _nnls_gram, _signed_half

# scipy.optimize (HiGHS) is imported where it is used: the exact path never does, and it
# alone costs about 0.2 s to import in every process that builds a Ghost

_LP_FEAS_RTOL = 1e-11  # dual simplex: bound violations (relative to rho, or to the constraint scale)
_LP_PIVOT_RTOL = 1e-9  # dual simplex: smallest pivot, relative to the largest entry of the pivot row
_LP_GAP_RTOL = 1e-12   # LP: accepted primal-dual gap, relative to 1 + |c| + rho ||J_i||_1
_LP_LEVEL_RTOL = 1e-14  # LP: level offset of the level tests (same scale); a few hundred roundings
_LEVEL_MAX_ITER = 100  # LP: level-iteration steps after a stalled simplex
_SIMPLEX_MAX_STALLS = 3  # LP: degenerate simplex steps in a row before the level iteration takes over


def level_lp_exact(c, J, rho: float) -> float | None:
    """``t*`` exactly (docs/ghost_subproblems.md): closed form for ``m <= 2``, the minimum-norm point /
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


def _qp_infeasible(b: np.ndarray, J: np.ndarray, Jabs: np.ndarray, beta: float, G: np.ndarray | None = None) -> bool:
    """Whether ``{J d <= b, |d| <= beta}`` is empty, by the level LP (exact, else HiGHS)."""
    level = _lp_value(-b, J, beta, G)
    return level is not None and level > _KKT_RTOL * float(np.max(1.0 + np.abs(b) + beta * Jabs.sum(axis=1)))


# ------------------------------------------------------------------------------------------
# general m


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
