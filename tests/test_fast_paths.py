"""Every fast path gives the trajectory of the straightforward path, for every method.

The reference is the autograd oracle, one seed at a time, and for Ghost also the OSQP/HiGHS
subproblem solvers; the fast paths are the numpy oracle, the compiled (numba) oracle where
numba is installed, stacked seeds and Ghost's exact subproblem solvers. Trajectories must
agree within float32 tolerance.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fairbench.api import algorithm_names
from fairbench.cli import compose_job
from fairbench.backends.oracles import compiled_available
from fairbench.runner import run

COMMON = ["seeds=[0,1]", "budget.iterations=120", "budget.epochs=null", "log_every=40", "progress=false"]
# columns compared: losses, constraints, violations and group losses of every split
VALUE_PREFIXES = ("train_", "val_", "test_")
NO_NUMBA = pytest.mark.skipif(not compiled_available(), reason="numba is not installed (the fast extra)")


def trajectory(path: Path) -> dict[str, np.ndarray]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    # a column that starts later (an event count, a state value) is empty before: NaN
    return {k: np.array([float(r[k]) if r[k] else np.nan for r in rows]) for k in rows[0] if k != "train_seconds"}


def run_variant(tmp_path: Path, name: str, *overrides: str) -> Path:
    out = tmp_path / name
    run(compose_job([*COMMON, *overrides]), out)
    return out


def assert_same_trajectories(a: Path, b: Path, seeds=(0, 1)) -> None:
    for seed in seeds:
        ta, tb = trajectory(a / f"seed_{seed}" / "trajectory.csv"), trajectory(b / f"seed_{seed}" / "trajectory.csv")
        np.testing.assert_array_equal(ta["iteration"], tb["iteration"])
        np.testing.assert_array_equal(ta["samples"], tb["samples"])
        for key in ta:
            if key.startswith(VALUE_PREFIXES):
                np.testing.assert_allclose(ta[key], tb[key], rtol=2e-4, atol=2e-5, err_msg=f"seed {seed} {key}")


@pytest.fixture(scope="module")
def autograd_run(tmp_path_factory):
    """The reference run of a method (autograd oracle, one seed at a time), made once per method."""
    runs: dict[str, Path] = {}

    def get(algo: str) -> Path:
        if algo not in runs:
            runs[algo] = run_variant(tmp_path_factory.mktemp(f"autograd_{algo}"), "autograd", f"algo={algo}",
                                     "problem.fast_path=off", "stack_seeds=off")
        return runs[algo]

    return get


@pytest.mark.parametrize("fast_path", ["numpy", pytest.param("compiled", marks=NO_NUMBA)])
@pytest.mark.parametrize("algo", algorithm_names())
def test_fast_path_matches_autograd(tmp_path, autograd_run, algo, fast_path):
    # the numpy or the compiled oracle, stacked where the method allows
    fast = run_variant(tmp_path, "fast", f"algo={algo}", f"problem.fast_path={fast_path}")
    assert_same_trajectories(autograd_run(algo), fast)
    paths = {json.loads((fast / f"seed_{s}" / "metrics.json").read_text())["oracle_path"] for s in (0, 1)}
    assert paths <= {fast_path, f"{fast_path}-stacked"}


def test_ghost_exact_subproblems_match_osqp(tmp_path):
    # one seed, 60 iterations: tight OSQP plus HiGHS take ~0.1 s per Ghost iteration
    short = ("algo=ghost", "seeds=[0]", "budget.iterations=60", "log_every=20")
    reference = run_variant(tmp_path, "osqp", *short, "algo.solver=osqp", "algo.osqp_eps_abs=1e-10",
                            "algo.osqp_eps_rel=1e-10", "algo.osqp_polishing=true")
    exact = run_variant(tmp_path, "exact", *short, "algo.solver=exact")
    assert_same_trajectories(reference, exact, seeds=(0,))
