"""Ghost's direction QP by OSQP (Stellato, Banjac, Goulart, Bemporad & Boyd, "OSQP: an operator
splitting solver for quadratic programs", *Math. Prog. Comp.* 12, 2020): the ``osqp`` path's QP,
the solver of the paper's code, and the exact path's fallback where its general-m method cannot
certify an answer or ``m > EXACT_MAX_M``."""

from __future__ import annotations

import numpy as np

from fairbench.algorithms.subproblems.common import FAILED, INACCURATE, INFEASIBLE, SOLVED, QPResult, _as_problem


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
