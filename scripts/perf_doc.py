"""Write a benchmark run into ``docs/performance.md`` (``scripts/bench.py --out PATH``).

The document keeps one *current* section, between two HTML comment markers, and a history
below it. Writing a run makes it the current section and pushes the section it replaces to
the top of the history, so that no measurement is lost. The file is written to a temporary
file beside it and renamed, so a crash never leaves half a document.

A run's section names the date, the machine (CPU model and cores from ``/proc/cpuinfo``),
the versions that set the speed (python, numpy, torch, numba), the command line, and then
the benchmark's own Markdown (its tables and notes).
"""

from __future__ import annotations

import os
import platform
import re
import tempfile
import time
from importlib import metadata
from pathlib import Path

CURRENT_START = "<!-- bench:current:start -->"
CURRENT_END = "<!-- bench:current:end -->"
HISTORY_START = "<!-- bench:history:start -->"

TEMPLATE = f"""# Performance

Throughput of fairbench's methods and the wall time of a whole experiment, as measured by
`scripts/bench.py`. The section below the first heading is the latest run written by
`python scripts/bench.py --out docs/performance.md`; each new run pushes it into the history.

## Current

{CURRENT_START}
{CURRENT_END}

## History

{HISTORY_START}
"""


def cpu_info(text: str | None = None) -> tuple[str, int | None]:
    """``(model, logical cores)`` from the text of ``/proc/cpuinfo`` (read when ``text`` is
    None); ``(platform's processor name, os.cpu_count())`` where that file is missing."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return platform.processor() or platform.machine(), os.cpu_count()
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    cores = len(re.findall(r"^processor\s*:", text, re.M))
    return (model.group(1).strip() if model else platform.machine()), (cores or os.cpu_count())


def versions() -> dict[str, str]:
    """The versions that set the speed: python, numpy, torch, numba ("absent" if not installed)."""
    found = {"python": platform.python_version()}
    for name in ("numpy", "torch", "numba"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def run_section(body: str, command: str, date: str | None = None, cpu: tuple[str, int | None] | None = None,
                libs: dict[str, str] | None = None) -> str:
    """One run as a Markdown section: a heading with the date, the machine, the versions and
    the command, then ``body`` (the benchmark's tables)."""
    date = date or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    model, cores = cpu or cpu_info()
    libs = libs or versions()
    lines = [f"### Run of {date}", "",
             f"- machine: {model}, {cores} cores",
             "- versions: " + ", ".join(f"{name} {version}" for name, version in libs.items()),
             f"- command: `{command}`", "", body.strip(), ""]
    return "\n".join(lines)


def update_document(text: str | None, section: str) -> str:
    """``text`` (the document, or None for a new one) with ``section`` as the current run and
    the previous current run, if any, first in the history."""
    text = TEMPLATE if text is None else text
    for marker in (CURRENT_START, CURRENT_END, HISTORY_START):
        if text.count(marker) != 1:
            raise ValueError(f"the performance document must hold the line {marker} exactly once")
    before, rest = text.split(CURRENT_START)
    previous, after = rest.split(CURRENT_END)
    if after.find(HISTORY_START) < 0:
        raise ValueError(f"{HISTORY_START} must come after {CURRENT_END}")
    middle, history = after.split(HISTORY_START)
    previous = previous.strip()
    history = history.lstrip("\n")
    pushed = f"\n{previous}\n\n{history}" if previous else f"\n{history}"
    return (f"{before}{CURRENT_START}\n{section.strip()}\n{CURRENT_END}{middle}{HISTORY_START}\n"
            f"{pushed.rstrip()}\n")


def check_document(path: Path) -> None:
    """Raise ValueError, naming the path, if an existing file cannot take a run (check this
    before a benchmark of several minutes rather than after it)."""
    if path.exists():
        try:
            update_document(path.read_text(), "")
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_file(path: Path, section: str) -> None:
    """Make ``section`` the current run of the document at ``path`` (created if missing)."""
    path = Path(path)
    text = path.read_text() if path.exists() else None
    write_atomic(path, update_document(text, section))
