"""The fast variants of the primal–dual methods (PBM, iALM, nuPI, GDA, extragradient) give the
numbers of the methods' own numpy rules, bit for bit, and their stacked seeds those of
one seed at a time.

- the compiled state updates (:mod:`fairbench.backends.compiled.primal_dual`) against the
  method's numpy updates on the same oracle (the numpy MLP oracle and the compiled one, where
  the variant's step also calls the oracle's passes directly): the same parameters,
  multipliers, penalties and counters after every step, for every penalty–barrier function
  and penalty update of PBM, annealing on and off, SGD and Adam, weight decay, every order;
- PBM's weights kernel against ``PBM._weights`` on constraint values drawn across both
  branches of each penalty–barrier function and their joins (the quadratic_reciprocal join
  ``-1/3`` is compared in float32, as numpy compares a float32 array with a Python float);
- stacked seeds (numpy-stacked and compiled-stacked, with the variants the runner binds)
  against each seed's single-seed run on the same path.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import configs
from fairbench.api import make_algorithm
from fairbench.backends.numpy_oracle import NumpyMLPOracle
from fairbench.backends.oracles import compiled_available, oracle_path
from fairbench.backends.stacked import StackedMLPOracle
from fairbench.backends.variants import bind_variant, can_stack_method, choose, load
from toy_split import split_and_constraints

pytestmark = pytest.mark.skipif(not compiled_available(), reason="numba is not installed (the fast extra)")

SEEDS = [3, 1]
METHODS = ("pbm", "ialm", "nupi", "gda", "extragradient")
PBFS = ("quadratic_logarithmic", "quadratic_reciprocal")
UPDATES = ("const", "dimin", "dimin_dual", "dimin_adapt", "aimd", "alm")


def model(seed):
    torch.manual_seed(seed)
    return configs.model(9, hidden=[16, 8])


def oracle(path: str, stacked: bool = False, seed: int = SEEDS[0], delta: float = 0.02):
    split, constraints = split_and_constraints(delta=delta)
    if path == "compiled":
        from fairbench.backends.compiled.mlp import CompiledMLPOracle, CompiledStackedMLPOracle

        single, stack = CompiledMLPOracle, CompiledStackedMLPOracle
    else:
        single, stack = NumpyMLPOracle, StackedMLPOracle
    if stacked:
        return stack([model(s) for s in SEEDS], split, 2, constraints, SEEDS)
    return single(model(seed), split, 2, constraints, seed=seed)


def compiled_bind(algo):
    """The compiled variant's bind function of ``algo``'s method (whatever the oracle)."""
    variant = choose(type(algo), "compiled")
    assert variant is not None and variant.name == "compiled"
    return load(variant)


def setup(name, path, fast, delta=0.02, **hp):
    algo = make_algorithm(name, batch_size=8, per_group=4, **hp)
    o = oracle(path, delta=delta)
    algo.setup(o, np.random.default_rng(SEEDS[0]))
    if fast:
        compiled_bind(algo)(algo)
        # on the compiled oracle the variant's own step (the oracle's passes called directly)
        assert ("step" in vars(algo)) == (path == "compiled")
    return algo


def snapshot(algo) -> dict[str, np.ndarray]:
    out = {"x": algo.oracle.x.copy(), "lambda": np.array(algo.multipliers, copy=True)}
    for name in ("penalties", "xi"):
        value = getattr(algo, name, None)
        if isinstance(value, np.ndarray):
            out[name] = value.copy()
    if getattr(algo._primal, "m", None) is not None:
        out["m"], out["v"] = algo._primal.m.copy(), algo._primal.v.copy()
    counters = algo.oracle.counters
    out["counters"] = np.array([counters.samples, counters.grad_evals])
    return out


def assert_same_steps(fast, plain, steps=60) -> None:
    """The same state after every step, bit for bit, and the same ``state()``."""
    x0 = plain.oracle.x.copy()
    with np.errstate(all="ignore"):
        for k in range(steps):
            fast.step()
            plain.step()
            got, want = snapshot(fast), snapshot(plain)
            assert got.keys() == want.keys()
            for key, value in want.items():
                np.testing.assert_array_equal(got[key], value, err_msg=f"{key} after step {k + 1}")
    assert fast.state() == plain.state()
    assert np.any(plain.oracle.x != x0)  # the run moved


PBM_CASES = [dict(pbf=p, penalty_update=u, gamma_annealing=a, penalty_annealing=a, epoch_length=7)
             for p, u, a in itertools.product(PBFS, UPDATES, (True, False))]


@pytest.mark.parametrize("path", ["compiled", "numpy"])
@pytest.mark.parametrize("primal", ["sgd", "adam"])
@pytest.mark.parametrize("hp", PBM_CASES, ids=lambda hp: f"{hp['pbf']}-{hp['penalty_update']}-"
                         f"{'anneal' if hp['gamma_annealing'] else 'const'}")
def test_pbm_compiled_updates_equal_numpy_updates_bitwise(hp, primal, path):
    # delta 0.3: c/p reaches the barrier branch of both functions; penalty_mult 0.5: p moves
    hp = dict(hp, primal=primal, penalty_mult=0.5, gamma=0.3, lr=0.05, dual_min=1e-3)
    assert_same_steps(setup("pbm", path, True, delta=0.3, **hp), setup("pbm", path, False, delta=0.3, **hp))


OTHER_CASES = [
    ("ialm", dict(beta=0.5, sigma=1.001, gamma=0.02)),
    ("ialm", dict(form="reference", beta=0.5, sigma=1.001, gamma=0.02)),
    ("ialm", dict(beta=0.5, sigma=1.0, gamma=0.02, weight_decay=0.01)),
    ("nupi", dict(eta=0.5, kp=0.4, ki=1.0, nu=0.3, init="zeros", order="simultaneous", dual_max=None)),
    ("nupi", dict(eta=1.0, kp=1.0, ki=0.01, nu=0.99, init="sgd", order="dual_primal", penalty=2.0)),
    ("gda", dict(order="simultaneous", eta=0.5)),
    ("gda", dict(order="primal_dual", eta=0.5, weight_decay=0.01)),
    ("gda", dict(order="dual_primal", eta=0.5)),
    ("extragradient", dict(eta=0.5, sample="same")),
    ("extragradient", dict(eta=0.5, sample="fresh", weight_decay=0.01)),
]


@pytest.mark.parametrize("path", ["compiled", "numpy"])
@pytest.mark.parametrize("primal", ["sgd", "adam"])
@pytest.mark.parametrize("name, hp", OTHER_CASES, ids=lambda v: v if isinstance(v, str) else "-".join(
    f"{k}={v[k]}" for k in sorted(v)))
def test_compiled_updates_equal_numpy_updates_bitwise(name, hp, primal, path):
    hp = dict(hp, primal=primal, lr=0.05)
    fast, plain = setup(name, path, True, **hp), setup(name, path, False, **hp)
    assert_same_steps(fast, plain)
    assert np.abs(plain.multipliers).max() > 1e-3  # the multipliers moved


@pytest.mark.parametrize("pbf", PBFS)
@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("anneal", [True, False])
def test_pbm_weights_kernel_equals_the_numpy_rule_across_both_branches(pbf, update, anneal):
    """``_weights`` on constraint values drawn over [-3, 2] and on the joins' float32
    neighbours: the same weights, multipliers and penalties, bit for bit, for 300 calls."""
    hp = dict(pbf=pbf, penalty_update=update, gamma_annealing=anneal, penalty_annealing=anneal, epoch_length=5,
              penalty_mult=0.6, gamma=0.2, delta=0.7, penalty_min=0.05, penalty_max=2.0, dual_min=1e-3,
              dual_max=5.0)
    fast, plain = setup("pbm", "numpy", True, **hp), setup("pbm", "numpy", False, **hp)
    rng = np.random.default_rng(0)
    joins = np.float32([-0.5, -1.0 / 3.0, 0.0])
    special = np.concatenate([joins, np.nextafter(joins, np.float32(-1)), np.nextafter(joins, np.float32(1)),
                              np.float32([-1.0 / 3.0])]).astype(np.float32)
    barrier = 0
    for k in range(300):
        c = rng.uniform(-3.0, 2.0, size=2).astype(np.float32)
        if k % 3 == 0:  # a ratio c/p at a join: c = t p
            c = (rng.choice(special, size=2) * plain.penalties).astype(np.float32)
        w_fast, w_plain = fast._weights(c.copy()), plain._weights(c.copy())
        np.testing.assert_array_equal(w_fast, w_plain, err_msg=f"w at call {k}")
        np.testing.assert_array_equal(fast.multipliers, plain.multipliers, err_msg=f"lambda at call {k}")
        np.testing.assert_array_equal(fast.penalties, plain.penalties, err_msg=f"penalties at call {k}")
        barrier += int(np.sum(c / plain.penalties < -0.5))
        plain.multipliers[:] = np.maximum(plain.multipliers, 0.5)  # keep them off their lower bound
        fast.multipliers[:] = plain.multipliers
    assert barrier > 0
    assert fast.k == plain.k == 300


def test_nan_stays_visible_in_the_compiled_updates():
    algo = setup("gda", "compiled", True)
    algo.multipliers[:] = np.nan
    with np.errstate(all="ignore"):
        algo._ascent(np.zeros(2, dtype=np.float32))
    assert np.isnan(algo.multipliers).all()


# -- stacked seeds -----------------------------------------------------------------------------
def stacked_case(name, path, hp):
    algo = make_algorithm(name, batch_size=8, per_group=4, **hp)
    o = oracle(path, stacked=True)
    algo.setup(o, [np.random.default_rng(s) for s in SEEDS])
    used = bind_variant(algo, o)
    return algo, used


def single_case(name, path, hp, seed):
    algo = make_algorithm(name, batch_size=8, per_group=4, **hp)
    o = oracle(path, seed=seed)
    algo.setup(o, np.random.default_rng(seed))
    bind_variant(algo, o)
    return algo


STACKED_CASES = [
    ("pbm", dict(penalty_update="dimin_adapt", epoch_length=7, dual_min=0.05)),
    ("pbm", dict(penalty_update="aimd", pbf="quadratic_reciprocal", primal="adam", dual_min=0.05)),
    ("ialm", dict(beta=0.5, sigma=1.001, gamma=0.02)),
    ("ialm", dict(form="reference", beta=0.5, sigma=1.001, gamma=0.02)),
    ("ialm", dict(beta=0.5, gamma=0.02, primal="adam")),
    ("nupi", dict(eta=0.5, kp=0.4, ki=1.0, nu=0.3, init="zeros", order="simultaneous")),
    ("nupi", dict(order="dual_primal", penalty=2.0, primal="adam")),
    ("gda", dict(order="primal_dual", eta=0.5)),
    ("gda", dict(order="dual_primal", eta=0.5, primal="adam")),
    ("extragradient", dict(eta=0.5, sample="fresh")),
    ("extragradient", dict(eta=0.5, sample="same", primal="adam")),
]


@pytest.mark.parametrize("path", ["compiled", "numpy"])
@pytest.mark.parametrize("name, hp", STACKED_CASES, ids=lambda v: v if isinstance(v, str) else "-".join(
    f"{k}={v[k]}" for k in sorted(v)))
def test_stacked_seeds_equal_one_seed_at_a_time(name, hp, path):
    hp = dict(hp, lr=0.05)
    stacked, used = stacked_case(name, path, hp)
    assert used == ("compiled" if path == "compiled" else "stacked")
    assert oracle_path(stacked.oracle) == f"{path}-stacked"
    singles = [single_case(name, path, hp, seed) for seed in SEEDS]
    exact = path == "compiled"  # compiled: each seed's kernels; numpy: batched products round alike to ~1 ulp
    with np.errstate(all="ignore"):
        for _ in range(40):
            stacked.step()
            for s, single in enumerate(singles):
                single.step()
    state = stacked.state()
    for s, single in enumerate(singles):
        pairs = [(stacked.oracle.x[s], single.oracle.x), (stacked.multipliers[s], single.multipliers)]
        if name == "pbm":
            pairs.append((stacked.penalties[s], single.penalties))
        for got, want in pairs:
            if exact:
                np.testing.assert_array_equal(got, want)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        own = single.state()
        assert state.keys() == own.keys()
        for key, value in own.items():
            assert state[key].shape == (len(SEEDS),)
            if exact:
                assert state[key][s] == value, key
            else:
                np.testing.assert_allclose(state[key][s], value, rtol=1e-4, atol=1e-6, err_msg=key)
    assert np.abs(stacked.multipliers).max() > 1e-3


@pytest.mark.parametrize("name", METHODS)
def test_the_primal_dual_methods_stack_and_have_compiled_variants(name):
    cls = type(make_algorithm(name))
    assert can_stack_method(cls)
    assert choose(cls, "compiled").name == choose(cls, "compiled-stacked").name == "compiled"
    assert choose(cls, "numpy-stacked").name == "stacked"
    assert choose(cls, "numpy") is None and choose(cls, "autograd") is None
