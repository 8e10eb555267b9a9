"""Worker processes: started from a fork server with the runtime loaded, and ended with the
process that launched them.

A sweep on the joblib launcher runs its jobs in loky worker processes. :func:`use_forkserver`
has loky fork them from one server process that has imported torch, numba and fairbench and
loaded the sweep's compiled kernels (:mod:`fairbench.preload`), so that the workers share those
pages instead of each loading its own copy (docs/scale.md, "Memory").

Workers outlive their parent when it is killed (``kill -9``, an out-of-memory kill): they
would go on with the jobs already queued to them and write results nobody asked for any more. The launching process
marks itself (:func:`launching`: its pid in the environment the workers inherit); a joblib
worker, before its first check or job, calls :func:`guard`, which

- asks Linux to send it ``SIGKILL`` when its parent (the launching process, or the fork
  server, which ends with the launching process) dies (``prctl(PR_SET_PDEATHSIG)``), and
- starts a daemon thread that checks every :data:`POLL_SECONDS` whether its parent is still
  the same (other systems, and the case where the kernel's signal is lost), and kills the
  worker if not.

``SIGKILL``, not ``SIGTERM``: a job would catch ``SIGTERM`` and finish as ``interrupted``,
and the worker would then take its next job. A killed job leaves no partial file (every
write is atomic) and its run directory's lock is released by the kernel; rerunning the
command resumes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
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


#: the environment variable that gives the fork server the sweep's jobs (a JSON list of override lists)
JOBS_ENV = "FAIRBENCH_PRELOAD_JOBS"
#: modules a sweep's fork server imports once, before it forks the workers: the runtime every
#: job needs (an ImportError, e.g. numba not installed, is passed over)
PRELOAD = ("fairbench.preload",)


#: the overrides that can choose a job's compiled kernels (its method, problem, model, fast
#: path, or a preset choosing them): the fork server warms one job per distinct set
KERNEL_KEYS = ("algo", "problem", "problem.fast_path", "model", "experiment")


def kernel_choices(job: list[str]) -> tuple[str, ...]:
    """``job``'s overrides of :data:`KERNEL_KEYS`, in order (jobs of a sweep over
    hyperparameters share them)."""
    return tuple(o for o in job if o.lstrip("+~").split("=", 1)[0] in KERNEL_KEYS)


#: the warnings filter passed to the resource tracker (:func:`use_forkserver`)
TRACKER_WARNINGS = "ignore::UserWarning:multiprocessing.resource_tracker"


def use_forkserver(jobs: list[list[str]] = ()) -> None:
    """Start the joblib launcher's workers from a fork server that has imported :data:`PRELOAD`.

    loky otherwise starts each worker as a fresh interpreter, which imports torch, numba,
    scipy and Hydra and loads the kernels again, in private memory: most of a job's memory
    once the data is shared through the cache. Forked from one server, the workers share
    those pages (copy on write) with it and each other (docs/scale.md, "A 2-job sweep")."""
    import multiprocessing

    from joblib.externals.loky.backend.context import set_start_method

    os.environ[JOBS_ENV] = json.dumps([list(job) for job in jobs])  # (the server inherits it)
    # the standard library's resource tracker, which the fork server starts, cleans up loky's
    # semaphores after a sweep ended abruptly (a bad Hydra override, a kill) and warns on
    # stderr about each, or about loky having removed it first: nothing a user can act on.
    # Its command line carries this process's -W options.
    if TRACKER_WARNINGS not in sys.warnoptions:
        sys.warnoptions.append(TRACKER_WARNINGS)
    multiprocessing.set_forkserver_preload(list(PRELOAD))
    set_start_method("forkserver", force=True)


def guard(parent: int | None) -> None:
    """In a joblib worker of the launching process ``parent`` (its child, or a child of the fork
    server that ``parent`` started: :func:`use_forkserver`): die with it. Once per process;
    nothing when ``parent`` is ``None``, not a pid, this process, or a live process that is
    neither its parent nor its grandparent. Not for other launchers' jobs (a SLURM job's parent
    is not the launching process, and submitit's local jobs are its grandchildren through
    submitit's own process, not a fork server).

    The kernel signals the worker when its own parent dies; a fork server ends when the
    launching process does (it reads EOF on a pipe the launching process holds), so a worker
    of a fork server dies with the launching process too."""
    global _guarded
    if _guarded or parent is None or parent <= 0 or parent == os.getpid():
        return
    direct = os.getppid()
    if direct != parent and _parent_of(direct) != parent and _alive(parent):
        return  # not its child, nor a fork server's: nothing to die with
    _guarded = True
    if direct != parent:
        _release_fork_server()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != direct:  # it died before the request: the kernel will not signal
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch, args=(direct,), name="fairbench-parent-watch", daemon=True).start()


def _release_fork_server() -> None:
    """Close this fork server child's copy of the launching process's "alive" pipe.

    The fork server ends when that pipe's write end is closed everywhere; every child it forks
    inherits a copy (to start processes of its own through the server), so while a worker
    holds one the server outlives the launching process, and the worker, waiting for its
    parent to end, would too. A worker starts no processes."""
    from multiprocessing import forkserver

    fd = getattr(forkserver._forkserver, "_forkserver_alive_fd", None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
        forkserver._forkserver._forkserver_alive_fd = None


def _parent_of(pid: int) -> int | None:
    """The parent of process ``pid`` (Linux's /proc), or ``None`` where unknown."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(parent: int) -> None:
    """Kill this process once its parent is no longer ``parent``."""
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)
