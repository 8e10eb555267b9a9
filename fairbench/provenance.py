"""What produced a result: fairbench version, the code that trained it, library versions,
threads, machine.

The code is identified by :func:`code_identity`: the fairbench version, the git commit of
the checkout with a dirty flag (where fairbench runs from a git checkout), and
``code_sha256``, a SHA-256 over the Python source of every module that trains or writes a
result (the package's ``*.py`` files, ``fairbench/report/`` excepted: it only reads run
directories). The hash covers committed and uncommitted edits alike and is known without
git; resume compares it (:mod:`fairbench.rundir`).

This module imports neither numpy nor torch at import time, so that a process that only
launches jobs can check a run directory's code without loading them.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from pathlib import Path

from fairbench import __version__

PACKAGE = Path(__file__).resolve().parent
#: package folders whose code never changes a result (skipped by :func:`code_sha256`)
READ_ONLY_PARTS = ("report",)


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str, bool] | None:
    """``(commit, dirty)`` of the fairbench checkout (dirty: tracked files with local
    changes), or ``None`` outside a git checkout or without git: an installed package (in
    site-packages, no ``.git`` beside it) has none, even where its environment lies inside
    some other git checkout."""
    root = PACKAGE.parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit, bool(dirty)) if commit else None


def git_commit() -> str | None:
    """The commit of the fairbench checkout (with ``+dirty`` for local changes), if any."""
    state = git_state()
    return None if state is None else state[0] + ("+dirty" if state[1] else "")


def fairbench_version() -> str:
    """The package's own version (not the installed distribution's metadata, which is named
    ``fairbench-constrained`` and absent when the source tree is used on ``PYTHONPATH``)."""
    return __version__


@functools.lru_cache(maxsize=1)
def code_sha256() -> str:
    """SHA-256 over (relative path, contents) of the package's ``*.py`` files in path order,
    ``fairbench/report/`` excepted."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in READ_ONLY_PARTS or "__pycache__" in relative.parts:
            continue
        digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def code_identity() -> dict:
    """What identifies the code that trains: version, git commit and dirty flag (``None``
    where unknown) and the source hash."""
    state = git_state()
    return {
        "fairbench_version": fairbench_version(),
        "git_commit": git_commit(),
        "git_dirty": None if state is None else state[1],
        "code_sha256": code_sha256(),
    }


def code_differences(recorded: dict, current: dict) -> list[str]:
    """The fields of :func:`code_identity` in which ``recorded`` (a result's provenance) and
    ``current`` differ, as ``"key: then -> now"``. With a source hash on both sides it alone
    decides (with the version): a commit that changes no code (documentation, tests) does
    not count. Results recorded before the hash existed are compared by version and commit.
    Fields unknown on either side are not compared."""
    keys = ["fairbench_version"]
    keys += ["code_sha256"] if recorded.get("code_sha256") and current.get("code_sha256") else ["git_commit"]
    differences = []
    for key in keys:
        then, now = recorded.get(key), current.get(key)
        if then is not None and now is not None and then != now:
            short = (lambda v: v[:12]) if key == "code_sha256" else str
            differences.append(f"{key} {short(then)} then, {short(now)} now")
    return differences


def collect(threads: int) -> dict:
    import numpy as np
    import torch

    return {
        **code_identity(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "threads": threads,
        "machine": f"{platform.system()} {platform.machine()}",
    }
