"""A known answer with a rate-style constraint: L2-regularised logistic regression under a soft
positive-rate gap, every constrained method against a certified solution.

    min_w  mean_i BCE(w . u_i, y_i) + mu/2 ||w||^2
    s.t.   PR_a(w) - PR_b(w) - delta <= 0,   PR_b(w) - PR_a(w) - delta <= 0

with ``PR_g(w) = mean_{i in g} sigmoid(w . u_i)`` (fairret's soft positive rate) on a fixed data
set of 60 rows (bias feature included). The reference solution comes from a deterministic
solver (SLSQP) started from several points: they agree to 1e-8, and the point satisfies the
KKT conditions to 1e-8 (stationarity with multipliers >= 0 on the active constraint,
complementary slackness), which certifies it. The oracle is deterministic (it ignores the rows
drawn), so each method's deterministic setting must land on it: the multiplier methods to
1e-5; Stochastic Ghost (1,500 SQP steps with diminishing step sizes, 1e-4 off) to 1e-3; the
switching subgradient to 1e-2 (its Polyak constraint step lands on the linearised boundary, not
on the curved one: about 4e-3 off).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit

from fairbench.api import solve
from fairbench.problems.callable import CallableOracle

MU, DELTA = 0.1, 0.05


def toy_data():
    rng = np.random.default_rng(7)
    n = 60
    group = np.arange(n) % 2                      # a = 0, b = 1
    u = np.column_stack([rng.normal(size=n) + 0.8 * (group == 0), rng.normal(size=n), np.ones(n)])
    y = (u[:, 0] + 0.5 * rng.normal(size=n) > 0.4).astype(float)
    return u, y, group


U, Y, GROUP = toy_data()
A_ROWS, B_ROWS = GROUP == 0, GROUP == 1


def f_and_grad(w):
    z = U @ w
    p = expit(z)
    f = np.mean(np.logaddexp(0.0, z) - Y * z) + 0.5 * MU * w @ w
    return f, U.T @ (p - Y) / len(Y) + MU * w


def c_and_jac(w):
    p = expit(U @ w)
    s = p * (1 - p)
    gap = p[A_ROWS].mean() - p[B_ROWS].mean()
    dgap = (U[A_ROWS] * s[A_ROWS, None]).mean(0) - (U[B_ROWS] * s[B_ROWS, None]).mean(0)
    return np.array([gap - DELTA, -gap - DELTA]), np.stack([dgap, -dgap])


def reference_solution():
    """SLSQP from several starts; all agree, and the KKT residual is below 1e-8."""
    cons = [{"type": "ineq", "fun": lambda w, j=j: -c_and_jac(w)[0][j], "jac": lambda w, j=j: -c_and_jac(w)[1][j]}
            for j in range(2)]
    points = []
    for start in ([0, 0, 0], [1, -1, 0.5], [-2, 1, -1], [3, 0, 2]):
        res = minimize(lambda w: f_and_grad(w)[0], np.array(start, float), jac=lambda w: f_and_grad(w)[1],
                       constraints=cons, method="SLSQP", options={"ftol": 1e-15, "maxiter": 1000})
        assert res.success, res.message
        points.append(res.x)
    w = points[0]
    for other in points[1:]:
        assert np.linalg.norm(other - w) < 1e-8
    return w


W_STAR = reference_solution()


def test_the_reference_is_a_certified_kkt_point():
    f, g = f_and_grad(W_STAR)
    c, J = c_and_jac(W_STAR)
    unconstrained = minimize(lambda w: f_and_grad(w)[0], np.zeros(3), jac=lambda w: f_and_grad(w)[1],
                             method="BFGS", options={"gtol": 1e-12}).x
    assert c_and_jac(unconstrained)[0].max() > 0.05  # the constraint binds: the answer is not trivial
    active = np.flatnonzero(np.abs(c) < 1e-8)
    assert len(active) == 1 and c.max() <= 1e-10
    lam, *_ = np.linalg.lstsq(J[active].T, -g, rcond=None)
    assert lam.min() > 0
    assert np.linalg.norm(g + J[active].T @ lam) < 1e-8


def oracle(seed=0):
    return CallableOracle(x0=np.zeros(3), objective=lambda x, rows: f_and_grad(x),
                          constraints=lambda x, rows: c_and_jac(x), n_constraints=2, n_rows=1,
                          groups=np.zeros(1, dtype=np.int64), seed=seed)


DETERMINISTIC = dict(batch_size=1, per_group=1)
METHODS = {
    "ssl_alm": (dict(iterations=20000, tau=0.5, **DETERMINISTIC), 1e-5),
    "alm": (dict(iterations=20000, tau=0.5, **DETERMINISTIC), 1e-5),
    "ssw": (dict(iterations=20000, step_c="adaptive", eta_f=0.5, tol=0.0, output="random", random_start=10000,
                 **DETERMINISTIC), 1e-2),
    "ghost": (dict(iterations=1500), 1e-3),
    **{name: (dict(iterations=20000, lr=0.01, **DETERMINISTIC), 1e-5)
       for name in ("pbm", "ialm", "nupi", "gda", "extragradient")},
}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_constrained_method_reaches_the_certified_answer(name):
    settings, tol = METHODS[name]
    o = oracle()
    solve(name, o, **settings)
    assert np.linalg.norm(o.x - W_STAR) < tol, (o.x, W_STAR)
