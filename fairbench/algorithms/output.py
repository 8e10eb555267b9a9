"""The output iterate of a run: the last iterate, or a tail average.

``output=last`` (every method's default) reports the last iterate. ``output=tail`` reports
the average of the iterates over the last ``tail_fraction`` of the run's ``K`` iterations::

    x_out = (1 / (K - k0)) sum_{k = k0 + 1}^{K} x_k,     k0 = floor((1 - tail_fraction) K)

(``x_k`` the iterate after step ``k``; suffix averaging, Rakhlin, Shamir & Sridharan 2012).
``K`` is the run's iteration budget, so ``output=tail`` needs ``budget.iterations``. The
averaging runs after every step, whatever implementation of the step the method uses
(:func:`bind_output` wraps the bound ``step``), and works on stacked seeds (elementwise).
The run records the output used in ``metrics.json`` (``output``: ``last_iterate`` or
``algorithm_output``) and the method's hyperparameters (``output``, ``tail_fraction``).
"""

from __future__ import annotations

from types import MethodType

import numpy as np

from fairbench.errors import ConfigError, check, check_in

OUTPUTS = ("last", "tail")


def check_output(output: str, tail_fraction: float, outputs: tuple[str, ...] = OUTPUTS) -> None:
    check_in("algo.output", output, outputs)
    check(isinstance(tail_fraction, (int, float)) and not isinstance(tail_fraction, bool)
          and 0.0 < tail_fraction <= 1.0, "algo.tail_fraction", tail_fraction, "must be a number in (0, 1]")


class TailAverage:
    """Running average of ``x`` over the iterations after ``start`` (module doc)."""

    def __init__(self, fraction: float, total: int):
        self.start = int(np.floor((1.0 - fraction) * total))
        self.k, self.n, self.mean = 0, 0, None

    def update(self, x: np.ndarray) -> None:
        self.k += 1
        if self.k <= self.start:
            return
        self.n += 1
        if self.mean is None:
            self.mean = np.array(x, copy=True)
        else:
            self.mean += (x - self.mean) / self.n

    def value(self) -> np.ndarray | None:
        return None if self.mean is None else self.mean.copy()


def bind_output(algo, iterations: int | None) -> None:
    """Install ``algo``'s tail average for a run of ``iterations`` steps (after its step
    implementation is bound); nothing for ``output=last`` or a method without the option."""
    if getattr(algo, "output", "last") != "tail":
        return
    if iterations is None:
        raise ConfigError("algo.output", "tail", "needs budget.iterations (the tail is a fraction of the run's iterations)")
    algo._tail = TailAverage(algo.tail_fraction, int(iterations))
    algo._tail_inner = algo.step   # a bound method: a deep copy of algo rebinds it to the copy
    algo.step = MethodType(_tail_step, algo)


def _tail_step(self):
    info = self._tail_inner()
    self._tail.update(self.oracle.x)
    return info
