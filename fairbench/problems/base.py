"""The interface between a stochastic problem and the algorithms that solve it.

Every algorithm in fairbench solves

    min_x f(x) = E[l(x; xi)]   subject to   c(x) = E[C(x; zeta)] <= 0   (componentwise)

through an :class:`Oracle`: it draws minibatches, asks for sampled values, gradients and
Jacobians, and updates the flat parameter vector ``oracle.x`` in place. It never sees data
frames, models or metrics, which is what lets the same algorithm code run on the census task,
on the closed-form problems of the test suite, and on any problem a user writes.

Budget accounting lives here too (:class:`Counters`): every row an oracle draws and every
per-row gradient it computes is counted, so methods can be compared at equal samples or
gradient evaluations as well as at equal iterations or seconds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Weights = np.ndarray | Callable[[np.ndarray], np.ndarray]
#: weights of :meth:`Oracle.lagrangian_grad_and_values`: an array, or a function of ``(c, v)``
Weights2 = np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Counters:
    """Work done by an oracle since it was built.

    ``samples``: rows drawn from the data (objective and constraint streams together).
    ``grad_evals``: per-row gradient evaluations (rows that went through a backward pass;
    a Jacobian of m constraints on a batch counts the batch once per backward pass made).
    """

    samples: int = 0
    grad_evals: int = 0


@dataclass
class Batch:
    """A minibatch: opaque to algorithms, meaningful only to the oracle that drew it.

    ``size`` is the number of rows. ``per_group`` is set for balanced constraint batches
    (rows ordered group by group, ``per_group`` rows each).
    """

    size: int
    data: object = None
    per_group: int | None = None
    extra: dict = field(default_factory=dict)


def split_batch(batch: Batch) -> tuple[Batch, Batch]:
    """The two halves of ``batch``: S1 = odd positions, S2 = even positions (0-based).

    A balanced batch (``per_group`` set; rows ordered group by group) is split inside every
    group block, so both halves are balanced with ``per_group / 2`` rows of every group. The
    halves are disjoint and together hold exactly the rows of ``batch``. ``batch.data`` must be
    indexable by an integer array (a numpy index array for :class:`CallableOracle`, a torch index
    tensor for :class:`FairnessOracle`); ``extra`` is shared unchanged.
    """
    size, per_group = batch.size, batch.per_group
    if per_group is None:
        if size % 2:
            raise ValueError(f"cannot halve a batch of {size} rows")
        positions = np.arange(size).reshape(1, size)
    else:
        if per_group % 2 or size % per_group:
            raise ValueError(f"cannot halve a balanced batch of {size} rows, {per_group} per group")
        positions = np.arange(size).reshape(size // per_group, per_group)
    halves = []
    for start in (1, 0):
        idx = positions[:, start::2].ravel()
        halves.append(Batch(len(idx), batch.data[idx], None if per_group is None else per_group // 2, batch.extra))
    return halves[0], halves[1]


class Oracle(ABC):
    """Stochastic first-order oracle for ``min f(x) s.t. c(x) <= 0`` over a flat vector.

    What a method author needs (the abstract methods): sampling (:meth:`sample_objective`,
    :meth:`sample_constraints`), values with gradients and Jacobians (:meth:`objective`,
    :meth:`constraints`), and the gradient of a weighted sum in one backward pass
    (:meth:`lagrangian_grad`). The other calls (:meth:`objective_and_constraints`,
    :meth:`objective_and_constraints_halves`, :meth:`lagrangian_grad_and_values`,
    :meth:`sample_lagrangian_grad_and_values`) are optional extras for the backends: each has a
    default composed of the core calls (same rows, counts and numbers), a fast oracle may fuse
    them into one pass, and the variants in :mod:`fairbench.backends` use them; a method file
    does not need them.

    Attributes
    ----------
    x : np.ndarray
        The current parameters, 1-D. Algorithms update it **in place** (``x[:] = ...`` or
        ``x -= ...``); the oracle evaluates at whatever ``x`` holds.
    n_constraints : int
        ``m``; 0 for an unconstrained (or penalized) problem.
    constraint_names : list[str]
        One short name per constraint, used in trajectories.
    counters : Counters
        Samples drawn and gradient evaluations so far.
    """

    x: np.ndarray
    n_constraints: int
    constraint_names: list[str]
    counters: Counters

    # -- sampling ----------------------------------------------------------------------
    @abstractmethod
    def sample_objective(self, size: int) -> Batch:
        """Draw ``size`` rows for the objective from the objective stream."""

    @abstractmethod
    def sample_constraints(self, per_group: int, stream: int = 0) -> Batch:
        """Draw a batch for the constraints: ``per_group`` rows from every group.

        Each ``stream`` is an independent random stream, so that two calls with different
        streams give independent estimates (e.g. SSL-ALM's xi_1 and xi_2).
        """

    @property
    def n_groups(self) -> int:
        """Number of groups a balanced constraint batch draws from (1 if not grouped)."""
        return 1

    # -- evaluation ----------------------------------------------------------------------
    @abstractmethod
    def objective(self, batch: Batch, grad: bool = False) -> tuple[float, np.ndarray | None]:
        """Sampled objective value on ``batch`` and, if ``grad``, its gradient (shape of x)."""

    @abstractmethod
    def constraints(self, batch: Batch, jac: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Sampled constraint values ``c`` (m,) and, if ``jac``, the Jacobian ``J`` (m, n)."""

    def objective_and_constraints(
        self, obj_batch: Batch, con_batch: Batch
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """``(f, g, c, J)``: the objective value and gradient (shape of x) on ``obj_batch`` and the
        constraint values (m,) and Jacobian (m, n) on ``con_batch``, counted as the two calls.

        The same as ``objective(obj_batch, grad=True)`` then ``constraints(con_batch, jac=True)``,
        which is what this default does; an oracle may fuse the two passes (one forward and
        backward over both batches, as the numpy MLP oracle does) for methods that need all
        four at once (Stochastic Ghost, on every sample set).
        """
        f, g = self.objective(obj_batch, grad=True)
        c, J = self.constraints(con_batch, jac=True)
        return f, g, c, J

    def objective_and_constraints_halves(
        self, obj_batch: Batch, con_batch: Batch
    ) -> tuple[tuple[float, np.ndarray, np.ndarray, np.ndarray], ...]:
        """:meth:`objective_and_constraints` on the two halves of a sample set and on the whole:
        ``(S1, S2, S3)``, each ``(f, g, c, J)``, with S1 and S2 the :func:`split_batch` halves
        (odd and even positions) of both batches and S3 the batches themselves (Stochastic
        Ghost's three coupled sets), counted as the three calls.

        This default makes the three calls. An oracle may compute all three from one pass
        over S3's rows (the halves' rows are S3's rows, and S3's means are the means of the
        halves' means), as the compiled MLP oracle does.
        """
        (o1, o2), (c1, c2) = split_batch(obj_batch), split_batch(con_batch)
        return (self.objective_and_constraints(o1, c1), self.objective_and_constraints(o2, c2),
                self.objective_and_constraints(obj_batch, con_batch))

    @abstractmethod
    def lagrangian_grad(
        self, obj_batch: Batch | None, con_batch: Batch, weights: Weights
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """``f``, ``c`` and ``g = grad f(obj_batch) + sum_j w_j grad c_j(con_batch)``.

        ``weights`` is an (m,) array, or a function of the sampled ``c`` returning one (so a
        method can update its multipliers from the same sample and still make one backward
        pass). ``obj_batch=None`` leaves ``f`` out (``f`` is then returned as 0.0).
        """

    def lagrangian_grad_and_values(
        self, obj_batch: Batch | None, con_batch: Batch, value_batch: Batch, weights: Weights2
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """``(f, c, v, g)``: :meth:`lagrangian_grad` on ``obj_batch`` and ``con_batch``, together
        with the constraint values ``v`` (m,) on a third batch ``value_batch`` (no gradient there),
        counted as the two calls. ``weights`` is an (m,) array, or a function of ``(c, v)``
        returning one: SSL-ALM's weights ``lam + rho (v + s)``, after a dual step from ``c``, need
        the values at an independent sample.

        The same as ``v, _ = constraints(value_batch)`` then ``lagrangian_grad`` with the weights
        ``weights(c, v)``, which is what this default does; an oracle may run one forward pass
        over all three batches and the backward pass over the first two (the compiled MLP
        oracle does).
        """
        v, _ = self.constraints(value_batch)
        w = (lambda c: weights(c, v)) if callable(weights) else weights
        f, c, g = self.lagrangian_grad(obj_batch, con_batch, w)
        return f, c, v, g

    def sample_lagrangian_grad_and_values(
        self, batch_size: int, per_group: int, weights: Weights2, streams: tuple[int, int] = (0, 1)
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Draw ``zeta`` (``batch_size`` objective rows), ``xi_1`` and ``xi_2`` (``per_group`` rows
        of every group, from constraint streams ``streams[0]`` and ``streams[1]``), then return
        :meth:`lagrangian_grad_and_values` on them: ``(f, c, v, g)``, with ``c`` at ``xi_1`` and
        ``v`` at ``xi_2`` (SSL-ALM's whole oracle work of one step).

        The same rows, counts and numbers as ``sample_objective``, ``sample_constraints`` twice
        and ``lagrangian_grad_and_values``, which is what this default does; an oracle may draw
        the rows straight into the array its fused pass reads (the compiled MLP oracles do,
        without the three batch objects, their checks and their concatenation).
        """
        zeta = self.sample_objective(batch_size)
        xi1 = self.sample_constraints(per_group, stream=streams[0])
        xi2 = self.sample_constraints(per_group, stream=streams[1])
        return self.lagrangian_grad_and_values(zeta, xi1, xi2, weights)

    def final_check(self) -> bool:
        """True when ``x`` holds only finite numbers."""
        return bool(np.isfinite(self.x).all())
