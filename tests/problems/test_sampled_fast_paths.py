"""k of m constraints per step on the numpy and compiled oracles: the same draws and values
as the autograd oracle's sampled step (1e-10 in float64), and a step whose work does not grow
with m at fixed k."""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest
import torch

from fairbench.api import make_algorithm
from fairbench.backends.numpy_oracle import NumpyMLPOracle
from fairbench.backends.oracles import compiled_available, oracle_path
from fairbench.backends.variants import bind_variant
from fairbench.problems.fairness import FairnessOracle, TensorSplit

from test_constraint_sampling import bind, many_group_split
import configs


def double_split(split: TensorSplit) -> TensorSplit:
    return TensorSplit(split.X.double(), split.y.double(), split.group)


def both_labels_split(n_groups: int) -> TensorSplit:
    """:func:`many_group_split` with a row of each label in every group (four of each: conditional rates)."""
    split = many_group_split(n_groups)
    X, y, group = split.X.numpy(), split.y.numpy().copy(), split.group.numpy().copy()
    group[:8 * n_groups] = np.tile(np.arange(n_groups), 8)   # four rows of each label
    y[:8 * n_groups] = np.repeat([0.0, 1.0], 4 * n_groups)
    return TensorSplit.from_arrays(X, y, group)


def pair(n_groups, k, dtype=torch.float64, cls=NumpyMLPOracle, seed=0, **spec):
    """The autograd oracle and ``cls`` on the same model, data and seed, sampling k constraints."""
    split = both_labels_split(n_groups)
    bound = bind(split, n_groups, **spec)
    if dtype == torch.float64:
        split = double_split(split)
    torch.manual_seed(seed)
    model = configs.model(split.X.shape[1], hidden=[8, 4]).to(dtype)
    other = copy.deepcopy(model)
    oracles = FairnessOracle(model, split, bound.n_cells, bound, seed=seed), cls(other, split, bound.n_cells, bound, seed=seed)
    for oracle in oracles:
        oracle.enable_constraint_sampling(k)
    return oracles


SPECS = [dict(family="vs_all", form="signed", statistic="loss"),
         dict(family="pairs", form="abs", statistic="positive_rate"),
         dict(family="vs_all", form="signed", statistic="equalized_odds"),
         dict(family="pairs", form="signed", statistic="accuracy")]


@pytest.mark.parametrize("spec", SPECS)
def test_numpy_subset_calls_equal_autograd_in_float64(spec):
    auto, fast = pair(9, 5, **spec)
    for _ in range(3):
        subsets = [o.draw_constraint_subset(0) for o in (auto, fast)]
        np.testing.assert_array_equal(subsets[0].indices, subsets[1].indices)
        zeta = [o.sample_objective(6) for o in (auto, fast)]
        xi = [o.sample_constraints(4, stream=0, subset=s) for o, s in zip((auto, fast), subsets)]
        np.testing.assert_array_equal(xi[0].data.numpy(), xi[1].data)
        (ca, Ja), (cf, Jf) = (o.constraints(b, jac=True) for o, b in zip((auto, fast), xi))
        assert cf.dtype == np.float64 and Jf.shape == (5, fast.x.size)
        np.testing.assert_allclose(cf, ca, rtol=0, atol=1e-10)
        np.testing.assert_allclose(Jf, Ja, rtol=0, atol=1e-10)
        w = np.random.default_rng(3).normal(size=5)
        seen = []
        fa, c1, ga = auto.lagrangian_grad(zeta[0], xi[0], w)
        ff, c2, gf = fast.lagrangian_grad(zeta[1], xi[1], lambda c: seen.append(c) or w)
        np.testing.assert_allclose(seen[0], c1, rtol=0, atol=1e-10)
        assert abs(ff - fa) < 1e-10
        np.testing.assert_allclose(gf, ga, rtol=0, atol=1e-10)
        np.testing.assert_allclose(gf - ga, 0.0, atol=1e-10)
        assert auto.counters.samples == fast.counters.samples
        assert auto.counters.grad_evals == fast.counters.grad_evals
        for o in (auto, fast):  # move, so the next round is at another point
            o.x -= 0.05 * ga


def run_ssl_alm(oracle, steps=5):
    algo = make_algorithm("ssl_alm", per_group=4, batch_size=6, dual_reset="all")
    algo.setup(oracle, np.random.default_rng(0))
    path = bind_variant(algo, oracle)
    for _ in range(steps):
        algo.step()
    return algo, path


def test_sampled_ssl_alm_steps_equal_autograd_in_float64():
    auto, fast = pair(12, 7, family="vs_all", form="signed", statistic="loss")
    a, _ = run_ssl_alm(auto)
    f, path = run_ssl_alm(fast)
    assert path == "reference" and oracle_path(fast) == "numpy"
    np.testing.assert_allclose(fast.x, auto.x, rtol=0, atol=1e-10)
    np.testing.assert_allclose(f.lam, a.lam, rtol=0, atol=1e-10)
    np.testing.assert_allclose(f.slack, a.slack, rtol=0, atol=1e-10)


@pytest.mark.skipif(not compiled_available(), reason="numba not installed")
def test_the_compiled_oracle_samples_with_the_numpy_passes():
    from fairbench.backends.compiled.mlp import CompiledMLPOracle

    auto, comp = pair(12, 7, dtype=torch.float32, cls=CompiledMLPOracle, family="vs_all", form="signed",
                      statistic="positive_rate")
    _, numpy_one = pair(12, 7, dtype=torch.float32, family="vs_all", form="signed", statistic="positive_rate")
    a, _ = run_ssl_alm(auto)
    c, path = run_ssl_alm(comp)  # the compiled SSL-ALM step (full m) is passed over
    n, _ = run_ssl_alm(numpy_one)
    assert path == "reference" and oracle_path(comp) == "compiled"
    assert comp.x.tobytes() == numpy_one.x.tobytes() and c.lam.tobytes() == n.lam.tobytes()
    np.testing.assert_allclose(comp.x, auto.x, rtol=1e-4, atol=1e-5)   # float32 rounding


def test_float32_numpy_subset_steps_agree_with_autograd():
    auto, fast = pair(10, 6, dtype=torch.float32, family="pairs", form="signed", statistic="loss")
    a, _ = run_ssl_alm(auto)
    f, _ = run_ssl_alm(fast)
    np.testing.assert_allclose(fast.x, auto.x, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f.lam, a.lam, rtol=1e-4, atol=1e-5)


def step_cost(n_groups: int, k: int, steps: int) -> tuple[int, int, float]:
    """Rows drawn, rows differentiated and seconds per sampled SSL-ALM step (numpy oracle)."""
    split = many_group_split(n_groups, n=max(3000, 8 * n_groups), d=4)
    bound = bind(split, n_groups, family="vs_all", form="signed", statistic="loss")
    torch.manual_seed(0)
    oracle = NumpyMLPOracle(configs.model(4, hidden=[8, 4]), split, bound.n_cells, bound, seed=0)
    oracle.enable_constraint_sampling(k)
    algo = make_algorithm("ssl_alm", per_group=1, batch_size=8, tau=1e-4)
    algo.setup(oracle, np.random.default_rng(0))
    algo.step()  # (first-call allocations)
    samples, evals = oracle.counters.samples, oracle.counters.grad_evals
    start = time.perf_counter()
    for _ in range(steps):
        algo.step()
    seconds = (time.perf_counter() - start) / steps
    return (oracle.counters.samples - samples) // steps, (oracle.counters.grad_evals - evals) // steps, seconds


def test_a_sampled_step_costs_the_same_at_any_m():
    """m = 40 and m = 1,600 at k = 8: the rows of a step are bounded by k (at most 2k + 1 cells
    of per_group rows, twice, plus the objective rows), and its time grows far less than m."""
    small = step_cost(20, 8, 60)
    large = step_cost(800, 8, 60)
    bound = 8 + 2 * (2 * 8 + 1)
    assert small[0] <= bound and large[0] <= bound
    assert large[1] <= 8 + (2 * 8 + 1)
    assert np.isfinite(large[2]) and large[2] < 4 * small[2] + 1e-3, (small, large)   # m grew 40 times


@pytest.mark.parametrize(("fast_path", "args"), [
    ("numpy", ["algo=ssl_alm"]), ("auto", ["algo=ssl_alm"]),
    ("numpy", ["problem=penalized", "algo=sgd"])])
def test_a_sampled_run_uses_the_fast_oracle(tmp_path, monkeypatch, capsys, fast_path, args):
    import json

    import clirun

    out = tmp_path / "run"
    code, _, err = clirun.main(monkeypatch, capsys, "dataset=synthetic", "dataset.protected=[RAC1P,SEX]",
                               "dataset.min_group_rows=1", *args, "problem.family=vs_all",
                               "problem.constraints_per_step=3", f"problem.fast_path={fast_path}", "seeds=[0]",
                               "budget.iterations=20", "log_every=10", "progress=false", f"hydra.run.dir={out}")
    assert code == 0, err
    metrics = json.loads(next(out.rglob("metrics.json")).read_text())
    expected = "numpy" if fast_path == "numpy" else ("compiled" if compiled_available() else "numpy")
    assert metrics["oracle_path"] == expected and metrics["algorithm_path"] == "reference"
    assert metrics["status"] == "completed"
