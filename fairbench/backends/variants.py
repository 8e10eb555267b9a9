"""The one place that chooses how a method's step runs: its own rule, or a registered variant.

A method file (:mod:`fairbench.algorithms`) states its update rule once, in numpy, for one
seed, on the small oracle interface of :class:`~fairbench.problems.base.Oracle`. That rule is
the *reference* path and runs on every oracle. A backend may add faster implementations of the
same step, the way ``torch.optim.Adam`` hands off to its single-tensor, multi-tensor or fused
implementation: a :class:`Variant` names the oracle paths it applies to
(:func:`~fairbench.backends.oracles.oracle_path`) and a function ``bind(algo)`` that, after
``algo.setup``, switches the method to it (replacing ``step``, or only some of its parts and
its state). :data:`VARIANTS` registers them per method class, by dotted path, so nothing here
imports a method module and a variant module is imported only when chosen.

:func:`bind_variant` is called by the runner after ``algo.setup(oracle, rng)``: it takes the
first variant registered for the method (along its class hierarchy) that applies to the
oracle's path, binds it and returns its name; with none it returns ``"reference"``. The runner
records it in ``metrics.json`` as ``algorithm_path``, next to ``oracle_path``.

Stacked seeds (:mod:`fairbench.backends.stacked`) need a method whose state has a seed axis and
whose per-seed decisions are made seed by seed: a registered stacked variant, or a declaration
here (:data:`SEED_AXIS_SAFE`) that the method's own step is elementwise and has no per-seed
decision. :func:`can_stack_method` says which; nothing in a method file does.

A variant that replaces ``step`` reproduces the step of the class it is registered for; it is
not used for a class whose ``step`` is another one (a subclass that overrides it, or a step
patched in after import): that step runs on the reference path. A variant that keeps the
method's ``step`` (it changes the state or the oracle only) applies as long as no subclass
below the registered class overrides ``step``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from fairbench.backends.oracles import oracle_path
from fairbench.errors import FairbenchError

#: ``algorithm_path`` of a method running its own step
REFERENCE = "reference"
#: oracle paths of the stacked oracles
STACKED_PATHS = ("numpy-stacked", "compiled-stacked")


@dataclass(frozen=True)
class Variant:
    """A faster implementation of a method's step.

    ``name``: recorded as ``algorithm_path``. ``oracle_paths``: the oracle paths it applies to.
    ``bind``: ``"module:function"``, the function called with the method after its ``setup``.
    ``replaces_step``: whether it replaces the method's ``step`` (see the module doc).
    ``when``: the name of a boolean attribute of the method instance that must be true for the
    variant to apply (e.g. the compiled SSL-ALM step implements only the plain SGD primal
    step); ``None``: always.
    """

    name: str
    oracle_paths: tuple[str, ...]
    bind: str
    replaces_step: bool = True
    when: str | None = None


#: registered variants per method class (``module.Class``), in order of preference
VARIANTS: dict[str, tuple[Variant, ...]] = {
    "fairbench.algorithms.ssl_alm.SSLALM": (
        Variant("compiled", ("compiled", "compiled-stacked"), "fairbench.backends.compiled.ssl_alm:bind",
                when="plain_primal"),
        Variant("stacked", STACKED_PATHS, "fairbench.backends.stacked_methods:bind_ssl_alm", replaces_step=False),
    ),
    "fairbench.algorithms.ssw.SwitchingSubgradient": (
        Variant("stacked", STACKED_PATHS, "fairbench.backends.stacked_methods:bind_ssw"),
    ),
    "fairbench.algorithms.sgd_penalized.SGDPenalized": (
        Variant("stacked", STACKED_PATHS, "fairbench.backends.stacked_methods:bind_sgd_penalized",
                replaces_step=False),
    ),
    "fairbench.algorithms.sgd_fairret.SGDFairret": (
        Variant("compiled", ("compiled",), "fairbench.backends.compiled.fairret:bind", replaces_step=False),
    ),
    "fairbench.algorithms.ghost.StochasticGhost": (
        Variant("compiled", ("compiled",), "fairbench.backends.compiled.ghost:bind", replaces_step=False),
        Variant("fused", ("numpy",), "fairbench.backends.fused_methods:bind_ghost", replaces_step=False),
    ),
    # the primal-dual methods: compiled state updates and (one seed) oracle passes, stacked state
    **{f"fairbench.algorithms.{module}": (
        Variant("compiled", ("compiled", "compiled-stacked"), f"fairbench.backends.compiled.primal_dual:{compiled}"),
        Variant("stacked", STACKED_PATHS, f"fairbench.backends.stacked_methods:{stacked}", replaces_step=False),
    ) for module, compiled, stacked in (
        ("pbm.PBM", "bind_pbm", "bind_primal_dual"),
        ("ialm.IALM", "bind_ialm", "bind_ialm"),
        ("nupi.NuPI", "bind_nupi", "bind_primal_dual"),
        ("gda.GDA", "bind_gda", "bind_primal_dual"),
        ("extragradient.Extragradient", "bind_extragradient", "bind_primal_dual"),
    )},
}

#: methods whose own step runs stacked seeds unchanged (elementwise, no per-seed decision)
SEED_AXIS_SAFE: frozenset[str] = frozenset({"fairbench.algorithms.sgd.SGD"})


def _key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _step_owner(cls: type) -> type | None:
    """The class in ``cls``'s hierarchy that defines the ``step`` it runs."""
    return next((c for c in cls.__mro__ if "step" in vars(c)), None)


def _registered(cls: type):
    """``(registered class, its variants)`` for each class in ``cls``'s hierarchy with any."""
    for c in cls.__mro__:
        variants = VARIANTS.get(_key(c))
        if variants:
            yield c, variants


def _applies(cls: type, registered: type, variant: Variant) -> bool:
    """Whether ``variant`` (registered for ``registered``) may run ``cls``'s step (module doc)."""
    owner = _step_owner(cls)
    if owner is None or not issubclass(registered, owner):
        return False  # a subclass below the registered class has its own step
    if not variant.replaces_step:
        return True
    step = vars(owner)["step"]
    return (getattr(step, "__module__", None) == owner.__module__
            and getattr(step, "__qualname__", None) == f"{owner.__qualname__}.step")


def _seed_axis_safe(cls: type) -> bool:
    owner = _step_owner(cls)
    return any(_key(c) in SEED_AXIS_SAFE and owner is not None and issubclass(c, owner) for c in cls.__mro__)


def choose(cls: type, path: str, algo=None, sampled: bool = False) -> Variant | None:
    """The variant of method class ``cls`` for oracle path ``path``; ``None``: the reference.
    With the instance ``algo``, a variant whose ``when`` attribute is false there is passed over.
    ``sampled`` (k of m constraints per step): a variant replacing ``step`` implements the full
    step, so it is passed over and the method's own (sampled) step runs."""
    for registered, variants in _registered(cls):
        for variant in variants:
            if variant.when is not None and algo is not None and not getattr(algo, variant.when):
                continue
            if sampled and variant.replaces_step:
                continue
            if path in variant.oracle_paths and _applies(cls, registered, variant):
                return variant
    return None


def can_stack_method(cls: type) -> bool:
    """Whether method class ``cls`` can train stacked seeds: a stacked variant applies to it on
    both stacked oracle paths, or its own step is declared seed-axis safe."""
    if _seed_axis_safe(cls):
        return True
    return all(choose(cls, path) is not None for path in STACKED_PATHS)


def load(variant: Variant):
    """The bind function of ``variant`` (imports its module)."""
    module, _, name = variant.bind.partition(":")
    return getattr(importlib.import_module(module), name)


def bind_variant(algo, oracle) -> str:
    """Bind the implementation of ``algo``'s step for ``oracle`` (the oracle given to
    ``algo.setup``, which has run) and return its name: a variant's, or ``"reference"``.

    Raises :class:`~fairbench.errors.FairbenchError` for a stacked oracle and a method that
    cannot train stacked seeds (:func:`can_stack_method`).
    """
    path = oracle_path(oracle)
    cls = type(algo)
    if path in STACKED_PATHS and not can_stack_method(cls):
        raise FairbenchError(f"{cls.__name__} cannot train stacked seeds: use stack_seeds=off")
    variant = choose(cls, path, algo, getattr(oracle, "constraints_per_step", None) is not None)
    if variant is None:
        return REFERENCE
    load(variant)(algo)
    return variant.name
