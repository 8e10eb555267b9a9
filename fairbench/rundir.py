"""The rules of a run directory: one config, one code, one run at a time, one place.

- **One config.** A run directory holds the results of exactly one config (the resolved
  config as it ran, ``config.yaml``; the keys in :data:`RESUME_FREE_KEYS` may differ: more
  or fewer seeds, threads, progress are the same experiment). Resuming (``resume=true``)
  into a directory of another config is refused; ``resume=false`` starts afresh and is
  refused in a directory that already holds results, whatever they are, so old seeds never
  sit beside new ones.
- **One code.** Every seed records the code that trained it
  (:func:`fairbench.provenance.code_identity`); resuming with other code is refused, so a
  finished seed is never reused after the code changed.
- **One run at a time.** A run holds an exclusive ``flock`` on ``<run_dir>/.fairbench.lock``
  for its whole life (:func:`claimed`); a second run of the directory stops at once with one
  line naming the holder (pid, host, start) and exit code :data:`EXIT_BUSY`. The kernel
  releases the lock when the holder exits, however it ends (``kill -9`` included), so a
  stale lock file never blocks anything. No seed is trained twice: rerun once the holder
  has finished and its finished seeds are skipped.
- **One place.** :func:`unwritable` and :func:`outside` let the command refuse, before it
  writes anything, a directory it cannot write or one that would lie outside its output root.

The command checks all of these before Hydra writes anything (:mod:`fairbench.cli`); the
runner checks config and code again under the lock (:func:`fairbench.runner.run`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

from fairbench import provenance
from fairbench.errors import FairbenchError

LOCK_FILE = ".fairbench.lock"
CONFIG_FILE = "config.yaml"
SEED_DIR = re.compile(r"^seed_\d+$")
#: config keys that may differ between a run and its resumption
RESUME_FREE_KEYS = ("seeds", "resume", "progress", "threads", "stack_seeds", "checkpoint_every")
#: exit code of a command refused because another run holds its directory (sysexits' EX_TEMPFAIL)
EXIT_BUSY = 75


class RunDirBusy(FairbenchError):
    """Another process holds the run directory's lock."""

    exit_code = EXIT_BUSY


def _named(run_dir: Path, key: str | None) -> str:
    return f"{key}={run_dir}" if key else str(run_dir)


def results_in(run_dir: Path) -> list[str]:
    """The names of the result files and seed directories ``run_dir`` holds (sorted)."""
    try:
        names = os.listdir(run_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n for n in names if n in (CONFIG_FILE, "summary.json") or SEED_DIR.match(n))


def seed_provenances(run_dir: Path) -> Iterator[tuple[str, dict]]:
    """``(seed directory, provenance)`` of every seed with a readable ``metrics.json``."""
    for name in results_in(run_dir):
        if SEED_DIR.match(name):
            try:
                metrics = json.loads((run_dir / name / "metrics.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # not finished: it is trained again
            if isinstance(metrics, dict):
                yield name, metrics.get("provenance") or {}


def check_one_config(run_dir: Path, config: dict, resume: bool, key: str | None = None,
                     fresh: bool = True, named: str | None = None) -> None:
    """Refuse (:class:`FairbenchError`) to run ``config`` into ``run_dir`` when that would
    mix results: ``resume=false`` and the directory holds results; or ``resume=true`` and
    it holds another config's, or seeds that other code trained.

    ``config`` is the resolved config as the run records it; ``key`` the setting that chose
    the directory (named in the message: ``hydra.run.dir`` or ``hydra.sweep.dir``); ``fresh``
    whether ``resume=false`` would choose a new directory (the default directories'
    timestamp), which the message then offers; ``named`` how the message names the directory
    (default ``key=run_dir``)."""
    where = named or _named(run_dir, key)
    other = f"choose another {key or 'run directory'}"
    existing = results_in(run_dir)
    if not resume:
        if existing:
            raise FairbenchError(
                f"{where} already holds results ({', '.join(existing[:4])}{', ...' if len(existing) > 4 else ''}): "
                f"resume=false starts afresh and never mixes with them; {other}, or remove the directory")
        return
    advice = f"{other}, or resume=false to start afresh in a new directory" if fresh else \
        f"{other}, or remove the directory to start afresh"
    recorded = run_dir / CONFIG_FILE
    if recorded.is_file():
        try:
            old = OmegaConf.to_container(OmegaConf.load(recorded))
        except Exception as err:  # noqa: BLE001 - any unreadable file: refused below if seeds depend on it
            old = err
        if not isinstance(old, dict):
            if any(SEED_DIR.match(n) for n in existing):
                raise FairbenchError(f"{where} holds seeds of a config that cannot be read ({recorded}): {advice}")
        else:
            changed = sorted(k for k in set(old) | set(config)
                             if k not in RESUME_FREE_KEYS and old.get(k) != config.get(k))
            if changed:
                raise FairbenchError(
                    f"{where} holds results of a different config ({', '.join(changed)} differ): {advice}")
    current = None
    for seed, recorded_code in seed_provenances(run_dir):
        current = current or provenance.code_identity()
        differences = provenance.code_differences(recorded_code, current)
        if differences:
            raise FairbenchError(
                f"{where} holds {seed} trained by other code ({'; '.join(differences)}): "
                f"its results cannot be resumed; {advice}")


# -- the lock -------------------------------------------------------------------------------------
_HELD: dict[str, int] = {}  # real path of a locked run directory -> how many claims hold it here


def _holder_text(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 512).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another process (which has not written its name yet)"


def _busy(run_dir: Path, holder: str) -> RunDirBusy:
    return RunDirBusy(f"{run_dir} is in use by {holder}: one run at a time writes a run directory; "
                      "wait for it to finish, then rerun to resume (its finished seeds are skipped)")


def holder(run_dir: Path) -> str | None:
    """Who holds ``run_dir``'s lock (the lock file's one line), or ``None`` if no other process
    does. Creates nothing."""
    if os.path.realpath(run_dir) in _HELD:
        return None
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _holder_text(fd)
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_not_busy(run_dir: Path) -> None:
    """Raise :class:`RunDirBusy` when another process holds ``run_dir``."""
    text = holder(run_dir)
    if text is not None:
        raise _busy(run_dir, text)


@contextmanager
def claimed(run_dir: Path):
    """Hold ``run_dir``'s lock for the block (creating the directory and the lock file), or
    raise :class:`RunDirBusy` at once naming the holder. Reentrant within a process."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(run_dir)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _busy(run_dir, _holder_text(fd)) from None
            raise
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(), 0)
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
    finally:
        os.close(fd)  # releases the lock


# -- where a run directory may be -----------------------------------------------------------------
#: the free space a run directory's disk must have before Hydra writes its own files there
#: (``.hydra/``, its log: a few KiB), so that a full disk is one line, not Hydra's traceback
MIN_FREE_BYTES = 1 << 20


def unwritable(run_dir: Path) -> tuple[Path, str] | None:
    """``(path, reason)`` when ``run_dir`` cannot be created or written: its nearest existing
    ancestor (or itself) is not a directory, not writable, or on a disk with less than
    :data:`MIN_FREE_BYTES` free; ``None`` otherwise."""
    path = Path(os.path.abspath(run_dir))
    for candidate in (path, *path.parents):
        if not os.path.lexists(candidate):
            continue
        if not candidate.is_dir():
            return candidate, f"{candidate} is not a directory"
        if not os.access(candidate, os.W_OK | os.X_OK):
            return candidate, f"{candidate} is not writable"
        stats = os.statvfs(candidate)
        free = stats.f_bavail * stats.f_frsize
        if free < MIN_FREE_BYTES:
            return candidate, f"the disk of {candidate} is full ({free} bytes free)"
        return None
    return None


def outside(path: Path, root: Path) -> bool:
    """Whether ``path`` (normalised, ``..`` applied) lies outside ``root``."""
    path, root = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(root))
    return os.path.commonpath([path, root]) != root
