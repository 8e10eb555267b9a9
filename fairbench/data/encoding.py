"""Feature encodings: the paper's ``ordinal`` codes, or ``onehot`` from the data dictionary.

``ordinal`` keeps the remaining ACSIncome columns as numbers, as the paper did. ``onehot``
keeps AGEP and WKHP numeric and expands every other column into one indicator per level.
The levels come from the official data dictionary through folktables'
``generate_categories``, so the columns are the same for every state and split; a value
missing from the dictionary is an error rather than a silently dropped row. Without a
dictionary the levels are the values occurring in the data, and the returned note says so.
Merged columns of a FeDa4Fair table get their merged levels. Protected attributes are
never features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where it is used: a cache hit never needs it
    import pandas as pd

from fairbench.errors import DataError
from fairbench.data.coding import (FEATURES, FEDA4FAIR, FEDA4FAIR_MERGED, NUMERIC_FEATURES,
                                   format_codes, level_name)


@dataclass(frozen=True)
class Encoded:
    X: np.ndarray  # float64 (n, d), not yet standardised
    names: list[str]
    note: str  # "" or a remark for PreparedData.source


def feature_columns(protected: tuple[str, ...]) -> list[str]:
    """The ACSIncome columns used as features, in folktables' order."""
    return [c for c in FEATURES if c not in protected]


def encode(frame: pd.DataFrame, protected: tuple[str, ...], encoding: str, coding: str,
           dictionary: Path | None) -> Encoded:
    """Encode the feature columns of ``frame`` (protected attributes removed)."""
    columns = feature_columns(protected)
    if encoding == "ordinal":
        return Encoded(frame[columns].to_numpy(dtype=np.float64), columns, "")
    levels = dictionary_levels(dictionary) if dictionary is not None else {}
    note = "" if dictionary is not None else (
        "one-hot levels from the values in the data (no data dictionary found)")
    blocks, names = [], []
    for column in columns:
        values = frame[column].to_numpy(dtype=np.float64)
        if column in NUMERIC_FEATURES:
            blocks.append(values[:, None])
            names.append(column)
            continue
        column_levels = _levels(column, values, coding, levels)
        blocks.append(_one_hot(column, values, column_levels, dictionary))
        names.extend(level_name(column, int(v), coding) for v in column_levels)
    return Encoded(np.hstack(blocks), names, note)


def dictionary_levels(path: Path) -> dict[str, np.ndarray]:
    """Sorted codes of each categorical ACSIncome column in a PUMS data dictionary."""
    import pandas as pd
    from folktables import generate_categories

    try:
        definition = pd.read_csv(path, sep=",", header=None, names=list(range(7)), dtype=str)
        categories = generate_categories(list(FEATURES), definition)
    except (OSError, ValueError, IndexError, KeyError, pd.errors.ParserError) as err:
        raise DataError(f"cannot read the data dictionary {path} ({type(err).__name__}: {err}); "
                        f"it must be the census PUMS_Data_Dictionary CSV") from err
    return {column: np.array(sorted(int(c) for c in codes if c == c), dtype=np.float64)
            for column, codes in categories.items()}


def _levels(column: str, values: np.ndarray, coding: str,
            levels: dict[str, np.ndarray]) -> np.ndarray:
    if coding == FEDA4FAIR and column in FEDA4FAIR_MERGED:
        return np.array(sorted(FEDA4FAIR_MERGED[column]), dtype=np.float64)
    if column in levels:
        return levels[column]
    return np.unique(values)


def _one_hot(column: str, values: np.ndarray, levels: np.ndarray,
             dictionary: Path | None) -> np.ndarray:
    position = np.clip(np.searchsorted(levels, values), 0, len(levels) - 1)
    unknown = levels[position] != values
    if unknown.any():
        bad = format_codes(np.unique(values[unknown]).astype(np.int64).tolist())
        raise DataError(f"{column} has values {bad} that are not levels of the data "
                        f"dictionary {dictionary}; use a dictionary for the data's year")
    block = np.zeros((values.shape[0], levels.shape[0]))
    block[np.arange(values.shape[0]), position] = 1.0
    return block
