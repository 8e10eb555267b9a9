"""The ACSIncome schema and the two codings a table can use for it.

Group specifications are always written in the **official** 2018 ACS codes, whatever the
data file uses, so that a config means the same thing on every source. Raw folktables data
uses the official codes. The FeDa4Fair tables shipped in the shared data folder merge two
columns into fewer classes (lossy), described by :data:`FEDA4FAIR_MERGED`; this module
says which official codes each merged code stands for, so that groups can be translated and
an impossible request (e.g. "widowed" on a table that merged MAR 2-5) can be refused.

Which coding a table uses is decided from its values (:func:`decide_coding`), never from its
file or folder name. The FeDa4Fair coding is a subset of the official one (MAR 1-2, RAC1P
1-5 are official codes too), so:

* a table with an official code the FeDa4Fair coding lacks (MAR 3-5, RAC1P 6-9) is raw;
* a table with MAR exactly {1, 2} and RAC1P within 1-5 in at least :data:`MIN_ROWS_MERGED`
  rows is FeDa4Fair-coded: in raw ACSIncome data MAR 3-5 (divorced, separated, never
  married) are over a third of the rows of every state (MAR 2-5 is 38-51 % of the rows of the
  35 shared state tables, widowed a few percent), so 200 raw rows without any of them have
  a probability below 1e-30;
* anything else cannot be told apart: it is refused when the coding would change the
  result (MAR or RAC1P protected, or one-hot features) and read as raw otherwise (then both
  codings give the same arrays). ``dataset.table_coding`` settles it; a declared FeDa4Fair
  coding that the values contradict is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from fairbench.errors import ConfigError, DataError

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


# official codes that have no code of their own in the FeDa4Fair coding
RAW_ONLY: dict[str, frozenset[int]] = {"MAR": frozenset({3, 4, 5}), "RAC1P": frozenset({6, 7, 8, 9})}
MIN_ROWS_MERGED = 200


def decide_coding(columns: Mapping[str, np.ndarray], declared: str, where: str,
                  matters: bool) -> tuple[str, str]:
    """``(coding, note)`` of a table from its MAR and RAC1P values (see the module docstring).

    ``declared`` is ``dataset.table_coding`` (``auto``, ``raw`` or ``feda4fair``); ``matters``
    says whether the coding changes the prepared arrays; ``note`` says how it was decided.
    Raises ConfigError for a declared FeDa4Fair coding the values contradict and DataError
    for an undecidable ``auto`` that matters.
    """
    present = {attr: set(np.unique(columns[attr]).astype(np.int64).tolist()) for attr in RAW_ONLY}
    raw_only = {attr: sorted(present[attr] & codes) for attr, codes in RAW_ONLY.items()}
    evidence = "; ".join(f"{attr} has {format_codes(codes)}" for attr, codes in raw_only.items() if codes)
    if declared == FEDA4FAIR:
        if evidence:
            raise ConfigError("dataset.table_coding", declared,
                              f"{where} holds raw census codes ({evidence}, which the FeDa4Fair "
                              f"coding does not have: MAR 1-2, RAC1P 1-5); accepted for this table: "
                              f"raw or auto")
        return FEDA4FAIR, describe_coding(FEDA4FAIR) + " (dataset.table_coding)"
    if declared == RAW:
        return RAW, ""
    if evidence:
        return RAW, f"raw census codes ({evidence})"
    n_rows = len(columns["MAR"])
    if present["MAR"] == {1, 2} and n_rows >= MIN_ROWS_MERGED:
        return FEDA4FAIR, (describe_coding(FEDA4FAIR) + f" (from the data: MAR only 1-2 and RAC1P "
                           f"within 1-5 in {n_rows} rows)")
    if matters:
        values = ", ".join(f"{attr} {format_codes(present[attr])}" for attr in RAW_ONLY)
        raise DataError(
            f"dataset.table_coding=auto: cannot tell from the data whether {where} holds raw "
            f"census codes or FeDa4Fair's merged ones ({values} in {n_rows} rows are valid in "
            f"both); set dataset.table_coding=raw or dataset.table_coding=feda4fair")
    return RAW, ""


def coding_matters(protected: Iterable[str], encoding: str) -> bool:
    """Whether the coding changes the prepared arrays: a merged column is protected (its
    groups) or one-hot encoded (its levels)."""
    return encoding == "onehot" or any(attr in FEDA4FAIR_MERGED for attr in protected)


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
