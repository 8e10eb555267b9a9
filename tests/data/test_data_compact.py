"""One-hot features prepared compact (fairbench/data/compact.py): level indices per split,
bit for bit the dense float32 preparation's rows, no dense matrix built, and memory-mapped
from the cache."""

from __future__ import annotations

import mmap

import numpy as np
import pandas as pd
import pytest

import fairbench.data.loader as loader
from fairbench.data import load_dataset, synthetic
from fairbench.data.compact import CompactX
from fairbench.errors import DataError


def spec_of(tmp_path, write_table) -> dict:
    for i, (state, n) in enumerate((("OK", 1500), ("VT", 700))):
        write_table(synthetic.generate(n, seed=20 + i), f"acs/preprocessed/{state}_0.csv")
    return {"root": str(tmp_path), "state": ["OK", "VT"], "encoding": "onehot", "protected": ["RAC1P"]}


def test_one_hot_splits_are_level_indices_equal_to_the_dense_rows(tmp_path, write_table, monkeypatch) -> None:
    spec = spec_of(tmp_path, write_table)

    def no_dense(*args, **kwargs):
        raise AssertionError("a one-hot preparation built the dense split arrays")

    with monkeypatch.context() as patch:
        patch.setattr(loader, "encode_splits", no_dense)
        compact = load_dataset({**spec, "cache": False})
    with monkeypatch.context() as patch:
        patch.setattr(loader, "is_compact", lambda plan: False)
        dense = load_dataset({**spec, "cache": False})
    assert compact.feature_names == dense.feature_names
    assert [a.tobytes() for a in compact.scale] == [a.tobytes() for a in dense.scale]
    width = len(compact.feature_names)
    for a, b in zip(compact.splits().values(), dense.splits().values()):
        assert isinstance(a.X, CompactX) and isinstance(b.X, np.ndarray)
        # ACSIncome minus RAC1P: AGEP and WKHP numeric, seven categorical columns
        assert a.X.codes.dtype == np.int16 and a.X.codes.shape == (len(a), 7)
        assert a.X.numeric.dtype == np.float32 and a.X.numeric.shape == (len(a), 2)
        assert a.X.shape == b.X.shape == (len(a), width) and a.X.nbytes < b.X.nbytes / 20
        assert np.asarray(a.X).tobytes() == b.X.tobytes()
        assert a.y.tobytes() == b.y.tobytes() and a.group.tobytes() == b.group.tobytes()


def _mapped(array: np.ndarray) -> bool:
    """Whether ``array`` views a memory map (through arrays and a memoryview)."""
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return isinstance(array, memoryview) and isinstance(array.obj, mmap.mmap)


def test_a_cache_hit_maps_the_level_indices(tmp_path, write_table) -> None:
    spec = spec_of(tmp_path, write_table)
    fresh = load_dataset(spec)
    hit = load_dataset(spec)
    for a, b in zip(fresh.splits().values(), hit.splits().values()):
        assert not _mapped(a.X.codes)
        assert all(_mapped(x) for x in (b.X.codes, b.X.numeric, b.X.off, b.X.on, b.y, b.group))
        assert b.X.off is hit.train.X.off  # the splits share the column values
        assert np.asarray(a.X).tobytes() == np.asarray(b.X).tobytes()


def test_a_value_outside_the_dictionary_is_refused(folktables_root) -> None:
    path = folktables_root / "2018" / "1-Year" / "psam_p40.csv"
    people = pd.read_csv(path)
    people.loc[0, "COW"] = 42
    people.to_csv(path, index=False)
    with pytest.raises(DataError, match="COW has values 42 that are not levels of the data dictionary"):
        load_dataset({"source": "folktables", "root": str(folktables_root), "encoding": "onehot",
                      "cache": False, "groups": {"RAC1P": {"white": [1], "non-white": "rest"}}})
