"""Fairness constraints as small composable pieces: a group statistic, a comparison, a form.

A constraint vector is built in three steps (fairret-style: statistic separate from loss):

1. a **statistic** per group, ``s_g`` (the mean loss L_g on group g; paper eq. 4);
2. a **comparison** matrix ``A`` turning the G statistics into k differences ``d = A s``:
   - ``pairs``: every pair g < h, ``d = s_g - s_h``;
   - ``vs_all``: every group against the whole data, ``d_g = s_g - sum_h pi_h s_h`` with
     ``pi`` the groups' shares of the training data (so ``sum_h pi_h s_h`` is the population
     mean even when the batch is balanced). With two groups the paper constrains
     ``L_0 - L_1`` directly, and so do we (``vs_all`` with G = 2 equals ``pairs``);
3. a **form**:
   - ``signed``: two one-sided constraints per difference, ``d - delta <= 0`` and
     ``-d - delta <= 0`` (smooth; what the paper used);
   - ``abs``: one non-smooth constraint ``|d| - delta <= 0``.

``c <= 0`` is feasible. :meth:`ConstraintSpec.jacobian_map` gives ``dc/ds`` so an oracle can
form Jacobians from G per-group gradients instead of one backward pass per constraint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairbench.errors import check, check_in, check_positive

FAMILIES = ("pairs", "vs_all")
FORMS = ("signed", "abs")
STATISTICS = ("loss",)


@dataclass(frozen=True)
class ConstraintSpec:
    """Which fairness constraints to impose, and the bound ``delta`` (no defaults: the
    problem's YAML states them)."""

    delta: float
    family: str
    form: str
    statistic: str

    def __post_init__(self) -> None:
        check_positive("problem.delta", self.delta)
        check_in("problem.family", self.family, FAMILIES)
        check_in("problem.form", self.form, FORMS)
        check_in("problem.statistic", self.statistic, STATISTICS)

    def bind(self, proportions: np.ndarray, group_names: list[str]) -> "GroupConstraints":
        """Fix the groups: their training shares ``pi`` and their names."""
        n_groups = len(proportions)
        check(n_groups >= 2, "dataset.protected", n_groups, "fairness constraints need at least 2 groups")
        check(len(group_names) == n_groups, "group_names", group_names, f"{n_groups} names")
        if self.family == "pairs" or n_groups == 2:
            pairs = [(g, h) for g in range(n_groups) for h in range(g + 1, n_groups)]
            comparison = np.zeros((len(pairs), n_groups))
            for row, (g, h) in enumerate(pairs):
                comparison[row, g], comparison[row, h] = 1.0, -1.0
            diffs = [f"L[{group_names[g]}]-L[{group_names[h]}]" for g, h in pairs]
        else:
            comparison = np.eye(n_groups) - np.asarray(proportions, dtype=float)[None, :]
            diffs = [f"L[{name}]-L" for name in group_names]
        if self.form == "abs":
            return GroupConstraints(self, comparison, [f"|{d}|" for d in diffs])
        names = [f"+({d})" for d in diffs] + [f"-({d})" for d in diffs]
        return GroupConstraints(self, np.concatenate([comparison, -comparison]), names)


@dataclass(frozen=True)
class GroupConstraints:
    """A :class:`ConstraintSpec` bound to a set of groups: ``c = form(matrix @ s) - delta``.

    ``matrix`` is (m, G): for ``signed`` it stacks ``A`` and ``-A`` so that both one-sided
    constraints are linear in ``s``; for ``abs`` it is ``A`` and ``c = |A s| - delta``.
    :meth:`values` works on numpy arrays and on torch tensors alike (via ``matrix_like``).
    """

    spec: ConstraintSpec
    matrix: np.ndarray
    names: list[str]

    @property
    def n_constraints(self) -> int:
        return self.matrix.shape[0]

    def values(self, stats, matrix=None):
        """Constraint values from group statistics ``stats`` (G,) or (..., G).

        ``matrix`` may be a copy of :attr:`matrix` in another array library (torch), so the
        same formula serves autograd and numpy evaluation.
        """
        d = stats @ (self.matrix if matrix is None else matrix).T
        return (abs(d) if self.spec.form == "abs" else d) - self.spec.delta

    def jacobian_map(self, stats: np.ndarray) -> np.ndarray:
        """``dc/ds`` (m, G) at ``stats``; for ``abs`` the subgradient sign(A s) A (0 at a kink)."""
        if self.spec.form == "abs":
            return np.sign(self.matrix @ np.asarray(stats))[:, None] * self.matrix
        return self.matrix
