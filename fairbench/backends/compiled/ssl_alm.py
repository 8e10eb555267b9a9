"""The compiled variant of SSL-ALM's and ALM's step: fused oracle call, state updates in numba.

:func:`bind` (chosen by :mod:`fairbench.backends.variants` on a compiled oracle, where numba is
already loaded) replaces :meth:`SSLALM.step <fairbench.algorithms.ssl_alm.SSLALM.step>` by
:func:`step`: the three draws and the oracle work in one call,
``oracle.sample_lagrangian_grad_and_values`` (one forward pass over the three batches, the rows
drawn straight into the pass's array), then the dual step with its safeguard
(:func:`dual_step`, inside the weights callback) and the primal step (:func:`primal_step`,
:func:`primal_step_plain`) as one kernel each. Why: with the oracle compiled, what was left of
an SSL-ALM step was its state updates, some 25 numpy calls on arrays of 2 (multipliers, slacks)
and 2,753 (parameters) floats, at 1-2 µs of dispatch each: more than the forward and backward
passes. Here each update is one call.

Same numbers as the numpy code of ``SSLALM._primal_step`` and ``SSLALM._weights``, bit for
bit (tested): every operation is the same float32 operation in the same order (scalars are
passed as float32, as numpy casts Python floats next to float32 arrays; no fastmath, so no
fused multiply-adds). The one exception is the ``all`` safeguard's norm, summed here in
order in float32 where numpy calls BLAS: the two can differ in the last bit, which changes a
decision only for a multiplier norm within that rounding of ``dual_bound`` (and with numpy
1.x, which compares that float32 norm with the Python float ``dual_bound`` in float64, where
the bound is not a float32 number).

Shapes: every state array is 2-D with a leading seed axis, (S, m) or (S, P); one seed passes
(1, m) and (1, P) views.
"""

from __future__ import annotations

import sys
from types import MethodType

import numpy as np
from numba import njit

from fairbench.backends import stacked_methods

_jit = njit(cache=True, error_model="numpy")


@_jit
def _clip_at_zero(v):
    """``np.maximum(v, 0)`` of one float32: a NaN stays NaN (a diverged run stays visible)."""
    return np.float32(0.0) if v < 0.0 else v


@_jit
def dual_step(lam, c, slack, c2, w, eta, rho, bound, reset_all, resets):
    """``lam += eta (c + s)``, the safeguard, then ``w = lam + rho c2``, per seed.

    The safeguard resets the multipliers with ``|lam_i| > bound`` (``reset_all`` false), or
    all of a seed's multipliers when its ``||lam||_2 > bound``; ``resets[s]`` is 1 where seed s
    had a reset, else 0.
    """
    S, m = lam.shape
    for s in range(S):
        for j in range(m):
            lam[s, j] += eta * (c[s, j] + slack[s, j])
        reset = 0
        if reset_all:
            sq = np.float32(0.0)
            for j in range(m):
                sq += lam[s, j] * lam[s, j]
            if np.sqrt(sq) > bound:
                reset = 1
                for j in range(m):
                    lam[s, j] = 0.0
        else:
            for j in range(m):
                if abs(lam[s, j]) > bound:
                    lam[s, j] = 0.0
                    reset = 1
        resets[s] = reset
        for j in range(m):
            w[s, j] = lam[s, j] + rho * c2[s, j]


@_jit
def primal_step(x, g, z, slack, z_slack, w, tau, mu, beta):
    """The primal step and the centre update, per seed (``mu > 0``)::

        g_s = w + mu (s - z_s)        g_x = g + mu (x - z)
        z   = z + beta (x - z)        z_s = z_s + beta (s - z_s)
        x   = x - tau g_x             s   = max(s - tau g_s, 0)

    with ``x``, ``s`` the iterate before the step (``g`` is not written).
    """
    S, P = x.shape
    m = slack.shape[1]
    for s in range(S):
        for i in range(P):
            d = x[s, i] - z[s, i]
            gi = g[s, i] + mu * d
            z[s, i] += d * beta
            x[s, i] -= tau * gi
        for j in range(m):
            g_s = w[s, j] + mu * (slack[s, j] - z_slack[s, j])
            z_slack[s, j] += beta * (slack[s, j] - z_slack[s, j])
            slack[s, j] = _clip_at_zero(slack[s, j] - tau * g_s)


@_jit
def primal_step_plain(x, g, slack, w, tau):
    """The primal step without smoothing (``mu = 0``: ALM): ``x -= tau g``, ``s = max(s - tau w, 0)``."""
    S, P = x.shape
    m = slack.shape[1]
    for s in range(S):
        for i in range(P):
            x[s, i] -= tau * g[s, i]
        for j in range(m):
            slack[s, j] = _clip_at_zero(slack[s, j] - tau * w[s, j])


def bind(algo) -> None:
    """Run ``algo`` (an :class:`~fairbench.algorithms.ssl_alm.SSLALM` after ``setup``, on a
    compiled oracle, float32) with :func:`step`; on a stacked oracle with the per-seed
    state of :func:`fairbench.backends.stacked_methods.bind_ssl_alm` first.

    The kernels work on 2-D views of the state, with the scalars as float32, both taken here:
    the state arrays are updated in place from then on (replacing one, ``algo.lam = ...``, or
    changing a hyperparameter after ``setup`` is not supported: set up and bind again). With
    ``algo._kernels = None`` the step keeps the fused oracle call and makes the method's numpy
    updates (the tests compare the two)."""
    if algo.oracle.x.ndim == 2:
        stacked_methods.bind_ssl_alm(algo)

    def rows(a):
        return None if a is None else (a if a.ndim == 2 else a.reshape(1, -1))

    f32 = np.float32
    algo._kernels = sys.modules[__name__]
    algo._seed_axis = algo.oracle.x.ndim == 2
    algo._rows = {name: rows(getattr(algo, name)) for name in ("lam", "slack", "z", "z_slack", "_c2", "_w")}
    algo._rows["x"] = rows(algo.oracle.x)
    algo._resets = np.zeros(algo._rows["lam"].shape[0], dtype=np.int64)
    algo._scalars = dict(tau=f32(algo.tau), eta=f32(algo.eta), rho=f32(algo.rho), mu=f32(algo.mu),
                         beta=f32(algo.beta), bound=f32(algo.dual_bound))
    algo._weights = MethodType(_weights, algo)
    algo.step = MethodType(step, algo)


def _weights(algo, c: np.ndarray, c_xi2: np.ndarray) -> np.ndarray:
    """``SSLALM._weights`` with the dual step and the safeguard in :func:`dual_step`."""
    if algo._kernels is None:
        return type(algo)._weights(algo, c, c_xi2)
    np.add(c_xi2, algo.slack, out=algo._c2)
    r, k = algo._rows, algo._scalars
    dual_step(r["lam"], c.reshape(r["lam"].shape), r["slack"], r["_c2"], r["_w"], k["eta"], k["rho"], k["bound"],
              algo.dual_reset == "all", algo._resets)
    # (a copy: a caller may keep each step's counts; the kernel reuses its buffer)
    algo._reset = algo._resets.copy() if algo._seed_axis else int(algo._resets[0])
    return algo._w


def step(algo) -> dict[str, int]:
    """``SSLALM.step``: the same draws, oracle values and updates, from one fused oracle call
    and two kernels."""
    _, _, _, g = algo.oracle.sample_lagrangian_grad_and_values(algo.batch_size, algo.per_group, algo._weights)
    if algo._kernels is None:
        type(algo)._primal_step(algo, g)
        return {"dual_resets": algo._reset}
    r, k = algo._rows, algo._scalars
    g2 = g.reshape(r["x"].shape)
    if algo.mu > 0:
        primal_step(r["x"], g2, r["z"], r["slack"], r["z_slack"], r["_w"], k["tau"], k["mu"], k["beta"])
    else:
        primal_step_plain(r["x"], g2, r["slack"], r["_w"], k["tau"])
    return {"dual_resets": algo._reset}
