"""Sweeps through the Hydra launchers: joblib (parallel, local) and submitit (SLURM path, run
with submitit's local executor). Every launcher writes the same run directories, with the
same numbers, so results aggregate the same way whatever ran them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SWEEP = ["algo.lr=0.001,0.005", "seeds=[0,1]", "budget.iterations=60", "log_every=30"]


# the command's entry point, then which of torch and numba the launching process imported
LAUNCHING_PROCESS = """
import json, sys
from fairbench import cli
sys.argv = ["fairbench", *json.loads(sys.argv[1])]
cli.main()
print(json.dumps(sorted(m for m in ("torch", "numba") if m in sys.modules)))
"""


def sweep(tmp_path: Path, launcher: str | None) -> tuple[dict[str, dict], list[str]]:
    """The sweep's summaries by job directory, and what of torch and numba the launching
    process imported."""
    out = tmp_path / (launcher or "basic")
    args = ["-m", *SWEEP, f"hydra.sweep.dir={out}"] + ([f"hydra/launcher={launcher}"] if launcher else [])
    result = subprocess.run([sys.executable, "-c", LAUNCHING_PROCESS, json.dumps(args)], capture_output=True,
                            text=True, timeout=300, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    summaries = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/summary.json")}
    assert len(summaries) == 2
    return summaries, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def basic(tmp_path_factory):
    return sweep(tmp_path_factory.mktemp("basic"), None)[0]


@pytest.mark.parametrize("launcher", ["parallel", "local_submitit"])
def test_launcher_gives_the_same_runs_as_the_basic_launcher(tmp_path, basic, launcher):
    """Same runs, same numbers; on the joblib launcher the jobs are validated in the worker
    processes that then run them, so the launching process imports neither torch nor numba."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher" if launcher == "parallel"
                        else "hydra_plugins.hydra_submitit_launcher")
    runs, imported = sweep(tmp_path, launcher)
    if launcher == "parallel":
        assert imported == []
    assert runs.keys() == basic.keys()
    for name, summary in runs.items():
        assert summary["status"] == "completed"
        for split in ("train", "test"):
            for key in ("loss", "max_violation", "auc"):
                assert summary[split][key]["mean"] == basic[name][split][key]["mean"]


def test_joblib_workers_are_released_after_the_sweep(monkeypatch):
    """After a sweep on the joblib launcher the idle loky workers are killed at once (not left to
    the interpreter's graceful exit, ~1 s); without that launcher nothing is touched."""
    import joblib.externals.loky as loky

    from fairbench import cli

    calls = []

    class Executor:
        def shutdown(self, wait, kill_workers):
            calls.append((wait, kill_workers))

    monkeypatch.setattr(loky, "get_reusable_executor", lambda reuse: calls.append(reuse) or Executor())
    monkeypatch.delitem(sys.modules, "hydra_plugins.hydra_joblib_launcher._core", raising=False)
    cli.release_joblib_workers()
    assert calls == []
    monkeypatch.setitem(sys.modules, "hydra_plugins.hydra_joblib_launcher._core", object())
    cli.release_joblib_workers()
    assert calls == [True, (True, True)]


# a worker's validations, job by job: (outcome, objects frozen, kernels imported)
WORKER = """
import gc, json, os, sys
from fairbench import cli
calls = json.loads(sys.argv[1])
seen = []
for job, launching in calls:
    outcome = cli.validate_job_in_worker(job, os.getpid() if launching == "self" else launching)
    seen.append([outcome if outcome is None else outcome[0], gc.get_freeze_count(),
                 "fairbench.backends.compiled.mlp_kernels" in sys.modules])
print(json.dumps(seen))
"""


def worker_calls(calls: list) -> list:
    result = subprocess.run([sys.executable, "-c", WORKER, json.dumps(calls)], capture_output=True, text=True,
                            timeout=300, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_validating_worker_prepares_itself_once():
    """In a worker process (a pid other than the launching one) the first valid job's check
    loads the compiled kernels where the job takes them and freezes the objects alive then
    (``cli.prepare_worker``); later checks freeze nothing more. A bad job prepares nothing, and
    neither does a check in the launching process itself (joblib with one job at a time)."""
    from fairbench.backends.oracles import compiled_installed

    good, bad = ["algo=sgd"], ["algo=sgd", "budget.iterations=-3"]
    seen = worker_calls([[good, "self"], [bad, -1], [good, -1], [good, -1]])
    assert seen[0] == [None, 0, False] and seen[1] == ["error", 0, False]
    assert seen[2][0] is None and seen[2][1] > 10_000 and seen[2][2] == compiled_installed()
    # later checks freeze nothing more (frozen objects still go when their last reference does)
    assert seen[3][0] is None and seen[3][1] <= seen[2][1] and seen[3][2] == seen[2][2]
    # a job on the autograd path does not load the kernels
    seen = worker_calls([[["algo=sgd", "problem.fast_path=off"], -1]])
    assert seen[0][0] is None and seen[0][1] > 10_000 and seen[0][2] is False
