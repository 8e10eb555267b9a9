"""The shared real data (skipped unless FAIRBENCH_DATA_DIR points at it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from fairbench.data import load_dataset
from fairbench.errors import DataError
import configs


def config(name: str):
    return configs.dataset(name)


def test_oklahoma_race_matches_the_paper(acs_root: Path, all_rows) -> None:
    data = load_dataset(config("oklahoma_race"))
    y, group = all_rows(data)
    assert len(y) == 17917
    assert data.group_names == ["white", "non-white"]
    assert round(float(y[group == 0].mean()), 4) == 0.3079
    assert round(float(y[group == 1].mean()), 4) == 0.2076
    assert (len(data.train), len(data.val), len(data.test)) == (14333, 1792, 1792)
    assert data.n_features == 9 and "RAC1P" not in data.feature_names
    assert data.synthetic is False and "OK_0.csv" in data.source
    np.testing.assert_allclose(data.group_proportions(), [0.7451, 0.2549], atol=1e-3)


def test_virginia_race_has_five_groups(acs_root: Path, all_rows) -> None:
    data = load_dataset(config("virginia_race"))
    _, group = all_rows(data)
    assert data.group_names == ["white", "black", "asian", "aian", "other"]
    assert len(group) == 46144 and np.bincount(group).min() > 0


def test_virginia_marital_on_merged_data_is_refused(acs_root: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(config("virginia_marital"))
    message = str(info.value)
    assert "merges MAR codes 2-5" in message and "five marital groups" in message
    assert "psam_p51.csv" in message and "FAIRBENCH_DATA_DIR" in message
    assert "dataset.download=true" in message


def test_explicit_table_of_another_state(acs_root: Path, all_rows) -> None:
    table = acs_root / "preprocessed" / "feda4fair_acsincome_2018" / "other_states" / "VT_0.csv.gz"
    data = load_dataset({**OmegaConf.to_container(config("oklahoma_race")), "state": "VT",
                         "table": str(table)})
    y, _ = all_rows(data)
    assert (len(y), int(y.sum())) == (3767, 1293)
