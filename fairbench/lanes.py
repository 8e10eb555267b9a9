"""Each seed's view of a group of seeds trained together: its entries of the oracle, of the
algorithm's per-step values and of the event totals.

A group of several seeds trains on a stacked oracle (``x`` of shape (S, P), counters and the
algorithm's per-seed values with a leading seed axis); a group of one on that seed's own
oracle (``x`` of shape (P,), scalar counters, values as they are). :class:`Lanes` reads seed
``s``'s entries of either, so one training loop (:func:`fairbench.training.train_group`)
serves both.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fairbench.budget import Budget


def _scalar(value):
    """A numpy scalar as the Python number a single-seed run would have recorded."""
    return value.item() if isinstance(value, np.generic) else value


def seed_values(values: dict | None, index: int | None) -> dict:
    """One seed's entries of what ``step()``/``state()`` returned: unchanged for a single-seed
    run (``index`` None); for a stack, entry ``index`` of every (S,) array (scalars are shared)."""
    if not values:
        return values or {}
    if index is None:
        return values
    return {key: _scalar(value[index] if np.ndim(value) else value) for key, value in values.items()}


class SeedEvents:
    """The event totals (``step()``'s returned counts) of one seed trained on its own oracle:
    Python numbers summed in a dict, as the counts come."""

    def __init__(self):
        self.totals: dict[str, float] = {}

    def add(self, info: dict | None, active) -> None:
        if info:
            totals = self.totals
            for key, value in info.items():
                totals[key] = totals.get(key, 0) + value

    def of(self, index: int) -> dict:
        return self.totals


class StackedEvents:
    """The event totals (``step()``'s returned counts) of a stack's seeds, kept as (S,) arrays.

    One numpy add per key and step instead of a dict update per seed and step. :meth:`of`
    gives one seed's totals as the Python numbers its single-seed run would have summed.
    """

    def __init__(self, n_seeds: int):
        self.n_seeds = n_seeds
        self.totals: dict[str, np.ndarray] = {}

    def add(self, info: dict | None, active) -> None:
        """Add a step's ``info`` (values (S,) per seed, or one scalar shared) to the seeds
        ``active`` (their indices).

        Counts (bool or integer values) add up as int64 and anything else as float64, as the
        Python ints and floats of a single-seed run would."""
        if not info:
            return
        active = np.asarray(active, dtype=np.intp)
        for key, value in info.items():
            value = np.asarray(value)
            kind = np.int64 if value.dtype.kind in "biu" else np.float64
            total = self.totals.get(key)
            if total is None:
                total = self.totals[key] = np.zeros(self.n_seeds, dtype=kind)
            elif total.dtype != np.float64 and kind is np.float64:
                total = self.totals[key] = total.astype(np.float64)
            total[active] += (value[active] if value.ndim else value).astype(total.dtype)

    def of(self, index: int) -> dict:
        return {key: total[index].item() for key, total in self.totals.items()}


class Lanes:
    """Each seed's view of the oracle that trains a group of seeds.

    A group of several seeds trains on a stacked oracle (``x`` of shape (S, P), counters and
    the algorithm's per-seed values with a leading seed axis); a group of one on that seed's
    own oracle (``x`` of shape (P,), scalar counters, values as they are). Seed ``s`` of the
    group reads its entries here, so one training loop serves both."""

    def __init__(self, oracle, n_seeds: int):
        self.oracle, self.n_seeds = oracle, n_seeds
        self.stacked = np.ndim(oracle.x) == 2
        self.events = StackedEvents(n_seeds) if self.stacked else SeedEvents()

    def spent_among(self, budget: Budget, n_train: int) -> Callable[[list[int], int, float], list[int]]:
        """``spent(active, iteration, seconds)``: the seeds of ``active`` whose budget is spent
        (iterations and seconds are common to the active seeds; samples are each seed's own).
        For a group of one, a single check with no per-seed loop: the loop calls it every step."""
        counters = self.oracle.counters
        if self.stacked:
            return lambda active, iteration, seconds: [
                s for s in active if budget.spent(iteration, int(counters.samples[s]), seconds, n_train)]
        none: list[int] = []
        return lambda active, iteration, seconds: (
            active if budget.spent(iteration, counters.samples, seconds, n_train) else none)

    def samples(self, s: int) -> int:
        samples = self.oracle.counters.samples
        return int(samples[s]) if self.stacked else samples

    def counts(self, s: int) -> tuple[int, int]:
        counters = self.oracle.counters
        if self.stacked:
            return int(counters.samples[s]), int(counters.grad_evals[s])
        return counters.samples, counters.grad_evals

    def x(self, s: int) -> np.ndarray:
        return self.oracle.x[s] if self.stacked else self.oracle.x

    def finite(self, s: int) -> bool:
        return bool(np.isfinite(self.x(s)).all())

    def values(self, values: dict | None, s: int) -> dict:
        """Seed ``s``'s entries of what ``step()``/``state()`` returned."""
        return seed_values(values, s if self.stacked else None)

    def output(self, final, s: int):
        """Seed ``s``'s entry of ``final_params()`` (``None``: its last iterate)."""
        if final is None or not self.stacked:
            return final
        return final[s]
