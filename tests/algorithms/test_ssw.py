"""Stochastic switching subgradient: known solutions, step/tolerance rules, random output, config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fairbench.api import make_algorithm, solve
from fairbench.errors import ConfigError, FairbenchError
from known_problems import all_problems, ball, halfspace, least_squares_two, one_torch_thread, synthetic_fairness_oracle

one_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)

DETERMINISTIC = dict(batch_size=1, per_group=1)


# -- known answers ---------------------------------------------------------------------------
@pytest.mark.parametrize("problem", all_problems(), ids=lambda p: p.name)
def test_deterministic_solution(problem):
    """Polyak (adaptive) constraint steps, constant eta_f = 0.2, tol 0, 2000 iterations, random
    output over the second half: within 1e-6 of x*. (On a linear constraint, a Polyak step
    lands on the boundary, so the objective-step iterates are projected gradient iterates.)"""
    oracle = problem.oracle()
    solve("ssw", oracle, iterations=2000, step_c="adaptive", eta_f=0.2, tol=0.0,
          output="random", random_start=1000, **DETERMINISTIC)
    assert problem.distance(oracle.x) < 1e-6


STOCHASTIC_RULES = {
    "diminishing": dict(step_f="diminishing", eta_f=0.1, step_c="diminishing", eta_c=0.3),
    "adaptive": dict(step_f="diminishing", eta_f=0.1, step_c="adaptive"),
}


@pytest.mark.parametrize("rules", list(STOCHASTIC_RULES), ids=str)
@pytest.mark.parametrize("problem", all_problems(noise=0.5), ids=lambda p: p.name)
def test_stochastic_solution(problem, rules):
    """Noisy objective (sigma 0.5), batch 8, 8 per group, diminishing eta_f = 0.1/sqrt(k+1),
    constraint steps diminishing (0.3/sqrt(k+1)) or adaptive, tol 0, 8000 iterations, random
    output over the second half: within 2e-2 of x* (seeds 0-9: at most 8.5e-3)."""
    oracle = problem.oracle(seed=4)
    solve("ssw", oracle, iterations=8000, seed=4, tol=0.0, output="random", random_start=4000,
          **STOCHASTIC_RULES[rules])
    assert problem.distance(oracle.x) < 2e-2


# -- switching, rules, counting --------------------------------------------------------------
def test_switching_and_counting():
    """From x0 = (3, 3), outside the ball: constraint steps first (counted), along grad c = 2x."""
    problem = ball()
    oracle = problem.oracle(x0=np.array([3.0, 3.0]))
    algo = make_algorithm("ssw", eta_c=0.05, **DETERMINISTIC)
    algo.setup(oracle, np.random.default_rng(0))
    assert algo.step() == {"constraint_steps": 1}
    np.testing.assert_allclose(oracle.x, [3.0 - 0.05 * 6.0] * 2)
    assert algo.state()["c_max"] == pytest.approx(17.0)
    assert algo.state()["step_size"] == 0.05
    total = 1 + sum(algo.step()["constraint_steps"] for _ in range(999))
    assert 0 < total < 1000


def test_argmax_constraint_drives_the_step():
    """least_squares_two at x = (0, 3): c = (2, 1.5), so the step follows grad c_1 = (1, 1)."""
    oracle = least_squares_two().oracle(x0=np.array([0.0, 3.0]))
    algo = make_algorithm("ssw", eta_c=0.1, **DETERMINISTIC)
    algo.setup(oracle, np.random.default_rng(0))
    algo.step()
    np.testing.assert_allclose(oracle.x, [-0.1, 2.9])


def test_adaptive_step_is_polyak():
    """Polyak step on a linear constraint: c / ||w||^2 along w lands exactly on the boundary."""
    oracle = halfspace().oracle(x0=np.array([2.0, 2.0]))  # c = 3
    algo = make_algorithm("ssw", step_c="adaptive", **DETERMINISTIC)
    algo.setup(oracle, np.random.default_rng(0))
    algo.step()
    np.testing.assert_allclose(oracle.x, [0.5, 0.5])
    assert algo.state()["step_size"] == pytest.approx(1.5)


def test_diminishing_rules():
    """eta_f / sqrt(k+1) on objective steps; tol / sqrt(k+1) decides the switch."""
    oracle = halfspace(active=False).oracle()  # feasible start: objective steps only
    algo = make_algorithm("ssw", step_f="diminishing", eta_f=0.5, **DETERMINISTIC)
    algo.setup(oracle, np.random.default_rng(0))
    for k in range(4):
        assert algo.step() == {"constraint_steps": 0}
        assert algo.state()["step_size"] == pytest.approx(0.5 / math.sqrt(k + 1))
    # c = 0.055 at x0 (and eta_f tiny): tol_k = 0.1/sqrt(k+1) = 0.1, 0.071, 0.058, 0.05, ...
    oracle = halfspace().oracle(x0=np.array([0.5275, 0.5275]))
    algo = make_algorithm("ssw", tol=0.1, tol_rule="diminishing", step_f="constant", eta_f=1e-12,
                          **DETERMINISTIC)
    algo.setup(oracle, np.random.default_rng(0))
    kinds = [algo.step()["constraint_steps"] for _ in range(4)]
    assert kinds == [0, 0, 0, 1]


# -- output ----------------------------------------------------------------------------------
def test_last_output_is_the_last_iterate():
    oracle = ball().oracle()
    algo = solve("ssw", oracle, iterations=50, **DETERMINISTIC)
    assert algo.final_params() is None


def test_random_output_distribution():
    """Objective steps only (feasible problem), eta_f,k = 1/sqrt(k+1), candidates k >= 2 of
    6 iterations: the output is iterate k with probability eta_f,k / sum (chi-square check)."""
    oracle = halfspace(active=False).oracle()
    algo = make_algorithm("ssw", step_f="diminishing", eta_f=0.3, output="random", random_start=2, **DETERMINISTIC)
    counts = np.zeros(6)
    runs = 2000
    for seed in range(runs):
        oracle.x[:] = 0.0
        algo.setup(oracle, np.random.default_rng(seed))
        iterates = []
        for _ in range(6):
            iterates.append(oracle.x.copy())
            algo.step()
        out = algo.final_params()
        counts[[k for k, x in enumerate(iterates) if np.array_equal(x, out)][0]] += 1
    assert counts[:2].sum() == 0
    weights = 1 / np.sqrt(np.arange(2, 6) + 1)
    expected = runs * weights / weights.sum()
    chi2 = float(((counts[2:] - expected) ** 2 / expected).sum())
    assert chi2 < 16.3  # 3 degrees of freedom, p = 0.001


def test_random_output_without_eligible_steps_is_last():
    oracle = ball().oracle(x0=np.array([3.0, 3.0]))
    algo = make_algorithm("ssw", output="random", random_start=10_000, **DETERMINISTIC)
    algo.setup(oracle, np.random.default_rng(0))
    for _ in range(20):
        algo.step()
    assert algo.final_params() is None


def test_deterministic_given_seed():
    outs = []
    for _ in range(2):
        oracle = least_squares_two(noise=0.5).oracle(seed=3)
        solve("ssw", oracle, iterations=500, seed=11, output="random", random_start=100)
        outs.append(oracle.x.copy())
    np.testing.assert_array_equal(outs[0], outs[1])


def test_float32_fairness_oracle():
    oracle = synthetic_fairness_oracle(delta=0.001)
    x = oracle.x
    algo = make_algorithm("ssw")
    algo.setup(oracle, np.random.default_rng(0))
    steps = sum(algo.step()["constraint_steps"] for _ in range(100))
    assert oracle.x is x and x.dtype == np.float32 and np.isfinite(x).all()
    assert 0 < steps <= 100


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("key, value", [
    ("eta_f", -0.5), ("eta_f", 0), ("eta_c", -0.05), ("tol", -1e-4), ("step_f", "adaptive"),
    ("step_f", "polyak"), ("step_c", "sqrt"), ("tol_rule", "adaptive"), ("output", "best"),
    ("random_start", -1), ("batch_size", 0), ("per_group", 1.5),
])
def test_config_errors_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"^algo\.{key}="):
        make_algorithm("ssw", **{key: value})


def test_unknown_rule_lists_accepted():
    with pytest.raises(ConfigError, match=r"accepted: constant, diminishing, adaptive"):
        make_algorithm("ssw", step_c="nope")


def test_per_group_larger_than_smallest_group():
    oracle = ball(noise=0.5, n_rows=30).oracle()
    with pytest.raises(ConfigError, match=r"^algo\.per_group=16: .*\(15\)"):
        make_algorithm("ssw", per_group=16).setup(oracle, np.random.default_rng(0))


def test_needs_constraints():
    with pytest.raises(FairbenchError, match=r"needs constraints.*problem=constrained"):
        make_algorithm("ssw").setup(ball().oracle(constrained=False), np.random.default_rng(0))
