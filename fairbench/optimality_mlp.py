"""Full-batch gradients of group statistics of an MLP in one numpy pass (the optimality columns).

The optimality columns (:mod:`fairbench.optimality`) need, at every log point, the gradient of
the mean of a per-row quantity ``q(z_i, y_i)`` (``z_i`` the logit of row i) over each of a few
disjoint row sets ``R_k`` (the groups, or the statistic's cells)::

    d_k = grad_x (1/|R_k|) sum_{i in R_k} q(z_i(x), y_i).

Backpropagation is linear in the output slopes ``delta_i = q'(z_i, y_i) / |R_k|``: one forward
pass over the rows and one backward pass of the slopes give every ``d_k`` as the sums of the
per-row parameter gradients over the rows of ``R_k``. Rows are taken set by set, in blocks of
at most :data:`BLOCK` rows made dense where read (memory ``O(BLOCK x (features + width))``;
no copy of the split's features is kept). Two quantities on the same rows (the BCE for ``grad f`` and a rate's
soft prediction for ``J``) share the forward pass and are backpropagated together.

Beyond the column limit (:mod:`fairbench.optimality`, "Many groups") the residual
``grad f + J^T lam`` is the gradient of one weighted sum over the rows,
``sum_i sum_s w_s[i] q_s(z_i)``: :func:`weighted_gradient` backpropagates the per-row slopes
``sum_s w_s[i] q_s'(z_i)`` block by block over the split in its own order (one slope vector, so
memory ``O(BLOCK x width + P)`` whatever the number of sets); :func:`row_values` gives the
per-row ``q_s`` that a rate statistic's cell weights need first (a forward pass only).

The maths is that of :mod:`fairbench.backends.numpy_mlp` (the numpy oracle's forward and
backward) in the model's own floating dtype, without the oracle's sampling streams, counters or
buffers: a log point touches nothing the training reads. Models other than a stock
:class:`~fairbench.models.MLP` (:func:`mlp_arrays` gives ``None``) take the autograd path of
:class:`fairbench.optimality.TrainOptimality`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fairbench.backends.numpy_mlp import activation_backward, activation_forward
from fairbench.models import stock_layers
from fairbench.problems.statistics import row_slopes_np, row_values_np

#: rows per forward/backward block
BLOCK = 16384


def mlp_arrays(model: nn.Module) -> list[tuple[np.ndarray, np.ndarray, str | None]] | None:
    """``[(W, b, activation after the layer), ...]`` as numpy views of a stock MLP's trained
    parameters (the last layer's activation ``None``), in ``model.parameters()`` order; ``None``
    where the model is not such an MLP (its parameters are not exactly its layers' weights and
    biases, all trained, of one floating dtype)."""
    layers = stock_layers(model)
    if layers is None:
        return None
    linears, acts = layers
    params = list(model.parameters())
    expected = [p for lin in linears for p in (lin.weight, lin.bias)]
    if len(params) != len(expected) or any(p is not q for p, q in zip(params, expected)):
        return None
    if not all(p.requires_grad for p in params) or len({p.dtype for p in params}) != 1 \
            or not params[0].dtype.is_floating_point:
        return None
    return [(lin.weight.detach().numpy(), lin.bias.detach().numpy(), act)
            for lin, act in zip(linears, [*acts, None])]


def _forward(layers, X: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits (B,) and the layer inputs ``[X, h_1, ..., h_L]``."""
    hs, h = [X], X
    for W, b, act in layers[:-1]:
        h = h @ W.T + b
        activation_forward(h, act)
        hs.append(h)
    W, b, _ = layers[-1]
    return h @ W[0] + b[0], hs


def _backward(layers, delta: np.ndarray, hs: list[np.ndarray]) -> np.ndarray:
    """Gradients (K, P) of ``sum_i delta[k, i] z_i`` for the K slope vectors ``delta`` (K, B)."""
    K = delta.shape[0]
    h = hs[-1]
    W_out = layers[-1][0]
    parts = [(delta @ h).reshape(K, -1), delta.sum(axis=1)[:, None]]  # output layer: weight, bias
    dh = delta[:, :, None] * W_out[0]
    k = len(hs) - 1
    for W, _, act in reversed(layers[:-1]):
        activation_backward(dh, h, act)
        k -= 1
        h = hs[k]
        parts = [np.matmul(dh.swapaxes(1, 2), h).reshape(K, -1), dh.sum(axis=1)] + parts
        if k:
            dh = dh @ W
    return np.concatenate(parts, axis=1)


class SetGradients:
    """Gradients of means over row sets of a fixed split, from per-*piece* sums.

    ``pieces`` partition (part of) the split's rows; each set of ``groups`` and ``cells`` is a
    union of pieces, so its mean and mean gradient are the pieces' ones weighted by
    ``n_piece / n_set`` (matrices ``A``). The rows are reordered piece by piece once.
    """

    def __init__(self, X, y: np.ndarray, pieces: list[np.ndarray], groups: list[np.ndarray],
                 cells: list[np.ndarray] | None):
        """``X``: the split's features, indexed by a torch tensor of rows (a tensor, or compact
        one-hot features that make only the rows asked for dense); ``y`` its labels."""
        pieces = [np.asarray(rows, dtype=np.int64) for rows in pieces]
        self.X = X
        self.order = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
        self.y = np.ascontiguousarray(np.asarray(y)[self.order])
        self.bounds = np.concatenate([[0], np.cumsum([len(rows) for rows in pieces])]).astype(np.int64)
        piece_of = np.full(len(y), -1, dtype=np.int64)
        for p, rows in enumerate(pieces):
            piece_of[rows] = p

        def weights(sets):
            counts = np.stack([np.bincount(piece_of[np.asarray(rows, dtype=np.int64)] + 1, minlength=len(pieces) + 1)[1:]
                               for rows in sets]).astype(np.float64) if sets else np.zeros((0, len(pieces)))
            return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)

        self.A_groups = weights(groups)
        self.A_cells = None if cells is None else weights(cells)
        self._y: dict[np.dtype, np.ndarray] = {}

    def rows(self, start: int, stop: int, dtype: np.dtype) -> np.ndarray:
        """The features of the reordered rows ``start:stop``, dense, as ``dtype``."""
        block = self.X[torch.from_numpy(self.order[start:stop])]
        return np.asarray(block.numpy() if isinstance(block, torch.Tensor) else block, dtype=dtype)

    def labels(self, dtype: np.dtype) -> np.ndarray:
        if dtype not in self._y:
            self._y[dtype] = self.y.astype(dtype, copy=False)
        return self._y[dtype]

    def piece_means(self, layers, statistics: tuple[str, ...], temperature: float) -> tuple[np.ndarray, np.ndarray]:
        """``(values, grads)``: per statistic s and piece k, the mean of q_s over the piece
        (S, K; 0 for ``loss``, whose group means the evaluation gives) and its gradient
        (S, K, P), float64; an empty piece gives 0."""
        dtype = layers[0][0].dtype
        y = self.labels(dtype)
        inv_t = dtype.type(1.0 / temperature)
        n_params = sum(W.size + b.size for W, b, _ in layers)
        S, K = len(statistics), len(self.bounds) - 1
        values, grads = np.zeros((S, K)), np.zeros((S, K, n_params))
        with np.errstate(all="ignore"):  # a diverged iterate: NaN columns (fairbench.optimality.measures)
            self._accumulate(layers, statistics, dtype, y, inv_t, values, grads)
        return values, grads

    def _accumulate(self, layers, statistics, dtype, y, inv_t, values, grads) -> None:
        for k in range(len(self.bounds) - 1):
            start, stop = int(self.bounds[k]), int(self.bounds[k + 1])
            n = stop - start
            for a in range(start, stop, BLOCK):
                b = min(a + BLOCK, stop)
                z, hs = _forward(layers, self.rows(a, b, dtype))
                delta = np.stack([row_slopes_np(s, z, y[a:b], inv_t) for s in statistics])
                delta *= dtype.type(1.0 / n)
                for i, s in enumerate(statistics):
                    if s != "loss":  # (the groups' losses come from the evaluation)
                        values[i, k] += float(row_values_np(s, z, y[a:b], inv_t).sum(dtype=np.float64))
                grads[:, k] += _backward(layers, delta, hs)
            if n:
                values[:, k] /= n

    def derivatives(self, layers, statistic: str, temperature: float):
        """``(group loss gradients (G, P), cell statistics (C,) and gradients (C, P))`` (the
        last two ``None`` without cells)."""
        statistics = ("loss",) if self.A_cells is None else ("loss", statistic)
        values, grads = self.piece_means(layers, statistics, temperature)
        group_grads = self.A_groups @ grads[0]
        if self.A_cells is None:
            return group_grads, None, None
        return group_grads, self.A_cells @ values[1], self.A_cells @ grads[1]


def _row_blocks(X, n: int, dtype: np.dtype):
    """``(start, stop, dense rows)`` of the split's features ``X`` (a tensor, or compact one-hot
    features made dense where read) in blocks of at most :data:`BLOCK` rows, as ``dtype``."""
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        block = X[start:stop]
        yield start, stop, np.asarray(block.numpy() if isinstance(block, torch.Tensor) else block, dtype=dtype)


def row_values(layers, X, y: np.ndarray, statistic: str, temperature: float) -> np.ndarray:
    """The per-row quantity ``q(z_i, y_i)`` of ``statistic`` on every row of ``X`` (float64,
    computed in the model's dtype), by forward passes block by block."""
    dtype = layers[0][0].dtype
    labels = np.asarray(y).astype(dtype, copy=False)
    inv_t = dtype.type(1.0 / temperature)
    out = np.empty(len(labels))
    with np.errstate(all="ignore"):  # a diverged iterate: NaN columns
        for start, stop, rows in _row_blocks(X, len(labels), dtype):
            z, _ = _forward(layers, rows)
            out[start:stop] = row_values_np(statistic, z, labels[start:stop], inv_t)
    return out


def weighted_gradient(layers, X, y: np.ndarray, weights: dict[str, np.ndarray], temperature: float) -> np.ndarray:
    """``grad_x sum_i sum_s weights[s][i] q_s(z_i(x), y_i)`` (P,), float64: one forward and one
    backward pass of the rows' summed slopes, block by block (the slopes in the model's dtype)."""
    dtype = layers[0][0].dtype
    labels = np.asarray(y).astype(dtype, copy=False)
    inv_t = dtype.type(1.0 / temperature)
    grad = np.zeros(sum(W.size + b.size for W, b, _ in layers))
    with np.errstate(all="ignore"):  # a diverged iterate: NaN columns
        for start, stop, rows in _row_blocks(X, len(labels), dtype):
            z, hs = _forward(layers, rows)
            delta = np.zeros(stop - start, dtype=dtype)
            for statistic, w in weights.items():
                delta += w[start:stop].astype(dtype) * row_slopes_np(statistic, z, labels[start:stop], inv_t)
            grad += _backward(layers, delta[None, :], hs)[0]
    return grad
