"""Write a report folder whole or not at all.

Every artefact is written into a temporary sibling of the output folder (a hidden
``.<name>.partial-*`` folder in the same parent, so on the same file system); only when all
are written is it swapped in for the output folder. A reader therefore sees the old complete
report or the new complete one, never new tables beside an old ``report.html``. A failure or
a stop (SIGTERM is turned into an exception by the ``fairbench-report`` command) removes the
partial folder and leaves the old report untouched.

The swap: when no report exists yet, one ``rename`` (atomic). Otherwise, on Linux,
``renameat2(RENAME_EXCHANGE)`` exchanges the two folders atomically; where that call is
missing or the file system refuses it, the old folder is renamed aside and the new one into
place (two renames; for the instant between them the folder is absent, never mixed; if the
second fails the old one is renamed back), and the old folder is then deleted.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fairbench.errors import FairbenchError

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def check_replaceable(out: Path, artefacts: set[str]) -> None:
    """Refuse to replace an ``out`` that holds anything but report ``artefacts`` (top-level
    names): replacing the folder would delete it."""
    if not out.exists():
        return
    if not out.is_dir():
        raise FairbenchError(f"--out {out}: exists and is not a folder; choose a folder for the report")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in artefacts)
    if foreign:
        raise FairbenchError(f"--out {out}: holds {', '.join(foreign[:5])}, which a report does not write; "
                             f"the report replaces its folder whole, so choose an empty, new or report folder")


@contextlib.contextmanager
def staged_directory(out: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out``; on normal exit it replaces ``out``,
    on any exception (including SystemExit and KeyboardInterrupt) it is deleted."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield stage
        replace_directory(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def replace_directory(new: Path, out: Path) -> None:
    """Put folder ``new`` in place of ``out`` (which may not exist) and delete the old one."""
    if not out.exists():
        os.rename(new, out)
        return
    if _exchange(new, out):
        shutil.rmtree(new, ignore_errors=True)  # (now the old report)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rename(out, aside / out.name)
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(aside / out.name, out)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with Linux's ``renameat2``; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0
