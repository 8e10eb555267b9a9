"""Hydra's Optuna sweeper with the method's own configuration as the study's first trial.

A tuning sweep (``+experiment=tune_<method>``) answers two questions: what the best setting of
the search space is, and what it buys over the configuration one would run without tuning.
For the second the study's first trial (trial number 0) is the sweep's composed configuration
itself -- the method's YAML defaults with the command line's fixed overrides -- for every key
of the search space, as Optuna's ``enqueue_trial`` would fix it. The trial is an ordinary trial
(its score counts in the study and the sampler learns from it) and its job gets the extra
override ``tune.trial=defaults``, so its run directory records what it is and the report
(:mod:`fairbench.report.tuning`) compares the best trial with it.

Hydra's plugin (hydra-optuna-sweeper 1.2) creates its study inside ``sweep()`` and has no
enqueue option (and Hydra instantiates sweepers from the ``hydra_plugins`` package only), so
the default trial comes from the sampler: while a fairbench command runs
(:func:`defaults_first_trial`, entered by :func:`fairbench.cli.hydra_hooks`) the plugin's
``setup`` wraps the configured sampler (TPE, seed 0) of a tuning sweep (``tune.objective``
set) in a sampler that answers trial 0's draws with the defaults and hands every other draw to
the configured one, which is not consulted for trial 0. A default outside its key's distribution (a
search space from the command line that excludes it) is drawn by the configured sampler
instead, and that trial is then not marked as the default. A persistent study
(``hydra.sweeper.storage``) continued by a later command has its trial 0 already: no second
default trial.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: the override that marks the default trial's job (``tune.trial`` in conf/config.yaml)
DEFAULT_TRIAL = "tune.trial=defaults"
_ABSENT = object()


def default_value(config: DictConfig, key: str, distribution) -> Any:
    """The composed config's value of ``key`` as a value of the Optuna ``distribution``, or
    ``_ABSENT`` when the config lacks it or the distribution does not contain it."""
    from optuna.distributions import CategoricalDistribution, IntLogUniformDistribution, IntUniformDistribution

    value = OmegaConf.select(config, key, default=_ABSENT)
    if value is _ABSENT or value is None or OmegaConf.is_config(value):
        return _ABSENT
    if isinstance(distribution, CategoricalDistribution):
        return value if value in distribution.choices else _ABSENT
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _ABSENT
    if isinstance(distribution, (IntUniformDistribution, IntLogUniformDistribution)):
        if int(value) != value:
            return _ABSENT
        value = int(value)
    else:
        value = float(value)
    return value if distribution._contains(distribution.to_internal_repr(value)) else _ABSENT


@cache
def sampler_class() -> type:
    """:class:`DefaultsFirstSampler` (made on first use: optuna is imported only by a tuning sweep)."""
    from optuna.samplers import BaseSampler

    class DefaultsFirstSampler(BaseSampler):
        """``base`` for every trial but number 0, which gets ``config``'s values."""

        def __init__(self, base: BaseSampler, config: DictConfig):
            self.base, self.config = base, config
            #: trial number 0: whether every drawn key took the default (the trial is the default one)
            self.all_defaults = True

        def reseed_rng(self) -> None:
            self.base.reseed_rng()

        def infer_relative_search_space(self, study, trial):
            return {} if trial.number == 0 else self.base.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return {} if trial.number == 0 else self.base.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            if trial.number == 0:
                value = default_value(self.config, param_name, param_distribution)
                if value is not _ABSENT:
                    return value
                self.all_defaults = False
            return self.base.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values) -> None:
            self.base.after_trial(study, trial, state, values)

    return DefaultsFirstSampler


def start_with_defaults(impl, config: DictConfig) -> None:
    """Make the plugin's sweeper ``impl`` (``OptunaSweeperImpl``, set up with ``config``) run
    the composed configuration as trial 0, marked :data:`DEFAULT_TRIAL`."""
    from optuna.samplers import BaseSampler

    tune = config.get("tune")
    if tune is None or tune.get("objective") is None or not isinstance(impl.sampler, BaseSampler):
        return  # (not a tuning sweep; the grid sampler, a partial, sets its own trials)
    sampler = impl.sampler = sampler_class()(impl.sampler, config)
    configure = impl._configure_trials

    def configure_trials(trials, search_space_distributions, fixed_params):
        overrides = configure(trials, search_space_distributions, fixed_params)
        return [tuple(job) + ((DEFAULT_TRIAL,) if trial.number == 0 and sampler.all_defaults else ())
                for job, trial in zip(overrides, trials)]

    impl._configure_trials = configure_trials


@contextmanager
def defaults_first_trial() -> Iterator[None]:
    """Within the block, Hydra's Optuna sweeper (if installed) starts every tuning sweep with
    the composed configuration (module docstring); restored on exit."""
    try:
        from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
    except ImportError:
        yield
        return
    original = OptunaSweeper.__dict__["setup"]

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        original(self, hydra_context=hydra_context, task_function=task_function, config=config)
        start_with_defaults(self.sweeper, config)

    OptunaSweeper.setup = setup
    try:
        yield
    finally:
        OptunaSweeper.setup = original
