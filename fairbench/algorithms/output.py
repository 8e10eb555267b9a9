"""The output iterate of a run: the last iterate, or a tail average.

``output=last`` (every method's default) reports the last iterate. ``output=tail`` reports
the average of the iterates over the last ``tail_fraction`` of the run's ``K`` iterations::

    x_out = (1 / (K - k0)) sum_{k = k0 + 1}^{K} x_k,     k0 = floor((1 - tail_fraction) K)

(``x_k`` the iterate after step ``k``; suffix averaging, Rakhlin, Shamir & Sridharan 2012).
``K`` is the run's iteration budget, so ``output=tail`` needs ``budget.iterations``, as the
run's only limit (another could stop it before or inside the tail); the command is refused
otherwise before anything is written (:func:`check_output_budget`, from the runner's checks). The
averaging runs after every step, whatever implementation of the step the method uses
(:func:`bind_output` wraps the bound ``step``), and works on stacked seeds (elementwise).
The run records the output used in ``metrics.json`` (``output``: ``last_iterate`` or
``algorithm_output``) and the method's hyperparameters (``output``, ``tail_fraction``).
"""

from __future__ import annotations

from types import MethodType

import numpy as np

from fairbench.errors import ConfigError, check, check_in, check_positive

OUTPUTS = ("last", "tail")


def check_output(output: str, tail_fraction: float, outputs: tuple[str, ...] = OUTPUTS) -> None:
    check_in("algo.output", output, outputs)
    check(isinstance(tail_fraction, (int, float)) and not isinstance(tail_fraction, bool)
          and 0.0 < tail_fraction <= 1.0, "algo.tail_fraction", tail_fraction, "must be a number in (0, 1]")


def check_output_budget(output: str, tail_fraction: float, iterations: int | None, other_limits: dict,
                        random_start: int | None = None) -> None:
    """The output setting against the run's budget, refused before anything is written.

    ``output=tail`` needs ``budget.iterations`` (the tail is a fraction of them) as the only
    limit (``other_limits``: the budget's other keys and values; one set could stop the run
    before or inside its tail, which would silently report the last iterate or a shorter
    average), and a tail of at least one iteration (``tail_fraction`` so small that
    ``floor((1 - tail_fraction) K) = K`` leaves none). ``output=random`` (``ssw``) with
    ``random_start >= budget.iterations`` leaves no eligible iterate."""
    if output == "tail":
        check_output(output, tail_fraction)
        if iterations is None:
            raise ConfigError("algo.output", "tail",
                              "needs budget.iterations (the tail is a fraction of the run's iterations)")
        for key, value in other_limits.items():
            check(value is None, f"budget.{key}", value,
                  f"must be null with algo.output=tail: the tail is the last tail_fraction of budget.iterations "
                  f"({iterations}), and another limit could stop the run before or inside it")
        check(TailAverage(tail_fraction, int(iterations)).start < int(iterations), "algo.tail_fraction",
              tail_fraction, f"leaves no tail iteration of budget.iterations={iterations} "
              f"(floor((1 - tail_fraction) iterations) = iterations): must be a number in (0, 1] with a tail")
    if output == "random" and random_start is not None and iterations is not None:
        check_positive("algo.random_start", random_start, integer=True, allow_zero=True)
        check(random_start < iterations, "algo.random_start", random_start,
              f"must be below budget.iterations ({iterations}) with algo.output=random: no iterate would be eligible")


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
