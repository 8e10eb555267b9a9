"""Stochastic Ghost's error on a weakly curved logistic problem, and ``batch0``'s MLMC levels.

Issue #21: "On a weakly curved logistic problem with a 200-row group, its last iterate stays
biased by about 0.1 whatever the step rule." Here: logistic regression, two features scaled
by 0.5 (Hessian eigenvalues 0.061 and 0.096), 400 rows in two groups of 200, one linear
fairness constraint (the gap of the groups' mean scores at most 0.02) active at the solution
``x*``, which SLSQP finds on the full data. Ghost starts at ``x*``.

With the paper's one-row S0 (``batch0 = 1``) the iterate wanders off by about 0.1-0.2 and
stays there, for ``dimin`` and ``power`` alike, and the tail average does not bring it back
within the run (the wander is slower than the window: with steps ~0.02 and curvature ~0.08
its correlation time is several hundred iterations). A larger S0 does (``batch0 = 16``, the
levels in units of 16 rows). The bounds below hold with a margin of about 2 on seeds 0-3.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from fairbench.algorithms.subproblems import direction_qp_exact
from fairbench.api import make_algorithm
from fairbench.problems.callable import CallableOracle

N, D, DELTA = 400, 2, 0.02
STEPS, SEEDS = 500, range(4)


def data():
    rng = np.random.default_rng(3)
    A = 0.5 * rng.standard_normal((N, D))
    group = np.arange(N) % 2
    A[group == 1, 0] += 0.5
    y = np.where(rng.random(N) < 1 / (1 + np.exp(-(A @ np.array([1.0, -0.5])))), 1.0, -1.0)
    return A, y, group


A, Y, GROUP = data()
ALL = np.arange(N)


def objective(x, rows):
    z = Y[rows] * (A[rows] @ x)
    return np.mean(np.logaddexp(0.0, -z)), A[rows].T @ (-Y[rows] / (1.0 + np.exp(z))) / len(rows)


def constraint(x, rows):
    """mean score of group 1 - mean score of group 0 - DELTA (linear in x)."""
    j = A[rows][GROUP[rows] == 1].mean(axis=0) - A[rows][GROUP[rows] == 0].mean(axis=0)
    return np.array([j @ x - DELTA]), j[None, :]


def solution() -> np.ndarray:
    res = minimize(lambda x: objective(x, ALL)[0], np.zeros(D), jac=lambda x: objective(x, ALL)[1], method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda x: -constraint(x, ALL)[0],
                                 "jac": lambda x: -constraint(x, ALL)[1]}],
                   options={"ftol": 1e-15, "maxiter": 500})
    assert res.success
    return res.x


X_STAR = solution()


def test_the_problem_is_weakly_curved_with_the_constraint_active():
    p = 1 / (1 + np.exp(-A @ X_STAR))
    hessian = (A.T * (p * (1 - p))) @ A / N
    assert np.linalg.eigvalsh(hessian).max() < 0.1
    assert abs(constraint(X_STAR, ALL)[0][0]) < 1e-9
    g = objective(X_STAR, ALL)[1]
    lam = -(g @ constraint(X_STAR, ALL)[1][0]) / np.sum(constraint(X_STAR, ALL)[1][0] ** 2)
    assert lam > 0.05                                          # active, with a positive multiplier
    np.testing.assert_allclose(g + lam * constraint(X_STAR, ALL)[1][0], 0.0, atol=1e-7)   # KKT


def errors(step_rule: str, batch0: int) -> tuple[np.ndarray, np.ndarray]:
    """``||x - x*||`` of the last iterate and of the tail average (last half) per seed."""
    last, tail = [], []
    settings = {"dimin": dict(gamma0=0.05, zeta=0.05), "power": dict(gamma0=0.2, zeta=0.5)}[step_rule]
    for seed in SEEDS:
        oracle = CallableOracle(x0=X_STAR.copy(), objective=objective, constraints=constraint, n_constraints=1,
                                n_rows=N, groups=GROUP, seed=seed)
        algo = make_algorithm("ghost", step_rule=step_rule, batch0=batch0, **settings)
        algo.setup(oracle, np.random.default_rng(seed))
        assert algo.n_max_used == (6 if batch0 == 1 else 2)      # 2^7 = 128 and 16 * 2^3 = 128 rows
        mean = np.zeros(D)
        for k in range(STEPS):
            algo.step()
            if k >= STEPS // 2:
                mean += (oracle.x - mean) / (k - STEPS // 2 + 1)
        last.append(np.linalg.norm(oracle.x - X_STAR))
        tail.append(np.linalg.norm(mean - X_STAR))
    return np.array(last), np.array(tail)


@pytest.mark.parametrize("step_rule", ["dimin", "power"])
def test_one_row_s0_leaves_the_iterate_off_and_batch0_brings_it_back(step_rule):
    """Mean over seeds 0-3 of ||x - x*|| after 500 steps from x* (dimin / power): batch0 = 1,
    last 0.174 / 0.174, tail average 0.198 / 0.182; batch0 = 16, last 0.033 / 0.021, tail
    0.027 / 0.015. Bounds: > 0.08 and < 0.07."""
    last, tail = errors(step_rule, 1)
    assert last.mean() > 0.08, last           # off, whatever the step rule
    assert tail.mean() > 0.08, tail           # the tail average does not remove it
    last16, tail16 = errors(step_rule, 16)
    assert last16.mean() < 0.07, last16
    assert tail16.mean() < 0.07, tail16
    assert last16.mean() < last.mean() / 2


def test_batch0_mlmc_direction_is_unbiased_for_its_largest_set():
    """The MLMC telescoping sum must start at S0's size: with ``batch0 = b`` the levels are
    ``b 2^(N+1)`` rows, and ``E[d] = E[d(b 2^(n_max+1) rows)]``. On the nonlinear direction
    map of test_ghost's unbiasedness test (x1 + x2 <= 1 active at the mean gradient, not for
    many noisy rows), with b = 16: the one-row direction is biased by ~0.077 per coordinate and
    the 16-row one by < 0.01, so S3 of ``2^(N+1)`` rows (the telescoping from one row) would
    leave ``E[d(16)] - E[d(1)]`` (> 0.05) in the estimate; the mean of 3000 draws is within 0.02
    of the infinite-sample direction (standard error ~0.004)."""
    n_rows, sigma = 2**13, 0.5
    xi = np.random.default_rng(0).normal(size=(n_rows, 2))
    xi = sigma * (xi - xi.mean(axis=0))
    x0 = np.array([0.5, 0.5])
    a = x0 + np.array([0.3, 0.0])
    halfspace = lambda x, rows: (np.array([x.sum() - 1.0]), np.ones((1, 2)))  # noqa: E731
    oracle = CallableOracle(x0, lambda x, rows: (0.0, x - a + xi[rows].mean(axis=0)), halfspace, 1,
                            n_rows=n_rows, seed=1)
    algo = make_algorithm("ghost", batch0=16)
    algo.setup(oracle, np.random.default_rng(2))
    assert algo.n_max_used == 8                                   # 16 * 2^9 = 8192 rows
    one = np.ones((1, 2))

    def d(e):
        return direction_qp_exact(x0 - a + e, [0.0], one, 0.0, tau=1.0, beta=10.0).d

    d_inf = d(np.zeros(2))
    rng = np.random.default_rng(5)
    d16 = np.mean([d(xi[rng.choice(n_rows, 16, replace=False)].mean(axis=0)) for _ in range(4000)], axis=0)
    d1 = np.mean([d(e) for e in xi], axis=0)
    assert np.all(np.abs(d16 - d_inf) < 0.01) and np.all(np.abs(d16 - d1) > 0.05)
    draws = np.array([algo.direction()[0] for _ in range(3000)])
    assert np.all(np.abs(draws.mean(axis=0) - d_inf) < 0.02), draws.mean(axis=0) - d_inf
