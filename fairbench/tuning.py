"""What a job returns to a tuning sweeper: the feasibility-first score of its validation split.

Hydra's sweepers minimise what the task function returns (``hydra/sweeper=optuna``: Hydra's
Optuna sweeper plugin, TPE by default). With ``tune.objective=feasible_val_loss`` a job
(:func:`fairbench.cli.hydra_main`) returns, from its ``summary.json`` (mean over the
completed seeds, final iterate, validation split only: test numbers never enter the score)

.. math::

    s = \\begin{cases} \\bar f_{\\rm val} & \\text{if } \\bar v_{\\rm val} \\le \\varepsilon \\\\
        P + \\bar v_{\\rm val} & \\text{otherwise} \\end{cases}

with :math:`\\bar f_{\\rm val}` the mean validation loss, :math:`\\bar v_{\\rm val}` the mean
validation max violation :math:`\\max_j c_j(x)`, :math:`\\varepsilon` = ``tune.tolerance`` and
:math:`P` = ``tune.penalty``. With :math:`P` above every feasible loss each infeasible
setting scores worse than every feasible one, and the less violating of two infeasible ones
scores better (a gradient towards feasibility for the sampler); ``tune.penalty=inf`` makes
every infeasible setting :math:`+\\infty`. A job with a diverged seed, or no completed seed,
scores :math:`+\\infty`. This is the lexicographic "feasibility first" rule of the report's
selection (:mod:`fairbench.report.selection`: eligible if no seed diverged and the mean
validation max violation is within the tolerance, then the lowest validation loss), applied
to the final iterate (the selection pools the last K logged states).

``tune.objective=null`` (the default): a job returns its exit code, as without tuning.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig

from fairbench.errors import check, check_in

OBJECTIVES = (None, "feasible_val_loss")
#: ``tune.trial``: null, or ``defaults`` on the first trial of a tuning sweep (:mod:`fairbench.tuning_sweeper`)
TRIALS = (None, "defaults")
SPLIT = "val"


def check_tune(tune: Any) -> None:
    """The ``tune`` node: a known objective, a tolerance >= 0, a penalty > 0 (``inf`` allowed),
    a known trial mark."""
    check(isinstance(tune, DictConfig) or isinstance(tune, dict), "tune", tune,
          "a mapping with objective, tolerance and penalty")
    check_in("tune.objective", tune.get("objective"), OBJECTIVES)
    check_in("tune.trial", tune.get("trial"), TRIALS)
    tolerance, penalty = tune.get("tolerance"), tune.get("penalty")
    check(_number(tolerance) and math.isfinite(tolerance) and tolerance >= 0, "tune.tolerance", tolerance,
          "a number >= 0 (the largest mean validation max violation counted as feasible)")
    check(_number(penalty) and penalty > 0, "tune.penalty", penalty,
          "a number > 0 above every feasible loss, or inf (the score of an infeasible setting: penalty + violation)")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def split_means(summary: dict, split: str = SPLIT) -> tuple[float, float]:
    """``(mean loss, mean max violation)`` of ``split`` in a run's summary; NaN where absent."""
    values = summary.get(split) if isinstance(summary, dict) else None

    def mean(metric: str) -> float:
        entry = values.get(metric) if isinstance(values, dict) else None
        value = entry.get("mean") if isinstance(entry, dict) else None
        return float(value) if _number(value) else math.nan

    return mean("loss"), mean("max_violation")


def feasible_score(loss: float, violation: float, tolerance: float, penalty: float) -> float:
    """The feasibility-first score (module docstring) of one setting."""
    if not (math.isfinite(loss) and math.isfinite(violation)):
        return math.inf
    if violation <= tolerance:
        return loss
    return math.inf if math.isinf(penalty) else penalty + violation


def score(summary: dict, tune: Any) -> float:
    """The score of a finished run (its ``summary.json``) under the ``tune`` settings."""
    counts = summary.get("counts") if isinstance(summary, dict) else None
    if isinstance(counts, dict) and counts.get("diverged"):
        return math.inf
    loss, violation = split_means(summary)
    return feasible_score(loss, violation, float(tune.get("tolerance")), float(tune.get("penalty")))


def job_return(cfg: DictConfig, summary: dict, code: int) -> int | float:
    """What :func:`fairbench.cli.hydra_main` returns to Hydra: the score when tuning, else ``code``."""
    tune = cfg.get("tune")
    if tune is None or tune.get("objective") is None:
        return code
    return score(summary, tune)
