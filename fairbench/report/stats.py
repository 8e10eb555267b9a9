"""Paired comparisons of methods over a suite's problems, and bootstrap confidence intervals.

* **Ranking**: on every problem (task, split seed, initialisation seed) the methods are ranked
  by time to target (1 = fastest; ties share the mean rank; failures tie last); a method's
  score is its mean rank.
* **Paired tests**: for every pair of methods, the Wilcoxon signed-rank test (Wilcoxon 1945;
  ``scipy.stats.wilcoxon``, two-sided, zero differences dropped) on the paired differences
  of ``log T`` over the problems both ran. A failure enters as ``log(2 * the largest finite
  time on that problem)``, so it is slower than any success there and two failures tie. The
  p-values of all pairs are adjusted with Holm's step-down method (Holm, "A simple
  sequentially rejective multiple test procedure", Scand. J. Statist. 6, 1979), which
  controls the family-wise error rate.
* **Bootstrap**: percentile intervals (Efron & Tibshirani, *An Introduction to the
  Bootstrap*, 1993) with a seeded generator, so a report is reproducible.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from scipy.stats import rankdata, wilcoxon

BOOTSTRAP_SEED = 20240601


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values (same order as given)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (p.size - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def failure_filled_logs(T: np.ndarray) -> np.ndarray:
    """``log T`` with each problem's failures at ``log(2 * its largest finite time)`` (``log 2``
    when none finished; a zero time at the smallest positive float). NaN stays NaN."""
    out = np.full(T.shape, np.nan)
    for p, row in enumerate(T):
        finite = row[np.isfinite(row)]
        fail = 2.0 * finite.max() if finite.size and finite.max() > 0 else 2.0
        filled = np.where(np.isinf(row), fail, row)
        out[p] = np.where(np.isnan(row), np.nan, np.log(np.maximum(filled, np.finfo(float).tiny)))
    return out


def mean_ranks(T: np.ndarray) -> np.ndarray:
    """Mean rank of every method over the problems it ran (1 = fastest)."""
    ranks = np.full(T.shape, np.nan)
    for p, row in enumerate(T):
        ok = ~np.isnan(row)
        ranks[p, ok] = rankdata(row[ok])  # inf ties with inf
    return np.array([np.nanmean(ranks[:, s]) if (~np.isnan(ranks[:, s])).any() else np.nan
                     for s in range(T.shape[1])])


def signed_rank_sum(d: np.ndarray) -> float:
    """``R+ - R-`` of the nonzero differences ``d`` (negative: the first method tends to be faster)."""
    if not d.size:
        return 0.0
    ranks = rankdata(np.abs(d))
    return float(ranks[d > 0].sum() - ranks[d < 0].sum())


def paired_tests(methods: list[str], T: np.ndarray, alpha: float) -> list[dict]:
    """Every pair: problems, wins, ties, median log2 ratio, Wilcoxon p, Holm p and the verdict."""
    logs = failure_filled_logs(T)
    rows = []
    for a, b in combinations(range(len(methods)), 2):
        both = ~np.isnan(logs[:, a]) & ~np.isnan(logs[:, b])
        d = logs[both, a] - logs[both, b]
        nonzero = d[d != 0]
        p = float(wilcoxon(nonzero).pvalue) if nonzero.size else 1.0
        rows.append({"a": methods[a], "b": methods[b], "problems": int(both.sum()),
                     "a_faster": int((d < 0).sum()), "b_faster": int((d > 0).sum()), "ties": int((d == 0).sum()),
                     "median_log2_ratio": float(np.median(d) / math.log(2)) if d.size else math.nan, "p": p,
                     "_a_ahead": bool(signed_rank_sum(nonzero) < 0)})
    for row, adjusted in zip(rows, holm([r["p"] for r in rows]) if rows else []):
        row["p_holm"] = float(adjusted)
        a_ahead = row.pop("_a_ahead")
        if adjusted >= alpha:
            row["verdict"] = "no difference shown"
        else:
            row["verdict"] = f"{row['a'] if a_ahead else row['b']} faster"
    return rows


def bootstrap_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap ``draws``."""
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
