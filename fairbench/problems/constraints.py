"""Fairness constraints as small composable pieces: a group statistic, a comparison, a form.

A constraint vector is built in three steps (fairret-style: statistic separate from loss):

1. a **statistic** per cell, ``s`` (:mod:`fairbench.problems.statistics`): the mean loss L_g of
   group g (paper eq. 4), or a soft rate (positive rate, TPR, FPR, accuracy; equalized odds
   stacks the TPR and FPR cells). A cell is group g, or group g within one label;
2. a **comparison** matrix ``A`` turning each block of G statistics into k differences
   ``d = A s`` (block by block for equalized odds):
   - ``pairs``: every pair g < h, ``d = s_g - s_h``;
   - ``vs_all``: every group against the whole data, ``d_g = s_g - sum_h pi_h s_h`` with
     ``pi`` the groups' shares of the training data (within the block's label for a
     conditional rate), so ``sum_h pi_h s_h`` is the population statistic even when the batch
     is balanced. With two groups the paper constrains ``L_0 - L_1`` directly, and so do we
     (``vs_all`` with G = 2 equals ``pairs``);
3. a **form**:
   - ``signed``: two one-sided constraints per difference, ``d - delta <= 0`` and
     ``-d - delta <= 0`` (smooth; what the paper used);
   - ``abs``: one non-smooth constraint ``|d| - delta <= 0``;
   - ``aggregate``: ONE constraint ``R(s) - delta <= 0`` with R a fairret violation loss of
     the statistic vector (``problem.aggregate``): with ``v_g = |s_g / sbar - 1|`` and
     ``sbar = sum_h pi_h s_h`` the overall statistic, ``norm`` is ``sum_g v_g`` (fairret's
     ``NormLoss``, p = 1) and ``lse`` is ``log sum_g exp(v_g) - log G`` (``LSELoss``), summed
     over the blocks; ``family`` plays no part.

``c <= 0`` is feasible. :meth:`GroupConstraints.jacobian_map` gives ``dc/ds`` so an oracle can
form Jacobians from one gradient per cell instead of one backward pass per constraint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fairbench.errors import ConfigError, check, check_in, check_positive
from fairbench.problems.statistics import CELL_LABELS, STATISTICS, SYMBOLS, n_blocks

FAMILIES = ("pairs", "vs_all")
FORMS = ("signed", "abs", "aggregate")
#: violation losses of the ``aggregate`` form (fairret's NormLoss with p = 1, LSELoss)
AGGREGATES = ("norm", "lse")


@dataclass(frozen=True)
class ConstraintSpec:
    """Which fairness constraints to impose, and the bound ``delta`` (no defaults: the
    problem's YAML states them)."""

    delta: float
    family: str
    form: str
    statistic: str
    temperature: float
    aggregate: str | None

    def __post_init__(self) -> None:
        check_positive("problem.delta", self.delta)
        check_in("problem.family", self.family, FAMILIES)
        check_in("problem.form", self.form, FORMS)
        check_in("problem.statistic", self.statistic, STATISTICS)
        check_positive("problem.temperature", self.temperature)
        if self.form == "aggregate" and self.aggregate is None:
            raise ConfigError("problem.aggregate", None, "form=aggregate needs a violation loss: norm, lse")
        if self.aggregate is not None:
            check_in("problem.aggregate", self.aggregate, AGGREGATES)

    def bind(self, proportions: np.ndarray, group_names: list[str],
             counts: np.ndarray | None = None) -> "GroupConstraints":
        """Fix the groups: their training shares ``pi``, their names and, for a conditional
        rate, the (G, 2) training counts per group and label
        (:func:`~fairbench.problems.statistics.label_counts`): a block's shares are then the
        groups' shares of that label's rows, and a group without a row of a needed label is
        refused."""
        n_groups = len(proportions)
        check(n_groups >= 2, "dataset.protected", n_groups, "fairness constraints need at least 2 groups")
        check(len(group_names) == n_groups, "group_names", group_names, f"{n_groups} names")
        labels = CELL_LABELS[self.statistic]
        if labels is None:
            shares = [np.asarray(proportions, dtype=float)]
        else:
            if counts is None:
                raise ValueError(f"statistic {self.statistic} needs the training counts per group and label")
            counts = np.asarray(counts)
            for label in labels:
                for g in np.flatnonzero(counts[:, label] == 0):
                    raise ConfigError("problem.statistic", self.statistic,
                                      f"a statistic defined on every group's rows with label {label}; "
                                      f"group {group_names[g]} has none in the training split")
            shares = [counts[:, label] / counts[:, label].sum() for label in labels]
        symbols = SYMBOLS[self.statistic]
        symbols = (symbols,) if isinstance(symbols, str) else symbols
        blocks, diffs = [], []
        for symbol, pi in zip(symbols, shares):
            if self.family == "pairs" or n_groups == 2:
                pairs = [(g, h) for g in range(n_groups) for h in range(g + 1, n_groups)]
                comparison = np.zeros((len(pairs), n_groups))
                for row, (g, h) in enumerate(pairs):
                    comparison[row, g], comparison[row, h] = 1.0, -1.0
                diffs += [f"{symbol}[{group_names[g]}]-{symbol}[{group_names[h]}]" for g, h in pairs]
            else:
                comparison = np.eye(n_groups) - pi[None, :]
                diffs += [f"{symbol}[{name}]-{symbol}" for name in group_names]
            blocks.append(comparison)
        # block-diagonal over the label blocks (one block for the unconditional statistics)
        comparison = np.zeros((sum(b.shape[0] for b in blocks), len(blocks) * n_groups))
        row = 0
        for k, block in enumerate(blocks):
            comparison[row:row + block.shape[0], k * n_groups:(k + 1) * n_groups] = block
            row += block.shape[0]
        share = np.concatenate(shares)
        if self.form == "aggregate":
            name = f"{self.aggregate}({','.join(symbols)})"
            return GroupConstraints(self, np.zeros((1, share.size)), [name], share, n_groups)
        if self.form == "abs":
            return GroupConstraints(self, comparison, [f"|{d}|" for d in diffs], share, n_groups)
        names = [f"+({d})" for d in diffs] + [f"-({d})" for d in diffs]
        return GroupConstraints(self, np.concatenate([comparison, -comparison]), names, share, n_groups)


@dataclass(frozen=True)
class GroupConstraints:
    """A :class:`ConstraintSpec` bound to a set of groups: ``c = form(matrix @ s) - delta``.

    ``matrix`` is (m, cells): for ``signed`` it stacks ``A`` and ``-A`` so that both one-sided
    constraints are linear in ``s``; for ``abs`` it is ``A`` and ``c = |A s| - delta``; for
    ``aggregate`` (m = 1) it is zero and ``c = R(s) - delta`` (see the module doc), with
    ``shares`` (cells,) the groups' shares ``pi`` in each block. ``n_groups`` is G; there are
    ``n_blocks * G`` cells. :meth:`values` works on numpy arrays and on torch tensors alike.
    """

    spec: ConstraintSpec
    matrix: np.ndarray
    names: list[str]
    shares: np.ndarray
    n_groups: int

    @property
    def n_constraints(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_cells(self) -> int:
        return self.matrix.shape[1]

    @property
    def statistic(self) -> str:
        return self.spec.statistic

    def _violations(self, stats):
        """``v`` (..., B, G): ``|s_g / sbar - 1|`` per block, and the ratios ``s_g / sbar``."""
        blocks = stats.reshape(stats.shape[:-1] + (n_blocks(self.spec.statistic), self.n_groups))
        pi = self.shares.reshape(-1, self.n_groups)
        if isinstance(stats, torch.Tensor):
            pi = torch.as_tensor(pi, dtype=stats.dtype)
        sbar = (blocks * pi).sum(-1)[..., None]
        ratio = blocks / sbar
        return abs(ratio - 1.0), ratio, sbar

    def _aggregate(self, stats):
        v = self._violations(stats)[0]
        if self.spec.aggregate == "norm":
            r = v.sum(-1)
        elif isinstance(v, torch.Tensor):
            r = torch.logsumexp(v, dim=-1) - float(np.log(self.n_groups))
        else:
            top = v.max(-1, keepdims=True)
            r = np.log(np.exp(v - top).sum(-1)) + top[..., 0] - np.log(self.n_groups)
        return r.sum(-1)[..., None]

    def values(self, stats, matrix=None):
        """Constraint values from group statistics ``stats`` (G,) or (..., G).

        ``matrix`` may be a copy of :attr:`matrix` in another array library (torch), so the
        same formula serves autograd and numpy evaluation.
        """
        if self.spec.form == "aggregate":
            return self._aggregate(stats) - self.spec.delta
        d = stats @ (self.matrix if matrix is None else matrix).T
        return (abs(d) if self.spec.form == "abs" else d) - self.spec.delta

    def jacobian_map(self, stats: np.ndarray) -> np.ndarray:
        """``dc/ds`` (m, cells) at ``stats``; for ``abs`` the subgradient sign(A s) A (0 at a
        kink); for ``aggregate`` ``dR/ds`` (1, cells): with ``r_g = s_g / sbar``,
        ``dv_g/ds_k = sign(r_g - 1) (1[g = k] - r_g pi_k) / sbar`` chained with ``dR/dv``
        (1 for ``norm``, ``softmax(v)`` for ``lse``)."""
        if self.spec.form == "aggregate":
            s = np.asarray(stats, dtype=np.float64)
            v, ratio, sbar = self._violations(s)
            sign = np.sign(ratio - 1.0)
            if self.spec.aggregate == "norm":
                dv = np.ones_like(v)
            else:
                e = np.exp(v - v.max(-1, keepdims=True))
                dv = e / e.sum(-1, keepdims=True)
            a = dv * sign / sbar                                   # dR/d(ratio numerators), (B, G)
            pi = self.shares.reshape(-1, self.n_groups)
            grad = a - (a * ratio).sum(-1, keepdims=True) * pi     # (B, G)
            return grad.reshape(1, -1)
        if self.spec.form == "abs":
            return np.sign(self.matrix @ np.asarray(stats))[:, None] * self.matrix
        return self.matrix
