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


@dataclass(frozen=True)
class Plan:
    """How to encode rows: the feature columns in order, the levels of each one-hot column
    (absent: the column is kept as a number), the output names, and where levels came from."""

    columns: list[str]
    levels: dict[str, np.ndarray]
    names: list[str]
    note: str
    origin: str  # names the levels' source in error messages

    @property
    def width(self) -> int:
        return len(self.names)


def feature_columns(protected: tuple[str, ...], features: tuple[str, ...] = FEATURES) -> list[str]:
    """The feature columns (ACSIncome's by default, in folktables' order) minus the protected."""
    return [c for c in features if c not in protected]


def plan_encoding(frame: pd.DataFrame, protected: tuple[str, ...], encoding: str, coding: str,
                  known_levels: dict[str, np.ndarray] | None, origin: str | None,
                  features: tuple[str, ...] = FEATURES,
                  numeric: tuple[str, ...] = NUMERIC_FEATURES) -> Plan:
    """The encoding of ``frame``'s feature columns; one-hot levels from ``known_levels`` (a
    data dictionary or a file header, named by ``origin``), else from the values of ``frame``
    (then the note says so)."""
    columns = feature_columns(protected, features)
    if encoding == "ordinal":
        return Plan(columns, {}, list(columns), "", "")
    levels_of = known_levels if known_levels is not None else {}
    note = "" if known_levels is not None else (
        "one-hot levels from the values in the data (no data dictionary found)")
    levels, names = {}, []
    for column in columns:
        if column in numeric:
            names.append(column)
            continue
        levels[column] = _levels(column, frame, coding, levels_of)
        names.extend(level_name(column, int(v), coding) for v in levels[column])
    return Plan(columns, levels, names, note, origin or "")


def encode_rows(frame: pd.DataFrame, plan: Plan, out: np.ndarray) -> None:
    """Write the encoded rows of ``frame`` into ``out`` (``(len(frame), plan.width)``, any
    float dtype: every encoded value is an integer code or 0/1, exact in float32)."""
    start = 0
    for column in plan.columns:
        values = frame[column].to_numpy(dtype=np.float64)
        if column not in plan.levels:
            out[:, start] = values
            start += 1
            continue
        levels = plan.levels[column]
        position = level_positions(column, values, plan)
        block = out[:, start:start + len(levels)]
        block[...] = 0
        block[np.arange(values.shape[0]), position] = 1
        start += len(levels)


def level_positions(column: str, values: np.ndarray, plan: Plan) -> np.ndarray:
    """The position of each of ``column``'s ``values`` among its one-hot levels; a value that
    is not a level is refused."""
    levels = plan.levels[column]
    position = np.clip(np.searchsorted(levels, values), 0, len(levels) - 1)
    unknown = levels[position] != values
    if unknown.any():
        bad = format_codes(np.unique(values[unknown]).astype(np.int64).tolist())
        raise DataError(f"{column} has values {bad} that are not levels of the data "
                        f"dictionary {plan.origin or None}; use a dictionary for the data's year")
    return position


def encode(frame: pd.DataFrame, protected: tuple[str, ...], encoding: str, coding: str,
           dictionary: Path | None) -> Encoded:
    """Encode the ACSIncome feature columns of ``frame`` (protected attributes removed) as
    one float64 matrix."""
    levels = dictionary_levels(dictionary) if dictionary is not None else None
    plan = plan_encoding(frame, protected, encoding, coding, levels,
                         str(dictionary) if dictionary is not None else None)
    X = np.empty((len(frame), plan.width), dtype=np.float64)
    encode_rows(frame, plan, X)
    return Encoded(X, plan.names, plan.note)


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


def _levels(column: str, frame: pd.DataFrame, coding: str,
            levels: dict[str, np.ndarray]) -> np.ndarray:
    if coding == FEDA4FAIR and column in FEDA4FAIR_MERGED:
        return np.array(sorted(FEDA4FAIR_MERGED[column]), dtype=np.float64)
    if column in levels:
        return levels[column]
    return np.unique(frame[column].to_numpy(dtype=np.float64))
