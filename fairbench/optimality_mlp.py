"""Full-batch gradients of group statistics of an MLP in one numpy pass (the optimality columns).

The optimality columns (:mod:`fairbench.optimality`) need, at every log point, the gradient of
the mean of a per-row quantity ``q(z_i, y_i)`` (``z_i`` the logit of row i) over each of a few
disjoint row sets ``R_k`` (the groups, or the statistic's cells)::

    d_k = grad_x (1/|R_k|) sum_{i in R_k} q(z_i(x), y_i).

Backpropagation is linear in the output slopes ``delta_i = q'(z_i, y_i) / |R_k|``: one forward
pass over the rows and one backward pass of the slopes give every ``d_k`` as the sums of the
per-row parameter gradients over the rows of ``R_k``. Rows are taken set by set, in blocks of
at most :data:`BLOCK` rows (memory ``O(BLOCK x (features + width))``; no copy of the split's
features is kept); compact one-hot rows stay compact, and the first layer reads them by lookup
(:mod:`fairbench.problems.mlp_rows`). Two quantities on the same rows (the BCE for ``grad f`` and a rate's
soft prediction for ``J``) share the forward pass and are backpropagated together.

Beyond the column limit (:mod:`fairbench.optimality`, "Many groups") the residual
``grad f + J^T lam`` is the gradient of one weighted sum over the rows,
``sum_i sum_s w_s[i] q_s(z_i)``: :func:`weighted_gradient` backpropagates the per-row slopes
``sum_s w_s[i] q_s'(z_i)`` block by block over the split in its own order (one slope vector, so
memory ``O(BLOCK x width + P)`` whatever the number of sets); :func:`row_values` gives the
per-row ``q_s`` that a rate statistic's cell weights need first (a forward pass only).

The forward and backward passes are :mod:`fairbench.problems.mlp_rows` (the maths of the numpy
oracle's, :mod:`fairbench.backends.numpy_mlp`) in the model's own floating dtype, without the oracle's sampling streams, counters or
buffers: a log point touches nothing the training reads. Models other than a stock
:class:`~fairbench.models.MLP` (:func:`mlp_arrays` gives ``None``) take the autograd path of
:class:`fairbench.optimality.TrainOptimality`.
"""

from __future__ import annotations

import numpy as np

from fairbench.problems.mlp_rows import backward, first_layer, forward, mlp_arrays, split_rows
from fairbench.problems.statistics import row_slopes_np, row_values_np

__all__ = ["BLOCK", "SetGradients", "mlp_arrays", "row_values", "weighted_gradient"]

#: rows per forward/backward block
BLOCK = 4096


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

    def rows(self, start: int, stop: int, dtype: np.dtype):
        """The features of the reordered rows ``start:stop`` as the first layer reads them
        (:func:`~fairbench.problems.mlp_rows.split_rows`: dense as ``dtype``, or compact)."""
        return split_rows(self.X, self.order[start:stop], dtype)

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
        first = first_layer(layers, self.X)
        for k in range(len(self.bounds) - 1):
            start, stop = int(self.bounds[k]), int(self.bounds[k + 1])
            n = stop - start
            for a in range(start, stop, BLOCK):
                b = min(a + BLOCK, stop)
                z, hs = forward(layers, first, self.rows(a, b, dtype))
                delta = np.stack([row_slopes_np(s, z, y[a:b], inv_t) for s in statistics])
                delta *= dtype.type(1.0 / n)
                for i, s in enumerate(statistics):
                    if s != "loss":  # (the groups' losses come from the evaluation)
                        values[i, k] += float(row_values_np(s, z, y[a:b], inv_t).sum(dtype=np.float64))
                grads[:, k] += backward(layers, first, delta, hs)
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
    """``(start, stop, rows)`` of the split's features ``X`` in blocks of at most :data:`BLOCK`
    rows, as the first layer reads them (dense as ``dtype``, or compact)."""
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        yield start, stop, split_rows(X, slice(start, stop), dtype)


def row_values(layers, X, y: np.ndarray, statistic: str, temperature: float) -> np.ndarray:
    """The per-row quantity ``q(z_i, y_i)`` of ``statistic`` on every row of ``X`` (float64,
    computed in the model's dtype), by forward passes block by block."""
    dtype = layers[0][0].dtype
    labels = np.asarray(y).astype(dtype, copy=False)
    inv_t = dtype.type(1.0 / temperature)
    out = np.empty(len(labels))
    with np.errstate(all="ignore"):  # a diverged iterate: NaN columns
        first = first_layer(layers, X)
        for start, stop, rows in _row_blocks(X, len(labels), dtype):
            z, _ = forward(layers, first, rows)
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
        first = first_layer(layers, X)
        for start, stop, rows in _row_blocks(X, len(labels), dtype):
            z, hs = forward(layers, first, rows)
            delta = np.zeros(stop - start, dtype=dtype)
            for statistic, w in weights.items():
                delta += w[start:stop].astype(dtype) * row_slopes_np(statistic, z, labels[start:stop], inv_t)
            grad += backward(layers, first, delta[None, :], hs)[0]
    return grad
