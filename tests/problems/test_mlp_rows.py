"""The numpy MLP passes on compact one-hot rows (fairbench/problems/mlp_rows.py): the lookup
first layer gives the dense rows' product and weight gradient, to rounding, without making the
rows dense; the whole forward and backward agree with autograd on the dense rows."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fairbench.problems.mlp_rows as mlp_rows
import configs
from fairbench.data.compact import CompactX
from fairbench.models import MLP
from fairbench.problems.evaluation import SplitsEvaluator
from fairbench.problems.fairness import TensorSplit
from fairbench.problems.mlp_rows import (DenseFirstLayer, LookupFirstLayer, backward, first_layer, forward,
                                         mlp_arrays, split_rows)


def compact_rows(n: int, levels=(3, 5, 2), numeric: int = 2, seed: int = 0) -> CompactX:
    """Random standardised one-hot rows: blocks of ``levels`` columns, then ``numeric`` columns."""
    rng = np.random.default_rng(seed)
    starts = np.cumsum([0, *levels[:-1]]).astype(np.int64)
    d = sum(levels) + numeric
    codes = np.stack([rng.integers(0, k, n) for k in levels], axis=1).astype(np.int16) if levels \
        else np.zeros((n, 0), np.int16)
    off = rng.uniform(-1.5, -0.1, d).astype(np.float32)
    on = rng.uniform(0.5, 3.0, d).astype(np.float32)
    numeric_columns = np.arange(sum(levels), d, dtype=np.int64)
    off[numeric_columns] = on[numeric_columns] = 0.0
    return CompactX(codes, rng.standard_normal((n, numeric)).astype(np.float32), starts, numeric_columns, off, on)


@pytest.mark.parametrize("numeric", [2, 0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_lookup_is_the_product_with_the_dense_rows(numeric, dtype):
    X = compact_rows(500, numeric=numeric)
    dense = np.asarray(X).astype(dtype)
    rng = np.random.default_rng(1)
    W, b = rng.standard_normal((6, X.shape[1])).astype(dtype), rng.standard_normal(6).astype(dtype)
    lookup = first_layer([(W, b, "relu")], X)
    assert isinstance(lookup, LookupFirstLayer)
    h = lookup.forward(X)
    want = dense.astype(np.float64) @ W.T.astype(np.float64) + b
    assert h.dtype == dtype and h.shape == (500, 6)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(h, want, rtol=tol, atol=tol * np.abs(want).max())
    dh = rng.standard_normal((2, 500, 6)).astype(dtype)
    grad = lookup.weight_gradient(dh, X)
    want = np.matmul(dh.swapaxes(1, 2).astype(np.float64), dense.astype(np.float64))
    assert grad.dtype == dtype and grad.shape == (2, 6, X.shape[1])
    np.testing.assert_allclose(grad, want, rtol=tol, atol=tol * np.abs(want).max())


def test_rows_stay_compact_and_dense_features_take_the_product():
    X = compact_rows(40)
    split = TensorSplit.from_arrays(X, np.zeros(40, np.float32), np.zeros(40, np.int64))
    part = split_rows(split.X, np.array([3, 1, 3]), np.float64)
    assert isinstance(part, CompactX) and np.asarray(part).tobytes() == np.asarray(X)[[3, 1, 3]].tobytes()
    assert isinstance(split_rows(split.X, slice(2, 9), np.float32), CompactX)
    tensor = torch.as_tensor(np.asarray(X))
    rows = split_rows(tensor, slice(2, 9), np.float64)
    assert rows.dtype == np.float64 and rows.tobytes() == np.asarray(X)[2:9].astype(np.float64).tobytes()
    layers = [(np.ones((3, X.shape[1]), np.float32), np.zeros(3, np.float32), "relu")]
    assert isinstance(first_layer(layers, tensor), DenseFirstLayer)
    assert isinstance(first_layer(layers, split.X), LookupFirstLayer)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_forward_and_backward_on_compact_rows_are_autograd_on_the_dense_rows(activation):
    torch.manual_seed(0)
    X = compact_rows(300, levels=(4, 7, 3, 2), numeric=3)
    model = MLP(X.shape[1], [8, 5], activation).double()
    layers = mlp_arrays(model)
    first = first_layer(layers, X)
    z, hs = forward(layers, first, X)
    dense = torch.as_tensor(np.asarray(X), dtype=torch.float64)
    want = model(dense)
    np.testing.assert_allclose(z, want.detach().numpy(), rtol=1e-12, atol=1e-12)
    delta = np.random.default_rng(2).standard_normal((2, 300))
    grads = backward(layers, first, delta, hs)
    for k in range(2):
        parts = torch.autograd.grad((want * torch.from_numpy(delta[k])).sum(), list(model.parameters()),
                                    retain_graph=True)
        np.testing.assert_allclose(grads[k], torch.cat([p.reshape(-1) for p in parts]).numpy(), rtol=1e-10,
                                   atol=1e-12)


def test_the_evaluation_of_compact_features_takes_the_lookup(monkeypatch):
    """SplitsEvaluator: compact features go through the lookup forward (never made dense) and give
    the dense split's numbers to float32 rounding; with the lookup off, bit for bit."""
    torch.manual_seed(1)
    X = compact_rows(5000, levels=(9, 4, 6), numeric=2, seed=3)
    rng = np.random.default_rng(4)
    y, group = (rng.random(5000) < 0.4).astype(np.float32), rng.integers(0, 3, 5000)
    compact = {"train": TensorSplit.from_arrays(X, y, group)}
    dense = {"train": TensorSplit(torch.as_tensor(np.asarray(X)), compact["train"].y, compact["train"].group)}
    counts = np.stack([np.bincount(group[y == label], minlength=3) for label in (0, 1)], 1).astype(float)
    bound = configs.constraint_spec(delta=0.01, form="signed", family="pairs", statistic="positive_rate").bind(
        np.bincount(group, minlength=3) / 5000, ["0", "1", "2"], counts)
    model = MLP(X.shape[1], [16, 8], "relu")
    want = SplitsEvaluator(dense, 3, chunk_rows=2048).evaluate(model, bound)["train"]
    monkeypatch.setattr(type(X), "__getitem__", lambda self, key: pytest.fail("compact rows made dense"))
    got = SplitsEvaluator(compact, 3, chunk_rows=2048).evaluate(model, bound)["train"]
    monkeypatch.undo()
    assert abs(got.loss - want.loss) <= 1e-6 and got.loss != 0.0
    np.testing.assert_allclose(got.group_losses, want.group_losses, rtol=1e-6)
    np.testing.assert_allclose(got.constraints, want.constraints, atol=1e-6)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)
    np.testing.assert_array_equal(got.constraints_true, want.constraints_true)
    monkeypatch.setattr(mlp_rows, "LOOKUP", False)
    exact = SplitsEvaluator(compact, 3, chunk_rows=2048).evaluate(model, bound)["train"]
    assert exact.scores.tobytes() == want.scores.tobytes() and exact.loss == want.loss
    with torch.no_grad():
        losses = F.binary_cross_entropy_with_logits(model(dense["train"].X), dense["train"].y)
    assert abs(float(losses) - want.loss) <= 1e-6
