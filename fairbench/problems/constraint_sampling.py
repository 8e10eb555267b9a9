"""Sampling k of the m constraints per step (``problem.constraints_per_step``).

A constrained method whose per-step work is a *sum over constraints* (the Lagrangian term
``sum_j w_j grad c_j`` of SSL-ALM/ALM, the penalty ``sum_j w p(c_j)``) can replace that sum by
an unbiased estimate from a uniform subset ``S`` of ``k`` constraints drawn without
replacement::

    E_S[ (m / k) sum_{j in S} w_j grad c_j ] = sum_j w_j grad c_j

because every constraint lies in ``S`` with probability ``k / m``. The rows of a step are then
drawn only for the cells ``S`` involves, so the step costs O(k) rows, values and Jacobian rows,
whatever ``m``.

Index form. A constraint of the ``signed``/``abs`` forms is ``form(s_a - s_b) - delta``
(:mod:`fairbench.problems.constraints`): for ``pairs`` ``a`` and ``b`` are two cells of one
label block; for ``vs_all`` ``a`` is group g's cell and ``b`` the block's *overall* statistic
``sbar = sum_h pi_h s_h``. :class:`ConstraintIndex` stores ``(a, b, sign)`` per constraint,
O(m) integers instead of the dense (m, cells) matrix.

The overall statistic under sampling. ``sbar`` is the mean of the per-row quantity over a
uniform row of the block's training rows (``pi_h`` are the groups' training shares in that
block), so the mean over ``per_group`` rows drawn uniformly, without replacement within a pass,
from all of the block's training rows is an unbiased estimate of it. It is drawn from its own
stream (independent of the group rows), so ``s_a - s_b`` is an unbiased estimate of the gap
and, the constraint being linear in ``(s_a, s_b)`` for ``signed``, ``c_j`` and its gradient
are unbiased. (Estimating ``sbar`` from the k sampled groups alone would weight only those
groups, and keeping a full ``sbar`` would cost O(G) rows per step.) ``abs`` takes ``|.|`` of
the estimate, biased as in the full path. ``aggregate`` is one constraint (m = 1): nothing to
sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairbench.errors import ConfigError, check
from fairbench.problems.constraints import ConstraintSpec
from fairbench.problems.statistics import n_blocks

#: sampling-stream kind of the constraint-subset draws (0: objective rows, 1: constraint rows)
SUBSET_KIND = 2


def check_constraints_per_step(k, m: int | None = None) -> None:
    """``k`` is ``None`` or an integer in ``1..m`` (``m`` once the groups are known)."""
    if k is None:
        return
    ok = isinstance(k, int) and not isinstance(k, bool) and k >= 1
    check(ok, "problem.constraints_per_step", k, "must be null (all constraints) or an integer >= 1")
    if m is not None:
        check(k <= m, "problem.constraints_per_step", k,
              f"must be at most the number of constraints, m = {m} (or null: all)")


@dataclass(frozen=True)
class ConstraintIndex:
    """Every constraint as ``sign * (s[a] - s[b])``: ``a``/``b`` index the cells ``0..cells-1``
    and, from ``cells`` on, the blocks' overall statistics (cell ``cells + b`` is block b's)."""

    first: np.ndarray
    second: np.ndarray
    sign: np.ndarray
    n_cells: int
    absolute: bool
    delta: float

    @property
    def n_constraints(self) -> int:
        return len(self.first)

    @classmethod
    def from_spec(cls, spec: ConstraintSpec, n_groups: int) -> "ConstraintIndex":
        """The constraints of ``spec.bind`` for ``n_groups`` groups, in the same order."""
        if spec.form == "aggregate":
            raise ConfigError("problem.constraints_per_step", "set",
                              "form=aggregate is one constraint: nothing to sample (use null)")
        blocks = n_blocks(spec.statistic)
        n_cells = blocks * n_groups
        firsts, seconds = [], []
        for b in range(blocks):
            base = b * n_groups
            if spec.family == "pairs" or n_groups == 2:
                g, h = np.triu_indices(n_groups, 1)
                firsts.append(base + g)
                seconds.append(base + h)
            else:
                firsts.append(base + np.arange(n_groups))
                seconds.append(np.full(n_groups, n_cells + b))
        first, second = np.concatenate(firsts), np.concatenate(seconds)
        sign = np.ones(len(first))
        absolute = spec.form == "abs"
        if not absolute:  # signed: +d then -d
            first, second = np.concatenate([first, first]), np.concatenate([second, second])
            sign = np.concatenate([sign, -sign])
        return cls(first.astype(np.int64), second.astype(np.int64), sign, n_cells, absolute, float(spec.delta))

    def subset(self, indices: np.ndarray, scale: float) -> "ConstraintSubset":
        """The cells ``indices`` involve and each constraint's positions among them."""
        ends = np.concatenate([self.first[indices], self.second[indices]])
        cells, inverse = np.unique(ends, return_inverse=True)
        k = len(indices)
        return ConstraintSubset(indices, scale, cells, inverse[:k], inverse[k:], self.sign[indices])

    def values(self, stats, subset: "ConstraintSubset"):
        """``c_S`` (k,) from the statistics ``stats`` (numpy or torch) of ``subset.cells``."""
        sign = subset.sign if not hasattr(stats, "detach") else stats.new_tensor(subset.sign)
        d = (stats[subset.first] - stats[subset.second]) * sign
        return (abs(d) if self.absolute else d) - self.delta

    def jacobian_map(self, stats: np.ndarray, subset: "ConstraintSubset") -> np.ndarray:
        """``dc_S / ds`` (k, cells of the subset): ``+-1`` entries (times ``sign(d)`` for abs)."""
        k = len(subset.indices)
        rows = np.arange(k)
        coef = subset.sign.copy()
        if self.absolute:
            coef = coef * np.sign((stats[subset.first] - stats[subset.second]) * subset.sign)
        out = np.zeros((k, len(subset.cells)))
        np.add.at(out, (rows, subset.first), coef)
        np.add.at(out, (rows, subset.second), -coef)
        return out


@dataclass(frozen=True)
class ConstraintSubset:
    """A draw of k constraints: their ``indices`` among the m, the ``scale`` m/k of an unbiased
    sum, the ``cells`` they involve (sorted; overall cells from ``n_cells`` on) and each
    constraint's positions ``first``/``second`` in ``cells`` with its ``sign``."""

    indices: np.ndarray
    scale: float
    cells: np.ndarray
    first: np.ndarray
    second: np.ndarray
    sign: np.ndarray


class SubsetSampler:
    """Uniform draws of ``k`` of ``m`` constraints without replacement (Floyd-type sampling of
    :meth:`numpy.random.Generator.choice`: O(k) for k much smaller than m), sorted."""

    def __init__(self, index: ConstraintIndex, k: int, rng: np.random.Generator):
        self.index, self.k, self.rng = index, k, rng
        self.scale = index.n_constraints / k

    def draw(self) -> ConstraintSubset:
        m, k = self.index.n_constraints, self.k
        chosen = np.arange(m) if k == m else np.sort(self.rng.choice(m, size=k, replace=False))
        return self.index.subset(chosen, self.scale)
