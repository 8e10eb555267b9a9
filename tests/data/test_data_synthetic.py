"""The embedded synthetic generator: deterministic, Oklahoma-like rates, learnable."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fairbench.data import load_dataset, synthetic
from fairbench.data.coding import FEATURES, LABEL

CONFIG = {"source": "synthetic", "n_rows": 18000, "seed": 0, "cache": False,
          "groups": {"RAC1P": {"white": [1], "non-white": "rest"}}}


def test_same_seed_same_arrays_and_other_seed_differs() -> None:
    first, again = load_dataset(CONFIG), load_dataset(CONFIG)
    other = load_dataset({**CONFIG, "seed": 1})
    for name, split in first.splits().items():
        for field in ("X", "y", "group"):
            assert np.array_equal(getattr(split, field), getattr(again.splits()[name], field))
    assert not np.array_equal(first.train.X, other.train.X)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positive_rates_match_oklahoma(seed: int, all_rows) -> None:
    data = load_dataset({**CONFIG, "seed": seed})
    y, group = all_rows(data)
    assert data.group_names == ["white", "non-white"]
    assert abs(y[group == 0].mean() - 0.308) < 0.015
    assert abs(y[group == 1].mean() - 0.207) < 0.015
    assert abs((group == 0).mean() - 0.745) < 0.02  # Oklahoma's white share


def test_flagged_synthetic() -> None:
    data = load_dataset(CONFIG)
    assert data.synthetic is True
    assert data.source.startswith("synthetic")
    assert data.feature_names == [c for c in FEATURES if c != "RAC1P"]
    assert (data.n_groups, data.n_features, len(data.train)) == (2, 9, 14400)


def test_learnable_well_above_the_base_rate() -> None:
    data = load_dataset(CONFIG)
    model = LogisticRegression(max_iter=1000).fit(data.train.X, data.train.y)
    accuracy = model.score(data.test.X, data.test.y)
    majority = max(data.test.y.mean(), 1 - data.test.y.mean())
    assert accuracy > 0.75 and accuracy > majority + 0.03


def test_groups_differ_in_features() -> None:
    frame = synthetic.generate(18000, 0)
    white = frame["RAC1P"] == 1
    college = frame["SCHL"] >= 21
    assert college[white].mean() - college[~white].mean() > 0.03


def test_schema_and_official_codes() -> None:
    frame = synthetic.generate(500, 5)
    assert list(frame.columns) == [*FEATURES, LABEL]
    assert set(frame["RAC1P"].unique()) <= {1, 2, 3, 6, 9}
    assert set(frame["MAR"].unique()) <= {1, 5}
    assert set(frame[LABEL].unique()) == {0, 1}
    assert frame["AGEP"].between(17, 95).all() and frame["WKHP"].between(1, 99).all()


def test_generation_is_fast() -> None:
    synthetic.generate(1000, 0)  # warm up the parameter file
    start = time.perf_counter()
    synthetic.generate(18000, 123)
    assert time.perf_counter() - start < 0.5


def test_draw_follows_the_parent_row() -> None:
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    parent = np.repeat(np.arange(3), 2000)
    drawn = synthetic.draw(np.random.default_rng(0), probs, parent)
    assert np.all(drawn[parent == 0] == 0) and np.all(drawn[parent == 1] == 2)
    assert abs((drawn[parent == 2] == 1).mean() - 0.5) < 0.05
