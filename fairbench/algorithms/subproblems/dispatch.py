"""Both of Ghost's subproblems at one sample set, and the choice among their solvers.

:class:`GhostSubproblems` takes the ``exact`` path (closed forms for ``m <= 2``, :mod:`.small`;
support enumeration for ``m <= ENUM_MAX_M``, :mod:`.qp_exact`; the active-set dual methods up
to ``EXACT_MAX_M``, :mod:`.qp_active_set` and :mod:`.lp`) or the ``osqp`` path (OSQP and HiGHS,
:mod:`.qp_osqp` and :mod:`.lp`), and counts where the exact path hands a subproblem over.
The numba twin of the ``m <= 2`` path is loaded by name, only when asked for (``compiled=True``).
"""

from __future__ import annotations

import importlib
from functools import partial

import numpy as np

from fairbench.algorithms.subproblems.common import (
    ENUM_MAX_M,
    EXACT_MAX_M,
    FAILED,
    SOLVED,
    SOLVERS,
    LPResult,
    QPResult,
    Subproblem,
    _all_finite,
    _as_problem,
)
from fairbench.algorithms.subproblems.dual import _gram
from fairbench.algorithms.subproblems.lp import _level_lp_general, _level_lp_small, feasibility_level, level_lp_highs
from fairbench.algorithms.subproblems.qp_active_set import _qp_active_set
from fairbench.algorithms.subproblems.qp_exact import _qp_exact, direction_qp_exact
from fairbench.algorithms.subproblems.qp_osqp import OSQPDirection
from fairbench.algorithms.subproblems.small import _is_small_problem, _solve_small, _solve_small_compiled

#: The compiled ``m <= 2`` path (imports numba), loaded by ``GhostSubproblems(compiled=True)``.
KERNELS = "fairbench.backends.compiled.ghost_subproblems"


class GhostSubproblems:
    """Ghost's LP + QP at one sample set, by the ``exact`` or the ``osqp`` path.

    ``solve(g, c, J)`` returns a :class:`Subproblem` (``kappa``, LP and QP outcomes). The
    ``exact`` path handles ``m <= EXACT_MAX_M`` (closed forms for ``m <= 2``, the active-set
    methods of :mod:`.qp_active_set` and :mod:`.lp`, sharing one Gram matrix ``J J^T`` between
    the LP and the QP); where the general methods cannot certify an answer the LP goes to
    HiGHS and the QP to OSQP, and ``fallbacks`` counts those hand-overs (``"lp_highs"``, ``"qp_osqp"``). Above
    ``EXACT_MAX_M`` the QP goes to OSQP and the LP to HiGHS (not counted).

    ``compiled=True`` (numba required) runs the ``m <= 2`` closed form as one compiled call
    (:func:`_solve_small_compiled`): the same answers, faster (docs/performance.md).
    """

    def __init__(self, solver: str = "exact", *, rho: float, lam: float, tau: float, beta: float,
                 osqp_settings: dict | None = None, compiled: bool = False):
        if solver not in SOLVERS:
            raise ValueError(f"solver={solver!r}: accepted {', '.join(SOLVERS)}")
        self.solver, self.rho, self.lam, self.tau, self.beta = solver, rho, lam, tau, beta
        self.compiled = compiled
        self._small = _solve_small
        if compiled:
            self._small = partial(_solve_small_compiled, kernels=importlib.import_module(KERNELS))
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
