"""Group-stratified splitting and train-only standardisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fairbench.data import load_dataset, synthetic
from fairbench.data.coding import FEATURES, LABEL
from fairbench.data.split import (interleaved_assignment, split_sizes, standardise,
                                  stratified_split)
from fairbench.errors import DataError

FRACTIONS = (0.8, 0.1, 0.1)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(10, 400), min_size=1, max_size=5),
       train=st.floats(0.3, 0.8), val_share=st.floats(0.2, 0.8), seed=st.integers(0, 2**16),
       positive=st.floats(0.0, 1.0))
def test_every_group_within_one_row_of_its_share(sizes, train, val_share, seed, positive) -> None:
    fractions = (train, (1 - train) * val_share, (1 - train) * (1 - val_share))
    rng = np.random.default_rng(seed)
    group = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    y = (rng.random(group.size) < positive).astype(np.float32)
    assume(all(min(split_sizes(n, fractions)) > 0 for n in sizes))  # else: an error, tested below
    parts = stratified_split(group, y, fractions, seed, [str(g) for g in range(len(sizes))])
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(group.size))
    for g, n in enumerate(sizes):
        for part, fraction in zip(parts, fractions):
            assert abs((group[part] == g).sum() - n * fraction) < 1 + 1e-9
            positives = ((group[part] == g) & (y[part] == 1)).sum()
            assert abs(positives - y[group == g].sum() * fraction) < 2 + 1e-9


def test_interleaving_keeps_prefixes_proportional() -> None:
    sequence = interleaved_assignment(split_sizes(1000, FRACTIONS))
    for end in (10, 99, 500, 1000):
        counts = np.bincount(sequence[:end], minlength=3)
        assert np.all(np.abs(counts - end * np.array(FRACTIONS)) <= 1)


def test_split_is_deterministic_in_the_seed() -> None:
    rng = np.random.default_rng(0)
    group, y = rng.integers(0, 3, 500), rng.integers(0, 2, 500)
    first = stratified_split(group, y, FRACTIONS, 7, ["a", "b", "c"])
    again = stratified_split(group, y, FRACTIONS, 7, ["a", "b", "c"])
    other = stratified_split(group, y, FRACTIONS, 8, ["a", "b", "c"])
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_empty_split_is_an_error() -> None:
    group = np.array([0] * 100 + [1] * 4)
    with pytest.raises(DataError, match=r"group 'tiny' has no row in the (val|test) split \(4 rows"):
        stratified_split(group, np.zeros(104), FRACTIONS, 0, ["big", "tiny"])


def test_standardise_uses_train_statistics_only() -> None:
    rng = np.random.default_rng(1)
    train, test = rng.normal(5, 3, (200, 4)), rng.normal(-2, 1, (50, 4))
    train[:, 3] = 7.0  # a constant column stays finite
    scaled_train, scaled_test = standardise(train, test)
    assert scaled_train.dtype == np.float32
    np.testing.assert_allclose(scaled_train[:, :3].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(scaled_train[:, :3].std(0), 1, atol=1e-5)
    assert np.all(scaled_train[:, 3] == 0)
    std = train.std(0)
    std[3] = 1.0
    np.testing.assert_allclose(scaled_test, (test - train.mean(0)) / std, rtol=1e-5, atol=1e-5)


def test_loaded_splits_are_scaled_with_train_statistics() -> None:
    data = load_dataset({"source": "synthetic", "n_rows": 3000, "seed": 3, "cache": False,
                         "groups": {"RAC1P": {"white": [1], "non-white": "rest"}}})
    np.testing.assert_allclose(data.train.X.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(data.train.X.std(0), 1, atol=1e-4)
    # Redo the pipeline by hand: the same rows, split and scaler.
    frame = synthetic.generate(3000, 3)
    raw = frame[[c for c in FEATURES if c != "RAC1P"]].to_numpy()
    group = (frame["RAC1P"] != 1).to_numpy().astype(np.int64)
    train, val, test = stratified_split(group, frame[LABEL].to_numpy(), FRACTIONS, 0,
                                        ["white", "non-white"])
    mean, std = raw[train].mean(0), raw[train].std(0)
    np.testing.assert_allclose(data.val.X, (raw[val] - mean) / std, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(data.test.X, (raw[test] - mean) / std, rtol=1e-4, atol=1e-4)
    assert abs(data.val.X.mean()) > 1e-4  # val is not re-centred on its own statistics


def test_loaded_group_shares_are_exact(all_rows) -> None:
    data = load_dataset({"source": "synthetic", "n_rows": 2000, "cache": False})
    _, group = all_rows(data)
    for split, fraction in zip(data.splits().values(), FRACTIONS):
        for g in range(data.n_groups):
            assert abs((split.group == g).sum() - (group == g).sum() * fraction) < 1 + 1e-9
