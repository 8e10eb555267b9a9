"""SSL-ALM: known KKT points (solution and multipliers), safeguard, determinism, config errors."""

from __future__ import annotations

import numpy as np
import pytest

from fairbench.api import make_algorithm, solve
from fairbench.errors import ConfigError, FairbenchError
from known_problems import all_problems, ball, halfspace, least_squares_two, one_torch_thread, synthetic_fairness_oracle

one_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)

DETERMINISTIC = dict(batch_size=1, per_group=1)  # one-row problems: the smallest group has 1 row


# -- known answers ---------------------------------------------------------------------------
@pytest.mark.parametrize("problem", all_problems(), ids=lambda p: p.name)
def test_deterministic_kkt_point(problem):
    """Paper settings (tau 0.01, eta 0.05, rho 1, mu 2, beta 0.5), 5000 iterations:
    x and lambda within 1e-5 of the KKT point; the slack is -c(x*) >= 0."""
    oracle = problem.oracle()
    algo = solve("ssl_alm", oracle, iterations=5000, **DETERMINISTIC)
    assert problem.distance(oracle.x) < 1e-5
    np.testing.assert_allclose(algo.lam, problem.lam_star, atol=1e-5)
    np.testing.assert_allclose(algo.slack, np.maximum(-problem.c(problem.x_star), 0), atol=1e-5)


@pytest.mark.parametrize("problem", all_problems(noise=0.5), ids=lambda p: p.name)
def test_stochastic_kkt_point(problem):
    """Noisy objective (sigma 0.5 per row, 2000 rows), batch 8, 8 per group, smaller steps than
    the paper's (tau 0.002, eta 0.02: the last iterate's noise scales with sqrt(tau); with the
    paper's tau 0.01 its std is about 1e-2), 6000 iterations: x and lambda within 2e-2.
    (Over seeds 0-9 the largest errors were 6e-3 for x and 1.0e-2 for lambda.)"""
    oracle = problem.oracle(seed=3)
    algo = solve("ssl_alm", oracle, iterations=6000, seed=3, tau=0.002, eta=0.02)
    assert problem.distance(oracle.x) < 2e-2
    np.testing.assert_allclose(algo.lam, problem.lam_star, atol=2e-2)


def test_stochastic_constraints_kkt_point():
    """Noise in both objective (0.5) and constraint values (0.3): the two independent constraint
    batches keep the estimate unbiased; tau 0.002, eta 0.02, 6000 iterations: x within 2e-2,
    lambda within 3e-2 (seeds 0-9: at most 5e-3 and 1.3e-2)."""
    problem = halfspace(active=True, noise=0.5, constraint_noise=0.3)
    oracle = problem.oracle(seed=1)
    algo = solve("ssl_alm", oracle, iterations=6000, seed=1, tau=0.002, eta=0.02)
    assert problem.distance(oracle.x) < 2e-2
    np.testing.assert_allclose(algo.lam, problem.lam_star, atol=3e-2)


# -- mechanics -------------------------------------------------------------------------------
def test_slack_stays_nonnegative_and_centre_moves():
    problem = least_squares_two()
    oracle = problem.oracle()
    algo = make_algorithm("ssl_alm", **DETERMINISTIC)
    algo.setup(oracle, np.random.default_rng(0))
    z0 = algo.z.copy()
    for _ in range(200):
        algo.step()
        assert (algo.slack >= 0).all()
    assert not np.array_equal(algo.z, z0)
    state = algo.state()
    assert set(state) == {"lambda_0", "lambda_1", "slack_0", "slack_1"}
    assert state["lambda_0"] == algo.lam[0]


def test_one_backward_per_iteration():
    """Per iteration: one gradient pass over objective + xi_1 rows, none over xi_2."""
    problem = ball(noise=0.5)
    oracle = problem.oracle()
    algo = make_algorithm("ssl_alm", batch_size=8, per_group=4)
    algo.setup(oracle, np.random.default_rng(0))
    algo.step()
    groups = oracle.n_groups
    assert oracle.counters.grad_evals == 8 + 4 * groups
    assert oracle.counters.samples == 8 + 2 * 4 * groups


@pytest.mark.parametrize("mode", ["component", "all"])
def test_dual_reset_triggers_and_is_counted(mode):
    """lambda* = (3.2, 0) but the bound is 2: the safeguard must fire, be counted once per
    iteration it fires, and keep the multipliers within the bound after every step."""
    problem = least_squares_two()
    oracle = problem.oracle()
    algo = make_algorithm("ssl_alm", dual_bound=2.0, dual_reset=mode, eta=0.2, **DETERMINISTIC)
    algo.setup(oracle, np.random.default_rng(0))
    resets = 0
    for _ in range(500):
        events = algo.step()
        resets += events["dual_resets"]
        if mode == "all":
            assert np.linalg.norm(algo.lam) <= 2.0
            if events["dual_resets"]:
                assert np.array_equal(algo.lam, np.zeros(2))
        else:
            assert np.abs(algo.lam).max() <= 2.0
        assert events["dual_resets"] in (0, 1)
    assert resets > 0


def test_component_reset_keeps_other_multipliers():
    algo = make_algorithm("ssl_alm", dual_bound=1.0, dual_reset="component")
    algo.lam = np.array([1.5, 0.5, -2.0])
    assert algo._safeguard() == 1
    np.testing.assert_array_equal(algo.lam, [0.0, 0.5, 0.0])
    algo.lam = np.array([0.9, -0.9])
    assert algo._safeguard() == 0  # ||lam||_2 > 1, but no component beyond the bound
    algo_all = make_algorithm("ssl_alm", dual_bound=1.0, dual_reset="all")
    algo_all.lam = np.array([0.9, -0.9])
    assert algo_all._safeguard() == 1
    np.testing.assert_array_equal(algo_all.lam, [0.0, 0.0])


def test_no_reset_within_bound():
    oracle = least_squares_two().oracle()
    algo = make_algorithm("ssl_alm", **DETERMINISTIC)
    algo.setup(oracle, np.random.default_rng(0))
    assert sum(algo.step()["dual_resets"] for _ in range(2000)) == 0


def test_deterministic_given_seed():
    runs = []
    for _ in range(2):
        oracle = least_squares_two(noise=0.5, constraint_noise=0.2).oracle(seed=7)
        algo = solve("ssl_alm", oracle, iterations=300, seed=7)
        runs.append((oracle.x.copy(), algo.lam.copy()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    other = least_squares_two(noise=0.5, constraint_noise=0.2).oracle(seed=8)
    solve("ssl_alm", other, iterations=300, seed=8)
    assert not np.array_equal(other.x, runs[0][0])


def test_float32_fairness_oracle():
    """The census code path: float32 parameters stay float32 (in place), finite, one pass."""
    oracle = synthetic_fairness_oracle()
    x = oracle.x
    algo = solve("ssl_alm", oracle, iterations=50)
    assert oracle.x is x and x.dtype == np.float32 and np.isfinite(x).all()
    assert algo.lam.dtype == np.float32 and algo.z.dtype == np.float32 and len(algo.lam) == 2


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("key, value", [
    ("tau", -0.1), ("tau", 0), ("eta", -1.0), ("rho", -1.0), ("mu", -2.0), ("beta", 0), ("beta", 1.5),
    ("batch_size", 0), ("batch_size", 2.5), ("per_group", -3), ("dual_bound", 0), ("dual_reset", "none"),
])
def test_config_errors_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"^algo\.{key}="):
        make_algorithm("ssl_alm", **{key: value})


def test_per_group_larger_than_smallest_group():
    oracle = halfspace(noise=0.5, n_rows=20).oracle()  # two groups of 10 rows
    algo = make_algorithm("ssl_alm", per_group=11)
    with pytest.raises(ConfigError, match=r"^algo\.per_group=11: .*smallest group.*\(10\)"):
        algo.setup(oracle, np.random.default_rng(0))


def test_needs_constraints():
    oracle = halfspace().oracle(constrained=False)
    with pytest.raises(FairbenchError, match=r"needs constraints.*problem=constrained"):
        make_algorithm("ssl_alm").setup(oracle, np.random.default_rng(0))
