"""The interface every fairbench algorithm implements.

An algorithm is a class (one per file in ``fairbench/algorithms/``) built by Hydra from its
YAML in ``conf/algo/`` (``_target_``), so adding a method is one file plus one YAML and no
registry. Its constructor takes the hyperparameters and validates them, raising
:class:`~fairbench.errors.ConfigError` with the key ``algo.<name>``. The runner then calls
:meth:`Algorithm.setup` once per seed and :meth:`Algorithm.step` once per iteration; the
algorithm reads and updates ``oracle.x`` in place and keeps every other piece of state
(multipliers, slacks, step counters) in explicit attributes.

Faster implementations of a method's step (compiled kernels, stacked seeds) are not the
method's business: :mod:`fairbench.backends.variants` chooses them, per method, after ``setup``.
The oracle interface a method uses is that of :class:`~fairbench.problems.base.Oracle`:
sampling, values, gradients and Jacobians.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from fairbench.errors import ConfigError, FairbenchError, check
from fairbench.problems.base import Oracle


#: beyond this many constraints, ``state()`` reports summaries of per-constraint arrays
#: (:func:`constraint_state_summary`) instead of one trajectory column per constraint
PER_CONSTRAINT_STATE_LIMIT = 512


def constraint_state_summary(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """``<name>_max``, ``<name>_min``, ``<name>_mean``, ``<name>_norm`` (Euclidean) and
    ``<name>_nonzero`` of each array."""
    out = {}
    for name, a in arrays.items():
        out.update({f"{name}_max": float(a.max()), f"{name}_min": float(a.min()),
                    f"{name}_mean": float(a.mean()), f"{name}_norm": float(np.linalg.norm(a)),
                    f"{name}_nonzero": int(np.count_nonzero(a))})
    return out


class Algorithm(ABC):
    """Base class: ``setup`` once per run, then ``step`` until the budget is spent."""

    #: True when the method needs the problem's constraints (``problem=constrained``).
    needs_constraints: ClassVar[bool] = False
    #: True when the method can use k of the m constraints per step (``problem.constraints_per_step``):
    #: it draws them with ``oracle.draw_constraint_subset`` and scales sums over them by m/k.
    samples_constraints: ClassVar[bool] = False
    #: why a constrained method that does not sample refuses ``problem.constraints_per_step``
    sampling_refusal: ClassVar[str] = "it has no sampled-constraint step"

    oracle: Oracle
    rng: np.random.Generator
    #: the Lagrange multipliers of a primal–dual method (one name for every method; the
    #: trajectory records them as ``lambda_<j>``), ``None`` for a method without them
    multipliers: np.ndarray | None = None

    def setup(self, oracle: Oracle, rng: np.random.Generator) -> None:
        """Bind to a problem for one run. ``rng`` is the algorithm's own random stream
        (for randomised decisions such as Ghost's level N; minibatches come from the oracle).
        Subclasses extend this to allocate their state and should call ``super().setup``.
        """
        if self.needs_constraints and oracle.n_constraints == 0:
            raise FairbenchError(
                f"{type(self).__name__} needs constraints, but the problem has none: use problem=constrained"
            )
        k = getattr(oracle, "constraints_per_step", None)
        if k is not None and self.needs_constraints and not self.samples_constraints:
            raise ConfigError("problem.constraints_per_step", k,
                              f"{type(self).__name__} needs null (all constraints): {self.sampling_refusal}")
        self.oracle, self.rng = oracle, rng

    def check_per_group(self, key: str, per_group: int) -> None:
        """Fail early, naming ``key``, if ``per_group`` rows exceed the smallest group."""
        smallest = getattr(self.oracle, "smallest_group", None)
        if smallest is not None:
            check(per_group <= smallest, key, per_group,
                  f"must be at most the smallest group's training size ({smallest}) when sampling without replacement")

    @abstractmethod
    def step(self) -> dict[str, float] | None:
        """One iteration.

        May return per-iteration event counts, e.g. ``{"qp_failures": 1}``; the runner sums
        them since the start of the run and records the totals in the trajectory.
        """

    def state(self) -> dict[str, float]:
        """Scalars describing the method's state (multipliers, step size, ...) recorded in
        the trajectory at each log point, e.g. ``{"lambda_0": 0.3}``."""
        return {}

    def final_params(self) -> np.ndarray | None:
        """Parameters to report at the end; ``None`` means the last iterate ``oracle.x``
        (a tail average where ``output=tail``: :mod:`fairbench.algorithms.output`)."""
        tail = getattr(self, "_tail", None)
        return None if tail is None else tail.value()

    def hyperparameters(self) -> dict:
        """The hyperparameters, for outputs (public attributes that are plain values)."""
        return {k: v for k, v in vars(self).items()
                if not k.startswith("_") and isinstance(v, (int, float, str, bool, type(None)))}
