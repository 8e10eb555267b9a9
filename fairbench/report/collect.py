"""Find run directories and read them (the recorder's contract) without ever crashing.

A report is most needed when something went wrong, so every file is read defensively: a
missing or unreadable file becomes an :class:`Issue` naming its path, and whatever else the
run holds is still used. Only *completed* seeds feed the numbers; the others are listed.

Layout read (written by :mod:`fairbench.recorder`)::

    <run>/config.yaml  <run>/summary.json  <run>/seed_<k>/metrics.json  <run>/seed_<k>/trajectory.csv
    <run>/seed_<k>/scores_<split>.npz   (optional: arrays scores, y, group; read on demand)
    <sweep>/multirun.yaml   (Hydra's, beside the job directories of one multirun)

A run whose parent directory holds ``multirun.yaml`` is a job of that Hydra multirun: its
``sweep`` is that directory and its ``swept`` keys are the ones the multirun swept (the
command line's sweep overrides and ``hydra.sweeper.params``; None when that file does not
say).
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

SEED_DIR = re.compile(r"^seed_(\d+)$")
RUN_FILES = ("config.yaml", "summary.json")
MULTIRUN_FILE = "multirun.yaml"
#: the per-split metrics the report uses; a completed seed lacking one is reported
REPORTED_METRICS = ("loss", "max_violation", "ind", "sp", "sf", "ina", "wd", "auc")
REPORTED_SPLITS = ("train", "test")
TRAJECTORY_COLUMNS = ("iteration", "train_seconds", "train_loss", "test_loss")
#: config keys that never distinguish one method configuration from another
NON_HYPERPARAMETERS = ("seeds", "resume", "threads", "progress", "tune")
#: the data split's seed: a second seed axis (the verdicts pair runs on it), not a hyperparameter
SPLIT_SEED_KEY = "dataset.split.seed"


@dataclass(frozen=True)
class Issue:
    """A file the report could not use: shown by path in "Problems" and on stderr."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class SeedResult:
    """One ``seed_<k>`` directory (or an expected seed that has none)."""

    seed: int
    directory: Path
    status: str  # completed | diverged | interrupted (runner) | missing | unreadable | not run
    metrics: dict[str, Any] | None = None
    trajectory: pd.DataFrame | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"


@dataclass
class Run:
    """One run directory: a configuration trained for one or more seeds."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    seeds: list[SeedResult] = field(default_factory=list)
    sweep: Path | None = None
    swept: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.flat_config = flatten(self.config)

    def _get(self, config_key: str, summary_key: str, default: Any = None) -> Any:
        """A value from config.yaml, else from summary.json (either file may be missing)."""
        value = self.flat_config.get(config_key)
        return value if value is not None else self.summary.get(summary_key, default)

    @property
    def algo(self) -> str:
        return str(self._get("algo.name", "algo", "unknown"))

    @property
    def problem(self) -> str:
        return str(self._get("problem.name", "problem", "unknown"))

    @property
    def dataset(self) -> str:
        return str(self._get("dataset.name", "dataset", "unknown"))

    @property
    def delta(self) -> float | None:
        value = self._get("problem.delta", "delta")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def synthetic(self) -> bool:
        return bool(self.summary.get("synthetic", False))

    @property
    def constraint_names(self) -> list[str]:
        for seed in self.seeds:
            names = (seed.metrics or {}).get("constraint_names")
            if isinstance(names, list):
                return [str(n) for n in names]
        return []

    @property
    def group_names(self) -> list[str]:
        names = self.summary.get("group_names")
        if not isinstance(names, list):
            names = next((s.metrics["group_names"] for s in self.seeds
                          if isinstance((s.metrics or {}).get("group_names"), list)), [])
        return [str(n) for n in names]

    @property
    def completed(self) -> list[SeedResult]:
        return [s for s in self.seeds if s.completed]

    def hyperparameters(self) -> dict[str, Any]:
        """The flat config without keys that never change what is trained (seeds, threads...)."""
        return {k: v for k, v in self.flat_config.items()
                if k.split(".")[0] not in NON_HYPERPARAMETERS and not k.startswith("hydra") and k != SPLIT_SEED_KEY}

    @property
    def split_seed(self) -> int | None:
        value = self.flat_config.get(SPLIT_SEED_KEY)
        return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class ScoreArrays:
    """Predicted probabilities with labels and groups of one split (for Figure 3)."""

    scores: np.ndarray
    y: np.ndarray
    group: np.ndarray


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"algo": {"tau": 0.1}}`` -> ``{"algo.tau": 0.1}``; lists stay values (as Hydra overrides)."""
    if not isinstance(tree, dict):
        return {prefix: tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def is_run_dir(filenames: Sequence[str], dirnames: Sequence[str]) -> bool:
    return any(f in filenames for f in RUN_FILES) or any(SEED_DIR.match(d) for d in dirnames)


def find_run_dirs(paths: Sequence[Path], issues: list[Issue], exclude: Path | None = None) -> list[Path]:
    """Run directories at or below ``paths`` (a run, a Hydra sweep, or any parent of them).

    A run directory is not searched further; hidden directories (Hydra's ``.hydra``) and
    ``exclude`` (the report's own output) are skipped.
    """
    found: list[Path] = []
    skip = exclude.resolve() if exclude is not None else None
    for root in paths:
        if not root.is_dir():
            issues.append(Issue(root, "does not exist" if not root.exists() else "is not a directory"))
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            if skip is not None and here.resolve() == skip:
                dirnames.clear()
                continue
            if is_run_dir(filenames, dirnames):
                found.append(here)
                dirnames.clear()
                continue
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def read_json(path: Path, issues: list[Issue]) -> dict[str, Any] | None:
    if not path.is_file():
        issues.append(Issue(path, "missing"))
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        issues.append(Issue(path, f"unreadable JSON ({one_line(err)})"))
        return None
    if not isinstance(data, dict):
        issues.append(Issue(path, f"unreadable: expected a JSON object, found {type(data).__name__}"))
        return None
    return data


def read_yaml(path: Path, issues: list[Issue]) -> dict[str, Any]:
    if not path.is_file():
        issues.append(Issue(path, "missing"))
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        issues.append(Issue(path, f"unreadable YAML ({one_line(err)})"))
        return {}
    if not isinstance(data, dict):
        issues.append(Issue(path, "unreadable: expected a YAML mapping"))
        return {}
    return data


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def check_metrics(metrics: dict[str, Any]) -> str | None:
    """What is wrong with a seed's metrics.json, or ``None`` when the report can use it."""
    status = metrics.get("status")
    if not isinstance(status, str):
        return "no 'status'"
    if status != "completed":
        return None
    splits = metrics.get("splits")
    for split in REPORTED_SPLITS:
        values = splits.get(split) if isinstance(splits, dict) else None
        if not isinstance(values, dict):
            return f"completed seed without splits.{split}"
        missing = [k for k in REPORTED_METRICS if k not in values or not is_number_or_null(values[k])]
        if missing:
            return f"splits.{split} lacks numeric {', '.join(missing)}"
    return None


def is_number_or_null(value: Any) -> bool:
    """JSON numbers (the recorder writes non-finite values as ``null``)."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def read_trajectory(path: Path, issues: list[Issue]) -> pd.DataFrame | None:
    if not path.is_file():
        issues.append(Issue(path, "missing"))
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as err:
        issues.append(Issue(path, f"unreadable CSV ({one_line(err)})"))
        return None
    absent = [c for c in TRAJECTORY_COLUMNS if c not in frame.columns]
    if absent:
        issues.append(Issue(path, f"unreadable: no column {', '.join(absent)}"))
        return None
    if frame.empty:
        issues.append(Issue(path, "unreadable: no rows"))
        return None
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        issues.append(Issue(path, f"unreadable: non-numeric column {', '.join(bad[:3])}"))
        return None
    return frame


def read_seed(directory: Path, seed: int, issues: list[Issue]) -> SeedResult:
    metrics_path = directory / "metrics.json"
    result = SeedResult(seed, directory, "unreadable" if metrics_path.exists() else "missing")
    metrics = read_json(metrics_path, issues)
    if metrics is not None:
        problem = check_metrics(metrics)
        if problem is None:
            result.metrics, result.status = metrics, str(metrics["status"])
        else:
            issues.append(Issue(metrics_path, f"unreadable: {problem}"))
    result.trajectory = read_trajectory(directory / "trajectory.csv", issues)
    return result


def expected_seeds(config: dict[str, Any], summary: dict[str, Any]) -> list[int]:
    seeds = config.get("seeds", summary.get("seeds"))
    if not isinstance(seeds, list):
        return []
    return [s for s in seeds if isinstance(s, int) and not isinstance(s, bool)]


def read_run(path: Path, issues: list[Issue]) -> Run:
    """Read everything of one run directory; problems go to ``issues``."""
    config = read_yaml(path / "config.yaml", issues)
    summary = read_json(path / "summary.json", issues) or {}
    present = {}
    for child in sorted(path.iterdir()) if path.is_dir() else []:
        match = SEED_DIR.match(child.name)
        if match and child.is_dir():
            present[int(match.group(1))] = child
    sweep = path.parent if (path.parent / MULTIRUN_FILE).is_file() else None
    run = Run(path, config, summary, sweep=sweep, swept=swept_keys(sweep / MULTIRUN_FILE) if sweep else None)
    for seed in sorted(set(present) | set(expected_seeds(config, summary))):
        if seed in present:
            run.seeds.append(read_seed(present[seed], seed, issues))
        else:
            run.seeds.append(SeedResult(seed, path / f"seed_{seed}", "not run"))
    return run


def swept_keys(path: Path) -> tuple[str, ...] | None:
    """The keys a Hydra multirun swept, from its ``multirun.yaml``; None if it does not say.
    (Read once per file version: every run of a sweep names the same file.)"""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _swept_keys(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _swept_keys(name: str, mtime_ns: int, size: int) -> tuple[str, ...] | None:
    path = Path(name)
    try:
        hydra = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("hydra") or {}
        task = (hydra.get("overrides") or {}).get("task")
        params = (hydra.get("sweeper") or {}).get("params") or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
        return None
    if not isinstance(task, list) and not params:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    keys = {str(k) for k in params} if isinstance(params, dict) else set()
    try:
        parsed = OverridesParser.create().parse_overrides([str(o) for o in task or []])
    except HydraException:
        return None
    keys.update(o.key_or_group for o in parsed if o.is_sweep_override())
    return tuple(sorted(keys))


def read_runs(paths: Sequence[Path], issues: list[Issue], progress: Callable[[int, int, Path], None]) -> list[Run]:
    """Read every run directory, calling ``progress(i, n, path)`` before each."""
    runs = []
    for i, path in enumerate(paths, start=1):
        progress(i, len(paths), path)
        runs.append(read_run(path, issues))
    return runs


def read_scores(seed: SeedResult, split: str, issues: list[Issue]) -> ScoreArrays | None:
    """``seed_<k>/scores_<split>.npz`` if present and valid (optional file; absent is no issue)."""
    path = seed.directory / f"scores_{split}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]).ravel() for k in ("scores", "y", "group")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        issues.append(Issue(path, f"unreadable scores ({one_line(err)})"))
        return None
    if len({a.shape for a in arrays.values()}) != 1:
        issues.append(Issue(path, "unreadable scores: scores, y and group differ in length"))
        return None
    return ScoreArrays(arrays["scores"].astype(float), arrays["y"], arrays["group"].astype(int))
