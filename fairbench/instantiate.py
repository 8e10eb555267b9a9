"""Build objects from config groups (``_target_``) with user-facing errors.

Hydra wraps any exception raised by a constructor in ``InstantiationException``; a
:class:`~fairbench.errors.FairbenchError` raised by our own validation is unwrapped so the
user sees its one line, and an unexpected keyword (a key the class does not take) becomes a
:class:`~fairbench.errors.ConfigError` naming the key and the accepted ones. The classes
have no default values (their config group's YAML is the one source of each): a key missing
from the config is named in one line.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from fairbench.errors import ConfigError, FairbenchError


def accepted_keys(target: str) -> list[str]:
    params = inspect.signature(get_class(target)).parameters
    return [name for name, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def instantiate_node(node: DictConfig | dict, group: str, **kwargs: Any) -> Any:
    """Instantiate a config group's node; its ``name`` key is metadata, not an argument."""
    params = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    params.pop("name", None)
    target = params.get("_target_")
    if not target:
        raise ConfigError(f"{group}._target_", target, "the dotted path of the class to build")
    try:
        return instantiate(params, _convert_="all", **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while cause is not None and not isinstance(cause, FairbenchError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        match = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if match:
            key = match.group(1)
            raise ConfigError(f"{group}.{key}", params.get(key), f"not a parameter of {target}; accepted: "
                              + ", ".join(accepted_keys(target))) from None
        missing = re.search(r"missing \d+ required (?:positional |keyword-only )?arguments?: (.+)", str(exc))
        if missing:  # the classes carry no defaults: the config states every value
            keys = ", ".join(f"{group}.{key}" for key in re.findall(r"'(\w+)'", missing.group(1)))
            raise FairbenchError(f"{keys}: missing (set it in the config: {target} has no defaults)") from None
        raise FairbenchError(f"{group}: cannot build {target}: {str(exc).splitlines()[-1]}") from None
