"""Stochastic Ghost's two subproblems at one sample set: the feasibility-level LP and the direction QP.

Given the objective gradient ``g`` (n,), the constraint values ``c`` (m,) and their Jacobian
``J`` (m, n) at one sample set, Ghost (Facchinei & Kungurtsev 2023) solves the LP
``t* = min {t : c + J d <= t, t >= 0, |d| <= rho}``, sets the level
``kappa = (1 - lam) max_i [c_i]_+ + lam t*`` and solves the QP
``min_d g^T d + (tau/2)||d||^2  s.t.  c + J d <= kappa, |d| <= beta``. The derivations of the
solvers are in docs/ghost_subproblems.md. One module per solver:

- :mod:`.lp`: the LP (closed form for ``m <= 2``, level tests and a dual simplex for general
  ``m``, HiGHS), and the level ``kappa``;
- :mod:`.qp_exact`: the QP by its dual, support enumeration (``m <= ENUM_MAX_M``);
- :mod:`.qp_active_set`: the QP by active-set methods on its dual (``m <= EXACT_MAX_M``);
- :mod:`.dual`: the dual's line search, Gram matrix and active-set methods, shared by both;
- :mod:`.qp_osqp`: the QP by OSQP;
- :mod:`.small`: both subproblems for ``m <= 2`` from a few dots (the fast path), whose scalar
  core :mod:`fairbench.algorithms.subproblem_pair` is also compiled by
  :mod:`fairbench.backends.compiled.ghost_subproblems`;
- :mod:`.dispatch`: :class:`GhostSubproblems`, both subproblems and the choice among solvers;
- :mod:`.common`: statuses, results, limits.
"""

from fairbench.algorithms.subproblems.common import (
    ENUM_MAX_M,
    EXACT_MAX_M,
    FAILED,
    INACCURATE,
    INFEASIBLE,
    SOLVED,
    SOLVERS,
    LPResult,
    QPResult,
    Subproblem,
)
from fairbench.algorithms.subproblems.dispatch import GhostSubproblems
from fairbench.algorithms.subproblems.lp import feasibility_level, level_lp, level_lp_exact, level_lp_highs
from fairbench.algorithms.subproblems.qp_active_set import direction_qp_active_set
from fairbench.algorithms.subproblems.qp_exact import direction_qp_exact
from fairbench.algorithms.subproblems.qp_osqp import OSQPDirection

__all__ = [
    "ENUM_MAX_M",
    "EXACT_MAX_M",
    "FAILED",
    "INACCURATE",
    "INFEASIBLE",
    "SOLVED",
    "SOLVERS",
    "GhostSubproblems",
    "LPResult",
    "OSQPDirection",
    "QPResult",
    "Subproblem",
    "direction_qp_active_set",
    "direction_qp_exact",
    "feasibility_level",
    "level_lp",
    "level_lp_exact",
    "level_lp_highs",
]
