"""The ACSIncome schema and the two codings a table can use for it.

Group specifications are always written in the **official** 2018 ACS codes, whatever the
data file uses, so that a config means the same thing on every source. Raw folktables data
uses the official codes. The FeDa4Fair tables shipped in the shared data folder merge two
columns into fewer classes (lossy), described by :data:`FEDA4FAIR_MERGED`; this module
says which official codes each merged code stands for, so that groups can be translated and
an impossible request (e.g. "widowed" on a table that merged MAR 2-5) can be refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# folktables' ACSIncome.features, in its order (a test checks they agree).
FEATURES: tuple[str, ...] = (
    "AGEP", "COW", "SCHL", "MAR", "OCCP", "POBP", "RELP", "WKHP", "SEX", "RAC1P",
)
NUMERIC_FEATURES: tuple[str, ...] = ("AGEP", "WKHP")
LABEL = "label"  # the binary target column of every frame built by fairbench.data

RAW, FEDA4FAIR = "raw", "feda4fair"

# merged code -> the official codes it stands for, per merged column.
FEDA4FAIR_MERGED: dict[str, dict[int, tuple[int, ...]]] = {
    "MAR": {1: (1,), 2: (2, 3, 4, 5)},
    "RAC1P": {1: (1,), 2: (2,), 3: (6,), 4: (3, 4, 5), 5: (7, 8, 9)},
}


def detect_coding(path: Path) -> str:
    """``feda4fair`` when a folder on the path is named ``feda4fair*``, else ``raw``."""
    return FEDA4FAIR if any(p.lower().startswith("feda4fair") for p in path.parent.parts) else RAW


def official_codes(attribute: str, code: int, coding: str) -> tuple[int, ...]:
    """The official codes that ``code`` of ``attribute`` stands for in ``coding``."""
    if coding == FEDA4FAIR and attribute in FEDA4FAIR_MERGED:
        return FEDA4FAIR_MERGED[attribute].get(code, (code,))
    return (code,)


def format_codes(codes: Iterable[int]) -> str:
    """Compact text for a set of codes: ``[2, 3, 4, 5] -> "2-5"``, ``[1, 3] -> "1,3"``."""
    ordered = sorted(set(codes))
    runs: list[list[int]] = []
    for code in ordered:
        if runs and code == runs[-1][-1] + 1:
            runs[-1].append(code)
        else:
            runs.append([code])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def level_name(attribute: str, code: int, coding: str) -> str:
    """``"ATTR=v"`` naming a value by its official code(s), e.g. ``"MAR=2-5"`` if merged."""
    return f"{attribute}={format_codes(official_codes(attribute, code, coding))}"


def describe_coding(coding: str) -> str:
    """A short note for ``PreparedData.source`` when the coding is not the official one."""
    if coding != FEDA4FAIR:
        return ""
    return "FeDa4Fair coding: MAR 2-5 merged, RAC1P merged to 5 classes"
