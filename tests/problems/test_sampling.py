"""Samplers: without replacement within a pass, equal rows per group, independent streams."""

import numpy as np
import pytest

from fairbench.problems.sampling import EpochSampler, GroupSampler


def test_epoch_sampler_uses_every_row_once_per_pass():
    sampler = EpochSampler(10, np.random.default_rng(0))
    drawn = np.concatenate([sampler.draw(3) for _ in range(10)])  # 30 rows = 3 passes
    for p in range(3):
        assert sorted(drawn[10 * p:10 * (p + 1)]) == list(range(10))
    assert sampler.passes == 2


def test_epoch_sampler_reshuffles_each_pass():
    sampler = EpochSampler(50, np.random.default_rng(1))
    first, second = sampler.draw(50), sampler.draw(50)
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)


def test_epoch_sampler_rejects_batch_larger_than_data():
    with pytest.raises(ValueError, match="without replacement"):
        EpochSampler(5, np.random.default_rng(0)).draw(6)


def test_group_sampler_equal_rows_per_group_in_group_blocks():
    group = np.array([0] * 100 + [1] * 7 + [2] * 30)
    rows = [np.flatnonzero(group == g) for g in range(3)]
    sampler = GroupSampler(rows, np.random.default_rng(0))
    for _ in range(20):
        batch = sampler.draw(5)
        assert batch.shape == (15,)
        np.testing.assert_array_equal(group[batch], np.repeat([0, 1, 2], 5))
        for g in range(3):
            assert len(set(batch[5 * g:5 * (g + 1)])) == 5  # no repeats inside one draw


def test_group_sampler_small_group_cycles_through_all_its_rows():
    group = np.array([0] * 100 + [1] * 6)
    sampler = GroupSampler([np.flatnonzero(group == g) for g in range(2)], np.random.default_rng(3))
    small = np.concatenate([sampler.draw(2)[2:] for _ in range(3)])
    assert sorted(small) == list(range(100, 106))


def test_group_sampler_rejects_per_group_above_smallest_group():
    sampler = GroupSampler([np.arange(10), np.arange(10, 13)], np.random.default_rng(0))
    with pytest.raises(ValueError, match="smallest group has 3"):
        sampler.draw(4)


def test_streams_from_different_seeds_differ_and_same_seed_repeats():
    rows = [np.arange(50), np.arange(50, 100)]
    a = GroupSampler(rows, np.random.default_rng(np.random.SeedSequence(0, spawn_key=(1, 0)))).draw(10)
    b = GroupSampler(rows, np.random.default_rng(np.random.SeedSequence(0, spawn_key=(1, 1)))).draw(10)
    c = GroupSampler(rows, np.random.default_rng(np.random.SeedSequence(0, spawn_key=(1, 0)))).draw(10)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, c)
