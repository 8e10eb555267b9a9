"""Data lacking a label class where the metrics need both is refused (exit 2, nothing written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fairbench import cli
from fairbench.data import load_dataset
from fairbench.errors import DataError

BINARY = {"RAC1P": {"white": [1], "non-white": "rest"}}


def table_with_labels(small_frame, write_table, labels) -> Path:
    frame = small_frame.copy()
    frame["label"] = labels(frame).astype(np.int64)
    return write_table(frame, "t/OK.csv")


def load(path: Path):
    return load_dataset({"source": "table", "table": str(path), "groups": BINARY})


@pytest.mark.parametrize("value", [0, 1])
def test_a_table_with_one_label_class_is_refused(small_frame, write_table, value):
    path = table_with_labels(small_frame, write_table, lambda f: np.full(len(f), value))
    with pytest.raises(DataError, match=rf"every label of {path} is {value} \(.*600 rows\): a classifier "
                                        r"needs both classes"):
        load(path)


def test_a_split_without_positives_is_refused(small_frame, write_table):
    # two positives, both white: the stratified split puts them in train
    def labels(frame):
        out = np.zeros(len(frame))
        out[np.flatnonzero(frame["RAC1P"] == 1)[:2]] = 1
        return out

    path = table_with_labels(small_frame, write_table, labels)
    with pytest.raises(DataError, match=r"the val split of .* has no positive label \(\d+ rows\): its AUC"):
        load(path)


def test_a_group_without_positives_in_a_split_is_refused(small_frame, write_table):
    # non-white rows keep only 3 positives: too few for every split
    def labels(frame):
        out = frame["label"].to_numpy().copy()
        out[np.flatnonzero(frame["RAC1P"] != 1)[3:]] = 0
        out[np.flatnonzero(frame["RAC1P"] != 1)[:3]] = 1
        return out

    path = table_with_labels(small_frame, write_table, labels)
    with pytest.raises(DataError, match=r"group 'non-white' has no positive label in the (val|test) split "
                                        r"\(\d+ rows\): its TPR, FPR and AUC"):
        load(path)
    # the same labels with white / non-white merged away: every split has both classes
    assert load_dataset({"source": "table", "table": str(path), "protected": ["SEX"]}).n_groups == 2


def test_the_cli_refuses_a_one_class_table_and_writes_nothing(small_frame, write_table, tmp_path,
                                                               monkeypatch, capsys):
    path = table_with_labels(small_frame, write_table, lambda f: np.zeros(len(f)))
    out = tmp_path / "out"
    monkeypatch.setattr("sys.argv", ["fairbench", "dataset=oklahoma_race", f"dataset.table={path}",
                                     f"hydra.run.dir={out}", f"hydra.sweep.dir={out}"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and not out.exists()
    assert len(err) == 1 and err[0].startswith(f"fairbench: error: every label of {path} is 0")


THREE = {"RAC1P": {"white": [1], "black": [2], "other": "rest"}}


def one_class_labels(frame):
    """Black rows all negative, the others as generated."""
    out = frame["label"].to_numpy().copy()
    out[(frame["RAC1P"] == 2).to_numpy()] = 0
    return out


def test_the_size_rule_drops_groups_without_both_classes_and_reports_them(small_frame, write_table):
    path = table_with_labels(small_frame, write_table, one_class_labels)
    spec = {"source": "table", "table": str(path), "groups": THREE}
    with pytest.raises(DataError, match=r"group 'black' has no positive label .*set dataset.min_group_rows"):
        load_dataset(spec)  # the rule off: refused as before
    data = load_dataset({**spec, "min_group_rows": 1})
    assert data.group_names == ["white", "other"]
    lacking = data.rows["dropped_one_class"]
    assert lacking["black"].startswith("no positive label in train")
    assert set(lacking) <= set(data.rows["dropped_groups"])
    assert data.rows["dropped_groups"]["black"] == int((small_frame["RAC1P"] == 2).sum())
    assert "without both label classes in every split: black: no positive label in train" in data.source
    for split in data.splits().values():  # what is left holds both classes in every group
        for g in range(data.n_groups):
            assert set(np.unique(split.y[split.group == g])) == {0.0, 1.0}


def test_one_class_groups_merge_when_the_pool_holds_both_classes(small_frame, write_table):
    def labels(frame):  # black all negative, the rest all positive: pooled, both classes
        out = frame["label"].to_numpy().copy()
        out[(frame["RAC1P"] == 2).to_numpy()] = 0
        out[np.flatnonzero(~frame["RAC1P"].isin([1, 2]).to_numpy())] = 1
        return out

    path = table_with_labels(small_frame, write_table, labels)
    data = load_dataset({"source": "table", "table": str(path), "groups": THREE,
                         "min_group_rows": 1, "small_groups": "merge"})
    assert data.group_names == ["white", "merged: black | other"]
    assert data.rows["dropped_groups"] == {} and "dropped_one_class" not in data.rows


def test_groups_with_both_classes_are_kept_as_before(small_frame, write_table):
    path = table_with_labels(small_frame, write_table, lambda f: f["label"].to_numpy())
    spec = {"source": "table", "table": str(path), "groups": BINARY}
    assert load_dataset({**spec, "min_group_rows": 1}).rows == load_dataset(spec).rows | {"dropped_groups": {}}
