"""A reader for ARFF files with nominal attributes (Weka's Attribute-Relation File Format).

Only what census files in this format use is accepted: ``@relation``, ``@attribute NAME
{v1,v2,...}`` (nominal) and, after ``@data``, one comma-separated row per instance with one
value per attribute; ``%`` starts a comment line; names and values may be quoted with ``'``.
Anything else (a numeric or string attribute, a missing ``@data``, a row with the wrong
number of fields, a value the header does not declare) is a
:class:`~fairbench.errors.DataError` naming the file and the line, so a truncated or damaged
file is never read as if it were whole. scipy's ``loadarff`` reads such files too, but its
errors name neither the line nor the value, and it builds a record array of byte strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fairbench.errors import DataError


@dataclass(frozen=True)
class Arff:
    """The attributes in order with their declared levels, and each row's level indices:
    ``codes[:, j]`` indexes ``levels[j]`` (int16, one row per instance)."""

    relation: str
    names: list[str]
    levels: list[list[str]]
    codes: np.ndarray

    def column(self, name: str) -> list[str]:
        """The declared levels of attribute ``name``."""
        return self.levels[self.names.index(name)]


def read_arff(path: Path) -> Arff:
    """Parse ``path``; raise DataError naming ``path:line`` for anything malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path} ({type(err).__name__}: {err})") from err
    lines = text.splitlines()
    relation, names, levels = "", [], []
    data_line = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("%"):
            continue
        keyword = stripped.split(None, 1)[0].lower()
        if keyword == "@relation":
            relation = stripped[len("@relation"):].strip()
        elif keyword == "@attribute":
            name, declared = _attribute(stripped, path, number)
            if name in names:
                raise DataError(f"{path}:{number}: attribute {name!r} is declared twice")
            names.append(name)
            levels.append(declared)
        elif keyword == "@data":
            data_line = number
            break
        else:
            raise DataError(f"{path}:{number}: expected @relation, @attribute or @data, found "
                            f"{_short(stripped)}")
    if data_line is None:
        raise DataError(f"{path}:{len(lines)}: no @data section (the file is truncated or not ARFF)")
    if not names:
        raise DataError(f"{path}:{data_line}: @data without any @attribute")
    return Arff(relation, names, levels, _rows(lines, data_line, names, levels, path))


def _attribute(line: str, path: Path, number: int) -> tuple[str, list[str]]:
    rest = line[len("@attribute"):].strip()
    if rest.startswith("'"):
        end = rest.find("'", 1)
        name, rest = rest[1:end], rest[end + 1:].strip()
    else:
        parts = rest.split(None, 1)
        name, rest = parts[0], (parts[1].strip() if len(parts) > 1 else "")
    if not (rest.startswith("{") and rest.endswith("}")):
        raise DataError(f"{path}:{number}: attribute {name!r} is not nominal ({_short(rest)}); "
                        f"only attributes with a set of values {{a,b,...}} are read")
    declared = [_unquote(v) for v in rest[1:-1].split(",")]
    if not declared or any(v == "" for v in declared) or len(set(declared)) != len(declared):
        raise DataError(f"{path}:{number}: attribute {name!r} has empty or repeated values")
    return name, declared


def _rows(lines: list[str], data_line: int, names: list[str], levels: list[list[str]],
          path: Path) -> np.ndarray:
    lookup = [{value: i for i, value in enumerate(declared)} for declared in levels]
    width = len(names)
    codes = np.empty((len(lines) - data_line, width), dtype=np.int16)
    n = 0
    for number in range(data_line + 1, len(lines) + 1):
        stripped = lines[number - 1].strip()
        if not stripped or stripped.startswith("%"):
            continue
        fields = [_unquote(f) for f in stripped.split(",")]
        if len(fields) != width:
            raise DataError(f"{path}:{number}: {len(fields)} fields, the header declares {width} "
                            f"attributes")
        for j, (field, known) in enumerate(zip(fields, lookup)):
            code = known.get(field)
            if code is None:
                raise DataError(f"{path}:{number}: {names[j]}={field!r} is not declared in the "
                                f"header (declared: {', '.join(levels[j])})")
            codes[n, j] = code
        n += 1
    if n == 0:
        raise DataError(f"{path}:{len(lines)}: the @data section holds no rows")
    return codes[:n]


def _unquote(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")
