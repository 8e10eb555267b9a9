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

    With ``values`` (n entries) a draw returns ``values[indices]`` instead of the indices (the
    same random stream): the permutation is mapped once per pass, not once per draw.
    """

    def __init__(self, n: int, rng: np.random.Generator, values: np.ndarray | None = None):
        if n <= 0:
            raise ValueError(f"cannot sample from {n} rows")
        if values is not None and len(values) != n:
            raise ValueError(f"{len(values)} values for {n} rows")
        self.n, self.rng = n, rng
        self._values = values
        self._perm = rng.permutation(n)
        self._drawn = self._perm if values is None else values[self._perm]  # what draws return
        self._pos = 0
        self.passes = 0

    def draw(self, size: int) -> np.ndarray:
        if size > self.n:
            raise ValueError(f"batch of {size} rows from {self.n} rows without replacement")
        end = self._pos + size
        if end <= self.n:
            out = self._drawn[self._pos:end]
            self._pos = end
            return out
        head = self._perm[self._pos:]
        perm = self.rng.permutation(self.n)
        taken = np.zeros(self.n, dtype=bool)  # (np.isin(perm, head), without its sort)
        taken[head] = True
        taken = taken[perm]
        first = self._drawn[self._pos:]
        self._perm = np.concatenate([perm[~taken], perm[taken]])
        self._drawn = self._perm if self._values is None else self._values[self._perm]
        self.passes += 1
        self._pos = size - len(head)
        return np.concatenate([first, self._drawn[: self._pos]])


class GroupSampler:
    """Equal-per-group draws: ``per_group`` rows of every group, rows grouped by group.

    ``group_rows[g]`` holds the row indices of group g. The result of :meth:`draw` has
    length ``G * per_group`` and its rows ``g*per_group .. (g+1)*per_group - 1`` belong to
    group g.
    """

    def __init__(self, group_rows: list[np.ndarray], rng: np.random.Generator):
        self.group_rows = [np.asarray(rows) for rows in group_rows]
        self.samplers = [EpochSampler(len(rows), rng, values=rows) for rows in self.group_rows]
        self.smallest = min(len(rows) for rows in self.group_rows)

    def _check(self, per_group: int) -> None:
        if not 0 < per_group <= self.smallest:
            raise ValueError(
                f"{per_group} rows per group without replacement: the smallest group has {self.smallest}"
            )

    def draw(self, per_group: int) -> np.ndarray:
        self._check(per_group)
        return np.concatenate([s.draw(per_group) for s in self.samplers])

    def draw_into(self, per_group: int, out: np.ndarray) -> None:
        """:meth:`draw` written into ``out`` (``G * per_group`` entries) instead of a new array."""
        self._check(per_group)
        for g, sampler in enumerate(self.samplers):
            out[g * per_group:(g + 1) * per_group] = sampler.draw(per_group)


def stream_rng(seed: int, kind: int, stream: int) -> np.random.Generator:
    """The generator of one sampling stream of a run: ``kind`` 0 is the objective stream,
    ``kind`` 1 the constraint streams (``stream`` k); each is an independent child of
    ``SeedSequence(seed)``, so a seed's batches do not depend on how it is run."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(kind, stream)))


class SamplingStreams:
    """The minibatch streams of one run: objective rows, and balanced constraint rows per stream.

    Every oracle of the census task (autograd, numpy, stacked) and :class:`CallableOracle`
    draw through this object, so a seed gets the same rows whichever oracle trains it.
    """

    def __init__(self, n_rows: int, group_rows: list[np.ndarray], seed: int):
        self.seed = seed
        self.group_rows = group_rows
        self.objective = EpochSampler(n_rows, stream_rng(seed, 0, 0))
        self._constraints: dict[int, GroupSampler] = {}

    @property
    def n_groups(self) -> int:
        return len(self.group_rows)

    @property
    def smallest_group(self) -> int:
        """Rows of the smallest group: the largest ``per_group`` without replacement."""
        return min(len(rows) for rows in self.group_rows)

    def constraint_sampler(self, stream: int) -> GroupSampler:
        """The sampler of constraint stream ``stream`` (created on first use)."""
        sampler = self._constraints.get(stream)
        if sampler is None:
            sampler = self._constraints[stream] = GroupSampler(self.group_rows, stream_rng(self.seed, 1, stream))
        return sampler
