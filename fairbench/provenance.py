"""What produced a result: fairbench version, git commit, library versions, threads, machine."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

import fairbench


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the fairbench checkout (with ``+dirty`` for local changes), if any: an
    installed package (in site-packages, no ``.git`` beside it) has none, even where its
    environment lies inside some other git checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "") if commit else None


def fairbench_version() -> str:
    """The package's own version (not the installed distribution's metadata, which is named
    ``fairbench-constrained`` and absent when the source tree is used on ``PYTHONPATH``)."""
    return fairbench.__version__


def collect(threads: int) -> dict:
    return {
        "fairbench_version": fairbench_version(),
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "threads": threads,
        "machine": f"{platform.system()} {platform.machine()}",
    }
