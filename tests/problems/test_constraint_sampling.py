"""k of m constraints per step (problem.constraints_per_step): index form, unbiased scaling,
O(k) rows, the methods that opt in and the ones that refuse."""

import itertools

import numpy as np
import pytest
import torch

from fairbench.algorithms.base import PER_CONSTRAINT_STATE_LIMIT
from fairbench.api import make_algorithm
from fairbench.errors import ConfigError
from fairbench.problems.constraint_sampling import ConstraintIndex, SubsetSampler, check_constraints_per_step
from fairbench.problems.fairness import FairnessOracle, TensorSplit
from fairbench.problems.statistics import label_counts
import configs


def many_group_split(n_groups, n=3000, d=4, seed=0):
    rng = np.random.default_rng(seed)
    group = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, n - n_groups)])
    X = (rng.normal(size=(n, d)) + 1.5 * (group % 4)[:, None]).astype(np.float32)
    y = (X[:, 0] + 0.1 * (group % 3) + rng.normal(size=n) > 0.3).astype(np.float32)
    y[:2 * n_groups] = np.tile([0.0, 1.0], n_groups)[:2 * n_groups]   # every cell non-empty
    return TensorSplit.from_arrays(X, y, group)


def bind(split, n_groups, **spec):
    props = np.bincount(split.group.numpy(), minlength=n_groups) / len(split)
    counts = label_counts(split.group.numpy(), split.y.numpy(), n_groups)
    return configs.constraint_spec(**spec).bind(props, [f"g{g}" for g in range(n_groups)], counts)


def sampled_oracle(split, n_groups, k, seed=0, **spec):
    bound = bind(split, n_groups, **spec)
    torch.manual_seed(seed)
    model = configs.model(split.X.shape[1], hidden=[8, 4])
    oracle = FairnessOracle(model, split, bound.n_cells, bound, seed=seed)
    if k is not None:
        oracle.enable_constraint_sampling(k)
    return oracle, bound


@pytest.mark.parametrize("family,form,statistic", [
    ("pairs", "signed", "loss"), ("vs_all", "signed", "loss"), ("vs_all", "abs", "positive_rate"),
    ("pairs", "abs", "equalized_odds"), ("vs_all", "signed", "equalized_odds")])
def test_index_form_gives_the_dense_constraints(family, form, statistic):
    split = many_group_split(7)
    bound = bind(split, 7, family=family, form=form, statistic=statistic)
    index = ConstraintIndex.from_spec(bound.spec, 7)
    assert index.n_constraints == bound.n_constraints
    stats = np.random.default_rng(1).random(bound.n_cells)
    overall = (stats.reshape(-1, 7) * bound.shares.reshape(-1, 7)).sum(1)   # sbar per block
    extended = np.concatenate([stats, overall])
    subset = index.subset(np.arange(index.n_constraints), 1.0)
    np.testing.assert_allclose(index.values(extended[subset.cells], subset), bound.values(stats), atol=1e-12)
    # a random subset: its values are those constraints' values
    chosen = np.sort(np.random.default_rng(2).choice(index.n_constraints, 5, replace=False))
    part = index.subset(chosen, index.n_constraints / 5)
    np.testing.assert_allclose(index.values(extended[part.cells], part), bound.values(stats)[chosen], atol=1e-12)


def test_scaled_subset_sum_is_unbiased_and_draws_are_uniform():
    m, k = 7, 3
    index = ConstraintIndex(np.zeros(m, int), np.ones(m, int), np.ones(m), 2, False, 0.0)
    terms = np.random.default_rng(0).normal(size=m)
    mean = np.mean([(m / k) * terms[list(s)].sum() for s in itertools.combinations(range(m), k)])
    assert mean == pytest.approx(terms.sum(), rel=1e-12)
    sampler = SubsetSampler(index, k, np.random.default_rng(0))
    counts = np.zeros(m)
    for _ in range(7000):
        s = sampler.draw()
        assert len(np.unique(s.indices)) == k and s.scale == m / k
        counts[s.indices] += 1
    np.testing.assert_allclose(counts / 7000, k / m, atol=0.03)


def test_k_equal_m_on_pairs_reproduces_the_full_batch():
    """Pairs with k = m involve every group in order: the same rows, values, Jacobian, gradient."""
    split = many_group_split(5)
    full, bound = sampled_oracle(split, 5, None)
    part, _ = sampled_oracle(split, 5, bound.n_constraints)
    subset = part.draw_constraint_subset(0)
    a, b = full.sample_constraints(4, 0), part.sample_constraints(4, 0, subset=subset)
    assert torch.equal(a.data, b.data)
    (c1, J1), (c2, J2) = full.constraints(a, jac=True), part.constraints(b, jac=True)
    np.testing.assert_allclose(c2, c1, atol=1e-6)
    np.testing.assert_allclose(J2, J1, atol=1e-5)
    w = np.linspace(0.1, 1.0, bound.n_constraints).astype(np.float32)
    g1 = full.lagrangian_grad(None, a, w)[2]
    g2 = part.lagrangian_grad(None, b, w)[2]
    np.testing.assert_allclose(g2, g1, atol=1e-5)


def test_rows_per_step_do_not_grow_with_the_number_of_groups():
    for n_groups in (6, 40):
        split = many_group_split(n_groups, n=6000)
        oracle, bound = sampled_oracle(split, n_groups, 4, family="vs_all")
        before = oracle.counters.samples
        batch = oracle.sample_constraints(3, 0, subset=oracle.draw_constraint_subset(0))
        # at most k groups and one overall cell, 3 rows each
        assert batch.size <= 3 * 5 and oracle.counters.samples - before == batch.size
        c, J = oracle.constraints(batch, jac=True)
        assert c.shape == (4,) and J.shape == (4, oracle.x.size)


def test_vs_all_overall_statistic_is_estimated_without_bias():
    """The mean of sampled ``c_j`` over many draws approaches the constraint on the whole split."""
    split = many_group_split(6, n=1200)
    oracle, bound = sampled_oracle(split, 6, 1, family="vs_all", statistic="positive_rate")
    with torch.no_grad():
        p = torch.sigmoid(oracle.model(split.X)).numpy()
    group = split.group.numpy()
    stats = np.array([p[group == g].mean() for g in range(6)])
    exact = bound.values(stats)
    sums, hits = np.zeros(bound.n_constraints), np.zeros(bound.n_constraints)
    for _ in range(3000):
        subset = oracle.draw_constraint_subset(0)
        c, _ = oracle.constraints(oracle.sample_constraints(4, 0, subset=subset))
        sums[subset.indices] += c
        hits[subset.indices] += 1
    gaps = np.abs(exact + bound.spec.delta)
    assert gaps.max() > 0.05                       # the groups differ: a wrong sbar would show
    np.testing.assert_allclose(sums / hits, exact, atol=0.15 * gaps.max())


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "3"])
def test_bad_constraints_per_step_is_refused(value):
    with pytest.raises(ConfigError, match="problem.constraints_per_step"):
        check_constraints_per_step(value)


def test_more_than_m_is_refused_with_m():
    split = many_group_split(3)
    with pytest.raises(ConfigError, match="m = 6"):
        sampled_oracle(split, 3, 7)


@pytest.mark.parametrize("name", ["ssw", "ghost"])
def test_methods_without_a_sound_sampled_step_refuse(name):
    oracle, _ = sampled_oracle(many_group_split(4), 4, 2)
    with pytest.raises(ConfigError, match=r"problem.constraints_per_step=2: .*needs null"):
        make_algorithm(name).setup(oracle, np.random.default_rng(0))


@pytest.mark.parametrize("name", ["ssl_alm", "alm"])
def test_ssl_alm_with_k_equal_m_follows_the_full_method(name):
    split = many_group_split(4)
    runs = []
    for k in (None, 12):
        oracle, _ = sampled_oracle(split, 4, k)
        algo = make_algorithm(name, per_group=4)
        algo.setup(oracle, np.random.default_rng(0))
        for _ in range(25):
            algo.step()
        runs.append((oracle.x.copy(), algo.lam.copy(), algo.slack.copy()))
    for full, part in zip(*runs):
        np.testing.assert_allclose(part, full, atol=1e-5)


def test_sampled_ssl_alm_moves_only_the_sampled_multipliers():
    split = many_group_split(10)
    oracle, bound = sampled_oracle(split, 10, 3, family="vs_all")
    algo = make_algorithm("ssl_alm", per_group=4)
    algo.setup(oracle, np.random.default_rng(0))
    algo.step()
    assert 0 < np.count_nonzero(algo.lam) <= 3
    assert np.isfinite(oracle.x).all()


def test_state_is_summarised_beyond_the_column_limit():
    algo = make_algorithm("ssl_alm")
    m = PER_CONSTRAINT_STATE_LIMIT + 1
    algo.lam, algo.slack = np.arange(m, dtype=float), np.zeros(m)
    state = algo.state()
    assert "lambda_0" not in state and state["lambda_max"] == m - 1 and state["slack_nonzero"] == 0
    algo.lam, algo.slack = np.ones(3), np.zeros(3)
    assert set(algo.state()) == {"lambda_0", "lambda_1", "lambda_2", "slack_0", "slack_1", "slack_2"}
