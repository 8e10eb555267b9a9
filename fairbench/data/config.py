"""Validation of the ``dataset`` config group into a typed, immutable :class:`DatasetConfig`.

Every later step trusts this object, so all user mistakes in the config are caught here,
before any file is touched, and reported as :class:`~fairbench.errors.ConfigError` naming
``dataset.<key>``, the value given and what is accepted. Every key and its default is
stated once, in ``conf/dataset_defaults.yaml``: the dataset configs extend it (Hydra defaults
list), and a mapping that omits a key (the Python API, :func:`fairbench.data.load_dataset`)
is completed from it here (Oklahoma 2018, ordinal, 80/10/10; without ``groups`` every value
of a protected attribute is its own group); unknown keys are refused (they are usually typos).

Group sets and the command line. Hydra merges a mapping given on the command line into the
mapping the config already has, so ``+dataset.groups.RAC1P={white: [1], asian: [6]}`` on a
preset with ``{white: [1], non-white: rest}`` would silently keep ``non-white`` (now "every
code but 1 and 6"), and ``+dataset.groups.RAC1P.asian=[6]`` would add a group beside the
preset's. :func:`check_group_overrides` refuses both: a group set written on the command
line (a mapping for ``dataset.groups`` or ``dataset.groups.<ATTR>``, or groups added with
``+``/``++``) must be the attribute's whole set once composed. To replace a preset's set,
delete it first: ``~dataset.groups.RAC1P '+dataset.groups.RAC1P={white: [1], other: rest}'``;
to change one existing group's codes: ``dataset.groups.RAC1P.white=[1,2]``.

Several states and default groupings. ``dataset.state`` is one code, a list of codes or
``all`` (every state the data root holds, found by :mod:`fairbench.data.sources`). A
protected attribute that ``dataset.groups`` does not define gets its grouping from
``dataset.default_groups`` (``values``: one group per value, else a group set), so
``protected=[RAC1P,SEX]`` alone gives their product. Codes may be written as inclusive
ranges (``"17-24"``), and ``ST`` groups by postal codes (``{south: [OK, TX], other: rest}``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from fairbench import CONF_DIR
from fairbench.errors import ConfigError, check, check_in
from fairbench.data.coding import FEDA4FAIR, RAW
from fairbench.data.paths import STATE_FIPS, data_root, source_root
from fairbench.data.schema import ACS, CENSUSES, SCHEMAS, STATE_COLUMN

SOURCES = ("auto", "folktables", "table", "synthetic")
ENCODINGS = ("ordinal", "onehot")
HORIZONS = ("1-Year", "5-Year")
YEARS = range(2014, 2024)  # the ACS PUMS years folktables 0.0.12 can read
TABLE_CODINGS = ("auto", RAW, FEDA4FAIR)
REST = "rest"
VALUES = "values"  # a default grouping: one group per value
ALL_STATES = "all"
SMALL_GROUPS = ("drop", "merge")
MIN_SYNTHETIC_ROWS = 100

DEFAULTS_FILE = CONF_DIR / "dataset_defaults.yaml"


@functools.cache
def defaults() -> dict[str, Any]:
    """Every dataset key with its default, as ``conf/dataset_defaults.yaml`` states them."""
    return OmegaConf.to_container(OmegaConf.load(DEFAULTS_FILE), resolve=True)


# One group of one attribute: its label and its official codes, or REST.
GroupDef = tuple[str, tuple[int, ...] | str]


@dataclass(frozen=True)
class SplitConfig:
    train: float
    val: float
    test: float
    seed: int

    @property
    def fractions(self) -> tuple[float, float, float]:
        return (self.train, self.val, self.test)


@dataclass(frozen=True)
class DatasetConfig:
    """The validated ``dataset`` config; ``groups`` maps attribute -> ordered group defs."""

    name: str
    census: str
    source: str
    states: tuple[str, ...] | None  # None: every state the data root holds
    year: int
    horizon: str
    protected: tuple[str, ...]
    groups: tuple[tuple[str, tuple[GroupDef, ...]], ...]
    encoding: str
    split: SplitConfig
    table: Path | None
    table_coding: str
    root: Path
    download: bool
    cache: bool
    n_rows: int
    seed: int
    min_group_rows: int
    small_groups: str

    @property
    def state(self) -> str:
        """The one state of a single-state config (see :meth:`for_state`)."""
        if self.states is None or len(self.states) != 1:
            raise ValueError(f"{self.name} names several states: {self.states or ALL_STATES}")
        return self.states[0]

    def for_state(self, state: str) -> DatasetConfig:
        """This config restricted to one state (how the sources of several are found)."""
        return dataclasses.replace(self, states=(state,))

    def groups_of(self, attribute: str) -> tuple[GroupDef, ...] | None:
        """The group definitions given for ``attribute``, or None for one group per value."""
        return dict(self.groups).get(attribute)

    def identity(self) -> dict[str, Any]:
        """Everything that shapes the prepared arrays (not where or whether to cache)."""
        states = self.states
        ident: dict[str, Any] = {
            "census": self.census, "source": self.source,
            "state": states[0] if states and len(states) == 1 else (states or ALL_STATES),
            "year": self.year,
            "horizon": self.horizon, "protected": self.protected, "groups": self.groups,
            "encoding": self.encoding, "split": (*self.split.fractions, self.split.seed),
            "table": str(self.table) if self.table else None, "table_coding": self.table_coding,
        }
        if self.source == "synthetic":
            ident.update(n_rows=self.n_rows, seed=self.seed)
        if self.min_group_rows:
            ident.update(min_group_rows=self.min_group_rows, small_groups=self.small_groups)
        return ident


def parse_config(cfg: Any) -> DatasetConfig:
    """Validate a ``dataset`` config (DictConfig or mapping) and fill in defaults."""
    raw = _to_dict(cfg)
    base = defaults()
    unknown = sorted(set(raw) - set(base))
    if unknown:
        raise ConfigError(f"dataset.{unknown[0]}", raw[unknown[0]],
                          "unknown key; accepted: " + ", ".join(base))
    values = {**base, **raw}
    check_in("dataset.source", values["source"], SOURCES)
    check_in("dataset.encoding", values["encoding"], ENCODINGS)
    check_in("dataset.horizon", values["horizon"], HORIZONS)
    check_in("dataset.table_coding", values["table_coding"], TABLE_CODINGS)
    check_in("dataset.census", values["census"], CENSUSES)
    census = values["census"]
    check(census == ACS or values["source"] == "auto", "dataset.source", values["source"],
          f"dataset.census={census} reads its own file: accepted: auto")
    protected = _protected(values["protected"], census)
    groups = _groups(values["groups"], protected)
    check_in("dataset.small_groups", values["small_groups"], SMALL_GROUPS)
    return DatasetConfig(
        name=str(values["name"]),
        census=census,
        source=values["source"],
        states=_states(values["state"]) if census == ACS else None,
        year=_year(values["year"]),
        horizon=values["horizon"],
        protected=protected,
        groups=groups + _default_groups(values["default_groups"], protected, dict(groups)),
        encoding=values["encoding"],
        split=_split(values["split"]),
        table=_optional_path("dataset.table", values["table"]),
        table_coding=values["table_coding"],
        root=source_root(data_root(_optional_path("dataset.root", values["root"])), census),
        download=_flag("dataset.download", values["download"]),
        cache=_flag("dataset.cache", values["cache"]),
        n_rows=_int("dataset.n_rows", values["n_rows"], minimum=MIN_SYNTHETIC_ROWS),
        seed=_int("dataset.seed", values["seed"], minimum=0),
        min_group_rows=_int("dataset.min_group_rows", values["min_group_rows"], minimum=0),
        small_groups=values["small_groups"],
    )


def _to_dict(cfg: Any) -> dict[str, Any]:
    if OmegaConf.is_config(cfg):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(cfg, Mapping):
        raise ConfigError("dataset", cfg, "must be a mapping of dataset settings")
    return {str(k): v for k, v in cfg.items()}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(key: str, value: Any, *, minimum: int) -> int:
    check(_is_int(value) and value >= minimum, key, value, f"must be an integer >= {minimum}")
    return int(value)


def _flag(key: str, value: Any) -> bool:
    check(isinstance(value, bool), key, value, "must be true or false")
    return bool(value)


def _states(value: Any) -> tuple[str, ...] | None:
    """One code, a list of codes, or ``all`` (None) -> upper-case codes without repeats."""
    if isinstance(value, str) and value.lower() == ALL_STATES:
        return None
    accepted = (f"a state code, a non-empty list of them, or {ALL_STATES}; codes: "
                + ", ".join(STATE_FIPS))
    names = [value] if isinstance(value, str) else value
    check(isinstance(names, (list, tuple)) and len(names) > 0, "dataset.state", value, accepted)
    codes = [n.upper() if isinstance(n, str) else n for n in names]
    if isinstance(value, str):
        check_in("dataset.state", codes[0], STATE_FIPS)
    for code in codes:
        check(code in STATE_FIPS, "dataset.state", value, accepted)
    check(len(set(codes)) == len(codes), "dataset.state", value, "states must not repeat")
    return tuple(codes)


def _year(value: Any) -> int:
    check(_is_int(value) and value in YEARS, "dataset.year", value,
          f"must be an ACS year folktables supports: {YEARS.start}-{YEARS.stop - 1}")
    return int(value)


def _optional_path(key: str, value: Any) -> Path | None:
    if value is None or value == "":
        return None
    check(isinstance(value, (str, Path)), key, value, "must be a path or null")
    return Path(value).expanduser().absolute()


def _protected(value: Any, census: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    columns = SCHEMAS[census].protectable
    accepted = ("one or more ACSIncome columns: " if census == ACS else
                f"one or more {census} census columns: ") + ", ".join(columns)
    check(isinstance(names, (list, tuple)) and len(names) > 0, "dataset.protected", value, accepted)
    for name in names:
        check(name in columns, "dataset.protected", value, accepted)
    check(len(set(names)) == len(names), "dataset.protected", value, "columns must not repeat")
    return tuple(names)


def _groups(value: Any, protected: tuple[str, ...]) -> tuple[tuple[str, tuple[GroupDef, ...]], ...]:
    value = {} if value is None else value
    check(isinstance(value, Mapping), "dataset.groups", value,
          "must map a protected attribute to {label: [codes] | rest}")
    parsed = []
    for attribute, spec in value.items():
        check(attribute in protected, f"dataset.groups.{attribute}", spec,
              "groups may only be given for protected attributes: " + ", ".join(protected)
              + f" (remove these with ~dataset.groups.{attribute})")
        parsed.append((attribute, _group_defs(f"dataset.groups.{attribute}", spec, attribute)))
    return tuple(parsed)


def _default_groups(value: Any, protected: tuple[str, ...],
                    given: dict[str, Any]) -> tuple[tuple[str, tuple[GroupDef, ...]], ...]:
    """The default grouping of each protected attribute that ``dataset.groups`` leaves out
    (``values`` or absent: one group per value, which :meth:`DatasetConfig.groups_of` gives
    as None)."""
    value = {} if value is None else value
    check(isinstance(value, Mapping), "dataset.default_groups", value,
          f"must map an attribute to {VALUES} or {{label: [codes] | rest}}")
    parsed = []
    for attribute in protected:
        spec = value.get(attribute, VALUES)
        if attribute in given or spec == VALUES:
            continue
        parsed.append((attribute, _group_defs(f"dataset.default_groups.{attribute}", spec, attribute)))
    return tuple(parsed)


def _group_defs(key: str, spec: Any, attribute: str) -> tuple[GroupDef, ...]:
    check(isinstance(spec, Mapping) and len(spec) > 0, key, spec,
          "must be a non-empty ordered mapping {label: [official codes] | rest}")
    defs: list[GroupDef] = []
    seen: set[int] = set()
    for label, codes in spec.items():
        defs.append((str(label), _codes(f"{key}.{label}", codes, seen, attribute)))
    check(sum(c == REST for _, c in defs) <= 1, key, spec, f"at most one group may be '{REST}'")
    return tuple(defs)


def _codes(key: str, codes: Any, seen: set[int], attribute: str) -> tuple[int, ...] | str:
    if codes == REST:
        return REST
    accepted = ("must be a non-empty list of integer codes or inclusive ranges (\"17-24\")"
                + (", or state codes" if attribute == STATE_COLUMN else "") + f", or '{REST}'")
    check(isinstance(codes, (list, tuple)) and len(codes) > 0, key, codes, accepted)
    expanded: list[int] = []
    for code in codes:
        one = _expand_code(code, attribute)
        check(one is not None, key, codes, accepted)
        expanded.extend(one)
    repeated = seen.intersection(expanded)
    check(not repeated and len(set(expanded)) == len(expanded), key, codes,
          "each code may belong to one group only")
    seen.update(expanded)
    return tuple(expanded)


def _expand_code(code: Any, attribute: str) -> list[int] | None:
    """An integer code, an inclusive range ``"a-b"``, or (for ST) a postal code; None if
    none of these."""
    if _is_int(code):
        return [int(code)]
    if not isinstance(code, str):
        return None
    if attribute == STATE_COLUMN and code.upper() in STATE_FIPS:
        return [int(STATE_FIPS[code.upper()])]
    bounds = code.split("-")
    if len(bounds) == 2 and all(b.strip().isdigit() for b in bounds):
        low, high = (int(b) for b in bounds)
        return list(range(low, high + 1)) if low <= high else None
    return None


def _split(value: Any) -> SplitConfig:
    accepted = "must be {train, val, test: fractions > 0 summing to 1, seed: integer >= 0}"
    check(isinstance(value, Mapping), "dataset.split", value, accepted)
    unknown = set(value) - {"train", "val", "test", "seed"}
    check(not unknown, "dataset.split", value, accepted)
    merged = {**defaults()["split"], **value}
    fractions = [merged[k] for k in ("train", "val", "test")]
    for name, frac in zip(("train", "val", "test"), fractions):
        ok = isinstance(frac, (int, float)) and not isinstance(frac, bool) and 0 < frac < 1
        check(ok, f"dataset.split.{name}", frac, "must be a fraction strictly between 0 and 1")
    check(math.isclose(sum(fractions), 1.0, abs_tol=1e-6), "dataset.split", value,
          "train + val + test must sum to 1")
    seed = _int("dataset.split.seed", merged["seed"], minimum=0)
    return SplitConfig(*(float(f) for f in fractions), seed=seed)


GROUPS_KEY = "dataset.groups"


def group_override_hint(key: str) -> str | None:
    """What is accepted, for a ``dataset.groups`` override Hydra refused as a key the config
    lacks (a new group label, or a new attribute, given without ``+``); None for other keys."""
    path = key.split(".")[2:] if key.startswith(GROUPS_KEY + ".") else []
    if not path:
        return None
    attribute = path[0]
    return (f"names a group or an attribute that the configured groups do not have; give a whole "
            f"new group set with +, after deleting the configured {attribute} groups if there are "
            f"any: [~{GROUPS_KEY}.{attribute}] '+{GROUPS_KEY}.{attribute}={{label: [codes], ..., "
            f"other: rest}}' (to change one configured group's codes: "
            f"{GROUPS_KEY}.{attribute}.<label>=[codes])")


def check_group_overrides(overrides: list[str], cfg: Any) -> Any:
    """Refuse command-line group sets that Hydra would merge into the configured ones (see
    the module docstring); ``cfg`` is the job config composed from ``overrides``, returned.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given: dict[str, tuple[list[str], str, Any]] = {}  # attribute -> (labels, key, value)
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if override.is_delete() or override.is_sweep_override() or not (
                key == GROUPS_KEY or key.startswith(GROUPS_KEY + ".")):
            continue
        path, value = key.split(".")[2:], override.value()
        if not path and isinstance(value, Mapping):
            sets = {str(a): (list(spec), f"{GROUPS_KEY}.{a}", spec) for a, spec in value.items()
                    if isinstance(spec, Mapping)}
        elif len(path) == 1 and isinstance(value, Mapping):
            sets = {path[0]: (list(value), key, value)}
        elif len(path) == 2 and (override.is_add() or override.is_force_add()):
            sets = {path[0]: ([path[1]], key, value)}
        else:
            continue
        for attribute, (new, spec_key, spec) in sets.items():
            labels = given.get(attribute, ([], spec_key, spec))[0]
            given[attribute] = (labels + [str(label) for label in new if str(label) not in labels], spec_key, spec)
    node = cfg.get("dataset", {}).get("groups")
    groups = (OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node) or {}
    for attribute, (labels, key, value) in given.items():
        configured = [str(label) for label in (groups.get(attribute) or {}) if str(label) not in labels]
        check(not configured, key, value,
              f"Hydra merges groups given on the command line with the {attribute} groups already "
              f"configured, so {', '.join(configured)} would stay beside {', '.join(labels)}; "
              f"a command-line group set replaces the configured one, delete that first: "
              f"~{GROUPS_KEY}.{attribute} '+{GROUPS_KEY}.{attribute}={{label: [codes], ..., other: rest}}'"
              f" (to change one configured group's codes: {GROUPS_KEY}.{attribute}.<label>=[codes])")
    return cfg
