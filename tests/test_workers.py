"""The joblib launcher's workers: they end with the launching process (``fairbench.workers``),
and one job at a time (``hydra.launcher.n_jobs=1``) runs the sweep."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")


def processes() -> dict[int, tuple[int, bytes]]:
    """Every process's ``(parent, command line)``."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            table[int(entry.name)] = (int(text[text.rindex(")") + 2:].split()[1]), command)
    return table


def loky_workers(pid: int) -> list[int]:
    """The sweep's worker processes: the children of the fork server that ``pid`` started."""
    table = processes()
    servers = {p for p, (parent, command) in table.items() if parent == pid and b"forkserver" in command}
    return [p for p, (parent, _) in table.items() if parent in servers]


def alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2] != "Z"  # a zombie has ended (nobody may reap it)


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.time() + seconds
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_kill_9_of_a_parallel_sweep_ends_its_workers_and_no_later_job_writes(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "fairbench", "-m", "hydra/launcher=parallel", "algo.lr=0.01,0.02,0.03,0.04,0.05",
           "seeds=[0]", "budget.epochs=null", "budget.seconds=2", "log_every=200", "progress=false",
           f"hydra.sweep.dir={sweep}"]
    launcher = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(sweep.glob("*/config.yaml")):
            time.sleep(0.05)
        assert list(sweep.glob("*/config.yaml")), "no job started"
        workers = loky_workers(launcher.pid)
        assert len(workers) >= 2
    finally:
        launcher.kill()
        launcher.wait()
    left = wait_gone(workers, 3.0)
    for pid in left:  # (without the guard: end them here, not leave them to the machine)
        os.kill(pid, signal.SIGKILL)
    assert not left, "workers outlived the launching process"
    started = sorted(p.parent.name for p in sweep.glob("*/config.yaml"))
    time.sleep(2.5)  # longer than a job: a worker still alive would have finished one by now
    assert sorted(p.parent.name for p in sweep.glob("*/config.yaml")) == started
    assert not list(sweep.glob("*/summary.json"))  # the jobs running at the kill never finished


CHILD = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(worker.pid, flush=True)
time.sleep(60)
"""
WORKER = """
import os, time
from fairbench import workers
workers.guard(os.getppid())
print("guarded", flush=True)
time.sleep(60)
"""
NOT_ITS_CHILD = """
import os, sys, time
from fairbench import workers
workers.guard(int(sys.argv[1]))
print("alive", flush=True)
"""


def test_a_guarded_worker_dies_with_its_parent_and_only_then():
    parent = subprocess.Popen([sys.executable, "-c", CHILD, WORKER], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    try:
        assert parent.stdout.readline().strip() == "guarded"  # (the worker writes to its parent's stdout)
        assert alive(worker)
    finally:
        parent.kill()
        parent.wait()
    left = wait_gone([worker], 3.0)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left
    # a live process that is not its parent: nothing to die with (a SLURM job, say)
    done = subprocess.run([sys.executable, "-c", NOT_ITS_CHILD, "1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "alive", done.stderr


def test_one_job_at_a_time_on_the_parallel_launcher_runs_the_sweep(tmp_path):
    """joblib runs n_jobs=1 (and a negative n_jobs that leaves one core) in the launching
    process: the jobs are validated there before Hydra starts (a traceback before)."""
    sweep = tmp_path / "sweep"
    done = subprocess.run([sys.executable, "-m", "fairbench", "-m", "hydra/launcher=parallel",
                           "hydra.launcher.n_jobs=1", "algo.lr=0.01,0.02", "seeds=[0]", "budget.epochs=null",
                           "budget.iterations=20", "progress=false", f"hydra.sweep.dir={sweep}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    assert len(summaries) == 2 and all(s["status"] == "completed" for s in summaries)


def test_n_jobs_is_read_as_joblib_reads_it():
    from omegaconf import OmegaConf

    from fairbench import cli
    from fairbench.errors import ConfigError

    cores = os.cpu_count()
    assert cli.joblib_workers(OmegaConf.create({"n_jobs": 3})) == 3
    assert cli.joblib_workers(OmegaConf.create({"n_jobs": -1})) == cores
    assert cli.joblib_workers(OmegaConf.create({"n_jobs": -cores - 5})) == 1
    for bad in (0, True, 1.5, "two", None):
        with pytest.raises(ConfigError, match="hydra.launcher.n_jobs="):
            cli.joblib_workers(OmegaConf.create({"n_jobs": bad}))


def test_the_fork_server_warms_one_job_per_choice_of_kernels():
    from fairbench.workers import kernel_choices

    a = kernel_choices(["algo=ssl_alm", "algo.tau=0.1", "seeds=[0]", "problem.delta=0.1"])
    assert a == ("algo=ssl_alm",) == kernel_choices(["algo=ssl_alm", "algo.tau=0.2", "seeds=[1]"])
    assert kernel_choices(["+experiment=stress_all_states", "problem.fast_path=numpy", "model=mlp"]) == (
        "+experiment=stress_all_states", "problem.fast_path=numpy", "model=mlp")
    assert kernel_choices(["algo=ghost"]) != a and kernel_choices(["algo=ssl_alm", "problem=demographic_parity"]) != a
