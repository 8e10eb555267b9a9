"""Finding and reading data: folktables files, preprocessed tables, missing data, downloads."""

from __future__ import annotations

import importlib
import io
import re
import zipfile
from pathlib import Path

import folktables
import numpy as np
import pandas as pd
import pytest
import requests

from fairbench.data import data_root, load_dataset
from fairbench.data.coding import FEATURES, RAW
from fairbench.data.config import parse_config
from fairbench.data.paths import STATE_FIPS, person_file
from fairbench.data.sources import FOLKTABLES_STATES, find_table, read_table, resolve_source
from fairbench.errors import DataError

# The module itself: the package attribute `folktables.load_acs` is a function of that name.
LOAD_ACS = importlib.import_module("folktables.load_acs")
BINARY = {"RAC1P": {"white": [1], "non-white": "rest"}}


def folktables_config(root: Path, **extra) -> dict:
    return {"source": "folktables", "root": str(root), "groups": BINARY, "cache": False, **extra}


# ---------------------------------------------------------------- agreement with folktables


def test_schema_and_state_codes_agree_with_folktables() -> None:
    assert FEATURES == tuple(folktables.ACSIncome.features)
    assert FOLKTABLES_STATES == set(LOAD_ACS.state_list)
    assert {s: STATE_FIPS[s] for s in FOLKTABLES_STATES} == LOAD_ACS._STATE_CODES


@pytest.mark.parametrize(("year", "name"), [(2018, "psam_p40.csv"), (2015, "ss15pok.csv")])
def test_person_file_is_where_folktables_looks(tmp_path: Path, year: int, name: str) -> None:
    expected = person_file(tmp_path, "OK", year, "1-Year")
    assert expected.name == name
    expected.parent.mkdir(parents=True)
    expected.touch()
    found = LOAD_ACS.initialize_and_download(str(expected.parent), "OK", year, "1-Year",
                                                        "person", download=False)
    assert Path(found) == expected


def test_data_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRBENCH_DATA_DIR", str(tmp_path / "env"))
    assert data_root(tmp_path / "cfg") == tmp_path / "cfg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("FAIRBENCH_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "fairbench" / "data"


# ---------------------------------------------------------------- folktables source


def test_folktables_file_goes_through_acs_income(folktables_root: Path, small_frame, all_rows) -> None:
    data = load_dataset(folktables_config(folktables_root))
    y, group = all_rows(data)
    assert len(y) == len(small_frame)  # the four records failing the ACSIncome filter are gone
    assert y.sum() == small_frame["label"].sum()
    assert (group == 0).sum() == (small_frame["RAC1P"] == 1).sum()
    assert data.synthetic is False
    assert "psam_p40.csv" in data.source and "ACSIncome filter" in data.source


def test_auto_prefers_the_raw_file_over_a_table(folktables_root: Path, small_frame, write_table) -> None:
    write_table(small_frame, "acs/preprocessed/OK_0.csv")
    config = parse_config({"root": str(folktables_root)})
    assert resolve_source(config).kind == "folktables"
    (folktables_root / "2018" / "1-Year" / "psam_p40.csv").unlink()
    assert resolve_source(config).kind == "table"


def test_raw_file_without_acs_income_columns(folktables_root: Path) -> None:
    path = folktables_root / "2018" / "1-Year" / "psam_p40.csv"
    pd.read_csv(path).drop(columns=["PWGTP", "COW"]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"psam_p40.csv lacks the columns COW, PWGTP"):
        load_dataset(folktables_config(folktables_root))


# ---------------------------------------------------------------- missing data


@pytest.mark.parametrize("source", ["auto", "folktables", "table"])
def test_missing_data_is_a_clear_error_without_side_effects(tmp_path: Path, source: str) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DataError) as info:
        load_dataset({"source": source, "root": str(root), "state": "OK", "year": 2018})
    message = str(info.value)
    assert "OK 2018" in message or "for OK" in message
    assert "FAIRBENCH_DATA_DIR" in message and "dataset.download=true" in message
    assert str(root / "preprocessed") in message and "\n" not in message
    if source != "table":
        assert str(root / "2018" / "1-Year" / "psam_p40.csv") in message
    assert list(root.iterdir()) == []  # folktables would have created 2018/1-Year


def test_missing_root_is_not_created(tmp_path: Path) -> None:
    root = tmp_path / "nowhere" / "acs"
    with pytest.raises(DataError):
        load_dataset({"root": str(root)})
    assert not (tmp_path / "nowhere").exists()


def test_missing_explicit_table(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset.table=.*missing.csv: no such file"):
        load_dataset({"source": "table", "table": str(tmp_path / "missing.csv")})


# ---------------------------------------------------------------- downloads


class FakeResponse:
    def __init__(self, content: bytes, status_code: int = 200) -> None:
        self.content, self.status_code = content, status_code


def _serve(monkeypatch: pytest.MonkeyPatch, reply) -> list[str]:
    urls: list[str] = []

    def get(url, *args, **kwargs):
        urls.append(url)
        return reply(url)

    monkeypatch.setattr(LOAD_ACS.requests, "get", get)
    return urls


def test_http_403_becomes_a_data_error_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    urls = _serve(monkeypatch, lambda url: FakeResponse(b"<html>403 Forbidden</html>", 403))
    root = tmp_path / "acs"
    with pytest.raises(DataError) as info:
        load_dataset(folktables_config(root, download=True))
    assert urls == ["https://www2.census.gov/programs-surveys/acs/data/pums/2018/1-Year/csv_pok.zip"]
    message = str(info.value)
    assert "downloading the 2018 1-Year ACS person data for OK failed" in message
    assert "not a zip file" in message and "nothing was saved" in message and "\n" not in message
    assert list(root.rglob("*")) == []


def test_no_network_becomes_a_data_error(tmp_path: Path, monkeypatch) -> None:
    def refuse(url):
        raise requests.ConnectionError("Name or service not known")

    _serve(monkeypatch, refuse)
    with pytest.raises(DataError, match=r"failed \(Name or service not known\)"):
        load_dataset(folktables_config(tmp_path, download=True, source="auto"))
    assert list(tmp_path.rglob("*")) == []


def test_download_is_moved_into_the_folktables_layout(tmp_path: Path, folktables_root: Path,
                                                      monkeypatch) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(folktables_root / "2018" / "1-Year" / "psam_p40.csv", "psam_p40.csv")
    _serve(monkeypatch, lambda url: FakeResponse(archive.getvalue()))
    root = tmp_path / "fresh"
    data = load_dataset(folktables_config(root, download=True))
    assert data.n_groups == 2
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "2018", "2018/1-Year", "2018/1-Year/psam_p40.csv"]


def test_failed_dictionary_download(folktables_root: Path, monkeypatch) -> None:
    (folktables_root / "2018" / "1-Year" / "definition.csv").unlink()
    _serve(monkeypatch, lambda url: FakeResponse(b"<html>403 Forbidden</html>", 403))
    with pytest.raises(DataError, match="downloading the 2018 1-Year ACS data dictionary failed"):
        load_dataset(folktables_config(folktables_root, download=True, encoding="onehot"))
    assert not (folktables_root / "2018" / "1-Year" / "definition.csv").exists()
    assert sorted(p.name for p in folktables_root.iterdir()) == ["2018"]


def test_without_download_folktables_never_fetches(tmp_path: Path, monkeypatch) -> None:
    urls = _serve(monkeypatch, lambda url: FakeResponse(b""))
    with pytest.raises(DataError):
        load_dataset(folktables_config(tmp_path))
    assert urls == []


# ---------------------------------------------------------------- tables


@pytest.mark.parametrize(("name", "label_as"), [
    ("preprocessed/OK_0.csv", "PINCP"), ("preprocessed/x/OK.csv.gz", "label"),
    ("preprocessed/y/OK_1.parquet", "PINCP"),
])
def test_table_formats_and_discovery(tmp_path: Path, small_frame, write_table, name, label_as) -> None:
    path = write_table(small_frame, name, label_as)
    config = parse_config({"root": str(tmp_path)})
    assert find_table(config) == path
    frame = read_table(path)
    np.testing.assert_array_equal(frame["label"], small_frame["label"])
    np.testing.assert_array_equal(frame[list(FEATURES)], small_frame[list(FEATURES)])


def test_table_years_other_than_the_configs_are_skipped(tmp_path: Path, small_frame, write_table) -> None:
    write_table(small_frame, "preprocessed/acs_2019/OK_0.csv")
    config = parse_config({"root": str(tmp_path)})
    assert find_table(config) is None
    wanted = write_table(small_frame, "preprocessed/acs_2018/OK_0.csv")
    write_table(small_frame, "preprocessed/OK_0.csv")
    assert find_table(config) == wanted


def test_ambiguous_tables_are_an_error(tmp_path: Path, small_frame, write_table) -> None:
    write_table(small_frame, "preprocessed/a/OK_0.csv")
    write_table(small_frame, "preprocessed/b/OK_0.csv")
    with pytest.raises(DataError, match="several tables for OK.*set dataset.table"):
        find_table(parse_config({"root": str(tmp_path)}))


def test_table_coding_is_not_taken_from_the_folder_name(tmp_path: Path, small_frame, write_table) -> None:
    # the coding is decided from the values once they are read (tests/data/test_data_coding.py)
    merged = write_table(small_frame, "preprocessed/feda4fair_2018/VA_0.csv")
    assert resolve_source(parse_config({"table": str(merged)})).coding == "auto"
    forced = parse_config({"table": str(merged), "table_coding": "raw"})
    assert resolve_source(forced).coding == RAW


def test_missing_column_is_named(small_frame, write_table) -> None:
    path = write_table(small_frame)
    pd.read_csv(path).drop(columns=["SCHL", "OCCP"]).to_csv(path, index=False)
    with pytest.raises(DataError, match=re.escape(f"the table {path} lacks the columns SCHL, OCCP;")):
        read_table(path)


def test_missing_label_column_is_named(small_frame, write_table) -> None:
    path = write_table(small_frame, label_as="income_class")
    with pytest.raises(DataError, match=r"lacks the columns PINCP \(or label\)"):
        read_table(path)


def test_non_binary_label_is_named(small_frame, write_table) -> None:
    frame = small_frame.astype({"label": np.int64})
    frame.loc[:2, "label"] = [2, 7, 7]
    path = write_table(frame, label_as="label")
    with pytest.raises(DataError, match=re.escape(f"label column label of {path} must be binary") + ".*found 2, 7"):
        read_table(path)


def test_string_labels_are_accepted(small_frame, write_table) -> None:
    path = write_table(small_frame, label_as="label")
    table = pd.read_csv(path)
    table["PINCP"] = np.where(table.pop("label") == 1, "true", "False")
    table.to_csv(path, index=False)
    np.testing.assert_array_equal(read_table(path)["label"], small_frame["label"])


def test_non_numeric_feature_is_named(small_frame, write_table) -> None:
    frame = small_frame.astype({"COW": object})
    frame.loc[3, "COW"] = "private"
    path = write_table(frame)
    with pytest.raises(DataError, match=re.escape(f"column COW of {path} has missing or non-numeric values ('private')")):
        read_table(path)


def test_unreadable_table_is_reported_by_path(tmp_path: Path) -> None:
    path = tmp_path / "preprocessed" / "OK_0.csv.gz"
    path.parent.mkdir()
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=re.escape(f"cannot read the table {path}")):
        load_dataset({"root": str(tmp_path)})
