"""A table's coding (raw census codes or FeDa4Fair's merged ones) comes from its values.

Never from its file or folder name: a FeDa4Fair table copied anywhere is still read as
merged, and a raw table in a folder named ``feda4fair*`` is still read as raw.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairbench.data import load_dataset, synthetic
from fairbench.data.coding import FEDA4FAIR, MIN_ROWS_MERGED, RAW, decide_coding
from fairbench.errors import ConfigError, DataError

RACE_GROUPS = {"RAC1P": {"white": [1], "black": [2], "asian": [6], "aian": [3, 4, 5], "other": [7, 8, 9]}}
# FeDa4Fair's merge (PROVENANCE.md): official code -> merged code
MERGE = {"RAC1P": {1: 1, 2: 2, 6: 3, 3: 4, 4: 4, 5: 4, 7: 5, 8: 5, 9: 5}, "MAR": {1: 1, 2: 2, 3: 2, 4: 2, 5: 2}}


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    """4000 generated rows in official codes: every race group has positives in every split."""
    return synthetic.generate(4000, seed=1)


def merged(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column, mapping in MERGE.items():
        out[column] = out[column].astype(int).map(mapping).astype(float)
    return out


def load(path: Path, **cfg):
    return load_dataset({"source": "table", "table": str(path), "cache": False, **cfg})


def group_sizes(data) -> list[int]:
    groups = np.concatenate([s.group for s in data.splits().values()])
    return np.bincount(groups, minlength=data.n_groups).tolist()


def test_a_merged_table_outside_a_feda4fair_folder_is_read_as_merged(people, write_table):
    raw_path = write_table(people, "preprocessed/feda4fair_copy/OK_0.csv")  # raw codes, misleading name
    merged_path = write_table(merged(people), "elsewhere/OK.csv")
    raw = load(raw_path, groups=RACE_GROUPS)
    from_merged = load(merged_path, groups=RACE_GROUPS)
    # the same people in the same groups, whichever coding the file uses
    assert group_sizes(from_merged) == group_sizes(raw)
    assert from_merged.group_names == raw.group_names == list(RACE_GROUPS["RAC1P"])
    assert "FeDa4Fair coding" in from_merged.source and "from the data" in from_merged.source
    assert "FeDa4Fair" not in raw.source and "raw census codes (MAR has 5; RAC1P has 6,9)" in raw.source


def test_default_groups_of_a_merged_table_are_named_by_official_codes(people, write_table):
    data = load(write_table(merged(people), "t/OK.csv"), protected=["RAC1P"])
    assert data.group_names == ["RAC1P=1", "RAC1P=2", "RAC1P=6", "RAC1P=3-5", "RAC1P=7-9"]
    assert load(write_table(people, "u/OK.csv"), protected=["RAC1P"]).group_names == [
        "RAC1P=1", "RAC1P=2", "RAC1P=3", "RAC1P=6", "RAC1P=9"]


def test_a_declared_feda4fair_coding_that_the_values_contradict_is_refused(small_frame, write_table):
    path = write_table(small_frame, "feda4fair_tables/OK.csv")
    with pytest.raises(ConfigError) as info:
        load(path, table_coding="feda4fair")
    message = str(info.value)
    assert message.startswith("dataset.table_coding='feda4fair': ") and str(path) in message
    assert "MAR has 5; RAC1P has 6,9" in message and "accepted for this table: raw or auto" in message


def test_an_undecidable_table_is_refused_where_the_coding_matters(small_frame, write_table):
    few = merged(small_frame).iloc[: MIN_ROWS_MERGED - 1]
    path = write_table(few, "t/OK.csv")
    with pytest.raises(DataError, match=r"cannot tell from the data whether .* set dataset.table_coding=raw "
                                        r"or dataset.table_coding=feda4fair"):
        load(path, protected=["RAC1P"])
    # declared, it loads; with SEX protected and ordinal features the coding changes nothing
    binary = {"RAC1P": {"white": [1], "non-white": "rest"}}
    assert load(path, groups=binary, table_coding="feda4fair").n_groups == 2
    assert load(path, protected=["SEX"]).group_names == ["SEX=1", "SEX=2"]


def test_decide_coding_rules():
    mar, race = np.array([1.0, 2.0] * 100), np.array([1.0, 3.0] * 100)
    assert decide_coding({"MAR": mar, "RAC1P": race}, "auto", "t", True)[0] == FEDA4FAIR
    assert decide_coding({"MAR": mar, "RAC1P": race + 5}, "auto", "t", True)[0] == RAW  # RAC1P 6, 8
    assert decide_coding({"MAR": mar[:-1] + 2, "RAC1P": race[:-1]}, "auto", "t", True)[0] == RAW
    assert decide_coding({"MAR": np.ones(400), "RAC1P": race}, "raw", "t", True)[0] == RAW
    assert decide_coding({"MAR": np.ones(400), "RAC1P": race}, "auto", "t", False)[0] == RAW
    with pytest.raises(DataError):
        decide_coding({"MAR": np.ones(400), "RAC1P": race}, "auto", "t", True)  # married only


def test_the_shared_feda4fair_table_copied_elsewhere_stays_merged(acs_root, tmp_path):
    source = acs_root / "preprocessed" / "feda4fair_acsincome_2018" / "other_states" / "VT_0.csv.gz"
    copy = tmp_path / "my_tables" / "VT.csv.gz"
    copy.parent.mkdir()
    shutil.copy(source, copy)
    spec = {"RAC1P": {"white": [1], "asian": [6], "other": [7, 8, 9]}}
    original, copied = load(source, state="VT", groups=spec), load(copy, state="VT", groups=spec)
    assert group_sizes(copied) == group_sizes(original)
    table = pd.read_csv(source)
    # merged code 3 = official 6; read as raw codes, "asian" would find no row at all
    assert group_sizes(copied)[1] == int((table["RAC1P"] == 3).sum())
