"""ALM (SSL-ALM with mu = 0, beta = 1): known KKT points, dual reset, config."""

from __future__ import annotations

import numpy as np
import pytest

from fairbench.api import make_algorithm, solve
from fairbench.errors import ConfigError
from known_problems import all_problems, halfspace, least_squares_two, one_torch_thread, synthetic_fairness_oracle

one_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)

DETERMINISTIC = dict(batch_size=1, per_group=1)


@pytest.mark.parametrize("problem", all_problems(), ids=lambda p: p.name)
def test_deterministic_kkt_point(problem):
    """Paper settings (tau 0.01, eta 0.05, rho 1), 5000 iterations: x and lambda within 1e-5."""
    oracle = problem.oracle()
    algo = solve("alm", oracle, iterations=5000, **DETERMINISTIC)
    assert problem.distance(oracle.x) < 1e-5
    np.testing.assert_allclose(algo.lam, problem.lam_star, atol=1e-5)


@pytest.mark.parametrize("problem", all_problems(noise=0.5), ids=lambda p: p.name)
def test_stochastic_kkt_point(problem):
    """Noisy objective (sigma 0.5), batch 8, 8 per group, tau 0.002, eta 0.02, 6000 iterations:
    x and lambda within 2e-2 (seeds 0-9: at most 6e-3 and 1.0e-2)."""
    oracle = problem.oracle(seed=5)
    algo = solve("alm", oracle, iterations=6000, seed=5, tau=0.002, eta=0.02)
    assert problem.distance(oracle.x) < 2e-2
    np.testing.assert_allclose(algo.lam, problem.lam_star, atol=2e-2)


def test_is_ssl_alm_without_smoothing():
    """Same trajectory as SSLALM(mu=0, beta=1), bit for bit; no proximal centre is kept."""
    xs = []
    for algo in (make_algorithm("alm"), make_algorithm("ssl_alm", mu=0.0, beta=1.0)):
        oracle = least_squares_two(noise=0.5, constraint_noise=0.2).oracle(seed=2)
        algo.setup(oracle, np.random.default_rng(0))
        for _ in range(300):
            algo.step()
        xs.append((oracle.x.copy(), algo.lam.copy(), algo.slack.copy()))
        assert algo.z is None
    for a, b in zip(*xs):
        np.testing.assert_array_equal(a, b)
    assert make_algorithm("alm").mu == 0.0 and make_algorithm("alm").beta == 1.0


def test_dual_reset_triggers_and_is_counted():
    """lambda* = 1 > dual_bound = 0.5: the multiplier keeps crossing the bound, each crossing
    resets it to 0 and is counted as one event; it never stays above the bound."""
    oracle = halfspace().oracle()
    algo = make_algorithm("alm", dual_bound=0.5, eta=0.2, **DETERMINISTIC)
    algo.setup(oracle, np.random.default_rng(0))
    counted = observed = 0
    for _ in range(1000):
        before = algo.lam[0]
        events = algo.step()
        counted += events["dual_resets"]
        # a reset happened iff the dual step would have pushed lambda past the bound
        observed += int(algo.lam[0] == 0.0 and before != 0.0)
        assert abs(algo.lam[0]) <= 0.5
    assert counted > 10 and counted == observed


def test_float32_fairness_oracle():
    oracle = synthetic_fairness_oracle()
    solve("alm", oracle, iterations=50)
    assert oracle.x.dtype == np.float32 and np.isfinite(oracle.x).all()


def test_smoothing_is_not_a_hyperparameter():
    for key in ("mu", "beta"):
        with pytest.raises(ConfigError, match=rf"^algo\.{key}=.*not a hyperparameter of alm"):
            make_algorithm("alm", **{key: 1.0})


@pytest.mark.parametrize("key, value", [
    ("tau", -0.01), ("eta", 0), ("rho", -1), ("dual_bound", -10), ("dual_reset", "some"), ("per_group", 0),
])
def test_config_errors_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"^algo\.{key}="):
        make_algorithm("alm", **{key: value})


def test_per_group_larger_than_smallest_group():
    oracle = synthetic_fairness_oracle()
    algo = make_algorithm("alm", per_group=oracle.smallest_group + 1)
    with pytest.raises(ConfigError, match=r"^algo\.per_group="):
        algo.setup(oracle, np.random.default_rng(0))
