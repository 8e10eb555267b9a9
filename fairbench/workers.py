"""Worker processes end with the process that launched them.

A sweep on the joblib launcher runs its jobs in loky worker processes, which outlive their
parent when it is killed (``kill -9``, an out-of-memory kill): they would go on with the jobs
already queued to them and write results nobody asked for any more. The launching process
marks itself (:func:`launching`: its pid in the environment the workers inherit); a joblib
worker, before its first check or job, calls :func:`guard`, which

- asks Linux to send it ``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and
- starts a daemon thread that checks every :data:`POLL_SECONDS` whether its parent is still
  the launching process (other systems, and the case where the kernel's signal is lost),
  and kills the worker if not.

``SIGKILL``, not ``SIGTERM``: a job would catch ``SIGTERM`` and finish as ``interrupted``,
and the worker would then take its next job. A killed job leaves no partial file (every
write is atomic) and its run directory's lock is released by the kernel; rerunning the
command resumes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

#: the launching process's pid, inherited by the workers it starts
LAUNCHER_ENV = "FAIRBENCH_LAUNCHER_PID"
POLL_SECONDS = 0.5
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_guarded = False


@contextlib.contextmanager
def launching():
    """Within the block, processes started from this one know it as their launcher."""
    previous = os.environ.get(LAUNCHER_ENV)
    os.environ[LAUNCHER_ENV] = str(os.getpid())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(LAUNCHER_ENV, None)
        else:
            os.environ[LAUNCHER_ENV] = previous


def launcher_pid() -> int | None:
    """The launching process's pid when this process is one of its workers, else ``None``."""
    value = os.environ.get(LAUNCHER_ENV, "")
    if not value.isdigit() or int(value) == os.getpid():
        return None
    return int(value)


def guard(parent: int | None) -> None:
    """In a joblib worker of the launching process ``parent`` (its child: loky starts its
    workers itself): die with it. Once per process; nothing when ``parent`` is ``None``, not
    a pid, this process, or a live process other than its parent. Not for other launchers' jobs (a SLURM job's parent is not the launching
    process, and submitit's local jobs are its grandchildren)."""
    global _guarded
    if _guarded or parent is None or parent <= 0 or parent == os.getpid():
        return
    if os.getppid() != parent and _alive(parent):
        return  # not its child: nothing to die with
    _guarded = True
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # it died before the request: the kernel will not signal
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch, args=(parent,), name="fairbench-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)
