"""Public Python API: run any fairbench algorithm, by name, on your own problem.

    import numpy as np
    from fairbench.api import make_algorithm, solve
    from fairbench.problems.callable import CallableOracle

    a = np.array([2.0, 1.0])                      # project a onto {x : x1 + x2 <= 1}
    oracle = CallableOracle(
        x0=np.zeros(2),
        objective=lambda x, rows: (0.5 * np.sum((x - a) ** 2), x - a),
        constraints=lambda x, rows: (np.array([x.sum() - 1.0]), np.ones((1, 2))),
        n_constraints=1,
    )
    algo = solve("ssl_alm", oracle, iterations=5000, tau=0.05)
    print(oracle.x, algo.lam)                    # -> [1. 0.] and the multiplier [1.]

``make_algorithm(name, **hyperparameters)`` builds the class named by ``conf/algo/<name>.yaml``
with that file's defaults (the paper's settings) overridden by ``hyperparameters``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import OmegaConf

from fairbench import CONF_DIR
from fairbench.algorithms.base import Algorithm
from fairbench.errors import ConfigError
from fairbench.instantiate import instantiate_node
from fairbench.problems.base import Oracle


def algorithm_names() -> list[str]:
    """Names of the algorithms shipped in ``conf/algo/``."""
    return sorted(p.stem for p in (CONF_DIR / "algo").glob("*.yaml"))


def algorithm_config(name: str, **overrides: Any):
    """The ``algo`` config of ``name`` with ``overrides`` applied (unknown keys rejected)."""
    path = CONF_DIR / "algo" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError("algo", name, "accepted: " + ", ".join(algorithm_names()))
    cfg = OmegaConf.load(path)
    # numpy scalars (np.float64(0.1)) are plain numbers to the user; OmegaConf needs Python ones
    overrides = {k: v.item() if isinstance(v, np.generic) else v for k, v in overrides.items()}
    for key in overrides:
        if key not in cfg:
            accepted = ", ".join(k for k in cfg if not str(k).startswith("_") and k != "name")
            raise ConfigError(f"algo.{key}", overrides[key], f"not a hyperparameter of {name}; accepted: {accepted}")
    return OmegaConf.merge(cfg, overrides)


def build_algorithm(cfg) -> Algorithm:
    """Instantiate an ``algo`` config (its ``name`` key is metadata, not an argument)."""
    return instantiate_node(cfg, "algo")


def make_algorithm(name: str, **hyperparameters: Any) -> Algorithm:
    """An algorithm by name with the paper's defaults, ``hyperparameters`` overriding them."""
    return build_algorithm(algorithm_config(name, **hyperparameters))


def solve(name: str, oracle: Oracle, iterations: int, seed: int = 0, **hyperparameters: Any) -> Algorithm:
    """Run ``iterations`` steps of algorithm ``name`` on ``oracle``; ``oracle.x`` ends at the output.

    Returns the algorithm object, whose state (multipliers, slacks, ...) can be inspected.
    """
    algo = make_algorithm(name, **hyperparameters)
    algo.setup(oracle, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,))))
    for _ in range(int(iterations)):
        algo.step()
    final = algo.final_params()
    if final is not None:
        oracle.x[:] = final
    return algo
