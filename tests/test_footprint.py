"""What a training job imports: on a cached dataset and the fast paths, neither pandas nor
cvxpy (each ~100 MB per process, and a sweep runs one process per core)."""

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
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def test_jobs_on_a_cached_dataset_import_neither_pandas_nor_cvxpy(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRBENCH_CACHE_DIR", str(tmp_path / "cache"))
    from fairbench.cli import compose_job
    from fairbench.data import load_dataset

    load_dataset(compose_job(["algo=sgd"]).dataset)  # builds the synthetic data into the fresh cache (pandas)
    done = subprocess.run([sys.executable, "-c", JOBS.format(out=str(tmp_path / "runs"))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "torch" in modules and "fairbench" in modules
    assert not {"pandas", "cvxpy"} & modules, sorted({"pandas", "cvxpy"} & modules)
