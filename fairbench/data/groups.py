"""Protected groups: from the config's group definitions to one integer id per row.

A group definition lists *official* ACS codes (or ``rest``); it is translated into the
coding of the data at hand (see :mod:`fairbench.data.coding`). A definition that would
split a merged class is refused instead of silently lumping people together, because the
resulting groups would not be what the config says. Several protected attributes give
intersectional groups: the cartesian product of each attribute's groups, in config order,
with empty combinations dropped. Rows that fall in no group (possible when the groups of an
attribute don't cover all its values and none is ``rest``) are dropped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where it is used: a cache hit never needs it
    import pandas as pd

from fairbench.errors import DataError
from fairbench.data.coding import FEDA4FAIR, FEDA4FAIR_MERGED, format_codes, level_name
from fairbench.data.config import REST, DatasetConfig, GroupDef
from fairbench.data.paths import STATE_FIPS
from fairbench.data.schema import STATE_COLUMN

STATE_CODES = {int(fips): code for code, fips in STATE_FIPS.items()}


@dataclass(frozen=True)
class GroupAssignment:
    """Group id of every kept row, which input rows are kept, and the group labels."""

    index: np.ndarray
    keep: np.ndarray
    names: list[str]

    @property
    def note(self) -> str:
        dropped = int((~self.keep).sum())
        return f"{dropped} rows outside the groups dropped" if dropped else ""


def assign_groups(frame: pd.DataFrame, config: DatasetConfig, coding: str, where: str,
                  raw_hint: str, allow_absent: bool = False) -> GroupAssignment:
    """Assign every row of ``frame`` to its (intersectional) group.

    ``where`` names the data in error messages; ``raw_hint`` says how to get raw folktables
    data when a group cannot be expressed in a merged coding. A defined group without a row
    is an error unless ``allow_absent`` (another state's rows, evaluated but not trained on).
    """
    per_attribute = [
        _attribute_groups(frame[attr].to_numpy().astype(np.int64), attr,
                          config.groups_of(attr), coding, where, raw_hint, allow_absent)
        for attr in config.protected
    ]
    return _combine(per_attribute)


def _attribute_groups(values: np.ndarray, attribute: str, defs: tuple[GroupDef, ...] | None,
                      coding: str, where: str, raw_hint: str, allow_absent: bool = False) -> tuple[np.ndarray, list[str]]:
    """Per-row group position (-1 = in no group) and the group labels of one attribute."""
    present = np.unique(values)
    if defs is None:
        return np.searchsorted(present, values), [_value_label(attribute, int(v), coding) for v in present]
    data_codes = [
        codes if codes == REST else _to_data_codes(attribute, label, codes, coding, where, raw_hint)
        for label, codes in defs
    ]
    claimed = set().union(*(c for c in data_codes if c != REST))
    labels = np.full(values.shape, -1, dtype=np.int64)
    for position, ((label, given), codes) in enumerate(zip(defs, data_codes)):
        members = set(present.tolist()) - claimed if codes == REST else codes
        mask = np.isin(values, sorted(members))
        if not mask.any() and not allow_absent:
            raise DataError(
                f"dataset.groups.{attribute}.{label}={given!r}: no row of {where} has such a "
                f"{attribute} value (values present: {format_codes(present.tolist())})")
        labels[mask] = position
    return labels, [label for label, _ in defs]


def _value_label(attribute: str, code: int, coding: str) -> str:
    """A one-value group's label: ``ST`` by postal code (``OK``), others ``ATTR=code``."""
    if attribute == STATE_COLUMN:
        return STATE_CODES.get(code, f"{attribute}={code}")
    return level_name(attribute, code, coding)


def _to_data_codes(attribute: str, label: str, codes: tuple[int, ...], coding: str, where: str,
                   raw_hint: str) -> set[int]:
    """The data's codes for a group of official codes; refuse to split a merged class."""
    if coding != FEDA4FAIR or attribute not in FEDA4FAIR_MERGED:
        return set(codes)
    wanted = set(codes)
    merged: set[int] = set()
    for code, members in FEDA4FAIR_MERGED[attribute].items():
        inside = wanted.intersection(members)
        if inside and len(inside) < len(members):
            raise DataError(
                f"dataset.groups.{attribute}.{label}={list(codes)}: {where} uses the FeDa4Fair "
                f"coding, which merges {attribute} codes {format_codes(members)} into one class, "
                f"so this group cannot be formed; groups that split it (e.g. five marital "
                f"groups) need raw folktables data: {raw_hint}")
        if inside:
            merged.add(code)
    return merged


def _combine(per_attribute: Sequence[tuple[np.ndarray, list[str]]]) -> GroupAssignment:
    """Cartesian product of the attributes' groups, keeping only non-empty combinations."""
    keep = np.all([labels >= 0 for labels, _ in per_attribute], axis=0)
    combined = np.zeros(int(keep.sum()), dtype=np.int64)
    for labels, names in per_attribute:
        combined = combined * len(names) + labels[keep]
    present = np.unique(combined)
    names = []
    for code in present.tolist():
        parts = []
        for _, attr_names in reversed(per_attribute):
            code, digit = divmod(code, len(attr_names))
            parts.append(attr_names[digit])
        names.append(" & ".join(reversed(parts)))
    return GroupAssignment(index=np.searchsorted(present, combined).astype(np.int64),
                           keep=keep, names=names)
