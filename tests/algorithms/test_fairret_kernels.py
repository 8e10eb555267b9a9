"""SGD-Fairret's compiled multiplier solve gives the Python-float solve's roots, bit for bit."""

import numpy as np
import pytest
import torch

from fairbench.algorithms import fairret_numpy
from fairbench.api import make_algorithm
from fairbench.problems.fairness import TensorSplit
from toy_split import toy_split
from fairbench.backends.numpy_oracle import NumpyMLPOracle
from fairbench.backends.variants import bind_variant
from fairbench.backends.oracles import compiled_available
import configs

pytestmark = pytest.mark.skipif(not compiled_available(), reason="numba is not installed (the fast extra)")


def groups(seed, rows):
    """Random root problems of the projection: logits, coefficients, a reachable intercept."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=rng.choice([0.5, 3.0, 20.0]), size=rows)
    beta = rng.normal(size=rows) * rng.choice([1e-3, 1.0, 50.0])
    beta[rng.random(rows) < 0.2] = 0.0
    negative, total = np.minimum(beta, 0.0).sum(), np.abs(beta).sum()
    intercept = -(negative + rng.uniform(0.05, 0.95) * total)  # h's range holds 0
    return z, beta, float(intercept), 1e-13 * (abs(intercept) + total)


@pytest.mark.parametrize("rows", [1, 2, 12, 48])
def test_roots_are_the_python_float_roots_bitwise(rows):
    from fairbench.backends.compiled.fairret import group_multiplier

    for seed in range(200):
        z, beta, intercept, threshold = groups(seed, rows)
        for max_iter in (200, 3):
            assert group_multiplier(z, beta, intercept, threshold, max_iter) == \
                fairret_numpy._group_multiplier(z, beta, intercept, threshold, max_iter)


def test_large_groups_agree_with_the_numpy_form():
    from fairbench.backends.compiled.fairret import group_multiplier

    for seed in range(50):
        z, beta, intercept, threshold = groups(seed, 300)
        want = fairret_numpy._group_multiplier(z, beta, intercept, threshold, 200)
        np.testing.assert_allclose(group_multiplier(z, beta, intercept, threshold, 200), want, rtol=1e-9, atol=1e-12)


def test_nan_coefficients_give_the_same_answer():
    from fairbench.backends.compiled.fairret import group_multiplier

    z, beta, intercept, threshold = groups(0, 12)
    beta[3] = np.nan
    got = group_multiplier(z, beta, intercept, threshold, 50)
    want = fairret_numpy._group_multiplier(z, beta, intercept, threshold, 50)
    assert (np.isnan(got) and np.isnan(want)) or got == want


def oracle_start(split):
    torch.manual_seed(0)
    return NumpyMLPOracle(configs.model(9, hidden=[16, 8]), split, 2, None, seed=0).x.copy()


def test_sgd_fairret_on_the_compiled_oracle_trains_as_with_the_python_solve():
    from fairbench.backends.compiled.mlp import CompiledMLPOracle

    split = toy_split()
    runs = []
    for compiled_solve in (True, False):
        torch.manual_seed(0)
        oracle = CompiledMLPOracle(configs.model(9, hidden=[16, 8]), split, 2, None, seed=0)
        algo = make_algorithm("sgd_fairret", per_group=12, statistic="Accuracy", loss="KLProjectionLoss")
        algo.setup(oracle, np.random.default_rng(0))
        bind_variant(algo, oracle)
        assert (algo._multiplier is not None) is True
        if not compiled_solve:
            algo._multiplier = None
        for _ in range(40):
            algo.step()
        runs.append(oracle.x.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], oracle_start(split))  # it trained


def test_the_numpy_oracle_keeps_the_python_solve():
    rng = np.random.default_rng(1)
    split = TensorSplit.from_arrays(rng.normal(size=(100, 9)).astype(np.float32),
                                    (rng.random(100) < 0.5).astype(np.float32), (rng.random(100) < 0.4).astype(np.int64))
    algo = make_algorithm("sgd_fairret", per_group=4, statistic="Accuracy", loss="KLProjectionLoss")
    oracle = NumpyMLPOracle(configs.model(9, hidden=[16, 8]), split, 2, None, seed=0)
    algo.setup(oracle, np.random.default_rng(0))
    bind_variant(algo, oracle)
    assert algo._multiplier is None


def test_compiled_multiplier_is_cached_with_its_source():
    """The compiled multiplier and the functions it compiles are defined in fairret_numpy: numba's
    disk cache is keyed on the file that defines a function, so an edit there recompiles it."""
    from fairbench.backends.compiled.fairret import group_multiplier

    assert group_multiplier.py_func is fairret_numpy._group_multiplier_loops
    for function in (fairret_numpy._group_multiplier_loops, fairret_numpy._newton_multiplier,
                     fairret_numpy._h_and_slope_scalars):
        assert function.__module__ == fairret_numpy.__name__
