"""What every solver of Ghost's subproblems shares: the solvers' names and limits, the statuses,
the results, the tolerances used by more than one solver, and the input checks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# the KKT tolerance is defined beside the compiled closed form, whose cache must see its edits
from fairbench.algorithms.subproblem_pair import _KKT_RTOL  # noqa: F401

SOLVERS = ("exact", "osqp")

#: Largest number of constraints the ``exact`` QP path enumerates (2^m multiplier supports);
#: above it the general active-set dual method is used.
ENUM_MAX_M = 4

#: Largest number of constraints the ``exact`` path handles (the active-set methods work in
#: R^m with dense m x m factorisations: the Gram matrix costs m^2 n, a step of the active set
#: at most m^3); above it the QP goes to OSQP and the LP to HiGHS. OSQP (dense J in its KKT
#: system) and HiGHS took about a second each per solve at m = 90 (docs/scale.md); the exact
#: path takes 54 ms a Ghost step at m = 306 and seconds at m = 2,000 to 3,000
#: (docs/performance.md, "Scale"). At 4,096 its m x m Gram matrix is 128 MiB.
EXACT_MAX_M = 4096

SOLVED, INACCURATE, INFEASIBLE, FAILED = "solved", "inaccurate", "infeasible", "failed"

_STATIONARY_RTOL = 1e-12
_EIG_RTOL = 1e-12     # eigenvalues below this fraction of the largest count as zero


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
