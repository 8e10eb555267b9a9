"""Every BLAS a run (or the benchmark) uses runs on the configured threads, including scipy's,
which the compiled kernels' products call."""

import json
import subprocess
import sys
from pathlib import Path

from fairbench.backends.oracles import compiled_available

SCRIPT = """
import json, sys
from threadpoolctl import threadpool_info
from fairbench.algorithms.sgd import SGD
from fairbench.cli import compose_job
from fairbench.runner import run

seen = []
step = SGD.step
def recording(self):
    if not seen:  # the BLAS libraries loaded by now, and their thread counts, inside the run
        seen.extend((i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas")
    return step(self)
SGD.step = recording
run(compose_job(["progress=false", "algo=sgd", "seeds=[0]", "budget.iterations=5", "budget.epochs=null",
                 "threads=1", "problem.fast_path=%s"]), __import__("pathlib").Path(sys.argv[1]))
print(json.dumps(seen))
"""


def test_every_blas_runs_on_the_configured_threads(tmp_path):
    # a fresh process: every BLAS the run has loaded by its first step (numpy's, and scipy's,
    # which the compiled kernels' np.dot calls) is at threads=1 inside the run. (Today
    # scipy.special loads scipy's BLAS when fairbench is imported, before run() limits threads;
    # run() also loads it explicitly, so a change of imports cannot let it escape.)
    fast_path = "compiled" if compiled_available() else "numpy"
    out = subprocess.run([sys.executable, "-c", SCRIPT % fast_path, str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen, "no BLAS library loaded"
    assert any("scipy" in path for path, _ in seen)
    assert all(n == 1 for _, n in seen), seen


BENCH_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import bench
bench.pin_threads()  # as bench.py's main does, before fairbench's heavy imports
from threadpoolctl import threadpool_info
import fairbench.backends.oracles  # noqa: F401  (loads scipy, as the measurements do)
print(json.dumps([(i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]))
"""


def test_the_benchmark_pins_scipys_blas_too():
    # bench.py pinned threads before scipy's BLAS was loaded, so the compiled kernels' products
    # ran on two threads in every measurement (Ghost's large sample sets 19x slower under load)
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    out = subprocess.run([sys.executable, "-c", BENCH_SCRIPT, str(scripts)],
                         capture_output=True, text=True, timeout=300, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert any("scipy" in path for path, _ in seen)
    assert all(n == 1 for _, n in seen), seen
