"""Ghost's direction QP for general ``m`` (``ENUM_MAX_M < m <= EXACT_MAX_M``, e.g. 20 signed
pair constraints) by an active-set method on its dual (docs/ghost_subproblems.md, "The QP for
general m"), in two stages: the box-free dual, a bound-constrained QP in ``R^m`` on the Gram matrix
(:func:`~.dual._nnls_gram`), accepted iff its point lies in the box and meets the KKT
conditions; else the dual with the box (:func:`~.dual._dual_active_set`), warm-started from
stage 1. An unbounded dual ray means infeasible, confirmed by the level LP; anything not
certified is reported ``"failed"`` (the dispatcher then hands the QP to OSQP). (Active-set
methods for convex QPs: Nocedal & Wright, *Numerical Optimization*, 2006, ch. 16.)
"""

from __future__ import annotations

import numpy as np

from fairbench.algorithms.subproblems.common import FAILED, INFEASIBLE, SOLVED, QPResult, _as_problem
from fairbench.algorithms.subproblems.dual import _box_point, _dual_active_set, _gram, _kkt_ok, _nnls_gram
from fairbench.algorithms.subproblems.lp import _qp_infeasible


def direction_qp_active_set(g, c, J, kappa: float, *, tau: float, beta: float) -> QPResult:
    """The direction QP by the general-``m`` dual active-set method (docs/ghost_subproblems.md).

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
