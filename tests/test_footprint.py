"""What a training job imports: on a cached dataset and the fast paths, neither pandas nor
cvxpy (each ~100 MB per process, and a sweep runs one process per core)."""

import json
import os
import subprocess
import sys

import pytest

JOB = """
import json, sys
from pathlib import Path
from fairbench.cli import compose_job
from fairbench.runner import run
run(compose_job(["algo={algo}", "seeds=[0]", "budget.iterations=20", "budget.epochs=null",
                 "progress=false"]), Path({out!r}))
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def imported(tmp_path, algo: str, name: str) -> set[str]:
    env = {**os.environ, "FAIRBENCH_CACHE_DIR": str(tmp_path / "cache")}
    code = JOB.format(algo=algo, out=str(tmp_path / name))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("algo", ["sgd_fairret", "ghost"])
def test_a_job_on_a_cached_dataset_imports_neither_pandas_nor_cvxpy(tmp_path, algo):
    first = imported(tmp_path, algo, "first")   # builds the synthetic data: pandas needed
    assert "pandas" in first
    second = imported(tmp_path, algo, "second")  # cache hit
    assert "torch" in second
    assert not {"pandas", "cvxpy"} & second, sorted({"pandas", "cvxpy"} & second)
