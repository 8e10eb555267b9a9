"""Feature encodings: ordinal columns and one-hot levels from the PUMS data dictionary."""

from __future__ import annotations

from pathlib import Path

import folktables
import numpy as np
import pytest

from fairbench.data import load_dataset
from fairbench.data.coding import RAW
from fairbench.data.encoding import dictionary_levels, encode
from fairbench.errors import DataError


def test_ordinal_drops_the_protected_columns(small_frame) -> None:
    encoded = encode(small_frame, ("RAC1P", "SEX"), "ordinal", RAW, None)
    assert encoded.names == ["AGEP", "COW", "SCHL", "MAR", "OCCP", "POBP", "RELP", "WKHP"]
    np.testing.assert_array_equal(encoded.X, small_frame[encoded.names].to_numpy())


def test_onehot_from_a_dictionary(folktables_root: Path, small_frame) -> None:
    dictionary = folktables_root / "2018" / "1-Year" / "definition.csv"
    encoded = encode(small_frame, ("RAC1P",), "onehot", RAW, dictionary)
    assert encoded.note == ""
    assert encoded.names[0] == "AGEP" and "WKHP" in encoded.names
    cow = [i for i, n in enumerate(encoded.names) if n.startswith("COW=")]
    assert [encoded.names[i] for i in cow] == [f"COW={int(v)}" for v in sorted(small_frame.COW.unique())]
    np.testing.assert_array_equal(encoded.X[:, cow].sum(1), 1)
    assert not any(n.startswith("RAC1P") for n in encoded.names)


def test_onehot_through_folktables_with_its_dictionary(folktables_root: Path, small_frame) -> None:
    data = load_dataset({"source": "folktables", "root": str(folktables_root), "encoding": "onehot",
                         "protected": ["SEX"]})
    assert "no data dictionary" not in data.source
    categorical = ("COW", "SCHL", "MAR", "OCCP", "POBP", "RELP", "RAC1P")
    assert data.n_features == 2 + sum(small_frame[c].nunique() for c in categorical)
    assert data.group_names == ["SEX=1", "SEX=2"]


def test_onehot_without_dictionary_uses_the_data_and_says_so(folktables_root: Path) -> None:
    (folktables_root / "2018" / "1-Year" / "definition.csv").unlink()
    data = load_dataset({"source": "folktables", "root": str(folktables_root), "encoding": "onehot",
                         "groups": {"RAC1P": {"white": [1], "non-white": "rest"}}})
    assert "one-hot levels from the values in the data (no data dictionary found)" in data.source
    assert "SEX=1" in data.feature_names and "SEX=2" in data.feature_names


def test_value_missing_from_the_dictionary_is_an_error(folktables_root: Path, small_frame) -> None:
    dictionary = folktables_root / "2018" / "1-Year" / "definition.csv"
    frame = small_frame.copy()
    frame.loc[0, "COW"] = 42
    with pytest.raises(DataError, match="COW has values 42 that are not levels of the data dictionary"):
        encode(frame, ("RAC1P",), "onehot", RAW, dictionary)


def test_unreadable_dictionary(tmp_path: Path) -> None:
    path = tmp_path / "definition.csv"
    path.write_text("<html>403 Forbidden</html>\n")
    with pytest.raises(DataError, match="cannot read the data dictionary"):
        dictionary_levels(path)


def test_shared_dictionary_matches_folktables(acs_root: Path) -> None:
    source = folktables.ACSDataSource(survey_year="2018", horizon="1-Year", survey="person",
                                      root_dir=str(acs_root))
    expected = folktables.generate_categories(folktables.ACSIncome.features,
                                              source.get_definitions(download=False))
    levels = dictionary_levels(acs_root / "2018" / "1-Year" / "definition.csv")
    assert set(levels) == set(expected)
    for column, codes in levels.items():
        assert codes.tolist() == sorted(float(c) for c in expected[column] if c == c)
    assert {c: len(v) for c, v in levels.items()} == {
        "COW": 9, "SCHL": 24, "MAR": 5, "OCCP": 530, "POBP": 224, "RELP": 18, "SEX": 2, "RAC1P": 9}


def test_onehot_on_the_merged_table_uses_merged_levels(acs_root: Path) -> None:
    data = load_dataset({"state": "OK", "encoding": "onehot", "protected": ["SEX"], "cache": False,
                         "groups": {"SEX": {"male": [1], "female": [2]}}})
    assert [n for n in data.feature_names if n.startswith("MAR=")] == ["MAR=1", "MAR=2-5"]
    assert [n for n in data.feature_names if n.startswith("RAC1P=")] == [
        "RAC1P=1", "RAC1P=2", "RAC1P=6", "RAC1P=3-5", "RAC1P=7-9"]
    assert data.n_features == 2 + 9 + 24 + 2 + 530 + 224 + 18 + 5
    assert "FeDa4Fair coding" in data.source
