"""The dual of the direction QP, shared by the exact QP solvers and the general-m LP.

For ``min_d g^T d + (tau/2)||d||^2  s.t.  J d <= b, |d| <= beta`` with multipliers ``u >= 0``
of ``J d <= b`` and the box kept in the Lagrangian, ``d(u) = clip(-(g + J^T u)/tau, -beta, beta)``
(:func:`_box_point`) and the dual ``q(u)`` is concave, C^1 and piecewise quadratic with
``grad q(u) = J d(u) - b`` (docs/ghost_subproblems.md). Here: the exact line search of ``q``
along a ray (:func:`_ray_root`, over the sorted breakpoints of the clipped coordinates), the
KKT check, the Gram matrix ``J J^T`` (signed layout ``[A; -A]`` from ``A A^T``), and the two
active-set methods on ``u >= 0``: :func:`_nnls_gram`, the box-free dual in ``R^m`` (a primal
active-set method for a bound-constrained convex QP, as Lawson & Hanson's NNLS, *Solving Least
Squares Problems*, 1974, and Nocedal & Wright, *Numerical Optimization*, 2006, ch. 16),
and :func:`_dual_active_set`, the same active set with Newton steps on the pieces of ``q``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dpotrf, dpotrs

from fairbench.algorithms.subproblems.common import (
    _EIG_RTOL,
    _KKT_RTOL,
    _STATIONARY_RTOL,
    FAILED,
    SOLVED,
)

_ADD_RTOL = 1e-12     # a constraint enters the active set when violated beyond this (relative)
_NNLS_RTOL = 1e-13    # the R^m active set's gradient tolerance (relative)
_NULL_CLEAN_RTOL = 1e-12  # entries of a null direction below this fraction of its largest are zero
_RAY_BIG = 1e12       # a dual step this many times longer than |u| counts as an unbounded ray
_CHOL_RTOL = 1e-10    # R^m active set: Cholesky pivots^2 above this fraction of max diag(G_WW): regular


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


def _kkt_ok(J: np.ndarray, Jabs: np.ndarray, b: np.ndarray, d: np.ndarray, u: np.ndarray) -> bool:
    """KKT of ``J d <= b`` at ``(d, u)`` (``d`` already the box minimiser of the Lagrangian):
    ``u >= 0``, ``J d - b <= tol`` and ``u_i |J_i d - b_i| <= tol (1 + u_i)``, with
    ``tol = _KKT_RTOL (1 + |b| + |J||d|)`` (sufficient for the convex QP)."""
    r = J @ d - b
    tol = _KKT_RTOL * (1.0 + np.abs(b) + Jabs @ np.abs(d))
    return bool((u >= 0.0).all() and (r <= tol).all() and (u * np.abs(r) <= tol * (1.0 + u)).all())


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


# ------------------------------------------------------------------------------------------
# the box-free dual: a bound-constrained QP in R^m on the Gram matrix


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


# ------------------------------------------------------------------------------------------
# the dual with the box: active set on u, Newton on the pieces of q


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
