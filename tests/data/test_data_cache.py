"""The prepared-array cache: hits equal fresh builds, damage is repaired, hits are fast."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from fairbench.data import PreparedData, load_dataset
from fairbench.data.cache import SUFFIX

SYNTHETIC = {"source": "synthetic", "n_rows": 2000, "groups": {"RAC1P": {"white": [1], "non-white": "rest"}}}
OKLAHOMA = {"state": "OK", "groups": {"RAC1P": {"white": [1], "non-white": "rest"}}}


def assert_same(a: PreparedData, b: PreparedData) -> None:
    for name, split in a.splits().items():
        other = b.splits()[name]
        for field in ("X", "y", "group"):
            assert getattr(split, field).dtype == getattr(other, field).dtype
            np.testing.assert_array_equal(getattr(split, field), getattr(other, field))
    assert (a.feature_names, a.group_names, a.synthetic, a.source) == (
        b.feature_names, b.group_names, b.synthetic, b.source)


def entries(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob(f"*{SUFFIX}"))


def test_hit_equals_a_fresh_build(isolated_cache: Path) -> None:
    first = load_dataset(SYNTHETIC)
    assert len(entries(isolated_cache)) == 1
    assert_same(load_dataset(SYNTHETIC), first)
    assert_same(load_dataset({**SYNTHETIC, "cache": False}), first)


def test_different_settings_get_different_entries(isolated_cache: Path) -> None:
    load_dataset(SYNTHETIC)
    load_dataset({**SYNTHETIC, "split": {"seed": 1}})
    load_dataset({**SYNTHETIC, "encoding": "onehot", "root": str(isolated_cache / "no-dictionary")})
    assert len(entries(isolated_cache)) == 3


def test_changed_input_file_misses(tmp_path: Path, small_frame, write_table, isolated_cache: Path) -> None:
    path = write_table(small_frame)
    binary = {"RAC1P": {"white": [1], "non-white": "rest"}}  # (600 rows: too few for a group per value)
    load_dataset({"table": str(path), "groups": binary})
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    load_dataset({"table": str(path), "groups": binary})
    assert len(entries(isolated_cache)) == 2


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty"])
def test_damaged_entry_is_rebuilt(isolated_cache: Path, damage: str, caplog) -> None:
    fresh = load_dataset(SYNTHETIC)
    (entry,) = entries(isolated_cache)
    blob = bytearray(entry.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0xFF
    elif damage == "truncate":
        blob = blob[: len(blob) // 3]
    elif damage == "garbage":
        blob = bytearray(b"PK\x03\x04 not a cache entry")
    else:
        blob = bytearray()
    entry.write_bytes(bytes(blob))
    assert_same(load_dataset(SYNTHETIC), fresh)
    assert "rebuilding" in caplog.text
    assert_same(load_dataset(SYNTHETIC), fresh)  # the entry was rewritten intact
    assert entries(isolated_cache) == [entry]


def test_unusable_cache_directory_never_stops_a_run(tmp_path: Path, monkeypatch, caplog) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FAIRBENCH_CACHE_DIR", str(blocker / "arrays"))
    assert load_dataset(SYNTHETIC).n_groups == 2
    assert "could not write the data cache" in caplog.text


def test_no_temporary_files_are_left(isolated_cache: Path) -> None:
    load_dataset(SYNTHETIC)
    assert [p.suffix for p in isolated_cache.iterdir()] == [SUFFIX]


def _hit_seconds(cfg: dict) -> float:
    load_dataset(cfg)  # build and store
    start = time.perf_counter()
    load_dataset(cfg)
    return time.perf_counter() - start


def test_cache_hit_is_fast_synthetic() -> None:
    assert _hit_seconds(SYNTHETIC) < 0.3


def test_cache_hit_is_fast_oklahoma(acs_root: Path) -> None:
    assert _hit_seconds(OKLAHOMA) < 0.3
