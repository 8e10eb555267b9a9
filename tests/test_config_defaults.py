"""One source of defaults per setting: the YAML of ``fairbench/conf``.

The classes that the config groups build (``_target_``) carry no default values, so that a
second default cannot silently differ from the YAML's; each YAML states every argument of its
class, and a key removed from it is refused in one line naming the key.
"""

from __future__ import annotations

import inspect

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from fairbench import CONF_DIR
from fairbench.cli import compose_job
from fairbench.errors import FairbenchError
from fairbench.instantiate import instantiate_node

# arguments supplied by the code that builds the object, not by the config
RUNTIME_ARGUMENTS = {"fairbench.models.MLP": {"n_features": 9}}

TARGETS = sorted(
    (path.relative_to(CONF_DIR).as_posix(), cfg)
    for path in CONF_DIR.rglob("*.yaml")
    if str((cfg := OmegaConf.load(path)).get("_target_", "")).startswith("fairbench.")
)


def parameters(cls) -> dict[str, inspect.Parameter]:
    """The constructor's parameters, following ``**kwargs`` up to the base classes."""
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters
        found.update({n: p for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)})
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return found


def test_every_group_class_is_covered():
    groups = {path.split("/")[0] for path, _ in TARGETS}
    assert groups == {"algo", "model", "problem"}
    assert len([p for p, _ in TARGETS if p.startswith("algo/")]) == len(list((CONF_DIR / "algo").glob("*.yaml")))


@pytest.mark.parametrize("path,cfg", TARGETS, ids=[p for p, _ in TARGETS])
def test_constructor_has_no_defaults_and_the_yaml_states_every_argument(path, cfg):
    cls = get_class(cfg._target_)
    params = parameters(cls)
    with_default = sorted(n for n, p in params.items() if p.default is not inspect.Parameter.empty)
    assert not with_default, f"{cfg._target_} has defaults for {with_default}: they belong in {path} only"
    stated = set(cfg) - {"_target_", "name"}
    runtime = set(RUNTIME_ARGUMENTS.get(cfg._target_, {}))
    assert stated | runtime == set(params), f"{path} and {cfg._target_}'s arguments differ"


@pytest.mark.parametrize("path,cfg", TARGETS, ids=[p for p, _ in TARGETS])
def test_a_key_missing_from_the_config_is_refused_by_name(path, cfg):
    group = path.split("/")[0]
    runtime = RUNTIME_ARGUMENTS.get(cfg._target_, {})
    instantiate_node(cfg, group, **runtime)  # complete: builds
    for key in set(cfg) - {"_target_", "name"}:
        partial = OmegaConf.masked_copy(cfg, [k for k in cfg if k != key])
        with pytest.raises(FairbenchError, match=rf"^{group}\.{key}: missing"):
            instantiate_node(partial, group, **runtime)


def test_dataset_configs_take_their_defaults_from_one_file():
    """Each dataset config extends ``dataset_defaults.yaml``; the loader completes a partial
    mapping from the same file (there is no second table of defaults in the code)."""
    from fairbench.data import config as data_config

    base = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "dataset_defaults.yaml"))
    assert data_config.defaults() == base
    assert not hasattr(data_config, "DEFAULTS")
    for path in sorted((CONF_DIR / "dataset").glob("*.yaml")):
        assert "/dataset_defaults@_here_" in OmegaConf.load(path).defaults, path.name
        composed = OmegaConf.to_container(compose_job([f"dataset={path.stem}"]).dataset)
        assert set(composed) == set(base), path.name


def test_constraint_spec_takes_the_problem_settings_without_defaults():
    """The problem passes its delta, family, form and statistic on; the spec adds none."""
    import dataclasses

    from fairbench.problems.constraints import ConstraintSpec

    fields = dataclasses.fields(ConstraintSpec)
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in fields)
    stated = set(OmegaConf.load(CONF_DIR / "problem" / "constrained.yaml"))
    assert {f.name for f in fields} <= stated
