"""The Dutch Virtual Census 2001: where its file lies and how its rows become a frame.

The file is the ARFF version the fairness literature uses (60,420 persons, see
``shared/data/dutch/PROVENANCE.md``): twelve nominal columns coded as strings of digits and
the label ``occupation`` with levels ``2_1`` (positive: high-level occupations) and
``5_4_9``. It is looked for at ``<root>/dutch_census_2001.arff``, where ``<root>`` is the
``dutch/`` folder of a folder of sources (:func:`fairbench.data.paths.source_root`), or at
``dataset.table``. Feature columns become their integer codes (float64 like every frame of
:mod:`fairbench.data`); the header's declared codes are the one-hot levels, so every
declared band gets a column whether or not it occurs (age bands 1-3, 16, 17 never do).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from fairbench.errors import DataError
from fairbench.data.arff import read_arff
from fairbench.data.coding import LABEL
from fairbench.data.paths import DATA_DIR_ENV
from fairbench.data.schema import DUTCH_FEATURES, DUTCH_FILE, DUTCH_LABEL, DUTCH_POSITIVE


def dutch_file(root: Path, table: Path | None) -> Path:
    """The census file: ``dataset.table`` if given, else ``<root>/dutch_census_2001.arff``."""
    path = table if table is not None else root / DUTCH_FILE
    if not path.is_file():
        given = "dataset.table" if table is not None else "the data root"
        raise DataError(f"no Dutch census file at {path} (from {given}); fix: set {DATA_DIR_ENV} "
                        f"or dataset.root to a folder of sources holding dutch/{DUTCH_FILE}, or "
                        f"dataset.table to the .arff file")
    return path


def read_dutch(path: Path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The rows as integer codes plus a 0/1 ``label``, and each feature's declared codes."""
    import pandas as pd

    arff = read_arff(path)
    missing = [c for c in (*DUTCH_FEATURES, DUTCH_LABEL) if c not in arff.names]
    if missing:
        raise DataError(f"{path} lacks the attributes {', '.join(missing)} of the Dutch census "
                        f"(needed: {', '.join((*DUTCH_FEATURES, DUTCH_LABEL))})")
    labels = arff.column(DUTCH_LABEL)
    if DUTCH_POSITIVE not in labels or len(labels) != 2:
        raise DataError(f"{path}: attribute {DUTCH_LABEL} must have two levels, one of them "
                        f"{DUTCH_POSITIVE!r} (the positive class); declared: {', '.join(labels)}")
    frame, levels = {}, {}
    for column in DUTCH_FEATURES:
        declared = arff.column(column)
        if not all(v.isdigit() for v in declared):
            raise DataError(f"{path}: attribute {column} must have integer codes; declared: "
                            f"{', '.join(declared)}")
        codes = np.array([int(v) for v in declared], dtype=np.float64)
        frame[column] = codes[arff.codes[:, arff.names.index(column)]]
        levels[column] = np.sort(codes)
    table = pd.DataFrame(frame)
    positive = labels.index(DUTCH_POSITIVE)
    table[LABEL] = (arff.codes[:, arff.names.index(DUTCH_LABEL)] == positive).astype(np.int8)
    return table, levels
