"""SSL-ALM's compiled state updates give the numbers of its numpy updates, bit for bit.

On a compiled oracle :class:`SSLALM` runs its dual and primal steps as numba kernels
(:mod:`fairbench.backends.compiled.ssl_alm`); with ``_kernels`` cleared after binding it
runs the method's numpy updates on the same oracle. Both must leave the same
parameters, multipliers, slacks and centres, and report the same resets, step after step:
with smoothing (SSL-ALM) and without (ALM), both safeguards, one seed and stacked seeds.
"""

import numpy as np
import pytest
import torch

from fairbench.api import make_algorithm
from toy_split import split_and_constraints
from fairbench.backends.numpy_oracle import NumpyMLPOracle
from fairbench.backends.variants import bind_variant
from fairbench.backends.oracles import compiled_available
import configs

pytestmark = pytest.mark.skipif(not compiled_available(), reason="numba is not installed (the fast extra)")

SEEDS = [3, 1]


def model(seed):
    torch.manual_seed(seed)
    return configs.model(9, hidden=[16, 8])


def oracles(stacked: bool):
    from fairbench.backends.compiled.mlp import CompiledMLPOracle, CompiledStackedMLPOracle

    split, constraints = split_and_constraints(0.01)
    if stacked:
        return CompiledStackedMLPOracle([model(s) for s in SEEDS], split, 2, constraints, SEEDS)
    return CompiledMLPOracle(model(SEEDS[0]), split, 2, constraints, seed=SEEDS[0])


def algorithm(kind: str, **hp):
    return make_algorithm(kind, **hp)


def setup(kind, stacked, compiled_updates, **hp):
    oracle = oracles(stacked)
    algo = algorithm(kind, **hp)
    rng = [np.random.default_rng(s) for s in SEEDS] if stacked else np.random.default_rng(SEEDS[0])
    algo.setup(oracle, rng)
    bind_variant(algo, oracle)
    assert (algo._kernels is not None) is True  # a compiled oracle binds the kernels
    if not compiled_updates:
        algo._kernels = None
    return algo


def state(algo):
    out = {"x": algo.oracle.x.copy(), "lam": algo.lam.copy(), "slack": algo.slack.copy(),
           "z_slack": algo.z_slack.copy()}
    if algo.z is not None:
        out["z"] = algo.z.copy()
    return out


@pytest.mark.parametrize("stacked", [False, True], ids=["single", "stacked"])
@pytest.mark.parametrize("reset", ["component", "all"])
@pytest.mark.parametrize("kind", ["ssl_alm", "alm"])
def test_compiled_updates_equal_numpy_updates_bitwise(kind, reset, stacked):
    # a small dual bound and a large dual step so that the safeguard fires often
    hp = dict(tau=0.05, eta=0.8, rho=1.0, dual_bound=0.05, dual_reset=reset, batch_size=8, per_group=4)
    if kind == "ssl_alm":
        hp.update(mu=2.0, beta=0.5)
    fast, plain = setup(kind, stacked, True, **hp), setup(kind, stacked, False, **hp)
    resets = 0
    for _ in range(60):
        got, want = fast.step(), plain.step()
        np.testing.assert_array_equal(got["dual_resets"], want["dual_resets"])
        assert type(got["dual_resets"]) is type(want["dual_resets"])
        resets += np.sum(want["dual_resets"])
        for key, value in state(plain).items():
            np.testing.assert_array_equal(state(fast)[key], value, err_msg=key)
    assert resets > 0  # the safeguard was exercised
    assert np.any(state(fast)["slack"] > 0)  # and the slacks moved off their bound
    assert fast.state().keys() == plain.state().keys()


def test_nan_stays_visible_in_the_compiled_slack_update():
    algo = setup("ssl_alm", False, True)
    algo.slack[:] = np.nan
    algo.step()
    assert np.isnan(algo.slack).all()


def test_numpy_oracle_keeps_the_numpy_updates():
    split, constraints = split_and_constraints(0.01)
    algo = make_algorithm("ssl_alm")
    oracle = NumpyMLPOracle(model(0), split, 2, constraints, seed=0)
    algo.setup(oracle, np.random.default_rng(0))
    bind_variant(algo, oracle)
    assert getattr(algo, "_kernels", None) is None


def test_stacked_reset_counts_kept_from_step_to_step_stay_each_steps_own():
    hp = dict(tau=0.05, eta=0.8, dual_bound=0.05, batch_size=8, per_group=4)
    fast, plain = setup("ssl_alm", True, True, **hp), setup("ssl_alm", True, False, **hp)
    kept_fast = [fast.step()["dual_resets"] for _ in range(30)]
    kept_plain = [plain.step()["dual_resets"] for _ in range(30)]
    np.testing.assert_array_equal(np.stack(kept_fast), np.stack(kept_plain))
    assert np.stack(kept_plain).sum() > 0
