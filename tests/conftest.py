"""Shared test fixtures: an isolated array cache, the real census data when present, and
small data in folktables' cache layout written by the tests themselves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairbench.data import synthetic
from fairbench.data.coding import FEATURES, LABEL
from fairbench.data.paths import source_root
from fairbench.data.schema import DUTCH_FILE


def pytest_configure(config):
    """Under pytest-xdist (``addopts``: two workers, one per core) each worker computes on one
    thread, as fairbench's own jobs do: two workers with two threads each would share the two
    cores four ways, which slows small matrix work many times over. Only the worker's own
    libraries are limited (no environment variable), so the subprocesses that tests start see
    the defaults."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    import scipy.linalg  # noqa: F401  (load scipy's BLAS first: the limit applies to loaded libraries)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    """One array cache for the whole session (subprocesses inherit it), never the user's."""
    os.environ["FAIRBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("fairbench-cache"))
    yield


@pytest.fixture(scope="session")
def acs_root() -> Path:
    """The real ACS root from FAIRBENCH_DATA_DIR (the shared data folder of sources, or its
    ACS folder directly), else skip."""
    value = os.environ.get("FAIRBENCH_DATA_DIR")
    if not value:
        pytest.skip("FAIRBENCH_DATA_DIR is not set (point it at the shared data folder)")
    root = source_root(Path(value), "acs")
    if not (root / "preprocessed").is_dir():
        pytest.skip(f"FAIRBENCH_DATA_DIR={root} has no preprocessed/ folder")
    return root


@pytest.fixture(scope="session")
def dutch_file() -> Path:
    """The real Dutch census file under FAIRBENCH_DATA_DIR (a folder of sources), else skip."""
    value = os.environ.get("FAIRBENCH_DATA_DIR")
    if not value:
        pytest.skip("FAIRBENCH_DATA_DIR is not set (point it at the shared data folder)")
    path = source_root(Path(value), "dutch") / DUTCH_FILE
    if not path.is_file():
        pytest.skip(f"no {DUTCH_FILE} under FAIRBENCH_DATA_DIR={value} (needs a folder of sources)")
    return path


@pytest.fixture
def small_frame() -> pd.DataFrame:
    """600 generated ACSIncome rows (official codes) with a 0/1 label."""
    return synthetic.generate(600, seed=1)


def raw_person_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn labelled rows into raw PUMS person records that pass the ACSIncome filter,
    plus four records the filter must drop (age, income, hours, weight)."""
    raw = frame[list(FEATURES)].astype(np.int64).copy()
    raw["PINCP"] = np.where(frame[LABEL] == 1, 60000, 50000)  # 50,000 is not > 50,000
    raw["PWGTP"] = 12
    dropped = raw.iloc[:4].copy()
    dropped["AGEP"] = [15, 40, 40, 40]
    dropped["PINCP"] = [60000, 80, 60000, 60000]
    dropped["WKHP"] = [40, 40, 0, 40]
    dropped["PWGTP"] = [12, 12, 12, 0]
    raw = pd.concat([raw, dropped], ignore_index=True)
    raw.insert(0, "RT", "P")
    raw.insert(1, "SERIALNO", [f"2018HU{i:07d}" for i in range(len(raw))])
    raw.insert(2, "ST", 40)
    return raw


def tiny_dictionary(frame: pd.DataFrame) -> str:
    """A PUMS data dictionary (census CSV format) covering the frame's codes."""
    lines = ['NAME,RT,C,1,"Record Type"']
    for column in FEATURES:
        if column in ("AGEP", "WKHP"):
            lines.append(f'VAL,{column},N,2,0,99,"{column} value"')
            continue
        lines.append(f'VAL,{column},C,1,"b","b","N/A"')
        for code in sorted(frame[column].astype(int).unique()):
            lines.append(f'VAL,{column},C,1,"{code}","{code}","{column} code {code}"')
    return "\n".join(lines) + "\n"


@pytest.fixture
def folktables_root(tmp_path: Path, small_frame: pd.DataFrame) -> Path:
    """A folktables cache with a tiny 2018 1-Year Oklahoma person file and dictionary."""
    root = tmp_path / "acs"
    folder = root / "2018" / "1-Year"
    folder.mkdir(parents=True)
    raw_person_rows(small_frame).to_csv(folder / "psam_p40.csv", index=False)
    (folder / "definition.csv").write_text(tiny_dictionary(small_frame))
    return root


