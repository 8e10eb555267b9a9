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



class ReferenceStream:
    """The samplers' definition written plainly: a permutation per pass; a draw that crosses
    the end of a pass takes the old pass's rest, then a fresh permutation with those rows last."""

    def __init__(self, n, rng):
        self.n, self.rng = n, rng
        self.perm, self.pos = rng.permutation(n), 0

    def draw(self, size):
        if self.pos + size <= self.n:
            self.pos += size
            return self.perm[self.pos - size:self.pos]
        head = self.perm[self.pos:]
        fresh = self.rng.permutation(self.n)
        taken = np.isin(fresh, head)
        self.perm = np.concatenate([fresh[~taken], fresh[taken]])
        self.pos = size - len(head)
        return np.concatenate([head, self.perm[:self.pos]])


def test_draws_follow_the_reference_stream_over_many_passes():
    # the same rows for a seed whatever the implementation's shortcuts (mapped permutations,
    # a mask instead of np.isin): results already published stay reproducible
    sizes = np.random.default_rng(5).integers(1, 13, size=400).tolist()
    values = np.arange(37) * 3 + 100
    plain = EpochSampler(37, np.random.default_rng(11))
    mapped = EpochSampler(37, np.random.default_rng(11), values=values)
    reference = ReferenceStream(37, np.random.default_rng(11))
    for size in sizes:
        want = reference.draw(size)
        np.testing.assert_array_equal(plain.draw(size), want)
        np.testing.assert_array_equal(mapped.draw(size), values[want])
    assert plain.passes == mapped.passes > 10


def test_group_draws_are_each_groups_reference_stream():
    rows = [np.arange(0, 40, 2), np.arange(1, 14, 2)]  # 20 and 7 rows
    sampler = GroupSampler(rows, np.random.default_rng(2))
    # the groups' samplers share one generator, so their references share one too
    rng = np.random.default_rng(2)
    references = [ReferenceStream(len(r), rng) for r in rows]
    for _ in range(30):
        drawn = sampler.draw(3)
        for g, block in enumerate((drawn[:3], drawn[3:])):
            np.testing.assert_array_equal(block, rows[g][references[g].draw(3)])


def test_values_must_match_the_row_count():
    with pytest.raises(ValueError, match="3 values for 4 rows"):
        EpochSampler(4, np.random.default_rng(0), values=np.arange(3))


def test_group_sampler_draw_into_is_draw():
    """``draw_into`` writes what ``draw`` returns into a given array, over many passes, and
    refuses what ``draw`` refuses."""
    group_rows = [np.arange(0, 7), np.arange(7, 20), np.arange(20, 25)]
    a = GroupSampler(group_rows, np.random.default_rng(3))
    b = GroupSampler(group_rows, np.random.default_rng(3))
    out = np.full(40, -1, dtype=np.int64)
    for per_group in [2, 3, 5, 1, 4] * 6:
        want = a.draw(per_group)
        b.draw_into(per_group, out[3:3 + 3 * per_group])
        np.testing.assert_array_equal(out[3:3 + 3 * per_group], want)
    assert (out[:3] == -1).all()
    with pytest.raises(ValueError, match="smallest group has 5"):
        b.draw_into(6, out[:18])
