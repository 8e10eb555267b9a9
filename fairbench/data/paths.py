"""Where data and caches live on disk.

Two roots matter and both are resolved here so that every module agrees on them:

* the **data root** holds census inputs in folktables' own cache layout
  (``<root>/<year>/<horizon>/psam_p40.csv`` and ``definition.csv``) plus optional
  preprocessed tables under ``<root>/preprocessed/``. Users point at an existing
  folktables cache instead of downloading again. The root may also be a *folder of
  sources* holding one folder per census (``acs/``, ``dutch/``): :func:`source_root`
  picks the census's own folder then, so both forms work;
* the **user cache home** (``$XDG_CACHE_HOME`` or ``~/.cache``) under which fairbench keeps
  its default data root and its array cache.

The folktables file names are computed here rather than discovered through folktables,
because folktables creates directories and raises a misleading error when a file is
missing; we check for the exact file first.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "FAIRBENCH_DATA_DIR"

# FIPS codes of the 50 states, DC and Puerto Rico (the codes in census file names).
STATE_FIPS: dict[str, str] = {
    "AL": "01", "AK": "02", "AZ": "04", "AR": "05", "CA": "06", "CO": "08", "CT": "09",
    "DE": "10", "DC": "11", "FL": "12", "GA": "13", "HI": "15", "ID": "16", "IL": "17",
    "IN": "18", "IA": "19", "KS": "20", "KY": "21", "LA": "22", "ME": "23", "MD": "24",
    "MA": "25", "MI": "26", "MN": "27", "MS": "28", "MO": "29", "MT": "30", "NE": "31",
    "NV": "32", "NH": "33", "NJ": "34", "NM": "35", "NY": "36", "NC": "37", "ND": "38",
    "OH": "39", "OK": "40", "OR": "41", "PA": "42", "RI": "44", "SC": "45", "SD": "46",
    "TN": "47", "TX": "48", "UT": "49", "VT": "50", "VA": "51", "WA": "53", "WV": "54",
    "WI": "55", "WY": "56", "PR": "72",
}


def user_cache_home() -> Path:
    """``$XDG_CACHE_HOME`` when set (and absolute), else ``~/.cache``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``root`` if given, else ``$FAIRBENCH_DATA_DIR``, else the user cache.

    ``~`` is expanded and relative paths are taken from the current directory. Nothing is
    created: a missing root simply means no data has been found there yet.
    """
    chosen = root if root not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return user_cache_home() / "fairbench" / "data"
    return Path(chosen).expanduser().absolute()


SOURCE_FOLDERS = ("acs", "dutch")  # the folders a folder of sources may hold


def is_folder_of_sources(root: Path) -> bool:
    """Whether ``root`` holds per-census folders (``acs/`` or ``dutch/``) rather than being
    an ACS root itself (which holds ``preprocessed/`` or ``<year>/`` folders)."""
    return any((root / name).is_dir() for name in SOURCE_FOLDERS)


def source_root(root: Path, census: str) -> Path:
    """The folder of ``census`` (``acs`` or ``dutch``): ``<root>/<census>`` when ``root`` is a
    folder of sources, else ``root`` itself (the older form: the ACS root directly)."""
    return root / census if is_folder_of_sources(root) else root


def year_dir(root: Path, year: int, horizon: str) -> Path:
    """folktables' per-survey folder: ``<root>/<year>/<horizon>``."""
    return root / str(year) / horizon


def person_file(root: Path, state: str, year: int, horizon: str) -> Path:
    """The raw PUMS person file folktables reads for one state (its cache layout).

    From 2017 on the census names it ``psam_p<FIPS>.csv``; earlier years use
    ``ss<yy>p<state>.csv``.
    """
    if year >= 2017:
        name = f"psam_p{STATE_FIPS[state]}.csv"
    else:
        name = f"ss{str(year)[-2:]}p{state.lower()}.csv"
    return year_dir(root, year, horizon) / name


def definition_file(root: Path, year: int, horizon: str) -> Path:
    """The PUMS data dictionary as folktables caches it."""
    return year_dir(root, year, horizon) / "definition.csv"
