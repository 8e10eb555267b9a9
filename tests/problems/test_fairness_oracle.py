"""The census oracle: flat parameters, gradients, Jacobians, unbiased constraint estimates."""

import numpy as np
import pytest
import torch

from fairbench.problems.fairness import FairnessOracle, TensorSplit
from fairbench.problems.penalized import PenalizedOracle
from fairbench.problems.problem import FairnessProblem
import configs


def make_split(n=400, d=4, n_groups=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    group = (rng.random(n) < 0.3).astype(np.int64) if n_groups == 2 else rng.integers(0, n_groups, n)
    y = (X[:, 0] + 0.8 * group + rng.normal(size=n) > 0.3).astype(np.float32)
    return TensorSplit.from_arrays(X, y, group)


def make_oracle(split, n_groups=2, form="signed", seed=0, delta=0.01):
    torch.manual_seed(seed)
    model = configs.model(split.X.shape[1], hidden=[8, 4])
    props = np.bincount(split.group.numpy(), minlength=n_groups) / len(split)
    bound = configs.constraint_spec(delta=delta, form=form).bind(props, [f"g{g}" for g in range(n_groups)])
    return FairnessOracle(model, split, n_groups, bound, seed=seed), bound, model


def test_flat_parameters_are_the_model_weights():
    oracle, _, model = make_oracle(make_split())
    first = next(model.parameters())
    oracle.x[0] = 123.0
    assert first.view(-1)[0].item() == 123.0
    assert oracle.x.size == sum(p.numel() for p in model.parameters())


def test_objective_gradient_matches_finite_differences():
    split = make_split()
    oracle, _, _ = make_oracle(split)
    batch = oracle.sample_objective(32)
    f, g = oracle.objective(batch, grad=True)
    x0 = oracle.x.copy()
    for i in [0, 5, len(x0) - 1]:
        eps = 1e-2
        oracle.x[:] = x0; oracle.x[i] += eps
        fp, _ = oracle.objective(batch)
        oracle.x[:] = x0; oracle.x[i] -= eps
        fm, _ = oracle.objective(batch)
        assert abs((fp - fm) / (2 * eps) - g[i]) < 2e-3
    oracle.x[:] = x0


@pytest.mark.parametrize("form,n_groups", [("signed", 2), ("abs", 3)])
def test_jacobian_rows_are_constraint_gradients_and_lagrangian_combines_them(form, n_groups):
    split = make_split(n_groups=n_groups)
    oracle, bound, _ = make_oracle(split, n_groups=n_groups, form=form)
    con = oracle.sample_constraints(6, stream=0)
    obj = oracle.sample_objective(10)
    c, J = oracle.constraints(con, jac=True)
    _, gf = oracle.objective(obj, grad=True)
    w = np.linspace(0.5, 1.5, len(c)).astype(np.float32)
    f, c2, g = oracle.lagrangian_grad(obj, con, w)
    np.testing.assert_allclose(c2, c, rtol=1e-6)
    np.testing.assert_allclose(g, gf + w @ J, rtol=1e-4, atol=1e-6)
    # callable weights see the same sampled c
    seen = []
    oracle.lagrangian_grad(obj, con, lambda cc: seen.append(cc) or w)
    np.testing.assert_allclose(seen[0], c, rtol=1e-6)


def test_constraint_batches_are_balanced_and_counted():
    split = make_split()
    oracle, _, _ = make_oracle(split)
    batch = oracle.sample_constraints(5)
    groups = split.group[batch.data].numpy()
    np.testing.assert_array_equal(groups, [0] * 5 + [1] * 5)
    assert oracle.counters.samples == 10
    oracle.constraints(batch, jac=True)
    assert oracle.counters.grad_evals == 10


def test_constraint_estimates_are_unbiased():
    """The mean of balanced-batch estimates over one full pass equals the exact value.

    With per_group dividing every group's size, one pass over each group's rows visits
    every row exactly once, so the average of the group-loss estimates over a pass is the
    exact per-group mean loss; the constraints are linear in them (signed form).
    """
    rng = np.random.default_rng(0)
    group = np.array([0] * 120 + [1] * 40)
    X = rng.normal(size=(160, 3)).astype(np.float32)
    y = (rng.random(160) < 0.4).astype(np.float32)
    split = TensorSplit.from_arrays(X, y, group)
    oracle, bound, model = make_oracle(split)
    exact = FairnessProblem.evaluate(model, split, bound).constraints
    # 40 draws of 4 rows: 160 rows from group 0 (1 1/3 passes) - use 30 draws of 4 = 120
    # rows, exactly one pass of group 0 and three passes of group 1.
    estimates = [oracle.constraints(oracle.sample_constraints(4))[0] for _ in range(30)]
    np.testing.assert_allclose(np.mean(estimates, axis=0), exact, atol=1e-5)


def test_penalized_oracle_gradient_is_penalty_weighted_lagrangian():
    split = make_split()
    inner, bound, _ = make_oracle(split, delta=1e-4)
    oracle = PenalizedOracle(inner, weight=0.7, penalty="positive", per_group=6, delta=1e-4)
    assert oracle.n_constraints == 0
    batch = oracle.sample_objective(10)
    obj, con = batch.data
    value, g = oracle.objective(batch, grad=True)
    f, gf = inner.objective(obj, grad=True)
    c, J = inner.constraints(con, jac=True)
    np.testing.assert_allclose(value, f + 0.7 * np.maximum(c, 0).sum(), rtol=1e-5)
    np.testing.assert_allclose(g, gf + 0.7 * (c > 0) @ J, rtol=1e-4, atol=1e-6)
