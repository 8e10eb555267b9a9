"""Every method's tuning search space (``conf/search_space/<method>.yaml``) and its preset
``+experiment=tune_<method>``: the preset composes, the method's YAML defaults lie inside the
space, and every corner of the space and draws of Optuna's sampler from it build the method."""

from __future__ import annotations

import optuna
import pytest
from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
from omegaconf import OmegaConf

from fairbench import CONF_DIR
from fairbench.api import build_algorithm
from fairbench.cli import compose_job, plan_invocation
from fairbench.runner import effective_algo_config
from fairbench.searchspace import is_search

METHODS = sorted(p.stem for p in (CONF_DIR / "algo").glob("*.yaml"))


def space(method: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in OmegaConf.load(CONF_DIR / "search_space" / f"{method}.yaml").items()}


def build(method: str, overrides: list[str], preset: bool = True):
    cfg = compose_job([f"+experiment=tune_{method}"] * preset + overrides)
    assert cfg.algo.name == method
    return cfg, build_algorithm(effective_algo_config(cfg))


def test_every_method_has_a_search_space_and_a_tuning_preset():
    assert sorted(p.stem for p in (CONF_DIR / "search_space").glob("*.yaml")) == METHODS
    assert sorted(p.stem[len("tune_"):] for p in (CONF_DIR / "experiment").glob("tune_*.yaml")) == METHODS


@pytest.mark.parametrize("method", METHODS)
def test_the_space_holds_the_defaults_and_its_corners_and_samples_build_the_method(method):
    params = space(method)
    distributions, fixed = create_params_from_overrides([f"{k}={v}" for k, v in params.items()])
    assert set(distributions) == set(params) and not fixed
    defaults, _ = build(method, [])
    for key, distribution in distributions.items():
        value = OmegaConf.select(defaults, key)
        assert distribution._contains(distribution.to_internal_repr(value)), (key, value)
    jobs, hydra = plan_invocation([f"+experiment=tune_{method}"], multirun=False)
    assert is_search(hydra)
    # the first corner, then each key at its other end or other choices
    assert len(jobs) == 1 + sum(len(d.choices) - 1 if isinstance(d, optuna.distributions.CategoricalDistribution)
                                else 1 for d in distributions.values())
    for job in jobs:  # each key at each end of its interval, each choice (the preset included)
        build(method, job, preset=False)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(4):
        trial = study.ask(fixed_distributions=distributions)
        cfg, _ = build(method, [f"{k}={v}" for k, v in trial.params.items()])
        for key, value in trial.params.items():
            assert OmegaConf.select(cfg, key) == (pytest.approx(value) if isinstance(value, float) else value)
        study.tell(trial, 0.0)
