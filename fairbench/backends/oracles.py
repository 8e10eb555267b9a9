"""Which oracle computes: the ``problem.fast_path`` switch and the names of the oracle paths.

:func:`build_fairness_oracle` builds a seed's census oracle: the compiled
:class:`~fairbench.backends.compiled.mlp.CompiledMLPOracle` (``auto`` with numba installed, or
``compiled``), the numpy :class:`~fairbench.backends.numpy_oracle.NumpyMLPOracle` (``numpy``, or
``auto`` without numba), or the autograd :class:`~fairbench.problems.fairness.FairnessOracle`
(``off``, and any model the fast paths do not support). :func:`oracle_path` names the one a run
used. Only this module decides; the compiled modules are imported only when chosen.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util

from torch import nn

from fairbench.backends.numpy_oracle import NumpyMLPOracle
from fairbench.errors import ConfigError, check_in
from fairbench.problems.constraints import GroupConstraints
from fairbench.problems.fairness import FairnessOracle, TensorSplit

#: values of the ``fast_path`` switch understood by :func:`build_fairness_oracle`: ``auto`` (the
#: compiled oracle where numba is installed, else the numpy one), ``compiled`` (numba required),
#: ``numpy``, and ``off`` (torch autograd).
FAST_PATHS = ("auto", "compiled", "numpy", "off")


def compiled_installed() -> bool:
    """True when numba can be found (without importing it): ``fast_path=compiled`` can work."""
    return importlib.util.find_spec("numba") is not None


@functools.cache
def compiled_available() -> bool:
    """True when the compiled kernels import (numba installed and working); imports numba."""
    try:
        importlib.import_module("fairbench.backends.compiled.mlp_kernels")
    except ImportError:
        return False
    return True


def compiled_unavailable() -> ConfigError:
    """The error for ``fast_path=compiled`` where numba is installed but the kernels do not import."""
    return ConfigError("problem.fast_path", "compiled", "numba is installed but the compiled kernels do not import "
                       "(python -c 'import fairbench.backends.compiled.mlp_kernels' shows why); "
                       "accepted here: auto, numpy, off")


def use_compiled(fast_path: str) -> bool:
    """Whether a fast oracle built with this ``fast_path`` runs on the compiled kernels."""
    return fast_path in ("auto", "compiled") and compiled_available()


def build_fairness_oracle(
    model: nn.Module,
    train: TensorSplit,
    n_groups: int,
    constraints: GroupConstraints | None,
    seed: int,
    fast_path: str = "auto",
) -> FairnessOracle:
    """The census oracle for a model the fast paths support (:meth:`NumpyMLPOracle.supports`):
    the compiled :class:`~fairbench.backends.compiled.mlp.CompiledMLPOracle` for ``auto`` with
    numba installed and for ``compiled``, :class:`NumpyMLPOracle` for ``numpy`` and for ``auto``
    without numba; for ``off`` and for any other model the autograd :class:`FairnessOracle`.
    :func:`oracle_path` names the one used."""
    check_in("problem.fast_path", fast_path, FAST_PATHS)
    if fast_path != "off" and NumpyMLPOracle.supports(model):
        if use_compiled(fast_path):
            from fairbench.backends.compiled.mlp import CompiledMLPOracle

            return CompiledMLPOracle(model, train, n_groups, constraints, seed)
        if fast_path == "compiled":
            raise compiled_unavailable()
        return NumpyMLPOracle(model, train, n_groups, constraints, seed)
    return FairnessOracle(model, train, n_groups, constraints, seed)


def oracle_path(oracle) -> str:
    """The name of the oracle that computes (also inside a wrapper with ``.inner``): ``"compiled"``,
    ``"numpy"``, their stacked forms ``"compiled-stacked"`` and ``"numpy-stacked"``, or
    ``"autograd"``."""
    inner = getattr(oracle, "inner", oracle)
    return getattr(inner, "fast_path_name", "autograd")


def compiled_oracle(oracle) -> bool:
    """True when ``oracle`` computes on the compiled kernels (numba is then loaded), so an
    algorithm may run its own state updates compiled too."""
    return oracle_path(oracle) in ("compiled", "compiled-stacked")
