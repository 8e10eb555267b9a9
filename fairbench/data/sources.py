"""Where the rows come from: raw folktables files, preprocessed tables, or the generator.

Resolution (:func:`resolve_source`) only looks at the file system, so it is cheap and can
run before the cache is consulted; reading (:func:`read_frame`) turns the chosen source into
one frame with the ten ACSIncome feature columns (float64) and a 0/1 ``label`` column.

Census downloads are fragile (HTTP 403 pages saved as zips, half-written files that
folktables later trusts because "the file exists"). So nothing is downloaded unless
``dataset.download`` is true, and a download goes through folktables into a private staging
folder inside the data root; only a complete file is moved into folktables' cache layout,
and the staging folder is always removed. Without ``download`` the expected file is checked
before folktables is called, because folktables creates directories as a side effect and
reports a missing file misleadingly.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where it is used: a cache hit never needs it
    import pandas as pd

from fairbench.errors import ConfigError, DataError
from fairbench.data import synthetic
from fairbench.data.coding import FEATURES, LABEL, RAW
from fairbench.data.config import ALL_STATES, YEARS, DatasetConfig
from fairbench.data.dutch import dutch_file
from fairbench.data.encoding import dictionary_levels
from fairbench.data.paths import STATE_FIPS, definition_file, person_file, year_dir
from fairbench.data.schema import DUTCH, STATE_COLUMN

FOLKTABLES_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
    "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR".split())
TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
RAW_COLUMNS = (*FEATURES, "PINCP", "PWGTP")  # what folktables' ACSIncome reads


@dataclass(frozen=True)
class ResolvedSource:
    """The data a config points at: its kind, file, coding and a one-line description.

    A table's ``coding`` is ``dataset.table_coding`` as given (``auto`` included): it is
    decided from the table's values once they are read (:func:`fairbench.data.coding.decide_coding`).
    """

    kind: str  # "folktables" | "table" | "synthetic" | "arff"
    path: Path
    coding: str
    description: str
    state: str  # the ACS state whose rows these are ("" for the Dutch census)

    @property
    def where(self) -> str:
        """How error messages name this data."""
        return "the synthetic data" if self.kind == "synthetic" else str(self.path)

    def identity(self) -> dict[str, Any]:
        """What identifies the input for the cache: path, size and mtime (content hash for
        the small synthetic parameter file)."""
        if self.kind == "synthetic":
            return {"kind": self.kind, "sha256": hashlib.sha256(self.path.read_bytes()).hexdigest()}
        return {"kind": self.kind, "coding": self.coding, **file_identity(self.path)}


def file_identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


# ---------------------------------------------------------------- resolution


def resolve_sources(config: DatasetConfig) -> list[ResolvedSource]:
    """The inputs of ``config``: the Dutch census file, or one source per ACS state (every
    state the data root holds for ``dataset.state=all``), in the order of the states."""
    if config.census == DUTCH:
        path = dutch_file(config.root, config.table)
        return [ResolvedSource("arff", path, RAW, f"Dutch Virtual Census 2001 ({path})", "")]
    if config.states is not None and len(config.states) == 1:
        return [resolve_source(config)]
    given = list(config.states) if config.states is not None else ALL_STATES
    if config.source == "synthetic" or config.table is not None:
        key = "dataset.source" if config.source == "synthetic" else "dataset.table"
        raise ConfigError("dataset.state", given, f"{key} gives one state's rows: name one state")
    states = config.states if config.states is not None else available_states(config)
    return [resolve_source(config.for_state(state)) for state in states]


def available_states(config: DatasetConfig) -> tuple[str, ...]:
    """Every state with data under the root: a raw person file (unless ``dataset.source`` is
    ``table``) or a preprocessed table (unless it is ``folktables``), in FIPS order."""
    found = []
    for state in STATE_FIPS:
        one = config.for_state(state)
        raw = config.source != "table" and state in FOLKTABLES_STATES and person_file(
            config.root, state, config.year, config.horizon).is_file()
        if raw or (config.source != "folktables" and find_table(one) is not None):
            found.append(state)
    if not found:
        raise DataError(f"dataset.state={ALL_STATES}: no state has ACS {config.year} "
                        f"({config.horizon}) data under {config.root}; {how_to_fix(config)}")
    return tuple(found)


def resolve_source(config: DatasetConfig) -> ResolvedSource:
    """Find the data for ``config`` (downloading only when ``dataset.download`` is true)."""
    if config.source == "synthetic":
        return ResolvedSource("synthetic", synthetic.PARAMS_FILE, RAW, synthetic.describe(
            config.n_rows, config.seed), config.state)
    if config.source == "table" or (config.source == "auto" and config.table is not None):
        return _table_source(config, _table_path(config))
    raw = _raw_file(config)
    if raw is not None and raw.is_file():
        return _folktables_source(config, raw)
    if config.source == "folktables" and raw is None:
        raise DataError(f"folktables 0.0.12 cannot load dataset.state={config.state}; "
                        f"use a preprocessed table (dataset.source=table)")
    if config.source == "folktables":
        raise DataError(f"no ACS data for {config.state} {config.year} ({config.horizon}): "
                        f"{raw} does not exist; {how_to_fix(config)}")
    table = find_table(config)
    if table is not None:
        return _table_source(config, table)
    looked = f"the folktables file {raw} and " if raw is not None else ""
    raise DataError(f"no ACS data for {config.state} {config.year} ({config.horizon}): looked for "
                    f"{looked}a table {_table_patterns(config)}; {how_to_fix(config)}")


def how_to_fix(config: DatasetConfig) -> str:
    """The standard advice when data is missing."""
    return (f"fix: set FAIRBENCH_DATA_DIR or dataset.root to a folktables cache, set "
            f"dataset.download=true, or put a preprocessed table under {config.root / 'preprocessed'}/")


def raw_hint(config: DatasetConfig) -> str:
    """How to get raw (official-coded) data for this state and year."""
    raw = person_file(config.root, config.state, config.year, config.horizon)
    return (f"set FAIRBENCH_DATA_DIR or dataset.root to a folktables cache with "
            f"{config.year}/{config.horizon}/{raw.name} (looked at {raw}), or set dataset.download=true")


def _raw_file(config: DatasetConfig) -> Path | None:
    """The raw person file for the config, downloaded first if allowed and missing.

    None when folktables cannot handle the state at all.
    """
    if config.state not in FOLKTABLES_STATES:
        return None
    raw = person_file(config.root, config.state, config.year, config.horizon)
    if not raw.is_file() and config.download:
        _download_person_file(config, raw)
    return raw


def _folktables_source(config: DatasetConfig, path: Path) -> ResolvedSource:
    return ResolvedSource("folktables", path, RAW,
                          f"folktables ACS {config.year} {config.horizon} person data for "
                          f"{config.state} ({path}) with the ACSIncome filter", config.state)


def _table_source(config: DatasetConfig, path: Path) -> ResolvedSource:
    return ResolvedSource("table", path, config.table_coding,
                          f"preprocessed ACSIncome table {path}", config.state)


def _table_path(config: DatasetConfig) -> Path:
    if config.table is not None:
        if not config.table.is_file():
            raise DataError(f"dataset.table={config.table}: no such file")
        return config.table
    table = find_table(config)
    if table is None:
        raise DataError(f"no preprocessed ACSIncome table for {config.state}: looked for "
                        f"{_table_patterns(config)}; {how_to_fix(config)}")
    return table


def _table_patterns(config: DatasetConfig) -> str:
    return (f"{config.root / 'preprocessed'}/**/{config.state}_*.csv (or {config.state}.csv; "
            f"also .csv.gz, .parquet)")


def find_table(config: DatasetConfig) -> Path | None:
    """The preprocessed table for the config's state under ``<root>/preprocessed/``.

    Names ``{ST}_*.csv``, ``{ST}.csv`` (also ``.csv.gz``, ``.parquet``) at any depth match.
    Paths naming another survey year are skipped; those naming the config's year win; a
    remaining tie is an error rather than a guess.
    """
    base = config.root / "preprocessed"
    if not base.is_dir():
        return None
    patterns = [f"{config.state}{sep}{suffix}" for sep in ("_*", "") for suffix in TABLE_SUFFIXES]
    found = sorted({p for pattern in patterns for p in base.rglob(pattern) if p.is_file()})
    years = {p: _years_named(p.relative_to(base)) for p in found}
    same_year = [p for p in found if config.year in years[p]]
    candidates = same_year or [p for p in found if not years[p]]
    if len(candidates) > 1:
        raise DataError(f"several tables for {config.state} under {base}: "
                        f"{', '.join(map(str, candidates))}; set dataset.table to one of them")
    return candidates[0] if candidates else None


def _years_named(path: Path) -> set[int]:
    years = {int(y) for y in re.findall(r"(?<!\d)(20\d\d)(?!\d)", str(path))}
    return years & set(YEARS)


# ---------------------------------------------------------------- reading


def read_frame(resolved: ResolvedSource, config: DatasetConfig) -> pd.DataFrame:
    """The source's rows as FEATURES (float64) + ``label`` (int8) + ``ST`` (the state's
    FIPS code)."""
    if resolved.kind == "synthetic":
        frame = synthetic.generate(config.n_rows, config.seed)
    elif resolved.kind == "table":
        frame = read_table(resolved.path)
    else:
        frame = read_folktables(config.for_state(resolved.state), resolved.path)
    frame[STATE_COLUMN] = float(STATE_FIPS[resolved.state])
    return frame


# what a damaged or non-tabular file raises while being parsed (zlib.error: a corrupt .gz;
# pandas' ParserError is a ValueError)
READ_ERRORS = (OSError, ValueError, UnicodeDecodeError, EOFError, zlib.error)


def read_folktables(config: DatasetConfig, path: Path) -> pd.DataFrame:
    """Read a raw person file through folktables' ``ACSDataSource`` and ``ACSIncome``."""
    from folktables import ACSDataSource, ACSIncome

    source = ACSDataSource(survey_year=str(config.year), horizon=config.horizon, survey="person",
                           root_dir=str(config.root))
    state = random.getstate()  # folktables reseeds the global `random` module
    try:
        raw = source.get_data(states=[config.state], download=False)
    except READ_ERRORS as err:
        raise DataError(f"cannot read {path} ({type(err).__name__}: {_one_line(err)})") from err
    finally:
        random.setstate(state)
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"{path} lacks the columns {', '.join(missing)} that ACSIncome needs")
    features, target, _ = ACSIncome.df_to_pandas(raw)
    frame = features.astype(np.float64)
    frame[LABEL] = target.iloc[:, 0].to_numpy().astype(np.int8)
    return frame


def read_table(path: Path) -> pd.DataFrame:
    """Read and validate a preprocessed ACSIncome table (csv, csv.gz or parquet)."""
    import pandas as pd
    try:
        table = pd.read_parquet(path) if path.name.endswith(".parquet") else pd.read_csv(path)
    except READ_ERRORS as err:
        raise DataError(f"cannot read the table {path} ({type(err).__name__}: {_one_line(err)})") from err
    label_column = next((c for c in (LABEL, "PINCP") if c in table.columns), None)
    missing = [c for c in FEATURES if c not in table.columns] + (
        [] if label_column else ["PINCP (or label)"])
    if missing:
        raise DataError(f"the table {path} lacks the columns {', '.join(missing)}; an ACSIncome "
                        f"table needs {', '.join(FEATURES)} and a label column PINCP or label")
    frame = pd.DataFrame({c: _numeric_column(table[c], c, path) for c in FEATURES})
    frame[LABEL] = _binary_label(table[label_column], label_column, path)
    return frame


def _numeric_column(column: pd.Series, name: str, path: Path) -> np.ndarray:
    import pandas as pd
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        examples = ", ".join(sorted({repr(v) for v in column[bad].tolist()})[:5])
        raise DataError(f"column {name} of {path} has missing or non-numeric values ({examples})")
    return values


def _binary_label(column: pd.Series, name: str, path: Path) -> np.ndarray:
    import pandas as pd
    if column.dtype == bool:
        return column.to_numpy().astype(np.int8)
    words = {"true": 1.0, "false": 0.0}
    values = column.map(lambda v: words.get(v.strip().lower(), v) if isinstance(v, str) else v)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isin(numbers, (0.0, 1.0))
    if bad.any():
        examples = ", ".join(sorted({repr(v) for v in column[bad].tolist()})[:5])
        raise DataError(f"label column {name} of {path} must be binary (True/False or 0/1); "
                        f"found {examples}")
    return numbers.astype(np.int8)


# ---------------------------------------------------------------- data dictionary


def resolve_dictionary(config: DatasetConfig) -> Path | None:
    """The PUMS data dictionary for one-hot levels, or None (then levels come from the data)."""
    if config.encoding != "onehot" or config.year < 2017:  # no CSV dictionary before 2017
        return None
    path = definition_file(config.root, config.year, config.horizon)
    if not path.is_file() and config.download:
        _download_definitions(config, path)
    return path if path.is_file() else None


# ---------------------------------------------------------------- downloads


def _download_person_file(config: DatasetConfig, target: Path) -> None:
    from folktables.load_acs import initialize_and_download

    def fetch(staging: Path) -> None:
        initialize_and_download(str(staging), config.state, config.year, config.horizon,
                                "person", download=True)

    _staged_download(config, target, fetch, f"person data for {config.state}", lambda p: None)


def _download_definitions(config: DatasetConfig, target: Path) -> None:
    from folktables.load_acs import load_definitions

    def fetch(staging: Path) -> None:
        load_definitions(str(staging.parents[1]), year=config.year, horizon=config.horizon,
                         download=True)

    _staged_download(config, target, fetch, "data dictionary", dictionary_levels)


def _staged_download(config: DatasetConfig, target: Path, fetch: Callable[[Path], None],
                     what: str, validate: Callable[[Path], object]) -> None:
    """Run folktables' download into a staging copy of its layout, then move the file in.

    ``fetch`` gets the staging ``<year>/<horizon>`` folder. Any failure (an exception, an
    error folktables only prints, a missing or invalid file) becomes one DataError and
    leaves nothing behind.
    """
    config.root.mkdir(parents=True, exist_ok=True)
    staging_root = Path(tempfile.mkdtemp(prefix=".fairbench-download-", dir=config.root))
    try:
        staging = year_dir(staging_root, config.year, config.horizon)
        staging.mkdir(parents=True)
        staged = staging / target.name
        reason = _fetch_reason(fetch, staging)
        if reason is None and not staged.is_file():
            reason = "no file was produced"
        if reason is not None and "zip file" in reason:
            reason += ": the server sent something else, e.g. an HTTP 403 error page"
        if reason is None:
            try:
                validate(staged)
            except DataError as err:
                reason = f"the downloaded file is not valid: {err}"
        if reason is not None:
            raise DataError(
                f"downloading the {config.year} {config.horizon} ACS {what} failed ({reason}); "
                f"nothing was saved. Check the network, place the file at {target} yourself, or "
                f"use a preprocessed table under {config.root / 'preprocessed'}/")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def _fetch_reason(fetch: Callable[[Path], None], staging: Path) -> str | None:
    """None if ``fetch`` succeeded, else why not (folktables prints some errors instead of
    raising them, so its output is captured and searched)."""
    printed = io.StringIO()
    try:
        with redirect_stdout(printed):
            fetch(staging)
    except Exception as err:  # noqa: BLE001 - any network/zip/HTTP failure is reported alike
        return f"{type(err).__name__}: {_one_line(err)}"
    reported = [line for line in printed.getvalue().splitlines() if line.startswith("Exception:")]
    return _one_line(reported[-1].removeprefix("Exception:")) if reported else None


def _one_line(message: object) -> str:
    return " ".join(str(message).split())
