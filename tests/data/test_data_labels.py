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
