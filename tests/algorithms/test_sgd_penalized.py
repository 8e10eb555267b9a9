"""Penalized SGD (paper eq. 13): minimisers of the penalized problems in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from fairbench.algorithms.sgd import SGD
from fairbench.api import make_algorithm, solve
from fairbench.errors import ConfigError, FairbenchError
from fairbench.problems.penalized import PenalizedOracle
from known_problems import all_problems, halfspace, least_squares_two, one_torch_thread, synthetic_fairness_oracle

one_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)

DETERMINISTIC = dict(batch_size=1, per_group=1)


def exact_weight(problem) -> float:
    """A weight above the largest KKT multiplier: the exact penalty's minimiser is then x*."""
    return float(problem.lam_star.max()) + 1.0


@pytest.mark.parametrize("problem", all_problems(), ids=lambda p: p.name)
def test_exact_penalty_deterministic(problem):
    """penalty max(c, 0), weight lam* + 1, lr 1e-3, 8000 iterations: within 5e-3 of x*.
    (A constant-step subgradient method ends in an O(lr) band around the kink: over the four
    problems the error was at most 2.4e-3; with lr 2e-3 it was 6e-3.)"""
    oracle = problem.oracle()
    solve("sgd_penalized", oracle, iterations=8000, lr=1e-3, weight=exact_weight(problem), **DETERMINISTIC)
    assert problem.distance(oracle.x) < 5e-3


@pytest.mark.parametrize("problem", all_problems(noise=0.5), ids=lambda p: p.name)
def test_exact_penalty_stochastic(problem):
    """Noisy objective (sigma 0.5), batch 8, 8 per group, same settings: within 2e-2
    (seeds 0-9: at most 8.3e-3)."""
    oracle = problem.oracle(seed=2)
    solve("sgd_penalized", oracle, iterations=5000, seed=2, lr=2e-3, weight=exact_weight(problem))
    assert problem.distance(oracle.x) < 2e-2


def test_small_weight_stops_short():
    """Weight 0.5 < lam* = 1: the minimiser of 1/2||x - a||^2 + 0.5 max(w.x - 1, 0) is where
    x - a + 0.5 w = 0 with c > 0, i.e. x = (1.5, 0.5) (infeasible, c = 1); lr 0.01, 3000 its, 1e-6."""
    problem = halfspace()
    oracle = problem.oracle()
    solve("sgd_penalized", oracle, iterations=3000, lr=0.01, weight=0.5, **DETERMINISTIC)
    np.testing.assert_allclose(oracle.x, [1.5, 0.5], atol=1e-6)


def test_squared_penalty():
    """1/2||x - a||^2 + W max(w.x - b, 0)^2: stationarity x = a - t w with
    t = 2W (w.x - b) = 2W (w.a - b - t||w||^2), so t = 2W (w.a - b) / (1 + 2W ||w||^2).
    a = (2, 1), w = (1, 1), b = 1, W = 1: t = 0.8, x = (1.2, 0.2). lr 0.05, 2000 its, 1e-6."""
    oracle = halfspace().oracle()
    solve("sgd_penalized", oracle, iterations=2000, lr=0.05, weight=1.0, penalty="squared", **DETERMINISTIC)
    np.testing.assert_allclose(oracle.x, [1.2, 0.2], atol=1e-6)


def test_abs_penalty_pulls_to_the_boundary():
    """abs penalty |c + delta| (delta = 0 on a CallableOracle) on the inactive half-space
    w.x <= 4: x - a - W w = 0 while c < 0, so with W = 0.25, x = a + 0.25 w = (2.25, 1.25)
    (c = -0.5). lr 0.01, 3000 its, 1e-6."""
    oracle = halfspace(active=False).oracle()
    solve("sgd_penalized", oracle, iterations=3000, lr=0.01, weight=0.25, penalty="abs", **DETERMINISTIC)
    np.testing.assert_allclose(oracle.x, [2.25, 1.25], atol=1e-6)


def test_zero_weight_is_sgd():
    problem = least_squares_two()
    oracle = problem.oracle()
    solve("sgd_penalized", oracle, iterations=3000, lr=0.05, weight=0.0, **DETERMINISTIC)
    np.testing.assert_allclose(oracle.x, problem.x_unconstrained, atol=1e-6)


def test_same_as_sgd_on_the_penalized_oracle():
    """The class is SGD on PenalizedOracle (no duplicate code path): identical trajectories."""
    runs = []
    for manual in (False, True):
        oracle = least_squares_two(noise=0.5, constraint_noise=0.2).oracle(seed=1)
        if manual:
            algo = SGD(lr=0.01, batch_size=8, lr_rule="constant")
            algo.setup(PenalizedOracle(oracle, 2.0, "positive", 8, 0.0), np.random.default_rng(0))
        else:
            algo = make_algorithm("sgd_penalized", lr=0.01, batch_size=8, weight=2.0, per_group=8)
            algo.setup(oracle, np.random.default_rng(0))
        for _ in range(200):
            algo.step()
        runs.append((oracle.x.copy(), oracle.counters.samples, oracle.counters.grad_evals))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1:] == runs[1][1:]


def test_fairness_oracle_delta_and_dtype():
    oracle = synthetic_fairness_oracle(delta=0.03)
    x = oracle.x
    algo = make_algorithm("sgd_penalized", penalty="abs")
    algo.setup(oracle, np.random.default_rng(0))
    assert algo.oracle.delta == 0.03 and algo.constrained_oracle is oracle and algo.oracle.x is x
    for _ in range(50):
        algo.step()
    assert x.dtype == np.float32 and np.isfinite(x).all() and algo.final_params() is None


def test_deterministic_given_seed():
    xs = []
    for _ in range(2):
        oracle = least_squares_two(noise=0.5).oracle(seed=9)
        solve("sgd_penalized", oracle, iterations=300, seed=9)
        xs.append(oracle.x.copy())
    np.testing.assert_array_equal(*xs)


@pytest.mark.parametrize("key, value", [
    ("lr", -5e-3), ("lr", 0), ("batch_size", 0), ("weight", -0.4), ("penalty", "linear"), ("per_group", 0),
])
def test_config_errors_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"^algo\.{key}="):
        make_algorithm("sgd_penalized", **{key: value})


def test_per_group_larger_than_smallest_group():
    oracle = halfspace(noise=0.5, n_rows=10).oracle()
    with pytest.raises(ConfigError, match=r"^algo\.per_group=8: .*\(5\)"):
        make_algorithm("sgd_penalized").setup(oracle, np.random.default_rng(0))


def test_needs_constraints():
    with pytest.raises(FairbenchError, match=r"needs constraints.*problem=constrained"):
        make_algorithm("sgd_penalized").setup(halfspace().oracle(constrained=False), np.random.default_rng(0))
