"""numba kernels of the primal–dual methods' state updates (PBM, iALM, nuPI, GDA, extragradient).

Each kernel does, element by element on flat float32 arrays (one seed's ``(P,)`` or ``(m,)``,
or a stack's ``(S, P)``/``(S, m)`` raveled: every update is elementwise), the float32
operations of the numpy code it replaces, in the same order, with the Python scalars passed
as the float32 numbers numpy turns them into next to a float32 array (NEP 50). No fastmath,
so no fused multiply-adds: the results are those of numpy bit for bit (tested in
tests/algorithms/test_primal_dual_variants.py). Where numpy computes in float64 (PBM's
``aimd`` penalty, whose ``np.where`` of two Python floats is a float64 array), so does the
kernel, with the float64 scalars, and rounds to float32 where numpy's ``out=`` does.

The rules are those of :mod:`fairbench.algorithms.primal` (SGD, Adam) and
:mod:`fairbench.algorithms.pbm` (the multiplier and penalty update and the surrogate's weights).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_jit = njit(cache=True, error_model="numpy")

#: codes of PBM's penalty–barrier functions and penalty updates (the kernels' integer arguments)
PBF_CODES = {"quadratic_logarithmic": 0, "quadratic_reciprocal": 1}
RULE_CODES = {"const": 0, "dimin": 1, "dimin_dual": 2, "dimin_adapt": 3, "aimd": 4, "alm": 5}


@_jit
def sgd_step(x, g, lr, wd, decay):
    """``x -= lr (g + wd x)`` (``decay``), else ``x -= lr g``; ``x`` and ``g`` flat."""
    for i in range(x.size):
        gi = g[i] + wd * x[i] if decay else g[i]
        x[i] -= lr * gi


@_jit
def adam_step(x, g, m, v, b1, one_minus_b1, b2, one_minus_b2, bias2, eps, step, wd, decay):
    """``PrimalStep.step``'s Adam update of ``x``, ``m``, ``v`` (flat) at one ``t``::

        g = g + wd x  (decay);  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        x = x - step (m / (sqrt(v) / bias2 + eps))

    with ``bias2 = sqrt(1 - b2^t)`` and ``step = lr / (1 - b1^t)`` (float32 of the float64 values).
    """
    for i in range(x.size):
        gi = g[i] + wd * x[i] if decay else g[i]
        mi = m[i] * b1
        mi += one_minus_b1 * gi
        vi = v[i] * b2
        vi += one_minus_b2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        denom = np.sqrt(vi) / bias2 + eps
        x[i] -= step * (mi / denom)


@_jit
def _dpbf(code, t):
    """``phi'(t)`` of :func:`fairbench.algorithms.pbm.pbf` for one float32 ``t``."""
    if code == 0:  # quadratic_logarithmic: 1 + t for t >= -1/2, else -1/(4t)
        if t >= np.float32(-0.5):
            return np.float32(1.0) + t
        return np.float32(-1.0) / (np.float32(4.0) * t)
    if t >= np.float32(-1.0 / 3.0):  # quadratic_reciprocal: 1 + t, else (32/27)/(1 - t)^2
        return np.float32(1.0) + t
    d = np.float32(1.0) - t
    return np.float32(32.0 / 27.0) / (d * d)


@_jit
def _clip32(v, lo, hi):
    """``np.clip`` of one float32 (a NaN stays NaN)."""
    if v < lo:
        v = lo
    if v > hi:
        v = hi
    return v


@_jit
def pbm_dual(lam, p, c, w, pbf, rule, gamma, one_minus_gamma, mult, one_minus_mult, mult64, delta, rho,
             dual_min, dual_max, pen_min, pen_max, pen_min64, pen_max64):
    """``PBM._weights`` (flat arrays): the weights ``w = lam phi'(c/p)`` (written to ``w``), then
    the multipliers ``lam`` and the penalties ``p`` updated in place (see the method's doc)."""
    for i in range(lam.size):
        pi, li = p[i], lam[i]
        ratio = c[i] / pi
        wi = li * _dpbf(pbf, ratio)
        nl = _clip32(gamma * li + one_minus_gamma * wi, dual_min, dual_max)
        if rule == 4:  # aimd, in float64 as numpy: (p + 0.1 [r <= 0]) (mult [r > 0] or 1), clipped, rounded
            q = np.float64(pi) + (0.1 if ratio <= 0.0 else 0.0)
            q = q * (mult64 if ratio > 0.0 else 1.0)
            if q < pen_min64:
                q = pen_min64
            if q > pen_max64:
                q = pen_max64
            p[i] = np.float32(q)
        else:
            if rule == 1:
                pi = pi * mult
            elif rule == 2:
                pi = pi * mult * nl
            elif rule == 3:
                d = _dpbf(pbf, c[i])
                if not d < np.float32(1.0):
                    d = delta * d
                pi = mult * pi + one_minus_mult * pi / (d + np.float32(1e-8))
            elif rule == 5:
                pi = nl * rho
            p[i] = _clip32(pi, pen_min, pen_max)
        lam[i] = nl
        w[i] = wi


@_jit
def projected_ascent(out, lam, c, eta):
    """``out = max(lam + eta c, 0)`` (flat; ``out`` may be ``lam``); a NaN stays NaN."""
    for i in range(lam.size):
        v = lam[i] + eta * c[i]
        out[i] = np.float32(0.0) if v < 0.0 else v
