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

import numpy as np

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
