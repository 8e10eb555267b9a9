"""fairret's violation losses in numpy, with their gradient in closed form.

A fast path for :class:`~fairbench.algorithms.sgd_fairret.SGDFairret` on the numpy MLP oracle:
for the linear-fractional statistics and the violation losses (``NormLoss`` with p = 1,
``LSELoss``) of fairret 0.1.3 it computes ``R`` and ``dR/dlogits`` exactly as fairret's torch
code does (same safe division, same zero-target error), without autograd. Checked against
fairret in ``tests/algorithms/test_fairret_numpy.py``.

With ``p = sigmoid(z)`` and per-row coefficients ``(a, b, c, d)`` of the statistic,
``num_g = sum_{i in g} a_i + b_i p_i``, ``den_g = sum_{i in g} c_i + d_i p_i``,
``s_g = num_g / den_g`` (0 where ``|num_g| < 1e-20``), the target ``T = sum num / sum den``,
the violation ``v_g = |s_g / T - 1|`` and ``R = sum_g v_g`` (NormLoss) or
``logsumexp(v) - log G`` (LSELoss).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

EPS = 1e-20

#: (a, b, c, d) of ``num = a + b p`` and ``den = c + d p`` per row, from the labels y.
COEFFICIENTS = {
    "Accuracy": lambda y: (1 - y, 2 * y - 1, np.ones_like(y), np.zeros_like(y)),
    "PositiveRate": lambda y: (np.zeros_like(y), np.ones_like(y), np.ones_like(y), np.zeros_like(y)),
    "TruePositiveRate": lambda y: (np.zeros_like(y), y, y, np.zeros_like(y)),
    "FalsePositiveRate": lambda y: (np.zeros_like(y), 1 - y, 1 - y, np.zeros_like(y)),
    "PositivePredictiveValue": lambda y: (np.zeros_like(y), y, np.zeros_like(y), np.ones_like(y)),
    "FalseOmissionRate": lambda y: (y, -y, np.ones_like(y), -np.ones_like(y)),
}
LOSSES = ("NormLoss", "LSELoss")


class ZeroTarget(Exception):
    """The overall statistic is 0 on the batch (fairret raises NotImplementedError there)."""


def violation_loss(statistic: str, loss: str, z: np.ndarray, y: np.ndarray, group: np.ndarray,
                   n_groups: int) -> tuple[float, np.ndarray]:
    """``R`` and ``dR/dz`` for logits ``z`` (B,), labels ``y`` and group ids of a batch."""
    z, y = np.asarray(z, dtype=np.float64), np.asarray(y, dtype=np.float64)
    p = 1.0 / (1.0 + np.exp(-z))
    a, b, c, d = COEFFICIENTS[statistic](y)
    num = np.bincount(group, a + b * p, minlength=n_groups)
    den = np.bincount(group, c + d * p, minlength=n_groups)
    total_num, total_den = num.sum(), den.sum()
    target = total_num / total_den if abs(total_num) >= EPS else 0.0
    if target == 0.0:
        raise ZeroTarget(statistic)
    nonzero = np.abs(num) >= EPS
    if np.any((np.abs(den) < EPS) & nonzero):
        raise ZeroDivisionError(f"fairret {statistic}: zero denominator with a non-zero numerator")
    stat = np.zeros(n_groups)
    stat[nonzero] = num[nonzero] / den[nonzero]
    ratio = stat / target - 1.0
    viol = np.abs(ratio)
    if loss == "NormLoss":
        value, dv = float(viol.sum()), np.ones(n_groups)
    else:
        top = viol.max()
        weights = np.exp(viol - top)
        value = float(top + np.log(weights.sum()) - np.log(n_groups))
        dv = weights / weights.sum()
    # dR/ds_g and dR/dT
    ds = dv * np.sign(ratio) / target
    dT = -np.sum(dv * np.sign(ratio) * stat) / target**2
    # ds_g/dp_i on the rows of group g (zero where fairret's safe division gave 0)
    g_num, g_den = num[group], den[group]
    live = nonzero[group]
    dstat = np.where(live, (b * g_den - g_num * d) / np.where(live, g_den, 1.0) ** 2, 0.0)
    dtarget = (b * total_den - total_num * d) / total_den**2
    dp = ds[group] * dstat + dT * dtarget
    return value, dp * p * (1.0 - p)


# -- KL projection loss with an exact projection -------------------------------------------
PROJECTION_LOSSES = ("KLProjectionLoss",)


class InfeasibleProjection(Exception):
    """No predictions in (0, 1) meet a group's fixed-statistic constraint on this batch."""


def fair_constraint(statistic: str, p: np.ndarray, y: np.ndarray, group: np.ndarray,
                    n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """fairret's linear fairness constraint ``intercept_g + sum_{i in g} beta_i q_i = 0`` for
    every group g: the group statistic of predictions ``q`` fixed to the overall statistic
    ``T`` of the current predictions ``p``. Returns ``(intercept (G,), beta (B,))`` with
    ``intercept_g = sum_{i in g} a_i - T c_i`` and ``beta_i = b_i - T d_i``."""
    a, b, c, d = COEFFICIENTS[statistic](y)
    total_num, total_den = float(np.sum(a + b * p)), float(np.sum(c + d * p))
    if abs(total_den) < EPS and abs(total_num) >= EPS:
        raise ZeroDivisionError(f"fairret {statistic}: zero overall denominator with a non-zero numerator")
    target = total_num / total_den if abs(total_num) >= EPS else 0.0
    return np.bincount(group, a - target * c, minlength=n_groups), b - target * d


#: groups up to this many rows are solved with Python floats (numpy's per-call overhead
#: dominates below it), larger ones with numpy vector operations; the iterates are the same.
SCALAR_ROWS = 48


def _h_and_slope_scalars(z, beta, intercept: float, lam: float) -> tuple[float, float]:
    """``h(lam)`` and ``-h'(lam)`` of :func:`_group_multiplier`, one row at a time (Python
    floats here; float64 arrays where :mod:`fairbench.backends.compiled.fairret` compiles it)."""
    h, slope = intercept, 0.0
    for zi, bi in zip(z, beta):
        t = bi * lam - zi
        if t > 0.0:  # q = sigmoid(-t) without overflow
            e = math.exp(-t)
            q = e / (1.0 + e)
        else:
            q = 1.0 / (1.0 + math.exp(t))
        bq = bi * q
        h += bq
        slope += bq * bi * (1.0 - q)
    return h, slope


def _h_and_slope(z, beta, intercept: float, lam: float) -> tuple[float, float]:
    """``h(lam)`` and ``-h'(lam)`` of :func:`_group_multiplier`: row by row on lists (small
    groups), vector operations on arrays (compiled, always :func:`_h_and_slope_scalars`)."""
    if isinstance(z, list):
        return _h_and_slope_scalars(z, beta, intercept, lam)
    q = expit(z - beta * lam)
    bq = beta * q
    return intercept + float(bq.sum()), float(np.dot(bq * beta, 1.0 - q))


def _newton_multiplier(z, beta, intercept: float, threshold: float, max_iter: int, first_step: float) -> float:
    """The Newton iteration of :func:`_group_multiplier`, from its first step's cap on. The
    compiled multiplier (:mod:`fairbench.backends.compiled.fairret`) compiles this very
    function, so both run the same float64 operations in the same order."""
    lam, lo, hi = 0.0, -math.inf, math.inf
    for _ in range(max_iter):
        h, slope = _h_and_slope(z, beta, intercept, lam)
        if abs(h) <= threshold:
            break
        if h > 0.0:
            lo = lam
        else:
            hi = lam
        cap = max(abs(lam), first_step)
        if slope > 0.0:
            step = lam + min(h / slope, cap) if h > 0.0 else lam - min(-h / slope, cap)
        else:
            step = math.nan
        if not lo < step < hi:  # also catches nan
            if math.isfinite(lo) and math.isfinite(hi):
                step = 0.5 * (lo + hi)
            else:
                step = lam + cap if h > 0.0 else lam - cap
        if step == lam:  # the bracket is down to adjacent floats
            break
        lam = step
    return lam


def _group_multiplier(z: np.ndarray, beta: np.ndarray, intercept: float, threshold: float, max_iter: int) -> float:
    """The root ``lam`` of ``h(lam) = intercept + sum_i beta_i sigmoid(z_i - beta_i lam)`` (decreasing)
    for one group: Newton's method from 0, safeguarded by bisection inside the bracket the
    iterates maintain; while one side is unbounded a step at most doubles ``|lam|`` (and is at
    least a logit shift of 4 on the row with the largest ``|beta|``). Stops at
    ``|h| <= threshold`` or when the bracket is down to adjacent floats. The caller has
    checked that the root exists."""
    first_step = 4.0 / max(float(np.abs(beta).max()), 1e-300)
    if z.size <= SCALAR_ROWS:
        z, beta = z.tolist(), beta.tolist()
    return _newton_multiplier(z, beta, intercept, threshold, max_iter, first_step)


def _group_multiplier_loops(z, beta, intercept, threshold, max_iter):
    """:func:`_group_multiplier` in the form :mod:`fairbench.backends.compiled.fairret` compiles
    (float64 arrays, loops; defined here so that numba's disk cache, keyed on the file that
    defines a function, recompiles it when this module changes)."""
    top = np.abs(beta).max()  # as _group_multiplier (NaN if any entry is, in numba as in numpy)
    first_step = 4.0 / (1e-300 if 1e-300 > top else top)
    return _newton_multiplier(z, beta, intercept, threshold, max_iter, first_step)


def projection_logits(statistic: str, z: np.ndarray, y: np.ndarray, group: np.ndarray, n_groups: int,
                      tol: float = 1e-13, max_iter: int = 200) -> np.ndarray:
    """The logits ``u`` of the exact KL projection ``q = sigmoid(u)`` of ``p = sigmoid(z)``.

    ``q = argmin sum_i KL(Bern(q_i) || Bern(p_i))`` subject to every group's statistic equal
    to the overall statistic of ``p`` (:func:`fair_constraint`). With one-hot groups the
    problem separates by group, and stationarity of the Lagrangian gives
    ``u_i = z_i - beta_i lam_g``: one multiplier per group, the root of the decreasing
    function ``h_g(lam) = intercept_g + sum_{i in g} beta_i sigmoid(z_i - beta_i lam)``
    (:func:`_group_multiplier`; the constraint's residual at the solution is at most
    ``tol * (|intercept_g| + sum_{i in g} |beta_i|)``).

    Raises :class:`InfeasibleProjection` when a group's constraint has no solution with
    every ``q_i`` in (0, 1) (0 outside the open range of ``h_g``; e.g. PositivePredictiveValue
    on a group without positive labels). A group whose ``beta`` and intercept are all zero
    (e.g. TruePositiveRate on a group without positives) is unconstrained: ``q = p`` there.
    """
    z = np.asarray(z, dtype=np.float64)
    return _projection_logits(statistic, z, expit(z), y, group, n_groups, tol, max_iter)


def _projection_logits(statistic: str, z: np.ndarray, p: np.ndarray, y: np.ndarray, group: np.ndarray,
                       n_groups: int, tol: float = 1e-13, max_iter: int = 200, multiplier=None) -> np.ndarray:
    """:func:`projection_logits` given ``p = sigmoid(z)`` too (the loss needs it as well);
    ``multiplier``: the per-group root finder (default :func:`_group_multiplier`; the compiled
    :func:`fairbench.backends.compiled.fairret.group_multiplier` gives the same roots)."""
    solve = _group_multiplier if multiplier is None else multiplier
    y = np.asarray(y, dtype=np.float64)
    intercept, beta = fair_constraint(statistic, p, y, group, n_groups)
    width = group.size // n_groups
    if group.size == width * n_groups and np.array_equal(group, np.repeat(np.arange(n_groups), width)):
        blocks = [slice(g * width, (g + 1) * width) for g in range(n_groups)]  # a balanced batch
        negative = np.minimum(beta, 0.0).reshape(n_groups, width).sum(axis=1)
        total = np.abs(beta).reshape(n_groups, width).sum(axis=1)
    else:
        blocks = [np.flatnonzero(group == g) for g in range(n_groups)]
        negative = np.bincount(group, np.minimum(beta, 0.0), minlength=n_groups)
        total = np.bincount(group, np.abs(beta), minlength=n_groups)
    lower, upper = intercept + negative, intercept + negative + total  # h's open range
    scale = np.abs(intercept) + total
    free = (total <= tol * scale) & (np.abs(intercept) <= tol * np.maximum(scale, 1.0))
    if np.any(~free & ((lower >= 0.0) | (upper <= 0.0))):
        raise InfeasibleProjection(statistic)
    lam = np.zeros(n_groups)
    for g in np.flatnonzero(~free):  # a free group has no constraint: lam 0
        lam[g] = solve(z[blocks[g]], beta[blocks[g]], float(intercept[g]), tol * float(scale[g]), max_iter)
    return z - beta * lam[group]


def kl_projection(statistic: str, z: np.ndarray, y: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """The exact KL projection ``q`` of ``sigmoid(z)`` onto the fair set (:func:`projection_logits`)."""
    return expit(projection_logits(statistic, z, y, group, n_groups))


def kl_projection_loss(statistic: str, z: np.ndarray, y: np.ndarray, group: np.ndarray,
                       n_groups: int, multiplier=None) -> tuple[float, np.ndarray]:
    """``R = (1/B) sum_i KL(Bern(q_i) || Bern(p_i))`` with ``q`` the exact projection
    (:func:`projection_logits`), held fixed as fairret detaches it: ``dR/dz = (p - q) / B``.

    The value is torch's ``kl_div(log [1 - p, p], [1 - q, q], reduction="batchmean")``, as in
    fairret's ``KLProjectionLoss.torch_distance_with_logits``. With ``p = sigmoid(z)`` and
    ``q = sigmoid(u)``, ``q log sigmoid(t) + (1 - q) log sigmoid(-t) = q t - softplus(t)``, so
    ``KL_i = softplus(z_i) - softplus(u_i) + q_i (u_i - z_i)``: no log of a probability taken.
    """
    z = np.asarray(z, dtype=np.float64)
    p = expit(z)
    u = _projection_logits(statistic, z, p, y, group, n_groups, multiplier=multiplier)
    q = expit(u)
    n = len(z)
    kl = np.logaddexp(0.0, z)
    kl -= np.logaddexp(0.0, u)
    kl += q * (u - z)
    return float(kl.sum()) / n, (p - q) / n
