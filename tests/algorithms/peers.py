"""A small float64 fairness-type problem served twice, to run fairbench's methods and their
reference implementations (humancompatible-train, Cooper) step for step on the same minibatches.

Logistic regression (weights ``x`` in R^4) on 200 generated rows in two groups of 100::

    f(x; B) = mean_{i in B} log(1 + exp(-y_i a_i^T x))
    c(x; B) = (m_0 - m_1 - delta, m_1 - m_0 - delta),   m_g = mean_{i in B, group g} sigmoid(a_i^T x)

fairbench runs on a :class:`~fairbench.problems.callable.CallableOracle` that records every
row set its callbacks see (:class:`Recorder`); the reference replays those rows in torch
(:func:`torch_objective`, :func:`torch_constraints`) from the same initial weights.
"""

from __future__ import annotations

import numpy as np
import torch

from fairbench.api import make_algorithm
from fairbench.problems.callable import CallableOracle

N, D, DELTA = 200, 4, 0.02
STEPS = 120
TOL = 1e-6


def data():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((N, D))
    group = np.arange(N) % 2
    A[group == 1, 0] += 0.8           # the groups differ: the constraints are active
    y = np.where(rng.random(N) < 1 / (1 + np.exp(-(A @ np.array([1.0, -0.5, 0.3, 0.0])))), 1.0, -1.0)
    return A, y, group


A, Y, GROUP = data()
X0 = np.array([0.3, -0.2, 0.1, 0.05])


class Recorder:
    """Calls of the oracle's callbacks, in order: ``("f" | "c", rows)``."""

    def __init__(self):
        self.calls: list[tuple[str, np.ndarray]] = []

    def oracle(self, seed: int = 0) -> CallableOracle:
        def objective(x, rows):
            self.calls.append(("f", np.array(rows)))
            z = Y[rows] * (A[rows] @ x)
            f = np.mean(np.logaddexp(0.0, -z))
            s = -Y[rows] / (1.0 + np.exp(z))
            return f, A[rows].T @ s / len(rows)

        def constraints(x, rows):
            self.calls.append(("c", np.array(rows)))
            p = 1.0 / (1.0 + np.exp(-(A[rows] @ x)))
            ms, js = [], []
            for g in (0, 1):
                r = GROUP[rows] == g
                ms.append(p[r].mean())
                js.append((p[r] * (1 - p[r])) @ A[rows][r] / r.sum())
            d, jd = ms[0] - ms[1], js[0] - js[1]
            return np.array([d - DELTA, -d - DELTA]), np.stack([jd, -jd])

        return CallableOracle(x0=X0.copy(), objective=objective, constraints=constraints, n_constraints=2,
                              n_rows=N, groups=GROUP, seed=seed)

    def take(self, kinds: str) -> list[np.ndarray]:
        """Pop the next calls, which must be of the kinds ``kinds`` (e.g. ``"fc"``); their rows."""
        out = []
        for kind in kinds:
            got, rows = self.calls.pop(0)
            assert got == kind, (got, kind)
            out.append(rows)
        return out


def float64_default():
    """A fixture body: torch's default dtype float64 while a test runs (the references create
    scalar tensors, e.g. PBM's aimd step 0.1, in the default dtype)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


T_A, T_Y, T_GROUP = (torch.tensor(v) for v in (A, Y, GROUP))


def torch_objective(x: torch.Tensor, rows) -> torch.Tensor:
    rows = torch.as_tensor(rows)
    z = T_Y[rows] * (T_A[rows] @ x)
    return torch.nn.functional.softplus(-z).mean()


def torch_constraints(x: torch.Tensor, rows) -> torch.Tensor:
    rows = torch.as_tensor(rows)
    p = torch.sigmoid(T_A[rows] @ x)
    g = T_GROUP[rows]
    d = p[g == 0].mean() - p[g == 1].mean()
    return torch.stack([d - DELTA, -d - DELTA])


def torch_params() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(X0.copy(), dtype=torch.float64))


def torch_primal(param, primal: str, lr: float, weight_decay: float = 0.0):
    if primal == "adam":
        return torch.optim.Adam([param], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    return torch.optim.SGD([param], lr=lr, weight_decay=weight_decay)


def assert_agree(pairs):
    """Every pair of (iterate, multipliers) of fairbench and the reference agree to ``TOL``,
    and the multipliers did move (the test compares something)."""
    moved = 0.0
    for x, lam, x_ref, lam_ref in pairs:
        np.testing.assert_allclose(x, x_ref, atol=TOL, rtol=0)
        np.testing.assert_allclose(lam, lam_ref, atol=TOL, rtol=0)
        moved = max(moved, float(np.abs(lam).max()))
    assert moved > 1e-3


def run_pair(name, dual, primal="sgd", lr=0.05, lam0=None, extra=None, **settings):
    """Run fairbench's ``name`` and the reference ``dual`` (a humancompatible-train dual
    optimizer, driven by forward_update) together; yield copies of both states after every
    step: ``(x, lam, x_ref, lam_ref)``, then ``extra(algo, dual)``'s arrays, if given."""
    rec = Recorder()
    oracle = rec.oracle()
    algo = make_algorithm(name, primal=primal, lr=lr, **settings)
    algo.setup(oracle, np.random.default_rng(0))
    if lam0 is not None:
        algo.multipliers[:] = lam0
    x = torch_params()
    opt = torch_primal(x, primal, lr)
    for _ in range(STEPS):
        algo.step()
        f_rows, c_rows = rec.take("fc")
        opt.zero_grad()
        dual.forward_update(torch_objective(x, f_rows), torch_constraints(x, c_rows)).backward()
        opt.step()
        state = (oracle.x, algo.multipliers, x.detach().numpy(), dual.duals.detach().numpy(),
                 *(extra(algo, dual) if extra is not None else ()))
        yield tuple(np.array(v) for v in state)
