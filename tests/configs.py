"""The objects of the config groups, built from their YAML in ``fairbench/conf/`` as the CLI
builds them: the YAML is the one source of every default (the classes have none), a test
names only what it changes. (Algorithms: :func:`fairbench.api.make_algorithm`.)"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from fairbench import CONF_DIR
from fairbench.instantiate import instantiate_node


def group_config(group: str, name: str, **overrides: Any):
    """``conf/<group>/<name>.yaml`` with ``overrides`` applied (a key it lacks is refused)."""
    cfg = OmegaConf.load(CONF_DIR / group / f"{name}.yaml")
    unknown = set(overrides) - set(cfg)
    assert not unknown, f"{group}/{name}.yaml has no {sorted(unknown)}"
    return OmegaConf.merge(cfg, overrides)


def settings(group: str, name: str, **overrides: Any) -> dict:
    """The constructor arguments that ``conf/<group>/<name>.yaml`` gives its class (for a
    subclass a test defines)."""
    cfg = OmegaConf.to_container(group_config(group, name, **overrides), resolve=True)
    return {k: v for k, v in cfg.items() if k not in ("_target_", "name")}


def dataset(name: str, *overrides: str):
    """The ``dataset`` node of ``conf/dataset/<name>.yaml`` as the CLI composes it (its
    defaults list included); ``overrides`` as on the command line (``dataset.year=2017``)."""
    from fairbench.cli import compose_job

    return compose_job([f"dataset={name}", *overrides]).dataset


def problem(name: str = "constrained", **overrides: Any):
    """The problem of ``conf/problem/<name>.yaml``."""
    return instantiate_node(group_config("problem", name, **overrides), "problem")


def constraint_spec(**overrides: Any):
    """The :class:`ConstraintSpec` of ``conf/problem/constrained.yaml`` (its delta, family,
    form, statistic, temperature, aggregate)."""
    from fairbench.problems.constraints import ConstraintSpec

    spec = settings("problem", "constrained")
    keys = ("delta", "family", "form", "statistic", "temperature", "aggregate")
    return ConstraintSpec(**{**{k: spec[k] for k in keys}, **overrides})


def model(n_features: int, name: str = "mlp", **overrides: Any):
    """The model of ``conf/model/<name>.yaml`` for ``n_features`` inputs."""
    return instantiate_node(group_config("model", name, **overrides), "model", n_features=n_features)
