"""The stacked oracle (S seeds at once) equals S single-seed fast oracles, seed by seed: on the
numpy path (StackedMLPOracle vs NumpyMLPOracle) and, where numba is installed, on the compiled
kernels (CompiledStackedMLPOracle vs CompiledMLPOracle)."""

import numpy as np
import pytest
import torch

from fairbench.models import MLP
from fairbench.problems.fairness import TensorSplit
from fairbench.backends.compiled.mlp import CompiledMLPOracle, CompiledStackedMLPOracle
from fairbench.backends.numpy_oracle import NumpyMLPOracle
from fairbench.backends.oracles import compiled_available, oracle_path
from fairbench.problems.penalized import PenalizedOracle
from fairbench.problems.problem import ConstrainedProblem
from fairbench.backends.stacked import StackedCounters, StackedMLPOracle, StackedPenalizedOracle, is_stacked
from fairbench.backends.stacking import can_stack, stacked_oracle
import configs

RTOL, ATOL = 1e-5, 1e-7
SEEDS = [4, 0, 7]
NO_NUMBA = pytest.mark.skipif(not compiled_available(), reason="numba is not installed (the fast extra)")
NUMPY = (NumpyMLPOracle, StackedMLPOracle)
COMPILED = (CompiledMLPOracle, CompiledStackedMLPOracle)


@pytest.fixture(params=[NUMPY, pytest.param(COMPILED, marks=NO_NUMBA)], ids=["numpy", "compiled"])
def classes(request):
    """(single-seed oracle class, stacked oracle class) under test."""
    return request.param


def make_split(n=300, d=9, n_groups=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    group = (rng.random(n) < 0.3).astype(np.int64) if n_groups == 2 else rng.integers(0, n_groups, n)
    y = (X[:, 0] + 0.8 * group / n_groups + rng.normal(size=n) > 0.3).astype(np.float32)
    return TensorSplit.from_arrays(X, y, group)


def bind(split, n_groups, form="signed", family="vs_all", delta=0.01):
    props = np.bincount(split.group.numpy(), minlength=n_groups) / len(split)
    return configs.constraint_spec(delta=delta, family=family, form=form).bind(props, [f"g{g}" for g in range(n_groups)])


def model(seed, activation="relu"):
    torch.manual_seed(seed)
    return MLP(9, [16, 8], activation)


def make(split, n_groups=2, constraints=None, activation="relu", seeds=SEEDS, classes=NUMPY):
    """S single-seed oracles and the stacked oracle of the same seeds and initial models."""
    single_cls, stacked_cls = classes
    singles = [single_cls(model(s, activation), split, n_groups, constraints, seed=s) for s in seeds]
    stacked = stacked_cls([model(s, activation) for s in seeds], split, n_groups, constraints, seeds)
    return singles, stacked


def close(stacked_value, single_values):
    np.testing.assert_allclose(np.asarray(stacked_value), np.stack([np.asarray(v) for v in single_values]),
                               rtol=RTOL, atol=ATOL)


def same_rows(stacked_batch, single_batches):
    np.testing.assert_array_equal(stacked_batch.data, np.stack([b.data for b in single_batches]))
    assert stacked_batch.size == single_batches[0].size and stacked_batch.per_group == single_batches[0].per_group


def same_counters(singles, stacked):
    assert stacked.counters.samples.tolist() == [o.counters.samples for o in singles]
    assert stacked.counters.grad_evals.tolist() == [o.counters.grad_evals for o in singles]


def test_parameters_are_rows_shared_with_each_torch_model(classes):
    split = make_split()
    singles, stacked = make(split, classes=classes)
    assert stacked.x.shape == (3, singles[0].x.size) and stacked.x.dtype == np.float32
    for s, single in enumerate(singles):
        np.testing.assert_array_equal(stacked.x[s], single.x)
    stacked.x[1, 0] = 2.5
    assert stacked.models[1][0].weight[0, 0].item() == 2.5
    rows = np.arange(40)
    with torch.no_grad():
        stacked.models[2][-1].bias.add_(0.5)
        expected = np.stack([m(split.X[rows]).numpy() for m in stacked.models])
    np.testing.assert_allclose(stacked.logits(np.stack([rows] * 3)), expected, rtol=1e-5, atol=1e-6)
    assert isinstance(stacked.counters, StackedCounters) and is_stacked(stacked)
    assert oracle_path(stacked) == classes[1].fast_path_name


def test_sampling_is_each_seeds_own_over_many_passes(classes):
    """Objective and constraint streams (with pass boundaries, several streams, odd sizes)."""
    split = make_split(n=60, n_groups=3)
    singles, stacked = make(split, 3, classes=classes)
    for k in range(80):
        size = (7, 8, 13)[k % 3]
        same_rows(stacked.sample_objective(size), [o.sample_objective(size) for o in singles])
        stream = k % 2
        pg = (3, 5)[k % 2]
        same_rows(stacked.sample_constraints(pg, stream), [o.sample_constraints(pg, stream) for o in singles])
    same_counters(singles, stacked)


def test_masked_draws_advance_only_the_active_seeds(classes):
    split = make_split(n=50, n_groups=2)
    singles, stacked = make(split, 2, classes=classes)
    rng = np.random.default_rng(0)
    for k in range(90):
        # lockstep first (shared positions), then masked draws, with plain draws in between
        active = None if k < 10 or k % 7 == 0 else rng.random(3) < 0.6
        if active is None:
            same_rows(stacked.sample_objective(9), [o.sample_objective(9) for o in singles])
            same_rows(stacked.sample_constraints(4, stream=1), [o.sample_constraints(4, stream=1) for o in singles])
            continue
        ob = stacked.sample_objective(9, active=active)
        cb = stacked.sample_constraints(4, stream=1, active=active)
        for s in np.flatnonzero(active):
            np.testing.assert_array_equal(ob.data[s], singles[s].sample_objective(9).data)
            np.testing.assert_array_equal(cb.data[s], singles[s].sample_constraints(4, stream=1).data)
    same_counters(singles, stacked)
    with pytest.raises(ValueError, match="smallest group"):
        stacked.sample_constraints(10_000)


@pytest.mark.parametrize("n_groups", [2, 5])
@pytest.mark.parametrize("form", ["signed", "abs"])
def test_values_gradients_jacobians_and_lagrangian_agree(n_groups, form, classes):
    split = make_split(n_groups=n_groups)
    bound = bind(split, n_groups, form)
    singles, stacked = make(split, n_groups, bound, classes=classes)
    m, S = bound.n_constraints, len(SEEDS)
    rng = np.random.default_rng(1)
    for step in range(4):
        pg = (4, 3)[step % 2]
        ob = stacked.sample_objective(8)
        obs = [o.sample_objective(8) for o in singles]
        cb = stacked.sample_constraints(pg, stream=0)
        cbs = [o.sample_constraints(pg, stream=0) for o in singles]
        same_rows(ob, obs)
        same_rows(cb, cbs)
        # objective value and gradient
        f, g = stacked.objective(ob, grad=True)
        ref = [o.objective(b, grad=True) for o, b in zip(singles, obs)]
        assert f.shape == (S,) and g.shape == stacked.x.shape and g.dtype == np.float32
        close(f, [r[0] for r in ref])
        close(g, [r[1] for r in ref])
        f0, none = stacked.objective(ob)
        assert none is None
        close(f0, [o.objective(b)[0] for o, b in zip(singles, obs)])
        # constraint values and Jacobians
        c, J = stacked.constraints(cb, jac=True)
        ref = [o.constraints(b, jac=True) for o, b in zip(singles, cbs)]
        assert c.shape == (S, m) and J.shape == (S, m, stacked.x.shape[1])
        close(c, [r[0] for r in ref])
        close(J, [r[1] for r in ref])
        close(stacked.constraints(cb)[0], [r[0] for r in ref])
        # Lagrangian with per-seed array weights
        w = rng.normal(size=(S, m)).astype(np.float32)
        f, c2, g = stacked.lagrangian_grad(ob, cb, w)
        ref = [o.lagrangian_grad(b, bc, w[s]) for s, (o, b, bc) in enumerate(zip(singles, obs, cbs))]
        close(f, [r[0] for r in ref])
        close(c2, [r[1] for r in ref])
        close(g, [r[2] for r in ref])
        # shared (m,) weights broadcast to every seed
        ws = np.linspace(-1, 1, m).astype(np.float32)
        close(stacked.lagrangian_grad(ob, cb, ws)[2], [o.lagrangian_grad(b, bc, ws)[2]
                                                       for o, b, bc in zip(singles, obs, cbs)])
        # callable weights see c (S, m) once; obj_batch=None leaves f out
        seen = []
        f, _, g = stacked.lagrangian_grad(None, cb, lambda c: seen.append(c.copy()) or 2.0 * np.abs(c))
        ref = [o.lagrangian_grad(None, bc, lambda c: 2.0 * np.abs(c)) for o, bc in zip(singles, cbs)]
        assert len(seen) == 1 and seen[0].shape == (S, m) and (f == 0).all()
        close(seen[0], [r[1] for r in ref])
        close(g, [r[2] for r in ref])
    same_counters(singles, stacked)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_other_activations_agree(activation, classes):
    split = make_split(n_groups=3)
    bound = bind(split, 3, "abs", "pairs")
    singles, stacked = make(split, 3, bound, activation, classes=classes)
    for _ in range(3):
        ob, cb = stacked.sample_objective(5), stacked.sample_constraints(2)
        obs, cbs = [o.sample_objective(5) for o in singles], [o.sample_constraints(2) for o in singles]
        close(stacked.objective(ob, grad=True)[1], [o.objective(b, grad=True)[1] for o, b in zip(singles, obs)])
        close(stacked.constraints(cb, jac=True)[1], [o.constraints(b, jac=True)[1] for o, b in zip(singles, cbs)])


def primal_dual_step(oracle, lam: np.ndarray, k: int) -> None:
    """One step of a plain primal-dual loop (batch 8, 4 rows per group, streams 0 and 1 in
    turn), in place; the same code for a single-seed and a stacked oracle."""
    _, c, g = oracle.lagrangian_grad(oracle.sample_objective(8), oracle.sample_constraints(4, stream=k % 2), lam)
    oracle.x -= 0.05 * g
    np.maximum(lam + 0.5 * c, 0.0, out=lam)


def primal_dual_run(singles, stacked, m: int, steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """``steps`` primal-dual steps on the stack and on each single-seed oracle; the multipliers
    (S, m) of the stack and (m,) of each single."""
    lam = np.zeros((len(singles), m), np.float32)
    lams = [np.zeros(m, np.float32) for _ in singles]
    for k in range(steps):
        primal_dual_step(stacked, lam, k)
        for o, lo in zip(singles, lams):
            primal_dual_step(o, lo, k)
    return lam, lams


def test_trajectories_agree(classes):
    """A primal-dual loop run stacked and per seed stays together (float32, 150 steps)."""
    split = make_split(n_groups=2)
    bound = bind(split, 2, delta=0.002)
    singles, stacked = make(split, 2, bound, classes=classes)
    lam, lams = primal_dual_run(singles, stacked, bound.n_constraints, steps=150)
    np.testing.assert_allclose(stacked.x, np.stack([o.x for o in singles]), rtol=0, atol=1e-5)
    np.testing.assert_allclose(lam, np.stack(lams), rtol=0, atol=1e-5)
    same_counters(singles, stacked)


def test_masked_evaluations_count_only_active_seeds(classes):
    split = make_split(n_groups=2)
    bound = bind(split, 2)
    singles, stacked = make(split, 2, bound, classes=classes)
    active = np.array([True, False, True])
    ob = stacked.sample_objective(8, active=active)
    cb = stacked.sample_constraints(4, stream=1, active=active)
    f, g = stacked.objective(ob, grad=True)
    _, _, gl = stacked.lagrangian_grad(None, cb, np.eye(bound.n_constraints, dtype=np.float32)[[0, 1, 0]])
    assert np.isnan(f[1]) and not g[1].any() and not gl[1].any()
    for s in (0, 2):
        o = singles[s]
        close(g[s:s + 1], [o.objective(o.sample_objective(8), grad=True)[1]])
        w = np.eye(bound.n_constraints, dtype=np.float32)[0]
        close(gl[s:s + 1], [o.lagrangian_grad(None, o.sample_constraints(4, stream=1), w)[2]])
    assert stacked.counters.samples.tolist() == [8 + 8, 0, 8 + 8]
    assert stacked.counters.grad_evals.tolist() == [8 + 8, 0, 8 + 8]


def test_unconstrained_and_penalized_stacks_agree(classes):
    split = make_split(n_groups=2)
    bound = bind(split, 2, delta=1e-4)
    singles, stacked = make(split, 2, None, classes=classes)
    c, J = stacked.constraints(stacked.sample_constraints(3), jac=True)
    assert c.shape == (3, 0) and J.shape == (3, 0, stacked.x.shape[1])
    for o in singles:
        o.sample_constraints(3)
    ob = stacked.sample_objective(8)
    close(stacked.objective(ob, grad=True)[1], [o.objective(o.sample_objective(8), grad=True)[1] for o in singles])
    same_counters(singles, stacked)
    for penalty in ("positive", "squared", "abs"):
        singles, stacked = make(split, 2, bound, classes=classes)
        pen = StackedPenalizedOracle(stacked, 0.7, penalty, 5, 1e-4)
        pens = [PenalizedOracle(o, 0.7, penalty, 5, 1e-4) for o in singles]
        for _ in range(3):
            b, bs = pen.sample_objective(8), [p.sample_objective(8) for p in pens]
            f, g = pen.objective(b, grad=True)
            ref = [p.objective(x, grad=True) for p, x in zip(pens, bs)]
            close(f, [r[0] for r in ref])
            close(g, [r[1] for r in ref])
            close(pen.objective(b)[0], [p.objective(x)[0] for p, x in zip(pens, bs)])
        same_counters(singles, stacked)
        assert pen.x is stacked.x and is_stacked(pen) and oracle_path(pen) == classes[1].fast_path_name


def test_stacked_oracle_follows_the_problem():
    split = make_split(n_groups=2)
    bound = bind(split, 2)
    models = [model(s) for s in SEEDS]
    con = stacked_oracle(configs.problem("constrained"), models, split, bound, SEEDS)
    auto = CompiledStackedMLPOracle if compiled_available() else StackedMLPOracle
    assert type(con) is auto and con.n_constraints == bound.n_constraints
    on_numpy = stacked_oracle(configs.problem("constrained", fast_path="numpy"), [model(s) for s in SEEDS], split, bound, SEEDS)
    assert type(on_numpy) is StackedMLPOracle and oracle_path(on_numpy) == "numpy-stacked"
    unc = stacked_oracle(configs.problem("unconstrained"), [model(s) for s in SEEDS], split, bound, SEEDS)
    assert unc.n_constraints == 0
    pen = stacked_oracle(configs.problem("penalized", weight=0.3, per_group=4), [model(s) for s in SEEDS], split, bound, SEEDS)
    assert type(pen) is StackedPenalizedOracle and pen.weight == 0.3 and pen.per_group == 4
    assert type(pen.inner) is auto
    assert can_stack(configs.problem("constrained"), models[0])
    assert can_stack(configs.problem("constrained", fast_path="numpy"), models[0])
    assert not can_stack(configs.problem("constrained", fast_path="off"), models[0])
    assert not can_stack(configs.problem("constrained"), torch.nn.Sequential(torch.nn.Linear(9, 1)))

    class Custom(ConstrainedProblem):
        def oracle(self, *args):
            return super().oracle(*args)

    assert not can_stack(Custom(**configs.settings("problem", "constrained")), models[0])
    with pytest.raises(ValueError, match="architecture"):
        torch.manual_seed(0)
        StackedMLPOracle([model(0), configs.model(9, hidden=[16, 4])], split, 2, bound, [0, 1])
    with pytest.raises(TypeError):
        StackedMLPOracle([torch.nn.Linear(9, 1)], split, 2, bound, [0])


@NO_NUMBA
def test_compiled_stack_gives_each_seed_its_single_seed_numbers():
    """On the compiled kernels a stacked seed runs the single-seed code on the same shapes:
    after 50 primal-dual steps its parameters are bitwise those of its single-seed run."""
    split = make_split(n_groups=3)
    bound = bind(split, 3, "abs", "pairs", delta=0.002)
    singles, stacked = make(split, 3, bound, classes=COMPILED)
    lam, lams = primal_dual_run(singles, stacked, bound.n_constraints, steps=50)
    np.testing.assert_array_equal(stacked.x, np.stack([o.x for o in singles]))
    np.testing.assert_array_equal(lam, np.stack(lams))


@pytest.mark.parametrize("fused_draw", [False, True], ids=["three_batches", "sample_lagrangian"])
@pytest.mark.parametrize("form", ["signed", "abs"])
def test_lagrangian_grad_and_values_is_each_seeds(form, fused_draw, classes):
    """SSL-ALM's call (``lagrangian_grad_and_values``, one fused pass on the compiled kernels)
    on a stack gives every seed its single-seed results: after 60 steps of a primal-dual loop
    on it, bitwise on the compiled kernels, to float rounding on the numpy path; callable
    weights see (S, m) arrays once per call. With ``fused_draw`` the stack draws its batches
    and evaluates them in one call (``sample_lagrangian_grad_and_values``: lockstep draws
    straight into one row array; 60 steps cross every stream's pass boundary, the groups'
    twice) while each single seed makes the four calls."""
    split = make_split(n_groups=3)
    bound = bind(split, 3, form, "pairs", delta=0.002)
    singles, stacked = make(split, 3, bound, classes=classes)
    m, S = bound.n_constraints, len(SEEDS)
    lam, lams = np.zeros((S, m), np.float32), [np.zeros(m, np.float32) for _ in singles]

    def step(oracle, lam):
        calls = []

        def weights(c, v):
            calls.append(c.shape)
            lam[...] = np.maximum(lam + 0.5 * c, 0.0)
            return lam + 0.25 * v

        if fused_draw and oracle is stacked:
            _, _, _, g = oracle.sample_lagrangian_grad_and_values(8, 4, weights)
        else:
            batches = (oracle.sample_objective(8), oracle.sample_constraints(4, 0), oracle.sample_constraints(4, 1))
            _, _, _, g = oracle.lagrangian_grad_and_values(*batches, weights)
        oracle.x -= 0.05 * g
        assert calls == [lam.shape]

    for _ in range(60):
        step(stacked, lam)
        for o, la in zip(singles, lams):
            step(o, la)
    expect = np.testing.assert_array_equal if classes is COMPILED else close
    expect(stacked.x, np.stack([o.x for o in singles]))
    expect(lam, np.stack(lams))
    same_counters(singles, stacked)
