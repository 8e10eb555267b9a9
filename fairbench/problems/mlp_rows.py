"""A stock MLP's forward and backward passes in numpy on a split's rows, dense or compact.

Used where a pass reads many rows of a split outside the training step: the evaluation
forward on compact one-hot features (:mod:`fairbench.problems.evaluation`) and the optimality
columns' gradients (:mod:`fairbench.optimality_mlp`). The first layer is the only one that
sees the rows, and :func:`first_layer` picks its implementation by what the rows are:

- :class:`DenseFirstLayer`: dense rows (an ``ndarray``), ``h = X W^T + b`` (one BLAS product);
- :class:`LookupFirstLayer`: compact one-hot rows (:class:`~fairbench.data.compact.CompactX`).
  A standardised one-hot column ``j`` is ``off_j`` or ``on_j``, and each categorical block has
  one column on, so::

      x W^T + b = (b + off W^T) + sum_c (on - off)_{j_c} W[:, j_c] + x_num W_num^T

  with ``j_c`` the row's column in block c: a per-layer constant, one table row per categorical
  column (a lookup: ``torch``'s ``embedding_bag``) and the few numeric columns. The weight
  gradient ``dh^T X`` splits the same way: ``off_j sum_i dh_i + (on_j - off_j) sum_{i: j_c(i)
  = j} dh_i`` (a scatter-add of the rows' slopes) for a categorical column, ``dh^T x_num`` for
  the numeric ones. On the all-states ACSIncome data a row costs 7 looked-up weight columns and
  2 numeric ones instead of 811 products, and the dense rows are never made.

  The sums run in another order than the dense product's (a handful of terms instead of
  811), so the lookup agrees with the dense path to float rounding, not bit for bit
  (``tests/problems/test_mlp_rows.py``): logits within about 1e-6 in float32. The table, the
  constant and the products behind them are formed in float64 and rounded once to the model's
  dtype.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit
from torch import nn

from fairbench.data.compact import CompactX
from fairbench.models import stock_layers
from fairbench.problems.features import CompactTensor

#: whether compact rows go through :class:`LookupFirstLayer` (else they are made dense for
#: :class:`DenseFirstLayer`, and the evaluation takes the model's own forward: the dense path's
#: numbers bit for bit; ``tests/test_compact_features.py`` compares so)
LOOKUP = True

#: ``[(W, b, activation after the layer or None), ...]``: a stock MLP's layers as numpy arrays
Layers = list[tuple[np.ndarray, np.ndarray, "str | None"]]


def activation_forward(h: np.ndarray, act: str) -> None:
    """``h <- act(h)`` in place: ``relu``, ``tanh`` or ``sigmoid``."""
    if act == "relu":
        np.maximum(h, 0.0, out=h)
    elif act == "tanh":
        np.tanh(h, out=h)
    else:
        expit(h, out=h)


def activation_backward(dh: np.ndarray, h: np.ndarray, act: str) -> None:
    """``dh *= act'(.)`` in place, with the derivative taken from the activation's output ``h``."""
    if act == "relu":
        np.multiply(dh, h > 0.0, out=dh)
    elif act == "tanh":
        dh *= 1.0 - h * h
    else:
        dh *= h * (1.0 - h)


def mlp_arrays(model: nn.Module) -> Layers | None:
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


class DenseFirstLayer:
    """The first layer on dense rows: ``X W^T + b``, and the weight gradient ``dh^T X``."""

    def __init__(self, W: np.ndarray, b: np.ndarray):
        self.W, self.b = W, b

    def forward(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=self.W.dtype) @ self.W.T + self.b

    def weight_gradient(self, dh: np.ndarray, X: np.ndarray) -> np.ndarray:
        """``(K, out, in)``: ``dh[k]^T X`` for the K slope blocks ``dh`` (K, B, out)."""
        return np.matmul(dh.swapaxes(1, 2), np.asarray(X, dtype=self.W.dtype))


class LookupFirstLayer:
    """The first layer on compact one-hot rows of one layout (module doc)."""

    def __init__(self, W: np.ndarray, b: np.ndarray, layout: CompactX):
        dtype = W.dtype
        W64 = W.astype(np.float64)
        off, on = layout.off.astype(np.float64), layout.on.astype(np.float64)
        self.d, self.dtype = W.shape[1], dtype
        self.starts = layout.starts
        self.numeric_columns = layout.numeric_columns
        self.off = off.astype(dtype)
        self.step = (on - off).astype(dtype)  # 0 on the numeric columns (their off and on are 0)
        self.base = (b.astype(np.float64) + W64 @ off).astype(dtype)
        self.table = torch.from_numpy(np.ascontiguousarray(((on - off)[:, None] * W64.T).astype(dtype)))
        self.numeric_weight = np.ascontiguousarray(W[:, layout.numeric_columns].T)

    def _columns(self, rows: CompactX) -> torch.Tensor:
        return torch.from_numpy(rows.codes.astype(np.int64) + self.starts)

    def forward(self, rows: CompactX) -> np.ndarray:
        if rows.codes.shape[1]:
            h = F.embedding_bag(self._columns(rows), self.table, mode="sum").numpy()
            h += self.base
        else:
            h = np.broadcast_to(self.base, (len(rows), self.base.size)).copy()
        if self.numeric_columns.size:
            h += rows.numeric.astype(self.dtype, copy=False) @ self.numeric_weight
        return h

    def weight_gradient(self, dh: np.ndarray, rows: CompactX) -> np.ndarray:
        """``(K, out, in)``: ``dh[k]^T X`` for the K slope blocks ``dh`` (K, B, out), X the rows
        made dense (never made)."""
        columns = self._columns(rows)
        numeric = rows.numeric.astype(self.dtype, copy=False)
        grads = np.empty((dh.shape[0], dh.shape[2], self.d), dtype=self.dtype)
        for k, slopes in enumerate(dh):
            slopes = np.ascontiguousarray(slopes)
            hit = torch.zeros(self.d, slopes.shape[1], dtype=self.table.dtype)
            for c in range(columns.shape[1]):  # (one call per block: faster than one call on
                hit.index_add_(0, columns[:, c], torch.from_numpy(slopes))  # the slopes repeated)
            transposed = hit.numpy()
            transposed *= self.step[:, None]
            transposed += self.off[:, None] * slopes.sum(axis=0)
            transposed[self.numeric_columns] = numeric.T @ slopes
            grads[k] = transposed.T
        return grads


def first_layer(layers: Layers, X) -> DenseFirstLayer | LookupFirstLayer:
    """The first layer of ``layers`` for the rows of ``X``, a split's features (a tensor, or
    compact: :class:`~fairbench.problems.features.CompactTensor` or its
    :class:`~fairbench.data.compact.CompactX`)."""
    W, b, _ = layers[0]
    compact = X.compact if isinstance(X, CompactTensor) else X
    return LookupFirstLayer(W, b, compact) if LOOKUP and isinstance(compact, CompactX) else DenseFirstLayer(W, b)


def split_rows(X, key, dtype: np.dtype):
    """Rows ``key`` (a slice or an integer array) of a split's features ``X`` as the first layer
    reads them: compact rows stay compact, others are a dense ``ndarray`` of ``dtype``."""
    if isinstance(X, CompactTensor):
        return X.compact.take(key)
    block = X[torch.from_numpy(key) if isinstance(key, np.ndarray) else key]
    return np.asarray(block.numpy() if isinstance(block, torch.Tensor) else block, dtype=dtype)


def forward(layers: Layers, first, X) -> tuple[np.ndarray, list]:
    """Logits (B,) and the layer inputs ``[X, h_1, ..., h_L]`` (``first``: the first layer,
    :func:`first_layer`)."""
    hs, h = [X], X
    for i, (W, b, act) in enumerate(layers[:-1]):
        h = first.forward(h) if i == 0 else h @ W.T + b
        activation_forward(h, act)
        hs.append(h)
    W, b, _ = layers[-1]
    return h @ W[0] + b[0], hs


def backward(layers: Layers, first, delta: np.ndarray, hs: list) -> np.ndarray:
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
        weight = first.weight_gradient(dh, h) if k == 0 else np.matmul(dh.swapaxes(1, 2), h)
        parts = [weight.reshape(K, -1), dh.sum(axis=1)] + parts
        if k:
            dh = dh @ W
    return np.concatenate(parts, axis=1)
