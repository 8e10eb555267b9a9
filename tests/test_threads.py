"""``threads`` caps every BLAS a run uses, including the one loaded during the run."""

import json
import subprocess
import sys

from fairbench.problems.fast_mlp import compiled_available

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
    # a fresh process: whatever the imports have loaded, every BLAS the run uses (numpy's, and
    # scipy's, which the compiled kernels' np.dot calls) is at threads=1 inside the run
    fast_path = "compiled" if compiled_available() else "numpy"
    out = subprocess.run([sys.executable, "-c", SCRIPT % fast_path, str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen, "no BLAS library loaded"
    assert any("scipy" in path for path, _ in seen)
    assert all(n == 1 for _, n in seen), seen
