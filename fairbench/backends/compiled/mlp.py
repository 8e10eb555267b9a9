"""The compiled fast path: the numpy MLP oracles with their passes in numba kernels.

:class:`CompiledMLPMath` is :class:`~fairbench.backends.numpy_mlp.NumpyMLPMath` with the
forward pass, the BCE losses and their sums, and the backward pass of every oracle
computation (``objective``, ``constraints``, ``objective_and_constraints``,
``lagrangian_grad``, and the forward/backward under ``logit_grad`` and ``custom_grad``) done by
the kernels of :mod:`fairbench.backends.compiled.mlp_kernels`: two compiled calls where the numpy path
makes some 40 numpy calls; the kernels also compute the stock signed constraints' values
``M s - delta`` and, in ``lagrangian_grad``, each group's row weight from the weights and
``dc/ds``. What stays in numpy is what is generic: other constraint families' values and
``dc/ds``, the weights callback of ``lagrangian_grad``, and the Jacobian product. Ghost's
three coupled sample sets come from one pass over the largest (``_halves_np``).

Same semantics, batches, streams, counters and result types as the numpy oracles (the tests
compare trajectories); the numbers agree to float32 rounding, not bitwise (other summation
orders). Seeds of a stack run the single-seed kernels one after another on the same shapes,
so a stacked seed gets exactly the numbers of its single-seed compiled run.

Chosen by ``problem.fast_path=auto`` when numba is installed (the ``fast`` extra), or asked for
with ``problem.fast_path=compiled``; :func:`fairbench.backends.oracles.oracle_path` names it
``compiled`` (``compiled-stacked``).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from fairbench.backends.numpy_mlp import NumpyMLPMath, _joined_rows
from fairbench.backends.numpy_oracle import NumpyMLPOracle
from fairbench.backends.stacked import StackedMLPOracle
from fairbench.data.compact import CompactX
from fairbench.problems.base import Weights, Weights2
from fairbench.problems.constraints import GroupConstraints
from fairbench.problems.statistics import ROW_CODES

_F32 = np.float32


class CompiledMLPMath(NumpyMLPMath):
    """:class:`NumpyMLPMath` with the passes in compiled kernels (see the module doc).

    Kernels take the parameters as an (S, P) array (one model: a (1, P) view of ``x``) and
    rows as (S, B); per batch size B a workspace holds the input rows, the hidden activations
    and the logits of the last forward pass, which the backward pass that follows reads.
    """

    _fused_values = True

    def _init_math(self, linears: list[nn.Linear], acts: list[str], X: np.ndarray, y: np.ndarray,
                   constraints: GroupConstraints | None) -> None:
        super()._init_math(linears, acts, X, y, constraints)
        from fairbench.backends.compiled import mlp_kernels  # imports numba: only on this path

        self._k = mlp_kernels
        self._code = np.int64(ROW_CODES[self._statistic])  # the per-row statistic of the kernels
        self._x2 = self.x if self._stacked else self.x.reshape(1, -1)
        if not np.shares_memory(self._x2, self.x):
            raise RuntimeError("could not view the parameters as one (S, P) array")
        S, P = self._x2.shape
        self._S = S
        self._shapes = np.array([[lin.out_features, lin.in_features] for lin in linears], dtype=np.int64)
        self._act_codes = np.array([mlp_kernels.ACTIVATION_CODES[a] for a in acts[:len(linears) - 1]],
                                   dtype=np.int64)
        self._hidden_width = int(self._shapes[:-1, 0].sum())
        self._g3 = self._g.reshape(S, 1, P)
        self._block3 = {K: buf.reshape(S, K, P) for K, (buf, _, _) in self._blocks.items()}
        self._no_stats = np.zeros((S, 0), dtype=_F32)
        G = self._n_groups
        # the kernels compute the stock signed constraints c = M s - delta themselves; other
        # constraint families go through group_constraints.values (no rows for the kernel)
        self._M_kernel = self._M32 if self._signed else np.zeros((0, G), dtype=_F32)
        self._delta_kernel = self._delta if self._signed else _F32(0.0)
        self._no_weights = (np.zeros((1, 0), dtype=_F32), np.zeros((1, 0, 0), dtype=_F32))
        self._uniform: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._workspaces: dict[int, tuple] = {}
        self._halves_out: dict[int, np.ndarray] = {}
        self._halves_order: dict[int, np.ndarray] = {}
        self._pair_workspaces: dict[int, tuple] = {}  # (rate statistics' halves: two seeds)
        # Ghost's halves: the kernel forms c and J itself where its float32 sums are numpy's (the
        # stock signed constraints with at most two entries +-1 per row: one rounding each) and
        # where that is faster (its row passes beat numpy's gemm for two constraints, not for 20)
        M = self._M_kernel
        pairwise = M.size and np.isin(M, (-1.0, 0.0, 1.0)).all() and ((M != 0).sum(axis=1) <= 2).all()
        self._M_halves = M if pairwise and M.shape[0] <= 2 else np.zeros((0, G), dtype=_F32)
        # lagrangian_grad_and_values: c and v from one pass's 2G statistics, through diag(M, M)
        self._M_pair = np.zeros((2 * M.shape[0], 2 * G), dtype=_F32)
        self._M_pair[:M.shape[0], :G] = M
        self._M_pair[M.shape[0]:, G:] = M

    # -- buffers ---------------------------------------------------------------------------
    def _workspace(self, B: int) -> tuple:
        """``(A0, hidden, z, f, stats)`` for batches of B rows (made once per B)."""
        ws = self._workspaces.get(B)
        if ws is None:
            S = self._S
            ws = self._workspaces[B] = (
                np.empty((S, B, self._X.shape[1]), dtype=_F32),
                np.empty((S, B * self._hidden_width), dtype=_F32),
                np.empty((S, B), dtype=_F32),
                np.zeros(S),
                np.empty((S, self._n_groups), dtype=_F32),
            )
        return ws

    def _uniform_weights(self, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
        """Backward-pass weights that scale every block's rows as in its mean: weights 1
        through the identity (made once per block count)."""
        weights = self._uniform.get(n_blocks)
        if weights is None:
            weights = self._uniform[n_blocks] = (np.ones((1, n_blocks), dtype=_F32),
                                                 np.eye(n_blocks, dtype=_F32)[None])
        return weights

    def _new_gradient(self) -> np.ndarray:
        """A fresh (S, 1, P) array for a gradient the caller keeps: the backward kernel writes
        into it directly (allocating is cheaper than copying a reused buffer)."""
        return np.empty_like(self._g3)

    def _rows2(self, rows: np.ndarray) -> np.ndarray:
        return rows if self._stacked else rows.reshape(1, -1)

    def _kernel_rows(self, rows2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, y, rows)`` for the forward kernel's batch ``rows2`` (S, B): the training arrays
        and ``rows2``; for compact one-hot features (:class:`~fairbench.data.compact.CompactX`)
        the batch's rows made dense, their labels and the rows ``0..S B - 1`` in their order
        (the same values reach the kernel; the backward kernel reads only labels, by ``rows2``)."""
        if not isinstance(self._X, CompactX):
            return self._X, self._y, rows2
        flat = rows2.reshape(-1)
        return self._X[flat], self._y[flat], np.arange(flat.size, dtype=np.int64).reshape(rows2.shape)

    def _lead_value(self, f: np.ndarray):
        """One model: a float; a stack: a float64 copy (S,)."""
        return f.copy() if self._stacked else float(f[0])

    def _lead_array(self, a: np.ndarray) -> np.ndarray:
        return a if self._stacked else a[0]

    # -- the passes ------------------------------------------------------------------------
    def _forward_losses(self, rows2: np.ndarray, n_obj: int, pg: int, with_stats: bool) -> tuple:
        """The forward pass: ``(workspace, c)`` with ``c`` the constraint values (..., m) when
        ``with_stats`` (a new array: callers may keep it), else ``None``."""
        # the kernels trust this layout (no bounds checks): n_obj rows, then G blocks of pg
        expected = n_obj + (self._n_groups * pg if with_stats else 0)
        if rows2.shape[1] != expected:
            raise ValueError(f"a batch of {rows2.shape[1]} rows where {n_obj} objective rows and "
                             f"{self._n_groups if with_stats else 0} groups x {pg} were expected")
        ws = self._workspace(rows2.shape[1])
        A0, hidden, z, f, stats = ws
        M = self._M_kernel if with_stats else self._M_kernel[:0]
        c2 = np.empty((self._S, M.shape[0]), dtype=_F32)
        self._k.forward_losses(self._x2, self._shapes, self._act_codes, *self._kernel_rows(rows2), n_obj, pg,
                               A0, hidden, z, f, stats if with_stats else self._no_stats, M, self._delta_kernel, c2,
                               self._code, self._inv_t)
        if not with_stats:
            return ws, None
        c = self._lead_array(c2) if M.shape[0] else self._constraint_values(self._lead_array(stats))
        return ws, c

    def _backward_losses(self, rows2: np.ndarray, ws: tuple, n_obj: int, obj_scale: float,
                         weights: tuple[np.ndarray, np.ndarray], pg: int, out3: np.ndarray) -> None:
        """The backward pass after :meth:`_forward_losses`; ``weights``: the constraint weights
        (S or 1, m) and ``dc/ds`` (S or 1, m, G) that scale each group's rows (see the kernel)."""
        A0, hidden, z, _, _ = ws
        w2, jmap3 = weights
        self._k.backward_losses(self._x2, self._shapes, self._act_codes, self._y, rows2, A0, hidden, z,
                                n_obj, _F32(obj_scale), w2, jmap3, _F32(1.0 / pg) if pg else _F32(0.0), pg,
                                out3.shape[1], out3, self._code, self._inv_t)

    def _objective_np(self, rows: np.ndarray, grad: bool):
        rows2 = self._rows2(rows)
        n = rows2.shape[1]
        if n == 0:
            raise ValueError("an objective batch needs at least one row")
        ws, _ = self._forward_losses(rows2, n, 0, False)
        f = self._lead_value(ws[3])
        if not grad:
            return f, None
        g3 = self._new_gradient()
        self._backward_losses(rows2, ws, n, 1.0 / n, self._no_weights, 0, g3)
        return f, g3.reshape(self._g.shape)

    def _constraints_np(self, rows: np.ndarray, pg: int, jac: bool):
        rows2 = self._rows2(rows)
        ws, c = self._forward_losses(rows2, 0, pg, True)
        if not jac:
            return c, None
        stats = self._lead_array(ws[4])
        G = self._n_groups
        self._backward_losses(rows2, ws, 0, 0.0, self._uniform_weights(G), pg, self._block3[G])
        return c, self._mm(self._jmap(stats), self._blocks[G][0])

    def _objective_and_constraints_np(self, obj_rows: np.ndarray, con_rows: np.ndarray, pg: int):
        if obj_rows.shape[-1] != pg:
            f, g = self._objective_np(obj_rows, True)
            c, J = self._constraints_np(con_rows, pg, True)
            return f, g, c, J
        rows2 = self._rows2(_joined_rows(obj_rows, con_rows)[1])
        ws, c = self._forward_losses(rows2, pg, pg, True)
        f = self._lead_value(ws[3])
        stats = self._lead_array(ws[4])
        G = self._n_groups
        self._backward_losses(rows2, ws, pg, 1.0 / pg, self._uniform_weights(G), pg, self._block3[G + 1])
        blocks = self._blocks[G + 1][0]
        return f, blocks[..., 0, :].copy(), c, self._mm(self._jmap(stats), blocks[..., 1:, :])

    def _halves_np(self, obj_rows: np.ndarray, con_rows: np.ndarray, pg: int):
        """``objective_and_constraints`` on S1, S2 (the odd and even halves of both batches) and
        S3 (the batches) from one pass over S3's rows; ``None`` where it does not apply (a
        stack, an odd ``pg``, an objective batch of other than ``pg`` rows). A rate statistic,
        whose objective and group rows take different per-row quantities, goes through
        :meth:`_rate_halves` (the same one pass, the halves as two seeds).

        The rows are ordered as K = 2 (G + 1) blocks of ``h = pg / 2``: S1's objective rows,
        S1's rows of each group, then the same for S2. One forward pass gives every block's
        mean loss and one backward pass every block's mean-loss gradient; a half's ``f``,
        group statistics and their gradients are its blocks', and S3's are the averages of
        the two halves' (S3's mean over ``pg`` rows is the mean of the halves' means over ``h``).
        Then ``c`` and ``J = dc/ds @ (statistics' gradients)`` per set, as in
        :meth:`_objective_and_constraints_np`. Half the rows of the three separate passes.

        The sets are formed by one kernel (:func:`~fairbench.backends.compiled.mlp_kernels.halves_sets`:
        the halves' averages and, for two signed pair constraints, ``c`` and ``J``), the same
        numbers as numpy's formulas bit for bit (tested): numpy's formulas cost more per Ghost
        step than the two passes themselves.
        """
        if self._stacked or pg % 2 or obj_rows.shape[-1] != pg:
            return None
        G = self._n_groups
        if con_rows.shape[-1] != G * pg:
            raise ValueError(f"a batch of {con_rows.shape[-1]} rows where {G} groups x {pg} were expected")
        h, K = pg // 2, 2 * (G + 1)
        order = self._halves_order.get(pg)
        if order is None:  # positions in [objective rows, group rows]: S1's blocks, then S2's
            blocks = np.arange(pg * (G + 1)).reshape(G + 1, pg)
            order = self._halves_order[pg] = np.concatenate((blocks[:, 1::2].ravel(), blocks[:, 0::2].ravel()))
        if self._statistic != "loss":  # (its objective blocks take the BCE, its groups' the rate)
            return self._rate_halves(np.concatenate((obj_rows, con_rows))[order].reshape(2, -1), h)
        rows2 = np.concatenate((obj_rows, con_rows))[order].reshape(1, -1)
        A0, hidden, z, f, _ = ws = self._workspace(rows2.shape[1])
        means = np.empty((1, K), dtype=_F32)
        self._k.forward_losses(self._x2, self._shapes, self._act_codes, *self._kernel_rows(rows2), 0, h,
                               A0, hidden, z, f, means, self._M_kernel[:0], self._delta_kernel, self._no_stats[:1],
                               self._code, self._inv_t)
        out = self._halves_out.get(K)
        if out is None:
            out = self._halves_out[K] = np.empty((1, K, self.x.shape[-1]), dtype=_F32)
        self._backward_losses(rows2, ws, 0, 0.0, self._uniform_weights(K), h, out)
        P, M = self.x.shape[-1], self._M_halves
        f3, stats, g = np.empty(3, dtype=_F32), np.empty((3, G), dtype=_F32), np.empty((3, P), dtype=_F32)
        stat_grads = np.empty((G, P), dtype=_F32)  # S3's (S1's and S2's are rows of out)
        c, J = np.empty((3, M.shape[0]), dtype=_F32), np.empty((3, M.shape[0], P), dtype=_F32)
        self._k.halves_sets(means[0], out[0], G, M, self._delta_kernel, f3, stats, g, stat_grads, c, J)
        f3 = f3.tolist()
        if M.shape[0]:
            return tuple((f3[j], g[j], c[j], J[j]) for j in range(3))
        sets_grads = (out[0, 1:G + 1], out[0, G + 2:K], stat_grads)
        return tuple((f3[j], g[j], self._constraint_values(stats[j]), np.dot(self._jmap(stats[j]), sets_grads[j]))
                     for j in range(3))

    def _rate_halves(self, rows2: np.ndarray, h: int):
        """:meth:`_halves_np` for a rate statistic: S1 and S2 as the two seeds of one kernel
        call at the same parameters (``rows2`` (2, (G + 1) h): each half's objective rows, then
        its group rows), S3 from their averages.

        Per seed the kernels make exactly the operations of ``objective_and_constraints`` on
        that half (objective rows through the BCE, group rows through the statistic's per-row
        code, the same shapes), so S1's and S2's ``f``, ``g``, ``c`` and ``J`` are those of the
        three calls bit for bit (tested). S3 is formed as for the loss (:func:`halves_sets`), with
        ``f`` the float64 mean of the halves' float64 means (S3's own mean to about 1e-16); its
        statistics, ``c``, ``g`` and ``J`` agree with a separate pass to float32 rounding."""
        G, P = self._n_groups, self.x.shape[-1]
        K = 2 * (G + 1)
        B = rows2.shape[1]
        ws = self._pair_workspaces.get(B)
        if ws is None:
            ws = self._pair_workspaces[B] = (
                np.empty((2, P), dtype=_F32), np.empty((2, B, self._X.shape[1]), dtype=_F32),
                np.empty((2, B * self._hidden_width), dtype=_F32), np.empty((2, B), dtype=_F32), np.zeros(2),
                np.empty((2, G), dtype=_F32), np.empty((2, K // 2, P), dtype=_F32))
        x_pair, A0, hidden, z, f, stats2, out = ws
        x_pair[:] = self._x2  # both halves at the same parameters
        M = self._M_kernel
        c2 = np.empty((2, M.shape[0]), dtype=_F32)
        self._k.forward_losses(x_pair, self._shapes, self._act_codes, self._X, self._y, rows2, h, h,
                               A0, hidden, z, f, stats2, M, self._delta_kernel, c2, self._code, self._inv_t)
        self._k.backward_losses(x_pair, self._shapes, self._act_codes, self._y, rows2, A0, hidden, z, h,
                                _F32(1.0 / h), *self._uniform_weights(G), _F32(1.0 / h), h, G + 1, out,
                                self._code, self._inv_t)
        means = np.empty(K, dtype=_F32)
        means[0], means[G + 1] = f  # (S3's f is taken in float64 below)
        means[1:G + 1], means[G + 2:] = stats2
        Mh = self._M_halves
        f3, stats, g = np.empty(3, dtype=_F32), np.empty((3, G), dtype=_F32), np.empty((3, P), dtype=_F32)
        stat_grads = np.empty((G, P), dtype=_F32)
        c, J = np.empty((3, Mh.shape[0]), dtype=_F32), np.empty((3, Mh.shape[0], P), dtype=_F32)
        grads = out.reshape(K, P)
        self._k.halves_sets(means, grads, G, Mh, self._delta_kernel, f3, stats, g, stat_grads, c, J)
        sets = []
        for j in range(2):  # the halves: each seed's numbers as its own call makes them
            c_j = c2[j] if M.shape[0] else self._constraint_values(stats2[j])
            J_j = J[j] if Mh.shape[0] else np.dot(self._jmap(stats2[j]), out[j, 1:])
            sets.append((float(f[j]), g[j], c_j, J_j))
        if Mh.shape[0]:
            c3, J3 = c[2], J[2]
        else:
            c3, J3 = self._constraint_values(stats[2]), np.dot(self._jmap(stats[2]), stat_grads)
        sets.append((float((f[0] + f[1]) * 0.5), g[2], c3, J3))
        return tuple(sets)

    def _lagrangian_np(self, obj_rows: np.ndarray | None, con_rows: np.ndarray, pg: int, weights: Weights):
        n_obj, rows = _joined_rows(obj_rows, con_rows)
        rows2 = self._rows2(rows)
        ws, c = self._forward_losses(rows2, n_obj, pg, True)
        g = self._weighted_backward(rows2, rows2.shape[1], ws, n_obj, pg, c, self._lead_array(ws[4]),
                                    lambda: weights(c) if callable(weights) else weights)
        f = None if not n_obj else self._lead_value(ws[3])
        return f, c, g

    def _weighted_backward(self, rows2: np.ndarray, n_back: int, ws: tuple, n_obj: int, pg: int, c: np.ndarray,
                           stats: np.ndarray, weights_of) -> np.ndarray:
        """The Lagrangian's backward pass after a forward pass over ``rows2`` into the workspace
        ``ws``, over its first ``n_back`` rows: the weights ``weights_of()``, checked against the
        constraint values ``c``, scale each group's rows through ``dc/ds`` at ``stats``; returns
        a fresh gradient (..., P)."""
        # the backward pass reads this workspace: while the weights are computed (a callable
        # may evaluate the oracle again), other calls get a workspace of their own
        B = rows2.shape[1]
        del self._workspaces[B]
        try:
            w = weights_of()
        finally:
            self._workspaces[B] = ws
        w = np.asarray(w, dtype=_F32)
        if w.shape != c.shape and w.shape != c.shape[-1:]:
            raise ValueError(f"weights of shape {w.shape} for constraint values of shape {c.shape}")
        # (S, m), or one (m,) row for one model or for weights every seed of a stack shares
        w2 = np.ascontiguousarray(w).reshape(-1, c.shape[-1])
        jmap = self._jmap(stats)
        rows_back = rows2 if n_back == B else np.ascontiguousarray(rows2[:, :n_back])
        g3 = self._new_gradient()
        self._backward_losses(rows_back, ws, n_obj, 1.0 / n_obj if n_obj else 0.0,
                              (w2, jmap.reshape((-1,) + jmap.shape[-2:])), pg, g3)
        return g3.reshape(self._g.shape)

    def _lagrangian_values_np(self, obj_rows: np.ndarray | None, con_rows: np.ndarray, value_rows: np.ndarray,
                              pg: int, weights: Weights2):
        """``lagrangian_grad_and_values`` in one forward pass over the objective, constraint and
        value rows (in that order) and one backward pass over the first two: ``(f, c, v, g)``.

        The forward kernel computes the 2G group statistics, and, for the stock signed
        constraints, ``c`` and ``v`` through the block-diagonal ``diag(M, M)`` (a zero term adds
        nothing to its float64 sums, so both are the values of two separate passes); the
        backward pass reads the first rows of the same workspace. Per row the same operations as
        :meth:`_constraints_np` then :meth:`_lagrangian_np`, with one kernel call, one row gather
        and one set of wrappers fewer per SSL-ALM step. The results agree with those two calls
        to float32 rounding, not bitwise: BLAS may round a row of a taller matrix product
        differently (in the tests, by a few float32 ulps). A stacked seed still gets exactly its
        single-seed numbers (same path)."""
        G = self._n_groups
        for name, part in (("constraint", con_rows), ("value", value_rows)):
            if part.shape[-1] != G * pg:
                raise ValueError(f"a {name} batch of {part.shape[-1]} rows where {G} groups x {pg} were expected")
        n_obj = 0 if obj_rows is None else obj_rows.shape[-1]
        parts = (con_rows, value_rows) if obj_rows is None else (obj_rows, con_rows, value_rows)
        return self._lagrangian_values_rows(np.concatenate(parts, axis=-1), n_obj, pg, weights)

    def _lagrangian_values_rows(self, rows: np.ndarray, n_obj: int, pg: int, weights: Weights2):
        """:meth:`_lagrangian_values_np` on rows already joined, (..., n_obj + 2 G pg)
        (``sample_lagrangian_grad_and_values`` draws them into one array)."""
        G = self._n_groups
        rows2 = self._rows2(rows)
        B = rows2.shape[1]
        ws = A0, hidden, z, f, _ = self._workspace(B)
        M2, m = self._M_pair, self.n_constraints
        stats2 = np.empty((self._S, 2 * G), dtype=_F32)
        cv = np.empty((self._S, M2.shape[0]), dtype=_F32)  # c then v, per seed (a new array: callers keep them)
        self._k.forward_losses(self._x2, self._shapes, self._act_codes, *self._kernel_rows(rows2), n_obj, pg,
                               A0, hidden, z, f, stats2, M2, self._delta_kernel, cv, self._code, self._inv_t)
        stats = self._lead_array(stats2[:, :G])
        if M2.shape[0]:
            c, v = self._lead_array(cv[:, :m]), self._lead_array(cv[:, m:])
        else:
            c = self._constraint_values(stats)
            v = self._constraint_values(self._lead_array(stats2[:, G:]))
        g = self._weighted_backward(rows2, n_obj + G * pg, ws, n_obj, pg, c, stats,
                                    lambda: weights(c, v) if callable(weights) else weights)
        f = None if not n_obj else self._lead_value(f)
        return f, c, v, g

    # -- forward/backward from given inputs and slopes (logits, logit_grad, custom_grad) ---
    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, tuple]:
        # buffers of its own: a loss function may evaluate the oracle before the backward pass
        A0 = np.ascontiguousarray(X if self._stacked else X[None], dtype=_F32)
        S, B = A0.shape[:2]
        hidden, z = np.empty((S, B * self._hidden_width), dtype=_F32), np.empty((S, B), dtype=_F32)
        self._k.forward_inputs(self._x2, self._shapes, self._act_codes, A0, hidden, z)
        return self._lead_array(z), (A0, hidden)

    def _backward_deltas(self, delta: np.ndarray, hs: tuple, out3: np.ndarray) -> None:
        """The backward pass of :meth:`_forward`'s ``hs`` from per-row ``delta``, into
        ``out3`` (S, K, P): K blocks of rows."""
        A0, hidden = hs
        d2 = np.ascontiguousarray(delta if self._stacked else delta.reshape(1, -1), dtype=_F32)
        self._k.backward_deltas(self._x2, self._shapes, self._act_codes, A0, hidden, d2, out3.shape[1], out3)

    def _np_backward(self, delta: np.ndarray, hs: tuple) -> np.ndarray:
        self._backward_deltas(delta, hs, self._g3)
        return self._g.copy()

    def _group_backward(self, delta: np.ndarray, hs: tuple, K: int, rows: int) -> np.ndarray:
        self._backward_deltas(delta, hs, self._block3[K])
        return self._blocks[K][0]


class CompiledMLPOracle(CompiledMLPMath, NumpyMLPOracle):
    """:class:`~fairbench.backends.numpy_oracle.NumpyMLPOracle` on the compiled kernels."""

    fast_path_name = "compiled"


class CompiledStackedMLPOracle(CompiledMLPMath, StackedMLPOracle):
    """:class:`~fairbench.backends.stacked.StackedMLPOracle` on the compiled kernels."""

    fast_path_name = "compiled-stacked"
