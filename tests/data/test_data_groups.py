"""Protected groups: binarisation, `rest`, intersections, and the FeDa4Fair coding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairbench.data.coding import FEDA4FAIR, RAW
from fairbench.data.config import parse_config
from fairbench.data.groups import assign_groups
from fairbench.errors import DataError

# Official codes: RAC1P 1 white, 2 black, 3/4/5 AIAN, 6 asian, 9 two or more; SEX 1/2.
RAW_FRAME = pd.DataFrame({"RAC1P": [1, 1, 2, 3, 5, 6, 9, 1], "SEX": [1, 2, 1, 2, 1, 1, 2, 1],
                          "MAR": [1, 2, 3, 4, 5, 1, 2, 5]}, dtype=float)
# The same people in FeDa4Fair coding: RAC1P 3 -> 4, 5 -> 4, 6 -> 3, 9 -> 5; MAR 2..5 -> 2.
MERGED_FRAME = pd.DataFrame({"RAC1P": [1, 1, 2, 4, 4, 3, 5, 1], "SEX": [1, 2, 1, 2, 1, 1, 2, 1],
                             "MAR": [1, 2, 2, 2, 2, 1, 2, 2]}, dtype=float)


def groups(frame: pd.DataFrame, coding: str = RAW, **cfg):
    return assign_groups(frame, parse_config(cfg), coding, "the test table", "get raw data")


def test_binarised_race() -> None:
    result = groups(RAW_FRAME, groups={"RAC1P": {"white": [1], "non-white": "rest"}})
    assert result.names == ["white", "non-white"]
    assert result.index.tolist() == [0, 0, 1, 1, 1, 1, 1, 0]
    assert result.keep.all() and result.note == ""


def test_rest_may_come_first_and_takes_the_unclaimed_values() -> None:
    result = groups(RAW_FRAME, groups={"RAC1P": {"others": "rest", "black": [2], "asian": [6]}})
    assert result.names == ["others", "black", "asian"]
    assert result.index.tolist() == [0, 0, 1, 0, 0, 2, 0, 0]


def test_one_group_per_value_without_a_spec() -> None:
    result = groups(RAW_FRAME, protected=["RAC1P"])
    assert result.names == ["RAC1P=1", "RAC1P=2", "RAC1P=3", "RAC1P=5", "RAC1P=6", "RAC1P=9"]
    assert result.index.tolist() == [0, 0, 1, 2, 3, 4, 5, 0]


def test_rows_outside_all_groups_are_dropped_and_counted() -> None:
    result = groups(RAW_FRAME, groups={"RAC1P": {"white": [1], "black": [2]}})
    assert result.keep.tolist() == [True, True, True, False, False, False, False, True]
    assert result.index.tolist() == [0, 0, 1, 0]
    assert result.note == "4 rows outside the groups dropped"


def test_intersectional_groups_drop_empty_combinations() -> None:
    result = groups(RAW_FRAME, protected=["RAC1P", "SEX"],
                    groups={"RAC1P": {"white": [1], "black": [2], "asian": [6]}})
    # black women and asian women do not occur.
    assert result.names == ["white & SEX=1", "white & SEX=2", "black & SEX=1", "asian & SEX=1"]
    kept = np.flatnonzero(result.keep)
    assert kept.tolist() == [0, 1, 2, 5, 7]
    assert result.index.tolist() == [0, 1, 2, 3, 0]


def test_a_group_without_rows_is_an_error() -> None:
    with pytest.raises(DataError, match=r"dataset.groups.RAC1P.nhpi=\(7,\): no row of the test table"):
        groups(RAW_FRAME, groups={"RAC1P": {"white": [1], "nhpi": [7]}})


def test_feda4fair_translation_of_official_codes() -> None:
    spec = {"RAC1P": {"white": [1], "black": [2], "asian": [6], "aian": [3, 4, 5], "other": [7, 8, 9]}}
    merged = groups(MERGED_FRAME, FEDA4FAIR, groups=spec)
    raw = groups(RAW_FRAME, RAW, groups=spec)
    assert merged.names == raw.names == list(spec["RAC1P"])
    assert merged.index.tolist() == raw.index.tolist() == [0, 0, 1, 3, 3, 2, 4, 0]


def test_feda4fair_rest_and_default_labels_use_official_codes() -> None:
    rest = groups(MERGED_FRAME, FEDA4FAIR, groups={"RAC1P": {"white": [1], "non-white": "rest"}})
    assert rest.index.tolist() == [0, 0, 1, 1, 1, 1, 1, 0]
    default = groups(MERGED_FRAME, FEDA4FAIR, protected=["RAC1P", "MAR"])
    assert "RAC1P=3-5 & MAR=2-5" in default.names and "RAC1P=6 & MAR=1" in default.names


def test_feda4fair_refuses_to_split_a_merged_class() -> None:
    spec = {"MAR": {"married": [1], "widowed": [2], "divorced": [3], "separated": [4],
                    "never-married": [5]}}
    assert groups(RAW_FRAME, RAW, protected=["MAR"], groups=spec).names == list(spec["MAR"])
    with pytest.raises(DataError) as info:
        groups(MERGED_FRAME, FEDA4FAIR, protected=["MAR"], groups=spec)
    message = str(info.value)
    assert message.startswith("dataset.groups.MAR.widowed=[2]: the test table uses the FeDa4Fair")
    assert "merges MAR codes 2-5" in message and "five marital groups" in message
    assert message.endswith("get raw data") and "\n" not in message


def test_feda4fair_accepts_unions_of_merged_classes() -> None:
    result = groups(MERGED_FRAME, FEDA4FAIR, protected=["MAR"],
                    groups={"MAR": {"married": [1], "not-married": [2, 3, 4, 5]}})
    assert result.index.tolist() == [0, 1, 1, 1, 1, 0, 1, 1]
