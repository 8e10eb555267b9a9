"""Compiled kernels (numba) of the MLP's forward and backward pass, fused with the BCE losses.

Imported only by :mod:`fairbench.backends.compiled.mlp`, and only when numba is installed
(the ``fast`` extra): importing this module imports numba and loads (or, on the first run on
a machine, compiles and caches) the kernels.

Why: on the numpy fast path an SSL-ALM step is some 70 numpy calls on arrays of 8-64 rows,
each costing more in interpreter and dispatch overhead than in arithmetic. Here
one call runs the whole forward pass of a batch (gather the rows, every layer, the per-row
losses and their sums) and one the whole backward pass; the matrix products still go to BLAS
(numba's ``np.dot`` calls scipy's BLAS), the rest is compiled loops.

Layout (as :class:`~fairbench.backends.numpy_mlp.NumpyMLPMath`): ``x2`` (S, P) float32 holds
S models' flat parameters, one per row, in ``nn.Linear`` order (weight (out, in) row-major,
then bias); ``shapes`` (L, 2) int64 the layers' (out, in), the last layer with one output;
``acts`` (L - 1,) int64 the hidden activations (:data:`ACTIVATION_CODES`). Per seed s:
``A0[s]`` (B, D) the input rows, ``hbuf[s]`` the hidden activations of the batch, layer after
layer, each (B, out) row-major; ``z[s]`` (B,) the logits. Seeds are independent loops over
the same code, so the result of seed s does not depend on the other seeds (a stacked run
gives each seed the numbers of its single-seed run).

Sums over rows outside the matrix products (the logits' last dot product, the losses' means,
the bias gradients and the output layer's weight gradient) accumulate in float64 and are
rounded once to float32: a running float32 sum over the 1,024 rows of one of Ghost's large
sample sets would lose digits that MLMC's weights (up to 1/P(N)) then magnify, where BLAS's
blocked sums, which the numpy path uses, do not.
"""

from __future__ import annotations

import numpy as np
from numba import njit

RELU, TANH, SIGMOID = 0, 1, 2
#: activation name (:data:`fairbench.models.ACTIVATION_NAMES` values) -> kernel code
ACTIVATION_CODES = {"relu": RELU, "tanh": TANH, "sigmoid": SIGMOID}

# error_model="numpy": float division follows IEEE (no Python ZeroDivisionError checks);
# boundscheck off (the default); no fastmath, so the float32 arithmetic is the written one.
_jit = njit(cache=True, error_model="numpy")


#: batches of this many rows or more multiply each hidden layer from a transposed copy of its
#: weights (see :func:`_forward_seed`; the crossover measured on the development VM's OpenBLAS)
TRANSPOSED_FROM = 32


@_jit
def _bce(z, y):
    """BCE with logits of one row, ``softplus(z) - y z`` (stable form), float32."""
    return np.float32(max(z, np.float32(0.0)) - y * z + np.log1p(np.exp(-abs(z))))


@_jit
def _sigmoid(z):
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-z))


@_jit
def _row_stat(code, z, y, inv_t):
    """The statistic's per-row quantity (:mod:`fairbench.problems.statistics`): code 0 the BCE,
    1 the soft rate ``p = sigmoid(z / T)``, 2 the soft accuracy ``y p + (1 - y)(1 - p)``."""
    if code == 0:
        return _bce(z, y)
    p = _sigmoid(z * inv_t)
    if code == 1:
        return p
    return np.float32(y * p + (np.float32(1.0) - y) * (np.float32(1.0) - p))


@_jit
def _row_slope(code, z, y, inv_t):
    """``d/dz`` of :func:`_row_stat`: ``sigmoid(z) - y``, ``p (1 - p) / T``, ``(2y - 1) p (1 - p) / T``."""
    if code == 0:
        return _sigmoid(z) - y
    p = _sigmoid(z * inv_t)
    d = np.float32(p * (np.float32(1.0) - p) * inv_t)
    if code == 1:
        return d
    return np.float32(d * (np.float32(2.0) * y - np.float32(1.0)))


@_jit
def _weights_scratch(shapes):
    """A buffer for the largest hidden layer's transposed weights (see :func:`_forward_seed`)."""
    widest = 1
    for layer in range(shapes.shape[0] - 1):
        widest = max(widest, shapes[layer, 0] * shapes[layer, 1])
    return np.empty(widest, np.float32)


@_jit
def _forward_seed(xs, shapes, acts, A0, hbuf, z, wt):
    """Logits ``z`` (B,) of one model (flat parameters ``xs``) on the rows ``A0`` (B, D);
    hidden activations into ``hbuf``; ``wt`` a scratch buffer (:func:`_weights_scratch`).

    From :data:`TRANSPOSED_FROM` rows on, each layer's weights are first copied transposed,
    (in, out) row-major, and ``prev @ W^T`` is multiplied from that copy: OpenBLAS's small-matrix
    path is slower when its second operand is a transposed view, by more than the copy costs
    from that many rows on; at a few rows the copy does not pay (figures in
    docs/performance.md)."""
    B = A0.shape[0]
    L = shapes.shape[0]
    prev = A0
    off = 0
    hoff = 0
    for layer in range(L - 1):
        n_out, n_in = shapes[layer, 0], shapes[layer, 1]
        W = xs[off:off + n_out * n_in].reshape((n_out, n_in))
        b = xs[off + n_out * n_in:off + n_out * n_in + n_out]
        off += n_out * n_in + n_out
        h = hbuf[hoff:hoff + B * n_out].reshape((B, n_out))
        hoff += B * n_out
        if B >= TRANSPOSED_FROM:
            Wt = wt[:n_in * n_out].reshape((n_in, n_out))
            for k in range(n_in):
                for j in range(n_out):
                    Wt[k, j] = W[j, k]
            np.dot(prev, Wt, h)
        else:
            np.dot(prev, W.T, h)
        act = acts[layer]
        for i in range(B):
            for j in range(n_out):
                v = h[i, j] + b[j]
                if act == RELU:  # (a NaN stays NaN, as with np.maximum and torch)
                    h[i, j] = np.float32(0.0) if v < 0.0 else v
                elif act == TANH:
                    h[i, j] = np.tanh(v)
                else:
                    h[i, j] = _sigmoid(v)
        prev = h
    n_in = shapes[L - 1, 1]
    w = xs[off:off + n_in]
    b_out = xs[off + n_in]
    for i in range(B):
        acc = 0.0
        for j in range(n_in):
            acc += prev[i, j] * w[j]
        z[i] = np.float32(acc) + b_out


@_jit
def _backward_seed(xs, shapes, acts, A0, hbuf, delta, K, out):
    """Gradients of ``sum_{i in block k} delta_i z_i`` for K blocks of B/K consecutive rows,
    into ``out[k]`` (flat, like ``xs``); the per-row backward pass is shared by the blocks.

    B is ``delta``'s length: the first B rows of the forward pass (``A0`` and ``hbuf`` are laid
    out for its ``A0.shape[0]`` rows), so one forward pass can serve a backward pass over a
    prefix of its rows."""
    B = delta.shape[0]
    n_rows = A0.shape[0]
    L = shapes.shape[0]
    R = B // K
    offs = np.empty(L, np.int64)
    hoffs = np.empty(L, np.int64)
    off = 0
    hoff = 0
    for layer in range(L):
        offs[layer] = off
        hoffs[layer] = hoff
        off += shapes[layer, 0] * shapes[layer, 1] + shapes[layer, 0]
        if layer < L - 1:
            hoff += n_rows * shapes[layer, 0]
    # output layer: weight and bias gradients per block, then the deltas of its inputs
    n_in = shapes[L - 1, 1]
    o_out = offs[L - 1]
    if L > 1:
        h = hbuf[hoffs[L - 2]:hoffs[L - 2] + n_rows * n_in].reshape((n_rows, n_in))
    else:
        h = A0
    w = xs[o_out:o_out + n_in]
    widest = 0
    for layer in range(L):
        widest = max(widest, shapes[layer, 0], shapes[layer, 1])
    acc = np.empty(widest, np.float64)  # sums over rows in float64 (see the module doc)
    for k in range(K):
        acc[:n_in] = 0.0
        gb = 0.0
        for i in range(k * R, (k + 1) * R):
            d = delta[i]
            gb += d
            for j in range(n_in):
                acc[j] += d * h[i, j]
        for j in range(n_in):
            out[k, o_out + j] = acc[j]
        out[k, o_out + n_in] = gb
    D = np.empty((B, n_in), np.float32)
    for i in range(B):
        for j in range(n_in):
            D[i, j] = delta[i] * w[j]
    # hidden layers, last first
    for layer in range(L - 2, -1, -1):
        n_out, n_in = shapes[layer, 0], shapes[layer, 1]
        h = hbuf[hoffs[layer]:hoffs[layer] + n_rows * n_out].reshape((n_rows, n_out))
        act = acts[layer]
        for i in range(B):
            for j in range(n_out):
                v = h[i, j]
                if act == RELU:
                    if not v > 0.0:
                        D[i, j] = 0.0
                elif act == TANH:
                    D[i, j] *= np.float32(1.0) - v * v
                else:
                    D[i, j] *= v * (np.float32(1.0) - v)
        if layer > 0:
            prev = hbuf[hoffs[layer - 1]:hoffs[layer - 1] + n_rows * n_in].reshape((n_rows, n_in))
        else:
            prev = A0
        o = offs[layer]
        for k in range(K):
            gW = out[k, o:o + n_out * n_in].reshape((n_out, n_in))
            np.dot(D[k * R:(k + 1) * R].T, prev[k * R:(k + 1) * R], gW)
            acc[:n_out] = 0.0
            for i in range(k * R, (k + 1) * R):
                for j in range(n_out):
                    acc[j] += D[i, j]
            for j in range(n_out):
                out[k, o + n_out * n_in + j] = acc[j]
        if layer > 0:
            D = np.dot(D, xs[o:o + n_out * n_in].reshape((n_out, n_in)))


@_jit
def forward_losses(x2, shapes, acts, X, y, rows, n_obj, pg, A0, hbuf, z, f, stats, M, delta, c, code, inv_t):
    """Forward pass of every seed on its rows ``rows[s]`` (B,) of ``X``, with the losses.

    ``f[s]``: the mean BCE of the first ``n_obj`` rows (float64; untouched when ``n_obj`` is 0);
    ``stats[s, g]``: the mean per-row statistic (:func:`_row_stat` of ``code``; the BCE for 0)
    of the g-th block of ``pg`` rows after them (float32);
    ``c[s] = M stats[s] - delta``: linear constraints of the statistics (none when ``M`` has
    no rows), the products summed in float64 and rounded once.
    """
    S, B = rows.shape
    D = X.shape[1]
    G = stats.shape[1]
    wt = _weights_scratch(shapes)
    for s in range(S):
        a0 = A0[s]
        for i in range(B):
            r = rows[s, i]
            for k in range(D):
                a0[i, k] = X[r, k]
        zs = z[s]
        _forward_seed(x2[s], shapes, acts, a0, hbuf[s], zs, wt)
        if n_obj > 0:
            acc = 0.0
            for i in range(n_obj):
                acc += _bce(zs[i], y[rows[s, i]])
            f[s] = acc / n_obj
        for g in range(G):
            acc = 0.0
            for i in range(n_obj + g * pg, n_obj + (g + 1) * pg):
                acc += _row_stat(code, zs[i], y[rows[s, i]], inv_t)
            stats[s, g] = acc / pg
        for j in range(M.shape[0]):
            acc = 0.0
            for g in range(G):
                acc += np.float64(M[j, g]) * np.float64(stats[s, g])
            c[s, j] = np.float32(acc) - delta


@_jit
def forward_inputs(x2, shapes, acts, A0, hbuf, z):
    """Forward pass of every seed on given input rows ``A0[s]`` (B, D): logits into ``z``."""
    wt = _weights_scratch(shapes)
    for s in range(x2.shape[0]):
        _forward_seed(x2[s], shapes, acts, A0[s], hbuf[s], z[s], wt)


@_jit
def backward_losses(x2, shapes, acts, y, rows, A0, hbuf, z, n_obj, obj_scale, w, jmap, inv_pg, pg, K, out,
                    code, inv_t):
    """Backward pass after :func:`forward_losses` from the BCE slopes: per row
    ``delta_i = (sigmoid(z_i) - y_i) * a_i`` with ``a_i = obj_scale`` for the first ``n_obj``
    rows and, for the rows of the g-th block of ``pg`` after them (whose slope is the
    statistic's, :func:`_row_slope` of ``code``), the group's scale
    ``(w[s] @ jmap[s])_g * inv_pg`` (the weights ``w`` (S or 1, m) of the constraints and their
    derivatives ``jmap`` (S or 1, m, G) by the group statistics; a leading axis of 1 serves every
    seed); the gradients of ``sum_i delta_i z_i`` over K blocks of B/K rows go into ``out[s]`` (K, P)."""
    S, B = rows.shape
    G = jmap.shape[2]
    delta = np.empty(B, np.float32)
    scales = np.empty(G, np.float32)
    for s in range(S):
        ws = w[min(s, w.shape[0] - 1)]
        jm = jmap[min(s, jmap.shape[0] - 1)]
        for g in range(G):
            acc = np.float32(0.0)
            for j in range(ws.shape[0]):
                acc += ws[j] * jm[j, g]
            scales[g] = acc * inv_pg
        for i in range(B):
            if i < n_obj:
                d = _sigmoid(z[s, i]) - y[rows[s, i]]
                d *= obj_scale
            else:
                d = _row_slope(code, z[s, i], y[rows[s, i]], inv_t)
                d *= scales[(i - n_obj) // pg]
            delta[i] = d
        _backward_seed(x2[s], shapes, acts, A0[s], hbuf[s], delta, K, out[s])


@_jit
def backward_deltas(x2, shapes, acts, A0, hbuf, delta, K, out):
    """Backward pass after a forward pass from given per-row ``delta[s]`` (B,) (``d loss / d z``):
    gradients of ``sum_i delta_i z_i`` over K blocks of rows into ``out[s]`` (K, P)."""
    for s in range(x2.shape[0]):
        _backward_seed(x2[s], shapes, acts, A0[s], hbuf[s], delta[s], K, out[s])


@_jit
def halves_sets(means, grads, G, M, delta, f, stats, g, stat_grads, c, J):
    """Ghost's three coupled sample sets from one pass over S3's rows (``CompiledMLPMath._halves_np``).

    ``means`` (K,) and ``grads`` (K, P) are the mean losses and their gradients of the pass's
    K = 2 (G + 1) blocks: S1's objective block, its G group blocks, then S2's. Set 0 is S1,
    set 1 S2, set 2 S3, whose values are the halves' averages ``(a + b) * 0.5`` in float32 (as
    numpy computes them). Into ``f`` (3,), ``stats`` (3, G), ``g`` (3, P), and either

    - when ``M`` (m, G) has rows: the constraint values ``c[j] = M stats[j] - delta`` (3, m) and
      the Jacobians ``J[j] = M (statistics' gradients of set j)`` (3, m, P), summed in float32 in
      group order (the caller passes ``M`` only where that is numpy's result: at most two
      entries +-1 per row, so each sum rounds once);
    - else nothing more: the caller forms ``c`` and ``J``.

    ``stat_grads`` (G, P) gets S3's statistics' gradients either way (S1's and S2's are rows of
    ``grads``)."""
    half = np.float32(0.5)
    m = M.shape[0]
    for j in range(2):
        base = j * (G + 1)
        f[j] = means[base]
        g[j] = grads[base]
        for k in range(G):
            stats[j, k] = means[base + 1 + k]
    f[2] = (means[0] + means[G + 1]) * half
    _mean_of_two(grads[0], grads[G + 1], g[2])
    for k in range(G):
        stats[2, k] = (means[1 + k] + means[G + 2 + k]) * half
        _mean_of_two(grads[1 + k], grads[G + 2 + k], stat_grads[k])
    if m == 0:
        return
    for j in range(3):
        for r in range(m):
            acc = np.float32(0.0)
            for k in range(G):
                acc += M[r, k] * stats[j, k]
            c[j, r] = acc - delta
            row = J[j, r]
            row[:] = 0.0
            for k in range(G):  # row-wise in group order: each entry sums as acc above
                _add_scaled(row, M[r, k], grads[j * (G + 1) + 1 + k] if j < 2 else stat_grads[k])


@_jit
def _mean_of_two(a, b, out):
    half = np.float32(0.5)
    for i in range(out.shape[0]):
        out[i] = (a[i] + b[i]) * half


@_jit
def _add_scaled(out, coef, v):
    for i in range(out.shape[0]):
        out[i] += coef * v[i]
