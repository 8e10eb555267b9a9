"""The primal–dual methods' steps with the compiled oracle's passes called directly.

A step of these methods draws an objective batch and a balanced constraint batch and makes
one ``lagrangian_grad`` call (extragradient two, GDA's ``primal_dual`` order one more
``constraints`` call). On the compiled oracle the kernels of such a call take about as long
as the Python around them: the two ``Batch`` objects, their rows joined into a new array,
the public method's checks. The steps here draw the rows straight into the pass's row array
(as :meth:`~fairbench.backends.numpy_oracle.NumpyMLPOracle.sample_lagrangian_grad_and_values`
does) and call the oracle's forward and weighted backward passes
(:class:`~fairbench.backends.compiled.mlp.CompiledMLPMath`'s ``_forward_losses`` and
``_weighted_backward``, the two calls under ``lagrangian_grad``) with them; extragradient's
second half-step with ``sample=same`` reuses the first's rows.

Same draws (the same streams, in the same order), oracle values, updates and counters
(``samples``, ``grad_evals``) as the method's own step, bit for bit (tested): each function
below is its method's ``step`` with the oracle calls replaced, calling the method's own (or
its bound compiled) ``_weights``, ``_dual``, ``_ascent`` and ``primal_step``. Used for one
seed on the compiled oracle with group constraints (:func:`applies`); a stack keeps the
method's own step.
"""

from __future__ import annotations

import numpy as np

from fairbench.backends.compiled import primal_dual_kernels as kernels
from fairbench.backends.compiled.mlp import CompiledMLPMath


def applies(oracle) -> bool:
    """Whether the steps here run on ``oracle``: one seed's compiled oracle with group constraints."""
    return isinstance(oracle, CompiledMLPMath) and oracle.x.ndim == 1 and oracle.group_constraints is not None


def draw(algo) -> np.ndarray:
    """``algo._batches()``'s rows in one array: the objective batch, then the balanced
    constraint batch (stream 0), drawn as ``sample_objective`` and ``sample_constraints`` draw
    them; the oracle's ``samples`` counter advances as theirs do."""
    oracle, size, per_group = algo.oracle, algo.batch_size, algo.per_group
    rows = np.empty(size + oracle._n_groups * per_group, dtype=np.int64)
    rows[:size] = oracle.streams.objective.draw(size)
    oracle.streams.constraint_sampler(0).draw_into(per_group, rows[size:])
    oracle.counters.samples += rows.size
    return rows


def lagrangian(algo, rows: np.ndarray, weights):
    """``oracle.lagrangian_grad`` on :func:`draw`'s ``rows``: ``(c, g)``; ``weights`` an array
    or a callable of ``c``, as there."""
    oracle, n_obj, per_group = algo.oracle, algo.batch_size, algo.per_group
    rows2 = rows.reshape(1, -1)
    ws, c = oracle._forward_losses(rows2, n_obj, per_group, True)
    g = oracle._weighted_backward(rows2, rows2.shape[1], ws, n_obj, per_group, c, ws[4][0],
                                  (lambda: weights(c)) if callable(weights) else (lambda: weights))
    oracle.counters.grad_evals += rows.size
    return c, g


def constraints(algo, rows: np.ndarray) -> np.ndarray:
    """``oracle.constraints(xi)`` (no Jacobian) on the constraint rows of :func:`draw`'s ``rows``."""
    return algo.oracle._constraints_np(rows[algo.batch_size:], algo.per_group, False)[0]


def pbm_step(algo) -> None:
    """``PBM.step``."""
    _, g = lagrangian(algo, draw(algo), algo._weights)
    algo.primal_step(g)


def ialm_step(algo) -> None:
    """``IALM.step``."""
    _, g = lagrangian(algo, draw(algo), algo._weights)
    algo.primal_step(g)
    algo.penalty *= algo.sigma


def nupi_step(algo) -> None:
    """``NuPI.step``."""
    rows = draw(algo)
    if algo.order == "dual_primal":
        def weights(c):
            algo._dual(c)
            return algo._weights(c, algo.multipliers)
        _, g = lagrangian(algo, rows, weights)
    else:
        old = algo.multipliers.copy()
        c, g = lagrangian(algo, rows, lambda c: algo._weights(c, old))
        algo._dual(c)
    algo.primal_step(g)


def gda_step(algo) -> None:
    """``GDA.step``."""
    rows = draw(algo)
    if algo.order == "dual_primal":
        _, g = lagrangian(algo, rows, algo._ascent)
        algo.primal_step(g)
        return
    c, g = lagrangian(algo, rows, algo.multipliers.copy())
    algo.primal_step(g)
    if algo.order == "primal_dual":
        c = constraints(algo, rows)
    algo._ascent(c)


def extragradient_step(algo) -> None:
    """``Extragradient.step``, the projected ascents in :func:`~.primal_dual_kernels.projected_ascent`."""
    x, lam = algo.oracle.x, algo.multipliers
    rows = draw(algo)
    x0, lam0 = x.copy(), lam.copy()
    c, g = lagrangian(algo, rows, lam0)
    algo.primal_step(g)                          # x <- x~
    lam_t = np.empty_like(lam)
    kernels.projected_ascent(lam_t, lam0, c, algo._eta_f32)
    if algo.sample == "fresh":
        rows = draw(algo)
    c, g = lagrangian(algo, rows, lam_t)
    x[...] = x0
    algo.primal_step(g)
    kernels.projected_ascent(lam, lam0, c, algo._eta_f32)

