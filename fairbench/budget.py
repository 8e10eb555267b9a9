"""When a seed stops training: its budget.

A job's ``budget`` holds four limits (``iterations``, ``epochs``, ``samples``, ``seconds``;
``null`` = no limit). The limits the user sets make the budget, and the first one reached
stops the seed; when none is set, ``default_budget`` applies instead (4 epochs), so a budget
given on the command line or in a preset replaces the default rather than adding to it.

``epochs`` counts every row drawn (objective and constraint batches) divided by the training
rows; ``seconds`` counts only the time inside the algorithm's steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from fairbench.errors import check, check_positive

BUDGET_KEYS = ("iterations", "epochs", "samples", "seconds")


@dataclass(frozen=True)
class Budget:
    """When a run stops: the first of the limits that are set."""

    iterations: int | None = None
    epochs: float | None = None
    samples: int | None = None
    seconds: float | None = None

    @classmethod
    def from_config(cls, cfg: Mapping, default: Mapping | None = None) -> "Budget":
        """The budget ``cfg`` sets (the job's ``budget``), or ``default`` (its
        ``default_budget``) when ``cfg`` sets no limit at all."""
        values = {key: cfg.get(key) for key in BUDGET_KEYS}
        source = "budget"
        if all(v is None for v in values.values()) and default is not None:
            unknown = sorted(set(default) - set(BUDGET_KEYS))
            check(not unknown, f"default_budget.{unknown[0] if unknown else ''}", None,
                  f"not a budget key; use one of {', '.join(BUDGET_KEYS)}")
            values, source = {key: default.get(key) for key in BUDGET_KEYS}, "default_budget"
        check(
            any(v is not None for v in values.values()),
            source,
            dict(values),
            "set at least one of budget.iterations, budget.epochs, budget.samples, budget.seconds",
        )
        for key, value in values.items():
            if value is not None:
                check_positive(f"{source}.{key}", value, integer=key in ("iterations", "samples"))
        return cls(**values)

    @classmethod
    def of_job(cls, cfg: Mapping) -> "Budget":
        """The budget of a composed job config (its ``budget`` and ``default_budget``)."""
        return cls.from_config(cfg["budget"], cfg.get("default_budget"))

    def spent(self, iterations: int, samples: int, seconds: float, n_train: int) -> bool:
        return (
            (self.iterations is not None and iterations >= self.iterations)
            or (self.samples is not None and samples >= self.samples)
            or (self.epochs is not None and samples >= self.epochs * n_train)
            or (self.seconds is not None and seconds >= self.seconds)
        )

    def reached(self, iterations: int, samples: int, seconds: float, n_train: int) -> dict | None:
        """Which limit :meth:`spent` stopped at: ``{"budget", "limit", "value"}`` for the
        first one reached in the order iterations, samples, epochs, seconds (``value``: the
        seed's count when it stopped); ``None`` when no limit is reached."""
        hit = {
            "iterations": self.iterations is not None and iterations >= self.iterations,
            "samples": self.samples is not None and samples >= self.samples,
            "epochs": self.epochs is not None and samples >= self.epochs * n_train,
            "seconds": self.seconds is not None and seconds >= self.seconds,
        }
        counts = {"iterations": iterations, "samples": samples, "epochs": samples / n_train, "seconds": seconds}
        for key, reached in hit.items():
            if reached:
                return {"budget": key, "limit": getattr(self, key), "value": counts[key]}
        return None

    def as_dict(self) -> dict:
        return asdict(self)


def describe_stop(stopped_by: dict | None) -> str:
    """``stopped_by`` in words for a closing line, e.g. ``stopped by budget.epochs=4 (4.0003)``."""
    if not stopped_by:
        return ""
    value = stopped_by["value"]
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"stopped by budget.{stopped_by['budget']}={stopped_by['limit']} (at {shown})"
