"""Fixtures for the data-stage tests: an isolated array cache, small data files in
folktables' and the table layout, and the real shared data when it is available."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairbench.data import PreparedData
from fairbench.data.coding import FEATURES, LABEL


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own array cache, never the user's."""
    path = tmp_path_factory.mktemp("array-cache")
    monkeypatch.setenv("FAIRBENCH_CACHE_DIR", str(path))
    return path


@pytest.fixture
def write_table(tmp_path: Path) -> Callable[..., Path]:
    """Write a frame as a preprocessed table (label stored as boolean PINCP by default)."""

    def write(frame: pd.DataFrame, relative: str = "preprocessed/OK_0.csv",
              label_as: str = "PINCP") -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        table = frame[list(FEATURES)].copy()
        table[label_as] = frame[LABEL].astype(bool) if label_as == "PINCP" else frame[LABEL]
        if path.name.endswith(".parquet"):
            table.to_parquet(path)
        else:
            table.to_csv(path, index=False)
        return path

    return write


def _labels_and_groups(data: PreparedData) -> tuple[np.ndarray, np.ndarray]:
    splits = data.splits().values()
    return np.concatenate([s.y for s in splits]), np.concatenate([s.group for s in splits])


@pytest.fixture
def all_rows() -> Callable[[PreparedData], tuple[np.ndarray, np.ndarray]]:
    """Labels and group ids over all three splits of a PreparedData."""
    return _labels_and_groups
