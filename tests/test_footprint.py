"""What a training job imports: on a cached dataset and the fast paths, neither pandas nor
cvxpy (each ~100 MB per process, and a sweep runs one process per core), nor the solvers
only Ghost's reference path uses (scipy.optimize, osqp: ~0.2 s of import)."""

import json
import subprocess
import sys

JOBS = """
import json, sys
from pathlib import Path
from fairbench.cli import compose_job
from fairbench.runner import run
for algo in ("sgd_fairret", "ghost"):
    run(compose_job([f"algo={{algo}}", "seeds=[0]", "budget.iterations=20", "budget.epochs=null",
                     "progress=false"]), Path({out!r}) / algo)
print(json.dumps(sorted(sys.modules)))
"""


def test_jobs_on_a_cached_dataset_import_only_what_they_use(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRBENCH_CACHE_DIR", str(tmp_path / "cache"))
    from fairbench.cli import compose_job
    from fairbench.data import load_dataset

    load_dataset(compose_job(["algo=sgd"]).dataset)  # builds the synthetic data into the fresh cache (pandas)
    done = subprocess.run([sys.executable, "-c", JOBS.format(out=str(tmp_path / "runs"))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"torch", "fairbench", "fairbench.algorithms.ghost"} <= modules
    unwanted = {"pandas", "cvxpy", "scipy.optimize", "osqp"}  # (scipy.linalg imports scipy.sparse before 1.17)
    assert not unwanted & modules, sorted(unwanted & modules)
