"""The jobs a search sweeper may run, checked before it starts (``hydra/sweeper=optuna``).

A grid sweep (Hydra's basic sweeper) lists its jobs in advance, so :mod:`fairbench.cli`
validates every one. A search sweeper (Hydra's Optuna sweeper plugin) draws each trial's
values while it runs, from a *search space*: the sweep overrides of ``hydra.sweeper.params``
and the command line, in Hydra's override grammar -- ``choice(a,b)``, ``range(1,9)``,
``interval(0.001,0.1)``, ``tag(log, interval(...))``. Its jobs are not known in advance; what
is checked instead are the *corner* jobs: every key at the first value of its range
(the first choice, the start of a range or interval), then each key in turn at each of its
other extreme values (every choice, the last value of a range, the end of an interval). A
configuration's domain checks are ranges and option lists, so a space whose corners are
valid yields valid trials; a corner outside a domain is refused with the one-line message
of that domain (exit 2, nothing written).

Refused before any corner is checked: a search space with no swept key (the sweeper would
run one configuration ``n_trials`` times), and a tuning sweep whose jobs return no score
(``tune.objective`` null: :mod:`fairbench.tuning`).
"""

from __future__ import annotations

from omegaconf import DictConfig

from fairbench.errors import ConfigError, check

#: Hydra's sweeper plugins that draw their jobs from a search space (any other sweeper, as the
#: basic one, is taken to run the grid of its sweep overrides)
SEARCH_SWEEPERS = ("hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
                   "hydra_plugins.hydra_nevergrad_sweeper.nevergrad_sweeper.NevergradSweeper",
                   "hydra_plugins.hydra_ax_sweeper.ax_sweeper.AxSweeper")
SPACE_KEY = "hydra.sweeper.params"
SPACE_ACCEPTED = ("a search space: at least one key to search, e.g. algo.lr='tag(log, interval(0.001, 0.1))' "
                  "or algo.batch_size='choice(8,16)' (the presets: +experiment=tune_<method>)")


def is_search(hydra: DictConfig | None) -> bool:
    """Whether a sweep's ``hydra`` config chooses a search sweeper (``None``: a single run)."""
    return hydra is not None and hydra.sweeper.get("_target_") in SEARCH_SWEEPERS


def extremes(override) -> list[str]:
    """The values of one parsed override that :func:`corner_jobs` checks, as override strings."""
    from hydra.core.override_parser.types import IntervalSweep

    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    value = override.value()
    if isinstance(value, IntervalSweep):
        return [repr(value.start), repr(value.end)] if isinstance(value.start, float) or isinstance(
            value.end, float) else [str(value.start), str(value.end)]
    values = list(override.sweep_string_iterator())
    if override.is_range_sweep():
        return [values[0], values[-1]] if len(values) > 1 else values
    return values


def corner_jobs(parsed: list, base: DictConfig) -> list[list[str]]:
    """The override lists of the corner jobs (module docstring) of a search sweep; ``parsed``:
    the sweep's parsed overrides (search space first, then the command line), ``base``: its
    config composed with the ``hydra`` node."""
    tune = base.get("tune")
    objective = tune.get("objective") if tune is not None else None
    check(objective is not None, "tune.objective", objective,
          "feasible_val_loss: a search sweeper minimises what each job returns (hydra/sweeper="
          f"{base.hydra.runtime.choices.get('hydra/sweeper')})")
    space: dict[str, list[str]] = {}
    for override in parsed:
        if override.key_or_group.startswith("hydra"):
            continue
        space[override.get_key_element()] = extremes(override)
    if not any(o.is_sweep_override() for o in parsed if not o.key_or_group.startswith("hydra")):
        params = base.hydra.sweeper.get("params")
        raise ConfigError(SPACE_KEY, dict(params) if params else {}, SPACE_ACCEPTED)
    first = {key: values[0] for key, values in space.items()}
    jobs = [[f"{key}={value}" for key, value in first.items()]]
    for key, values in space.items():
        for value in values[1:]:
            jobs.append([f"{k}={value if k == key else v}" for k, v in first.items()])
    return jobs
