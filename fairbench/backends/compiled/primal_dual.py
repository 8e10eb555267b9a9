"""The compiled variants of the primal–dual methods (PBM, iALM, nuPI, GDA, extragradient).

With the oracle compiled, what is left of these methods' steps besides the oracle call is
their state updates: the primal step (Adam: some 12 numpy calls on the 2,753 parameters) and,
for PBM, the penalty–barrier weights and the multiplier and penalty update (some 25 numpy
calls on arrays of two floats, at 1-2 µs of dispatch each: as much as the forward and
backward passes). The bind functions here (chosen by :mod:`fairbench.backends.variants` on a
compiled oracle, where numba is loaded) keep each method's own ``step`` and replace its
parts by one kernel call each (:mod:`fairbench.backends.compiled.primal_dual_kernels`):

- every method: ``primal_step`` (SGD or Adam, :mod:`fairbench.algorithms.primal`);
- PBM: ``_weights`` (the weights, multipliers and penalties);
- GDA: ``_ascent`` (the projected dual ascent);

and, for one seed, the method's ``step`` by the same step with the oracle's passes called
directly (:mod:`fairbench.backends.compiled.primal_dual_steps`: no batch objects, no joined
copies of the rows, extragradient's second half-step on the first's rows).

Same numbers as the methods' numpy code, bit for bit (tested). On a stacked oracle the
method's stacked form (:mod:`fairbench.backends.stacked_methods`) is bound first and the
method's own step runs; the kernels work on the raveled (S, ...) arrays, their updates being
elementwise.

The float32 scalars are taken at bind time: changing a hyperparameter after ``setup`` is not
supported (set up and bind again).
"""

from __future__ import annotations

import math
from types import MethodType

import numpy as np

from fairbench.algorithms.pbm import AIMD_STEP, annealed
from fairbench.backends import stacked_methods
from fairbench.backends.compiled import primal_dual_kernels as kernels
from fairbench.backends.compiled import primal_dual_steps as steps

_F32 = np.float32


def _flat(a: np.ndarray) -> np.ndarray:
    """A flat view of a contiguous array (raises where it would be a copy)."""
    flat = a.reshape(-1)
    if not np.shares_memory(flat, a):
        raise RuntimeError("the compiled primal-dual kernels need contiguous state arrays")
    return flat


def _bind_common(algo, stacked_bind, step) -> None:
    """The stacked form on a stacked oracle, the compiled primal step, and ``step`` where
    :func:`~.primal_dual_steps.applies` (one seed)."""
    if algo.oracle.x.ndim == 2:
        stacked_bind(algo)
    elif steps.applies(algo.oracle):
        algo.step = MethodType(step, algo)
    _flat(algo.oracle.x)
    ps = algo._primal
    b1, b2 = ps.beta1, ps.beta2
    algo._primal_f32 = (_F32(ps.lr), _F32(b1), _F32(1.0 - b1), _F32(b2), _F32(1.0 - b2), _F32(ps.eps),
                        _F32(ps.weight_decay), bool(ps.weight_decay))
    algo.primal_step = MethodType(primal_step, algo)


def primal_step(algo, g: np.ndarray) -> None:
    """``PrimalDual.primal_step``: ``PrimalStep.step`` on ``oracle.x`` as one kernel call."""
    ps = algo._primal
    lr, b1, one_minus_b1, b2, one_minus_b2, eps, wd, decay = algo._primal_f32
    x = algo.oracle.x.reshape(-1)
    g = g.reshape(-1)
    if ps.primal == "sgd":
        kernels.sgd_step(x, g, lr, wd, decay)
        return
    ps.t += 1
    t = ps.t
    kernels.adam_step(x, g, ps.m.reshape(-1), ps.v.reshape(-1), b1, one_minus_b1, b2, one_minus_b2,
                      _F32(math.sqrt(1.0 - ps.beta2 ** t)), eps, _F32(ps.lr / (1.0 - ps.beta1 ** t)), wd, decay)


# -- PBM ---------------------------------------------------------------------------------------
def bind_pbm(algo) -> None:
    """PBM: the compiled primal step and ``_weights`` (:func:`pbm_weights`)."""
    _bind_common(algo, stacked_methods.bind_primal_dual, steps.pbm_step)
    algo._pbm_codes = (kernels.PBF_CODES[algo.pbf], kernels.RULE_CODES[algo.penalty_update])
    algo._pbm_f32 = (_F32(algo.delta), _F32(algo.rho), _F32(algo.dual_min), _F32(algo.dual_max),
                     _F32(algo.penalty_min), _F32(algo.penalty_max))
    if AIMD_STEP != 0.1:  # (the kernel's constant)
        raise RuntimeError(f"the PBM kernel's aimd step is 0.1, the method's {AIMD_STEP}")
    algo._weights = MethodType(pbm_weights, algo)


def pbm_weights(algo, c: np.ndarray) -> np.ndarray:
    """``PBM._weights``: the annealed ``gamma`` and ``K`` of the iteration's epoch, then the
    weights and the multiplier and penalty update in :func:`~.primal_dual_kernels.pbm_dual`."""
    epoch = algo.k // algo.epoch_length
    gamma = annealed(algo.gamma, epoch) if algo.gamma_annealing else algo.gamma
    mult = annealed(algo.penalty_mult, epoch) if algo.penalty_annealing else algo.penalty_mult
    delta, rho, dual_min, dual_max, pen_min, pen_max = algo._pbm_f32
    w = np.empty_like(c)
    kernels.pbm_dual(_flat(algo.multipliers), _flat(algo.penalties), c.reshape(-1), w.reshape(-1),
                     algo._pbm_codes[0], algo._pbm_codes[1], _F32(gamma), _F32(1.0 - gamma), _F32(mult),
                     _F32(1.0 - mult), mult, delta, rho, dual_min, dual_max, pen_min, pen_max,
                     algo.penalty_min, algo.penalty_max)
    algo.k += 1
    return w


# -- iALM, nuPI, extragradient -----------------------------------------------------------------
def bind_ialm(algo) -> None:
    """iALM: the compiled primal step (its dual step stays numpy: a norm, a clip, two products)."""
    _bind_common(algo, stacked_methods.bind_ialm, steps.ialm_step)


def bind_nupi(algo) -> None:
    """nuPI: the compiled primal step (its dual update stays numpy)."""
    _bind_common(algo, stacked_methods.bind_primal_dual, steps.nupi_step)


def bind_extragradient(algo) -> None:
    """Extragradient: the compiled primal step and projected ascents (one seed)."""
    _bind_common(algo, stacked_methods.bind_primal_dual, steps.extragradient_step)
    algo._eta_f32 = _F32(algo.eta)


# -- GDA ---------------------------------------------------------------------------------------
def bind_gda(algo) -> None:
    """GDA: the compiled primal step and ``_ascent`` (:func:`gda_ascent`)."""
    _bind_common(algo, stacked_methods.bind_primal_dual, steps.gda_step)
    algo._eta_f32 = _F32(algo.eta)
    algo._ascent = MethodType(gda_ascent, algo)


def gda_ascent(algo, c: np.ndarray) -> np.ndarray:
    """``GDA._ascent``: ``lam <- max(lam + eta c, 0)`` in place, as one kernel call."""
    lam = algo.multipliers
    flat = _flat(lam)
    kernels.projected_ascent(flat, flat, c.reshape(-1), algo._eta_f32)
    return lam
