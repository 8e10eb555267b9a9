"""SGD baseline: reaches the unconstrained minimiser; determinism; config errors."""

from __future__ import annotations

import numpy as np
import pytest

from fairbench.api import make_algorithm, solve
from fairbench.errors import ConfigError
from known_problems import all_problems, ball, least_squares_two, one_torch_thread, synthetic_fairness_oracle

one_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)


@pytest.mark.parametrize("problem", [ball(), least_squares_two()], ids=lambda p: p.name)
def test_deterministic_unconstrained_minimiser(problem):
    """lr 0.05, batch 1, 1000 iterations: within 1e-6 of the unconstrained minimiser
    (a = (3, 4) for the ball, (3, 2) for least squares); constraints are ignored."""
    oracle = problem.oracle()
    solve("sgd", oracle, iterations=1000, lr=0.05, batch_size=1)
    np.testing.assert_allclose(oracle.x, problem.x_unconstrained, atol=1e-6)


@pytest.mark.parametrize("problem", all_problems(noise=0.5)[2:], ids=lambda p: p.name)
def test_stochastic_unconstrained_minimiser(problem):
    """Noisy objective (sigma 0.5), the paper's settings (batch 8, lr 5e-3), 4000 iterations:
    within 2e-2 of the unconstrained minimiser (seeds 0-9: at most 1.3e-2)."""
    oracle = problem.oracle(seed=6)
    solve("sgd", oracle, iterations=4000, seed=6)
    assert np.linalg.norm(oracle.x - problem.x_unconstrained) < 2e-2


def test_update_rule_and_counters():
    problem = ball()
    oracle = problem.oracle(x0=np.array([1.0, 1.0]))
    algo = make_algorithm("sgd", lr=0.1, batch_size=1)
    algo.setup(oracle, np.random.default_rng(0))
    assert algo.step() is None
    np.testing.assert_allclose(oracle.x, [1.0 - 0.1 * (1 - 3), 1.0 - 0.1 * (1 - 4)])
    assert oracle.counters.grad_evals == 1 and oracle.counters.samples == 1


def test_deterministic_given_seed():
    xs = []
    for _ in range(2):
        oracle = least_squares_two(noise=0.5).oracle(seed=4)
        solve("sgd", oracle, iterations=300, seed=4)
        xs.append(oracle.x.copy())
    np.testing.assert_array_equal(*xs)


def test_float32_fairness_oracle():
    oracle = synthetic_fairness_oracle(constrained=False)
    x = oracle.x
    solve("sgd", oracle, iterations=50)
    assert oracle.x is x and x.dtype == np.float32 and np.isfinite(x).all()


@pytest.mark.parametrize("key, value", [("lr", -5e-3), ("lr", 0), ("batch_size", 0), ("batch_size", 1.5)])
def test_config_errors_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"^algo\.{key}="):
        make_algorithm("sgd", **{key: value})
