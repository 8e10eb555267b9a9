"""Large-scale data: several states, default and intersectional groupings, the size rule,
the float32 per-split preparation (bit for bit the float64 one), the memory-mapped cache,
and the two forms of the data root."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fairbench.data import load_dataset
from fairbench.data.arrays import encode_splits, standardise_in_place
from fairbench.data.coding import RAW
from fairbench.data.config import parse_config
from fairbench.data.encoding import encode, plan_encoding
from fairbench.data.split import standardise, stratified_split
from fairbench.data import synthetic
from fairbench.errors import ConfigError, DataError


def tables(tmp_path: Path, write_table, states=("OK", "VT"), rows=(1500, 700)) -> Path:
    for i, (state, n) in enumerate(zip(states, rows)):
        write_table(synthetic.generate(n, seed=10 + i), f"acs/preprocessed/{state}_0.csv")
    return tmp_path


@pytest.mark.parametrize("encoding", ["ordinal", "onehot"])
def test_float32_chunks_equal_the_float64_matrix_bit_for_bit(encoding: str) -> None:
    frame = synthetic.generate(3000, seed=4)
    group = (frame["RAC1P"].to_numpy() != 1).astype(np.int64)
    y = frame["label"].to_numpy(dtype=np.float32)
    indices = stratified_split(group, y, (0.8, 0.1, 0.1), 0, ["a", "b"])
    whole = encode(frame, ("RAC1P",), encoding, RAW, None)
    expected = standardise(*(whole.X[i] for i in indices))
    plan = plan_encoding(frame, ("RAC1P",), encoding, RAW, None, None)
    for chunk_rows, block_bytes in ((257, 3 * 8 * 2400), (100_000, 1 << 30)):
        arrays = encode_splits(frame, plan, indices, chunk_rows=chunk_rows)
        standardise_in_place(*arrays, block_bytes=block_bytes, chunk_rows=chunk_rows)
        for got, want in zip(arrays, expected):
            assert got.dtype == np.float32 and got.tobytes() == want.tobytes()


def test_several_states_are_pooled_with_rows_per_state(tmp_path, write_table) -> None:
    root = tables(tmp_path, write_table)
    data = load_dataset({"root": str(root), "state": ["ok", "VT"], "protected": ["RAC1P"],
                         "groups": {"RAC1P": {"white": [1], "non-white": "rest"}}})
    assert data.rows["per_state"] == {"OK": 1500, "VT": 700}
    assert sum(len(s) for s in data.splits().values()) == 2200
    assert set(data.rows["per_group"]) == {"white", "non-white"}
    everything = load_dataset({"root": str(root), "state": "all", "protected": ["ST"]})
    assert everything.group_names == ["OK", "VT"]  # the state as protected attribute, FIPS order
    for name, counts in everything.rows["per_group"].items():
        total = everything.rows["per_state"][name]
        assert abs(counts["train"] - 0.8 * total) <= 1 and abs(counts["test"] - 0.1 * total) <= 1


def test_older_root_form_still_works(tmp_path, write_table) -> None:
    root = tables(tmp_path, write_table)
    data = load_dataset({"root": str(root / "acs"), "state": "VT", "protected": ["SEX"]})
    assert data.rows["per_state"] == {"VT": 700}


@pytest.mark.parametrize(("state", "text"), [
    ("XX", "accepted: AL"), ([], "non-empty list"), (["OK", "XX"], "codes: AL"),
    (["OK", "ok"], "must not repeat")])
def test_bad_states_are_refused(state, text) -> None:
    with pytest.raises(ConfigError, match=text) as info:
        parse_config({"state": state})
    assert info.value.key == "dataset.state"


def test_all_states_on_an_empty_root(tmp_path) -> None:
    with pytest.raises(DataError, match="dataset.state=all: no state has ACS 2018"):
        load_dataset({"root": str(tmp_path), "state": "all"})


def test_default_groupings_make_intersections_without_overrides() -> None:
    data = load_dataset({"source": "synthetic", "protected": ["RAC1P", "SEX"]})
    assert "RAC1P=1 & SEX=1" in data.group_names and "RAC1P=2 & SEX=2" in data.group_names
    ages = load_dataset({"source": "synthetic", "protected": ["AGEP"]})
    assert ages.group_names[0] == "AGEP=17-24" and ages.group_names[-1] == "AGEP=65+"
    config = parse_config({"protected": ["AGEP", "ST"], "groups": {"ST": {"south": ["ok", "TX"], "other": "rest"}}})
    assert config.groups_of("ST") == (("south", (40, 48)), ("other", "rest"))
    assert config.groups_of("AGEP")[0] == ("AGEP=17-24", tuple(range(17, 25)))


@pytest.mark.parametrize("action", ["drop", "merge"])
def test_size_rule_in_every_split(action: str) -> None:
    base = {"source": "synthetic", "n_rows": 6000, "protected": ["RAC1P"], "small_groups": action,
            "groups": {"RAC1P": {"white": [1], "black": [2], "asian": [6], "other": "rest"}}}
    every = load_dataset(base)
    test_rows = {n: c["test"] for n, c in every.rows["per_group"].items()}
    cut = sorted(test_rows.values())[-2]  # the two largest groups stay
    small = sorted(n for n, rows in test_rows.items() if rows < cut)
    data = load_dataset({**base, "min_group_rows": cut})
    assert min(min(c.values()) for c in data.rows["per_group"].values()) >= cut
    merged = [n for n in data.group_names if n.startswith("merged: ")]
    if action == "drop":
        assert sorted(data.rows["dropped_groups"]) == small and len(data.group_names) == 2
    else:
        label = "merged: " + " | ".join(n for n in every.group_names if n in small)
        assert merged == [label] or list(data.rows["dropped_groups"]) == [label]
    assert "dropped" in data.source or merged
    for split in data.splits().values():
        assert np.bincount(split.group, minlength=data.n_groups).min() >= cut


def test_size_rule_leaving_one_group_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"dataset.min_group_rows=100000: leaves 0 of 2 groups"):
        load_dataset({"source": "synthetic", "protected": ["SEX"], "min_group_rows": 100000})


@pytest.mark.parametrize("encoding", ["ordinal", "onehot"])
def test_cache_hit_is_memory_mapped_and_keeps_the_row_counts(tmp_path, write_table, encoding) -> None:
    root = tables(tmp_path, write_table)
    spec = {"root": str(root), "state": ["OK", "VT"], "encoding": encoding, "protected": ["SEX"]}
    fresh = load_dataset(spec)
    hit = load_dataset(spec)
    assert hit.rows == fresh.rows and hit.group_names == fresh.group_names
    for a, b in zip(fresh.splits().values(), hit.splits().values()):
        assert np.asarray(a.X).tobytes() == np.asarray(b.X).tobytes() and a.group.tobytes() == b.group.tobytes()
    # one-hot features are cached compact (fairbench/data/compact.py): their level indices
    arrays = [hit.train.X] if encoding == "ordinal" else [hit.train.X.codes, hit.train.X.numeric]
    for array in arrays:
        assert not array.flags.owndata and array.flags.writeable
        array[0, 0] = 1  # copy-on-write: the entry on disk is untouched
    assert np.asarray(load_dataset(spec).train.X)[0].tobytes() == np.asarray(fresh.train.X)[0].tobytes()


def test_states_of_different_codings_are_refused_when_it_matters(tmp_path, write_table) -> None:
    tables(tmp_path, write_table)
    merged = synthetic.generate(600, seed=3)
    merged["MAR"] = np.where(merged["MAR"] == 1, 1, 2)
    merged["RAC1P"] = np.minimum(merged["RAC1P"], 5)
    write_table(merged, "acs/preprocessed/VA_0.csv")
    with pytest.raises(DataError, match="different codings"):
        load_dataset({"root": str(tmp_path), "state": ["OK", "VA"], "encoding": "onehot"})
