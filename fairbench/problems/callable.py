"""An oracle over plain numpy functions: any small problem ``min f s.t. c <= 0``.

The user provides the per-row objective and constraints as functions of ``(x, rows)``,
where ``rows`` are indices into their own data (``n_rows`` of them, optionally with a group
per row). Minibatches are sampled exactly as for the census task (without replacement
within a pass; balanced per group for constraints), so every fairbench algorithm runs on it
unchanged. A deterministic problem is the special case ``n_rows=1`` with functions that
ignore ``rows``.

Example: project ``a`` onto the half-space ``x1 + x2 <= 1``::

    a = np.array([2.0, 1.0])
    oracle = CallableOracle(
        x0=np.zeros(2),
        objective=lambda x, rows: (0.5 * np.sum((x - a) ** 2), x - a),
        constraints=lambda x, rows: (np.array([x.sum() - 1.0]), np.ones((1, 2))),
        n_constraints=1,
    )
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fairbench.problems.base import Batch, Counters, Oracle, Weights
from fairbench.problems.sampling import SamplingStreams

ValueGrad = Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]
ValueJac = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class CallableOracle(Oracle):
    """Oracle built from ``objective(x, rows) -> (f, grad)`` and ``constraints(x, rows) -> (c, J)``.

    Parameters
    ----------
    x0 : starting point (copied; ``oracle.x`` is the iterate the algorithm updates).
    objective : mean objective over ``rows`` and its gradient.
    constraints : mean constraint values (m,) over ``rows`` and the Jacobian (m, n); may be
        ``None`` for an unconstrained problem.
    n_constraints : m.
    n_rows : size of the data the rows index (1 for a deterministic problem).
    groups : optional group id per row; balanced constraint batches draw ``per_group`` rows
        from each group (default: one group holding every row).
    seed : entropy of the sampling streams.
    """

    def __init__(
        self,
        x0: np.ndarray,
        objective: ValueGrad,
        constraints: ValueJac | None = None,
        n_constraints: int = 0,
        n_rows: int = 1,
        groups: np.ndarray | None = None,
        seed: int = 0,
        constraint_names: list[str] | None = None,
    ):
        self.x = np.array(x0, dtype=float).reshape(-1)
        self._objective, self._constraints = objective, constraints
        self.n_constraints = n_constraints if constraints is not None else 0
        self.constraint_names = constraint_names or [f"c{j}" for j in range(self.n_constraints)]
        self.counters = Counters()
        groups = np.zeros(n_rows, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
        rows_of = [np.flatnonzero(groups == g) for g in range(int(groups.max()) + 1)]
        self.streams = SamplingStreams(n_rows, rows_of, seed)

    @property
    def n_groups(self) -> int:
        return self.streams.n_groups

    @property
    def smallest_group(self) -> int | None:
        """Rows of the smallest group; ``None`` for a deterministic (one-row) problem, where
        any batch size is allowed because every row is the same."""
        return None if self.streams.objective.n == 1 else self.streams.smallest_group

    def sample_objective(self, size: int) -> Batch:
        n = self.streams.objective.n
        # a batch larger than the data (e.g. a deterministic one-row problem) repeats rows
        rows = self.streams.objective.draw(size) if size <= n else np.arange(size) % n
        self.counters.samples += size
        return Batch(size, rows)

    def sample_constraints(self, per_group: int, stream: int = 0) -> Batch:
        if self.smallest_group is None:  # deterministic problem: repeat its one row
            rows = np.concatenate([r[np.arange(per_group) % len(r)] for r in self.streams.group_rows])
        else:
            rows = self.streams.constraint_sampler(stream).draw(per_group)
        self.counters.samples += len(rows)
        return Batch(len(rows), rows, per_group=per_group)

    def objective(self, batch: Batch, grad: bool = False) -> tuple[float, np.ndarray | None]:
        f, g = self._objective(self.x, batch.data)
        if grad:
            self.counters.grad_evals += batch.size
        return float(f), (np.asarray(g, dtype=float) if grad else None)

    def constraints(self, batch: Batch, jac: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        if self._constraints is None:
            return np.zeros(0), (np.zeros((0, self.x.size)) if jac else None)
        c, J = self._constraints(self.x, batch.data)
        if jac:
            self.counters.grad_evals += batch.size
        return np.asarray(c, dtype=float).reshape(-1), (np.asarray(J, dtype=float).reshape(len(c), -1) if jac else None)

    def lagrangian_grad(self, obj_batch: Batch | None, con_batch: Batch, weights: Weights):
        f, g = self.objective(obj_batch, grad=True) if obj_batch is not None else (0.0, np.zeros_like(self.x))
        c, J = self.constraints(con_batch, jac=True)
        w = weights(c) if callable(weights) else weights
        return f, c, g + np.asarray(w, dtype=float) @ J
