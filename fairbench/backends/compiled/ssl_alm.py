"""Compiled state updates (numba) of SSL-ALM and ALM: the dual step and the primal step.

Imported only by :class:`fairbench.algorithms.ssl_alm.SSLALM` on a compiled oracle
(``problem.fast_path`` ``auto`` with numba installed, or ``compiled``), where numba is already
loaded. Why: with the oracle compiled, what was left of an SSL-ALM step was its state updates,
some 25 numpy calls on arrays of 2 (multipliers, slacks) and 2,753 (parameters) floats, at
1-2 µs of dispatch each: more than the forward and backward passes. Here each update is one
call.

Same numbers as the numpy code of :meth:`SSLALM.step` and :meth:`SSLALM._weights`, bit for
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

import numpy as np
from numba import njit

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
