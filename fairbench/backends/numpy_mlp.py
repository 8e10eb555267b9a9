"""The numpy maths of fairbench's MLP: a hand-written forward/backward on views of the parameters.

:class:`~fairbench.backends.numpy_oracle.NumpyMLPOracle` is a
:class:`~fairbench.problems.fairness.FairnessOracle` (same constructor, sampling streams,
counters, balanced batches, constraint values and Jacobian semantics) whose ``objective``,
``constraints``, ``objective_and_constraints`` and ``lagrangian_grad`` run a numpy
forward/backward pass of the MLP instead of torch autograd. With batch 8 and a 9-64-32-1
network most of an autograd step is per-operation overhead; plain numpy on the same float32
data does the same arithmetic several times faster.

Memory: the layer weights ``W_l`` (out, in) and biases ``b_l`` (out,) are numpy *views* into
the flat parameter vector ``oracle.x`` (built once; torch's ``nn.Linear`` stores its weight
row-major as (out, in), followed by its bias, in ``model.parameters()`` order). Algorithms
update ``oracle.x`` in place, the numpy pass reads the views, and the torch model (used for
evaluation) shares the same memory, so nothing is ever copied.

The math lives in :class:`NumpyMLPMath`, written for an optional leading seed axis: the same
code serves one model (``x`` of shape (P,)) and the stacked oracle of
:mod:`fairbench.backends.stacked` (S models of one architecture trained together, ``x`` of
shape (S, P), products batched over the seeds with ``np.matmul``).

Gradients: for a weighted sum of per-row BCE-with-logits losses ``sum_i a_i l_i`` with
``l = softplus(z) - y z``, ``dl/dz = sigmoid(z) - y``, so ONE backward pass from the per-row
deltas ``a_i (sigmoid(z_i) - y_i)`` gives the gradient. The objective uses ``a = 1/B``; the
Lagrangian ``1/B`` on the objective rows and ``(w @ dc/ds)_g / per_group`` on the rows of group
g. For the Jacobian, the G per-group statistics live on disjoint blocks of rows, so the
per-row deltas of all groups are backpropagated together once and only the final sums over
rows (weight and bias gradients) are split by group, with batched matmuls into a (G, P)
buffer; then ``J = dc/ds @ (G, P)``. ``objective_and_constraints`` (Ghost's f, grad f, c and J
on one sample set) treats an objective batch of ``per_group`` rows as one more block: one
forward and one backward pass over both batches into a (G + 1, P) buffer instead of two passes.

Only :class:`fairbench.models.MLP` (Linear layers with bias and ReLU/Tanh/Sigmoid
activations, float32, no hooks) is supported (:func:`_layers`); the oracles are
:class:`~fairbench.backends.numpy_oracle.NumpyMLPOracle` and the stacked and compiled ones.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from fairbench.models import MLP, stock_layers
from fairbench.problems.base import Batch, Weights, Weights2
from fairbench.problems.constraints import GroupConstraints
from fairbench.problems.mlp_rows import activation_backward, activation_forward
from fairbench.problems.statistics import row_slopes_np, row_values_np



def _rows(batch: Batch) -> np.ndarray:
    """A batch's row indices as a numpy array (batches of either oracle)."""
    rows = batch.data
    return rows if isinstance(rows, np.ndarray) else rows.numpy()


def _layers(model: nn.Module, dtype: torch.dtype = torch.float32) -> tuple[list[nn.Linear], list[str]] | None:
    """``(linears, activations)`` of a supported MLP, else ``None``: the network as built
    (:func:`~fairbench.models.stock_layers`), its own forward and call, and float32
    parameters that are exactly its layers' weights and biases, all trained."""
    if not isinstance(model, MLP) or type(model).forward is not MLP.forward:
        return None
    if type(model).__call__ is not nn.Module.__call__:
        return None
    layers = stock_layers(model)
    if layers is None:
        return None
    linears, _ = layers
    if any(True for _ in model.buffers()):
        return None
    params = list(model.parameters())
    expected = [p for lin in linears for p in (lin.weight, lin.bias)]
    if len(params) != len(expected) or any(p is not q for p, q in zip(params, expected)):
        return None
    if any(p.dtype != dtype or not p.requires_grad for p in params):
        return None
    return layers


def _loss_slopes(z: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """``d/dz`` of the mean BCE over ``n`` rows, per row: ``(sigmoid(z) - y) / n`` (float32)."""
    delta = expit(z)
    delta -= y
    delta *= z.dtype.type(1.0 / n)
    return delta


def _joined_rows(obj_rows: np.ndarray | None, con_rows: np.ndarray) -> tuple[int, np.ndarray]:
    """``(n_obj, rows)``: the objective rows (if any), then the constraint rows, in one pass's
    row array (along the last axis, per seed for a stack)."""
    if obj_rows is None:
        return 0, con_rows
    return obj_rows.shape[-1], np.concatenate((obj_rows, con_rows), axis=-1)


def check_flat_layout(linears: list[nn.Linear], flat: torch.Tensor) -> None:
    """The parameters of ``linears`` must be the views of the 1-D buffer ``flat`` that
    :func:`~fairbench.problems.fairness.flatten_parameters` made, in ``nn.Linear`` order."""
    base, offset, item = flat.data_ptr(), 0, flat.element_size()
    for lin in linears:
        size_w = lin.out_features * lin.in_features
        if lin.weight.data_ptr() != base + item * offset or lin.bias.data_ptr() != base + item * (offset + size_w):
            raise RuntimeError("model parameters are not laid out as expected in the flat buffer")
        offset += size_w + lin.out_features
    if offset != flat.numel():
        raise RuntimeError("model has parameters outside its Linear layers")


class NumpyMLPMath:
    """The numpy MLP math shared by :class:`NumpyMLPOracle` and the stacked oracle
    (:class:`fairbench.backends.stacked.StackedMLPOracle`).

    A mixin: the host sets ``x`` (the flat parameters), ``_n_groups`` and ``group_constraints``
    and calls :meth:`_init_math`. ``x`` is either one model's parameters, shape (P,), or S
    models' parameters of the same architecture, one per row, shape (S, P). Every array below
    carries the same optional leading seed axis ``_lead`` (``()`` or ``(S,)``): layer views
    ``W`` (..., out, in), activations (..., B, width), logits (..., B), gradients (..., P),
    group statistics (..., G), constraints (..., m), Jacobians (..., m, P). Products go through
    ``_mm`` (``np.dot`` for one model, ``np.matmul`` over the seed axis for a stack), so row s
    of a stacked result comes from the same BLAS call on the same shapes and strides as the
    single-model result (the tests check the two agree; in practice they are bitwise equal).
    """

    _n_groups: int
    group_constraints: GroupConstraints | None
    x: np.ndarray

    def _init_math(self, linears: list[nn.Linear], acts: list[str], X: np.ndarray, y: np.ndarray,
                   constraints: GroupConstraints | None) -> None:
        dt = self.x.dtype.type  # float32; float64 only where a test builds a double model
        if X.dtype != dt or y.dtype != dt:
            raise TypeError("the numpy MLP oracles need features and labels of the parameters' dtype (float32)")
        self._dt = dt
        self._X, self._y = X, y
        self._acts = acts
        self._lead = self.x.shape[:-1]
        self._stacked = bool(self._lead)
        self._mm = np.matmul if self._stacked else np.dot
        self._ones_cache: dict[int, np.ndarray] = {}
        self._mean_cache: dict[int, np.ndarray] = {}
        self._M32 = None if constraints is None else np.ascontiguousarray(constraints.matrix, dtype=dt)
        # the stock GroupConstraints in signed form: c = M s - delta, dc/ds = M (inlined)
        self._signed = (
            constraints is not None and type(constraints) is GroupConstraints and constraints.spec.form == "signed"
        )
        self._delta = None if constraints is None else dt(constraints.spec.delta)
        # the statistic's per-row quantity on constraint rows: the BCE (``loss``) or a soft rate
        self._statistic = "loss" if constraints is None else constraints.statistic
        self._inv_t = dt(1.0) if constraints is None else dt(1.0 / constraints.spec.temperature)
        self._build_views(linears)

    # -- parameter views -------------------------------------------------------------------
    def _build_views(self, linears: list[nn.Linear]) -> None:
        """Views of ``x`` (weights), of the gradient buffer ``_g`` (..., P) and of the block
        gradient buffers (..., K, P) of :meth:`_group_backward`, layer by layer (``nn.Linear``
        order: weight (out, in) row-major, then bias). Two block buffers: ``K = G`` (one block
        per group: the constraints' Jacobian) and ``K = G + 1`` (the objective's block first,
        then the groups': :meth:`_objective_and_constraints_np`)."""
        x, G, lead = self.x, self._n_groups, self._lead
        P = x.shape[-1]
        self._g = np.zeros(lead + (P,), dtype=self._dt)        # flat gradient buffer (returned as a copy)
        block_bufs = {K: np.zeros(lead + (K, P), dtype=self._dt) for K in (G, G + 1)}
        block_layers: dict[int, list] = {K: [] for K in block_bufs}
        hidden = []
        offset = 0
        for i, lin in enumerate(linears):
            out, inp = lin.out_features, lin.in_features
            w_sl, b_sl = slice(offset, offset + out * inp), slice(offset + out * inp, offset + out * inp + out)
            W = x[..., w_sl].reshape(lead + (out, inp))
            b = x[..., b_sl]
            gW = self._g[..., w_sl].reshape(lead + (out, inp))
            gb = self._g[..., b_sl]
            views = [(W, x), (b, x), (gW, self._g), (gb, self._g)]
            for K, buf in block_bufs.items():
                sW, sb = buf[..., w_sl].reshape(lead + (K, out, inp)), buf[..., b_sl]
                block_layers[K].append((sW, sb))
                views += [(sW, buf), (sb, buf)]
            for view, owner in views:
                if not np.shares_memory(view, owner):  # (reshape of a slice never copies; be sure)
                    raise RuntimeError("could not build a view into the flat parameter buffer")
            offset = b_sl.stop
            if i < len(linears) - 1:
                # the bias as added to (..., B, out) activations: (out,) or (S, 1, out)
                b_add = b[..., None, :] if self._stacked else b
                hidden.append((W, W.swapaxes(-1, -2), b_add, gW, gb, self._acts[i]))
            else:
                # output layer: one unit
                self._w_out, self._b_out = W[..., 0, :], b      # (..., in), (..., 1)
                self._w_row, self._w_col = W, W.swapaxes(-1, -2)  # (..., 1, in), (..., in, 1)
                self._gw_out, self._gw_row, self._gb_out = gW[..., 0, :], gW, gb
        if offset != P:
            raise RuntimeError("model has parameters outside its Linear layers")
        self._hidden = hidden
        self._hidden_rev = hidden[::-1]
        # K -> (buffer, the output layer's views (..., K, 1, in) and (..., K, 1), the hidden
        # layers' views, last layer first: the order of the backward pass)
        self._blocks = {K: (buf, block_layers[K][-1], block_layers[K][-2::-1]) for K, buf in block_bufs.items()}

    # -- numpy model -----------------------------------------------------------------------
    def _ones(self, n: int) -> np.ndarray:
        """A cached float32 vector of ``n`` ones (row sums as dot products: cheaper than ``sum``)."""
        ones = self._ones_cache.get(n)
        if ones is None:
            ones = self._ones_cache[n] = np.ones(n, dtype=self._dt)
        return ones

    def _mean_vec(self, n: int) -> np.ndarray:
        """A cached float32 vector of ``n`` entries ``1/n`` (means as dot products)."""
        vec = self._mean_cache.get(n)
        if vec is None:
            vec = self._mean_cache[n] = np.full(n, 1.0 / n, dtype=self._dt)
        return vec

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits (..., B) and the layer inputs ``[X, h_1, ..., h_L]`` (activation outputs)."""
        hs = [X]
        h = X
        mm = self._mm
        for _, WT, b, _, _, act in self._hidden:
            h = mm(h, WT)
            h += b
            activation_forward(h, act)
            hs.append(h)
        if self._stacked:
            z = np.matmul(h, self._w_col)[..., 0]
        else:
            z = np.dot(h, self._w_out)
        z += self._b_out
        return z, hs

    def logits(self, rows: np.ndarray) -> np.ndarray:
        """The model's logits on training rows ``rows`` (numpy pass; same as ``model(X[rows])``)."""
        return self._forward(self._X[rows])[0]

    def _np_backward(self, delta: np.ndarray, hs: list[np.ndarray]) -> np.ndarray:
        """Gradient of ``sum_i delta_i z_i`` (z the logits; per seed) into ``self._g``; returns a copy."""
        ones = self._ones(delta.shape[-1])
        h = hs[-1]
        mm = self._mm
        if self._stacked:
            np.matmul(delta[:, None, :], h, out=self._gw_row)
            self._gb_out[:, 0] = self._dot_rows(delta, ones)
        else:
            np.dot(delta, h, out=self._gw_out)
            self._gb_out[0] = np.dot(delta, ones)
        dh = delta[..., None] * self._w_row
        k = len(hs) - 1
        for W, _, _, gW, gb, act in self._hidden_rev:
            activation_backward(dh, h, act)
            k -= 1
            h = hs[k]
            mm(dh.swapaxes(-1, -2), h, out=gW)
            mm(ones, dh, out=gb)
            if k:
                dh = mm(dh, W)
        return self._g.copy()

    def _group_backward(self, delta: np.ndarray, hs: list[np.ndarray], K: int, rows: int) -> np.ndarray:
        """Per-block gradients (..., K, P) of ``sum_{i in block k} delta_i z_i`` for K consecutive
        blocks of ``rows`` rows each (K = G: the groups of a balanced batch; K = G + 1: an
        objective batch of ``rows`` rows, then the groups).

        The blocks' rows are disjoint, so the per-row backward is shared and only the sums
        over rows are split by block (batched matmuls into the (..., K, P) buffer).
        """
        lead = self._lead
        buf, (sw_out, sb_out), hidden_blocks = self._blocks[K]
        ones = self._ones(rows)
        h = hs[-1]
        d2 = delta.reshape(lead + (K, rows))
        np.matmul(d2[..., None, :], h.reshape(lead + (K, rows, -1)), out=sw_out)
        np.matmul(d2, ones, out=sb_out[..., 0])
        dh = delta[..., None] * self._w_row
        k = len(hs) - 1
        for (W, _, _, _, _, act), (sW, sb) in zip(self._hidden_rev, hidden_blocks):
            activation_backward(dh, h, act)
            k -= 1
            h = hs[k]
            d3 = dh.reshape(lead + (K, rows, -1))
            np.matmul(d3.swapaxes(-1, -2), h.reshape(lead + (K, rows, -1)), out=sW)
            np.matmul(ones, d3, out=sb)
            if k:
                dh = self._mm(dh, W)
        return buf

    def _dot_rows(self, a: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``a @ v`` per seed for ``a`` (..., n) and ``v`` (n,) or (..., n): ``np.dot`` for one
        model; for a stack the same BLAS dot per seed ((1, n) @ (n, 1) matmuls; a single
        (S, n) @ (n,) product would be a gemv that sums in another order)."""
        if not self._stacked:
            return np.dot(a, v)
        return np.matmul(a[:, None, :], v[..., None])[:, 0, 0]

    def _mean_value(self, total: np.ndarray, n: int):
        """A float32 sum (per seed) over ``n`` rows as a mean: float (one model) or float64 (S,)."""
        return total.astype(np.float64) / n if self._stacked else float(total) / n

    @staticmethod
    def _losses_np(z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-row BCE with logits, ``softplus(z) - y z`` (stable: ``logaddexp(0, z)``)."""
        losses = np.logaddexp(0.0, z)
        losses -= y * z
        return losses

    def _row_values(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The statistic's per-row quantity on constraint rows (the BCE for ``loss``)."""
        if self._statistic == "loss":
            return self._losses_np(z, y)
        return row_values_np(self._statistic, z, y, self._inv_t)

    def _row_slopes(self, z: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
        """``d/dz`` per row of the statistic's mean over ``n`` rows (float32)."""
        if self._statistic == "loss":
            return _loss_slopes(z, y, n)
        slopes = row_slopes_np(self._statistic, z, y, self._inv_t)
        slopes *= self._dt(1.0 / n)
        return slopes

    def _stats_values(self, losses: np.ndarray, pg: int) -> tuple[np.ndarray, np.ndarray]:
        """Group statistics (mean loss per group, float32, (..., G)) and constraint values
        (..., m) from the per-row losses of a balanced batch."""
        stats = self._mm(losses.reshape(self._lead + (self._n_groups, pg)), self._mean_vec(pg))
        return stats, self._constraint_values(stats)

    def _constraint_values(self, stats: np.ndarray) -> np.ndarray:
        """Constraint values (..., m), float32, from the group statistics (..., G)."""
        if self._signed:  # inline GroupConstraints.values for the stock signed form
            if self._stacked:
                c = np.matmul(self._M32, stats[..., None])[..., 0]
            else:
                c = np.dot(self._M32, stats)
            c -= self._delta
        elif self._stacked:
            c = np.asarray(self.group_constraints.values(stats[:, None, :], self._M32)[:, 0, :], dtype=self._dt)
        else:
            c = np.asarray(self.group_constraints.values(stats, self._M32), dtype=self._dt)
        return c

    def _jmap(self, stats: np.ndarray) -> np.ndarray:
        """``dc/ds`` (m, G), or per seed (S, m, G), as float32."""
        if self._signed:
            return self._M32
        jacobian_map = self.group_constraints.jacobian_map
        if self._stacked:
            return np.stack([np.asarray(jacobian_map(s), dtype=self._dt) for s in stats])
        return np.asarray(jacobian_map(stats), dtype=self._dt)

    # -- the oracle computations (counters and batches are the host's business) ------------
    def _objective_np(self, rows: np.ndarray, grad: bool):
        """Mean loss on ``rows`` (..., B) and, if ``grad``, its gradient (..., P)."""
        y = self._y[rows]
        z, hs = self._forward(self._X[rows])
        n = z.shape[-1]
        # mean BCE with logits: softplus(z) - y z, softplus(z) = logaddexp(0, z) (stable)
        f = self._mean_value(self._dot_rows(np.logaddexp(0.0, z), self._ones(n)) - self._dot_rows(y, z), n)
        if not grad:
            return f, None
        delta = _loss_slopes(z, y, n)
        return f, self._np_backward(delta, hs)

    def _constraints_np(self, rows: np.ndarray, pg: int, jac: bool):
        """Constraint values (..., m) on a balanced batch and, if ``jac``, the Jacobian (..., m, P)."""
        y = self._y[rows]
        z, hs = self._forward(self._X[rows])
        stats, c = self._stats_values(self._row_values(z, y), pg)
        if not jac:
            return c, None
        delta = self._row_slopes(z, y, pg)
        SG = self._group_backward(delta, hs, self._n_groups, pg)
        return c, self._mm(self._jmap(stats), SG)

    def _objective_and_constraints_np(self, obj_rows: np.ndarray, con_rows: np.ndarray, pg: int):
        """``f`` and ``grad f`` on ``obj_rows``, ``c`` and ``J`` on the balanced ``con_rows``.

        With as many objective rows as rows per group (always so in Ghost) the objective batch
        is one more block of ``pg`` rows, scaled ``1/pg`` like the groups: one forward pass over
        both batches and one :meth:`_group_backward` with G + 1 blocks give ``grad f`` (block 0)
        and the groups' statistic gradients (``J = dc/ds @`` blocks 1..G). Otherwise the two
        separate passes.
        """
        if obj_rows.shape[-1] != pg:
            f, g = self._objective_np(obj_rows, True)
            c, J = self._constraints_np(con_rows, pg, True)
            return f, g, c, J
        _, rows = _joined_rows(obj_rows, con_rows)
        y = self._y[rows]
        z, hs = self._forward(self._X[rows])
        losses = self._losses_np(z, y)
        f = self._mean_value(self._dot_rows(losses[..., :pg], self._ones(pg)), pg)
        delta = _loss_slopes(z, y, pg)
        if self._statistic != "loss":  # the constraint rows' own quantity and slopes
            losses = self._row_values(z[..., pg:], y[..., pg:])
            delta[..., pg:] = self._row_slopes(z[..., pg:], y[..., pg:], pg)
            stats, c = self._stats_values(losses, pg)
        else:
            stats, c = self._stats_values(losses[..., pg:], pg)
        blocks = self._group_backward(delta, hs, self._n_groups + 1, pg)
        return f, blocks[..., 0, :].copy(), c, self._mm(self._jmap(stats), blocks[..., 1:, :])

    #: whether :meth:`_lagrangian_values_np` and :meth:`_lagrangian_values_rows` make
    #: ``lagrangian_grad_and_values`` one pass (the compiled oracle's); else the oracle makes
    #: the base class's calls
    _fused_values = False

    def _lagrangian_values_np(self, obj_rows: np.ndarray | None, con_rows: np.ndarray, value_rows: np.ndarray,
                              pg: int, weights: Weights2):
        """``(f, c, v, g)`` of ``lagrangian_grad_and_values`` from one pass, where
        :attr:`_fused_values` (see the compiled oracle's)."""
        raise NotImplementedError

    def _lagrangian_values_rows(self, rows: np.ndarray, n_obj: int, pg: int, weights: Weights2):
        """:meth:`_lagrangian_values_np` on the three batches' rows already joined (objective,
        constraint, value rows), where :attr:`_fused_values`."""
        raise NotImplementedError

    def _halves_np(self, obj_rows: np.ndarray, con_rows: np.ndarray, pg: int):
        """S1, S2 and S3 from one pass (see the compiled oracle's); ``None``: the numpy path
        makes the three calls."""
        return None

    def _group_row_scales(self, weights: Weights, c: np.ndarray, stats: np.ndarray, pg: int) -> np.ndarray:
        """``d(sum_j w_j c_j) / d s_g / pg`` (..., G): the weight of each row of group g in the
        Lagrangian's backward pass, with ``w`` the weights (or ``weights(c)``)."""
        w = np.asarray(weights(c) if callable(weights) else weights, dtype=self._dt)
        jmap = self._jmap(stats)
        v = np.matmul(w[..., None, :], jmap)[..., 0, :] if self._stacked else np.dot(w, jmap)
        v *= self._dt(1.0 / pg)
        return v

    def _lagrangian_np(self, obj_rows: np.ndarray | None, con_rows: np.ndarray, pg: int, weights: Weights):
        """``f`` (None without objective rows), ``c`` and ``grad f + sum_j w_j grad c_j`` (one backward)."""
        n_obj, rows = _joined_rows(obj_rows, con_rows)
        y = self._y[rows]
        z, hs = self._forward(self._X[rows])  # one forward pass for both batches
        G = self._n_groups
        losses = self._losses_np(z, y)
        delta = expit(z)
        delta -= y
        if self._statistic != "loss":  # the constraint rows' own quantity and slopes
            stats, c = self._stats_values(self._row_values(z[..., n_obj:], y[..., n_obj:]), pg)
            delta[..., n_obj:] = row_slopes_np(self._statistic, z[..., n_obj:], y[..., n_obj:], self._inv_t)
        else:
            stats, c = self._stats_values(losses[..., n_obj:], pg)
        v = self._group_row_scales(weights, c, stats, pg)
        if n_obj:
            f = self._dot_rows(losses[..., :n_obj], self._mean_vec(n_obj))
            delta[..., :n_obj] *= self._dt(1.0 / n_obj)
        else:
            f = None
        # (a reshape that splits the contiguous last axis of a slice is a view: scaled in place)
        delta[..., n_obj:].reshape(self._lead + (G, pg))[...] *= v[..., :, None]
        return f, c, self._np_backward(delta, hs)
