"""Shared test settings: never touch the user's cache; know where the real census data is."""

import os
from pathlib import Path

import pytest

REAL_DATA = os.environ.get("FAIRBENCH_DATA_DIR")


def real_data_dir() -> Path:
    """The shared ACS data, or skip the test saying why."""
    if not REAL_DATA:
        pytest.skip("FAIRBENCH_DATA_DIR is not set: real ACS data not available")
    path = Path(REAL_DATA)
    if not (path / "preprocessed").is_dir() and not any(path.glob("*/1-Year")):
        pytest.skip(f"FAIRBENCH_DATA_DIR={path} holds no ACS data")
    return path


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    """One array cache for the whole session, outside the user's home."""
    if "FAIRBENCH_CACHE_DIR" not in os.environ or not os.environ.get("CI"):
        os.environ["FAIRBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("fairbench-cache"))
    yield
