"""Minibatch samplers: without replacement within a pass, reshuffled each pass.

The objective stream walks through a random permutation of the training rows; the
constraint streams do the same within every group and return the same number of rows from
each group, whatever the group sizes (the paper's equal-per-group estimates). Each sampler
owns its own ``numpy.random.Generator``, so streams built from independent generators give
independent estimates.
"""

from __future__ import annotations

import numpy as np


class EpochSampler:
    """Draws indices of ``0..n-1`` without replacement; a new permutation every pass.

    A request that straddles the end of a pass takes the rest of the old permutation and
    the start of a fresh one, so every row is used once per pass. The fresh permutation puts
    the rows just taken last, so one batch never holds a row twice.
    """

    def __init__(self, n: int, rng: np.random.Generator):
        if n <= 0:
            raise ValueError(f"cannot sample from {n} rows")
        self.n, self.rng = n, rng
        self._perm = rng.permutation(n)
        self._pos = 0
        self.passes = 0

    def draw(self, size: int) -> np.ndarray:
        if size > self.n:
            raise ValueError(f"batch of {size} rows from {self.n} rows without replacement")
        end = self._pos + size
        if end <= self.n:
            out = self._perm[self._pos:end]
            self._pos = end
            return out
        head = self._perm[self._pos:]
        perm = self.rng.permutation(self.n)
        taken = np.isin(perm, head)
        self._perm = np.concatenate([perm[~taken], perm[taken]])
        self.passes += 1
        self._pos = size - len(head)
        return np.concatenate([head, self._perm[: self._pos]])


class GroupSampler:
    """Equal-per-group draws: ``per_group`` rows of every group, rows grouped by group.

    ``group_rows[g]`` holds the row indices of group g. The result of :meth:`draw` has
    length ``G * per_group`` and its rows ``g*per_group .. (g+1)*per_group - 1`` belong to
    group g.
    """

    def __init__(self, group_rows: list[np.ndarray], rng: np.random.Generator):
        self.group_rows = [np.asarray(rows) for rows in group_rows]
        self.samplers = [EpochSampler(len(rows), rng) for rows in self.group_rows]
        self.smallest = min(len(rows) for rows in self.group_rows)

    def draw(self, per_group: int) -> np.ndarray:
        if not 0 < per_group <= self.smallest:
            raise ValueError(
                f"{per_group} rows per group without replacement: the smallest group has {self.smallest}"
            )
        return np.concatenate(
            [rows[s.draw(per_group)] for rows, s in zip(self.group_rows, self.samplers)]
        )
