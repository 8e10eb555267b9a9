"""Validation of the dataset config: every bad value is a one-line ConfigError naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairbench.data.config import parse_config
from fairbench.errors import ConfigError
import configs


@pytest.mark.parametrize("name", ["synthetic", "oklahoma_race", "virginia_race", "virginia_marital"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = parse_config(configs.dataset(name))
    assert config.name == name
    assert config.split.fractions == (0.8, 0.1, 0.1)


def test_virginia_configs_use_official_codes() -> None:
    race = parse_config(configs.dataset("virginia_race")).groups_of("RAC1P")
    assert race == (("white", (1,)), ("black", (2,)), ("asian", (6,)), ("aian", (3, 4, 5)),
                    ("other", (7, 8, 9)))
    marital = parse_config(configs.dataset("virginia_marital")).groups_of("MAR")
    assert [codes for _, codes in marital] == [(1,), (2,), (3,), (4,), (5,)]


def test_defaults_and_normalisation() -> None:
    config = parse_config({"state": "va", "protected": "MAR"})
    assert (config.state, config.protected, config.source, config.year) == ("VA", ("MAR",), "auto", 2018)
    assert config.groups_of("MAR") is None


@pytest.mark.parametrize(("override", "key"), [
    ({"source": "web"}, "dataset.source"),
    ({"encoding": "binary"}, "dataset.encoding"),
    ({"state": "XX"}, "dataset.state"),
    ({"year": 2013}, "dataset.year"),
    ({"year": 2024}, "dataset.year"),
    ({"year": "2018"}, "dataset.year"),
    ({"horizon": "3-Year"}, "dataset.horizon"),
    ({"protected": ["PINCP"]}, "dataset.protected"),
    ({"protected": []}, "dataset.protected"),
    ({"protected": ["SEX", "SEX"]}, "dataset.protected"),
    ({"groups": {"SEX": {"f": [2]}}}, "dataset.groups.SEX"),
    ({"groups": {"RAC1P": {"white": ["1"]}}}, "dataset.groups.RAC1P.white"),
    ({"groups": {"RAC1P": {"white": [1.0]}}}, "dataset.groups.RAC1P.white"),
    ({"groups": {"RAC1P": {"white": []}}}, "dataset.groups.RAC1P.white"),
    ({"groups": {"RAC1P": {"a": [1], "b": [1, 2]}}}, "dataset.groups.RAC1P.b"),
    ({"groups": {"RAC1P": {"a": "rest", "b": "rest"}}}, "dataset.groups.RAC1P"),
    ({"split": {"train": 0.8, "val": 0.1, "test": 0.05}}, "dataset.split"),
    ({"split": {"train": 0.9, "val": 0.1, "test": 0.0}}, "dataset.split.test"),
    ({"split": {"train": 1.2, "val": -0.1, "test": -0.1}}, "dataset.split.train"),
    ({"split": {"seed": -1}}, "dataset.split.seed"),
    ({"split": {"train": 0.8, "valid": 0.2}}, "dataset.split"),
    ({"table_coding": "merged"}, "dataset.table_coding"),
    ({"download": "yes"}, "dataset.download"),
    ({"n_rows": 99}, "dataset.n_rows"),
    ({"seed": 1.5}, "dataset.seed"),
    ({"sorce": "table"}, "dataset.sorce"),
])
def test_invalid_values_name_the_key(override: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(override)
    assert info.value.key == key
    assert str(info.value).startswith(key + "=")
    assert "\n" not in str(info.value)


def test_protected_error_lists_the_accepted_columns() -> None:
    with pytest.raises(ConfigError, match="AGEP, COW, SCHL, MAR, OCCP, POBP, RELP, WKHP, SEX, RAC1P"):
        parse_config({"protected": ["income"]})


def test_identity_ignores_where_and_whether_to_cache(tmp_path: Path) -> None:
    base = parse_config({"root": str(tmp_path), "cache": True, "download": False})
    other = parse_config({"root": None, "cache": False, "download": True})
    assert base.identity() == other.identity()
    assert parse_config({"split": {"seed": 1}}).identity() != base.identity()
