"""Everything fairbench writes to disk, written atomically.

Layout of a run directory (a fixed contract; the report reads it)::

    <run_dir>/config.yaml              the resolved config of the run
    <run_dir>/summary.json             aggregated over seeds, rewritten after every seed
                                       (once for stacked seeds that finish together)
    <run_dir>/seed_<k>/trajectory.csv  one row per log point
    <run_dir>/seed_<k>/metrics.json    final metrics per split, status, provenance
    <run_dir>/seed_<k>/scores_<split>.npz  final predicted probabilities, labels, groups
    <run_dir>/.fairbench.lock          held by the run writing the directory (fairbench.rundir)

Each file is written to a temporary file in the same directory and then renamed over the
target (:func:`atomic_write_text`), so a crash or a kill never leaves a truncated file: a
reader sees the old version or the new one. A seed's ``metrics.json`` is written last, so
its presence with status ``completed`` marks the seed as finished (used by resume). Files
get the mode the user's umask gives (``0o666 & ~umask``); a full disk fails the write with
one line and leaves every finished file intact.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fairbench.errors import FairbenchError

SPLITS = ("train", "val", "test")
SUMMARY_METRICS = ("loss", "max_violation", "ind", "sp", "sf", "ina", "wd", "wd2_binned", "auc", "loss_gap", "accuracy")


#: errors of a full disk or quota: the write fails with one line (:func:`atomic_write_bytes`)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def file_mode() -> int:
    """The mode a new file gets under the process's umask (``0o666 & ~umask``), as ``open``
    would give it (``mkstemp`` creates files ``0o600`` whatever the umask)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename.

    The file gets the mode the user's umask gives a new file (:func:`file_mode`). A full disk
    or quota (``ENOSPC``/``EDQUOT``) raises :class:`FairbenchError` with one line: the
    temporary file is removed and ``path``, like every file written before it, stays as it
    was."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), file_mode())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in NO_SPACE:
            raise FairbenchError(
                f"cannot write {path}: {os.strerror(err.errno)}; every file finished before it is intact "
                "(free some space, then rerun the same command to resume)") from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file and an atomic rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def atomic_write_json(path: Path, data: dict) -> None:
    """JSON with non-finite floats written as ``null`` (JSON has no NaN)."""
    atomic_write_text(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


def format_number(value: Any) -> str:
    """Shortest round-trip text of a number (``repr``), so files are byte-reproducible."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(float(value))


def csv_text(columns: Sequence[str], rows: Iterable[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_number(row[c]) if c in row else "" for c in columns])
    return buffer.getvalue()


def mean_std(values: Sequence[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value) of finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return {"mean": float(np.mean(finite)), "std": std, "n": len(finite)}


class Recorder:
    """Writes one run directory."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def seed_dir(self, seed: int) -> Path:
        return self.run_dir / f"seed_{seed}"

    def write_config(self, config_yaml: str) -> None:
        atomic_write_text(self.run_dir / "config.yaml", config_yaml)

    def write_trajectory(self, seed: int, columns: Sequence[str], rows: list[dict]) -> None:
        atomic_write_text(self.seed_dir(seed) / "trajectory.csv", csv_text(columns, rows))

    def write_scores(self, seed: int, split: str, scores: np.ndarray, y: np.ndarray, group: np.ndarray) -> None:
        """Final predicted probabilities of a split (for per-group score distributions).

        Stored uncompressed: float32 probabilities barely compress, and zlib's CPU time
        outweighed the saving (figures in docs/performance.md)."""
        path = self.seed_dir(seed) / f"scores_{split}.npz"
        buffer = io.BytesIO()
        np.savez(buffer, scores=scores.astype(np.float32), y=y.astype(np.int8), group=group.astype(np.int16))
        atomic_write_bytes(path, buffer.getvalue())

    def write_metrics(self, seed: int, metrics: dict) -> None:
        atomic_write_json(self.seed_dir(seed) / "metrics.json", metrics)

    def read_metrics(self, seed: int) -> dict | None:
        """A seed's metrics, or ``None`` when absent or unreadable (then it is re-run)."""
        path = self.seed_dir(seed) / "metrics.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write_summary(self, header: dict, seed_metrics: dict[int, dict]) -> dict:
        """Aggregate per-seed metrics (completed seeds only) and write ``summary.json``.

        ``status`` is ``completed`` (every seed completed), ``interrupted`` (a signal
        stopped the run), ``partial`` (some seeds diverged or have not run) or ``failed``
        (no seed completed); ``seed_status`` gives each seed's (``pending`` = not run yet);
        ``stopped_by`` the budget limit that ended each finished seed (``None`` unless completed);
        ``all_diverged`` is true when every seed diverged (the command then exits with code 3).
        """
        expected = header.get("seeds", [])
        statuses = {str(seed): seed_metrics.get(seed, {}).get("status", "pending") for seed in expected}
        completed = [m for m in seed_metrics.values() if m.get("status") == "completed"]
        counts: dict[str, int] = {}
        for status in statuses.values():
            counts[status] = counts.get(status, 0) + 1
        if "interrupted" in counts:
            overall = "interrupted"
        elif len(completed) == len(expected):
            overall = "completed"
        else:
            overall = "partial" if completed else "failed"
        summary = dict(header)
        all_diverged = bool(expected) and counts.get("diverged", 0) == len(expected)
        summary.update(status=overall, seed_status=statuses, counts=counts, all_diverged=all_diverged,
                       stopped_by={str(seed): seed_metrics[seed].get("stopped_by") for seed in expected
                                   if seed in seed_metrics})
        for split in SPLITS:
            if completed and split in completed[0].get("splits", {}):
                summary[split] = {
                    key: mean_std([m["splits"][split].get(key) for m in completed]) for key in SUMMARY_METRICS
                }
        shift = completed[0].get("shift") if completed else None
        if shift:  # eval.states: the final model on each other state
            summary["shift"] = {state: {key: mean_std([(m.get("shift") or {}).get(state, {}).get(key) for m in completed])
                                        for key in SUMMARY_METRICS} for state in shift}
        for key in ("iterations", "train_seconds", "samples", "grad_evals"):
            summary[key] = mean_std([m.get(key) for m in completed])
        atomic_write_json(self.run_dir / "summary.json", summary)
        return summary
