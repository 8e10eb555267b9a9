"""The compiled variant of Stochastic Ghost.

On a compiled oracle (numba already loaded): the fused oracle calls of
:func:`fairbench.backends.fused_methods.bind_ghost`, and the subproblems' closed form for one or
two constraints compiled too (``GhostSubproblems(compiled=True)``, same numbers).
"""

from __future__ import annotations

from fairbench.backends.fused_methods import bind_ghost


def bind(algo) -> None:
    """Bind the compiled Ghost variant to ``algo`` (a ``StochasticGhost`` after ``setup``)."""
    bind_ghost(algo)
    algo._subproblems = algo._build_subproblems(compiled=True)
