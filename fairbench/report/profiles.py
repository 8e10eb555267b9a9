"""Performance and data profiles over a suite, and one score per method.

The problems are the instances of every task (task, split seed, initialisation seed) that
every method of the task ran; ``T[p, s]`` is method ``s``'s time to target on problem ``p``
(:mod:`.targets`; ``inf`` for a failure).

* **Performance profile** (Dolan & Moré, "Benchmarking optimization software with performance
  profiles", Math. Program. 91, 2002): ratios ``r[p, s] = T[p, s] / min_s T[p, s]`` (``inf``
  for a failure, and for every method on a problem none solved);
  ``rho_s(tau) = |{p : r[p, s] <= tau}| / |P|``.
* **Data profile** (Moré & Wild, SIAM J. Optim. 20(1), 2009): ``d_s(alpha) = |{p : T[p, s]
  <= alpha}| / |P|``, the share solved within a budget ``alpha`` (epochs or seconds).
* **Score**: the normalised area under the performance profile up to ``tau_max``, as the
  AlgoPerf benchmark does (Dahl et al., "Benchmarking Neural Network Training Algorithms",
  2023): ``(1 / (tau_max - 1)) * int_1^tau_max rho_s(tau) dtau``, exactly
  ``mean_p max(0, tau_max - r[p, s]) / (tau_max - 1)``: 1 for a method fastest everywhere,
  0 for one never within ``tau_max`` of the fastest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fairbench.report.style import method_color, new_figure, series_style, set_title


def problem_matrix(times: pd.DataFrame, column: str) -> tuple[list[str], np.ndarray, int]:
    """``(methods, T, dropped)``: ``T`` (P, M) over the instances every method of their task
    ran, with methods the union over tasks (a method absent from a task: the task's rows hold
    NaN for it, and count as neither solved nor in the denominator of its profile)."""
    methods = list(dict.fromkeys(times["method"]))
    rows, dropped = [], 0
    for _, task in times.groupby("task", sort=False):
        present = list(dict.fromkeys(task["method"]))
        key = task["split_seed"].astype(object).where(task["split_seed"].notna(), None)
        table = {(m, s, k): v for m, s, k, v in zip(task["method"], task["seed"], key, task[column])}
        instances = {(s, k) for m, s, k in table}
        for s, k in sorted(instances, key=repr):
            if all((m, s, k) in table for m in present):
                rows.append([table.get((m, s, k), np.nan) for m in methods])
            else:
                dropped += 1
    return methods, np.array(rows, dtype=float).reshape(len(rows), len(methods)), dropped


def ratios(T: np.ndarray) -> np.ndarray:
    """Performance ratios ``T / min`` per problem (NaN stays NaN; ``inf`` where nothing solved)."""
    best = np.nanmin(np.where(np.isnan(T), np.inf, T), axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(np.isfinite(best), T / np.where(best > 0, best, 1.0), np.inf)
        r = np.where((best == 0) & (T == 0), 1.0, np.where((best == 0) & (T > 0), np.inf, r))
    return np.where(np.isnan(T), np.nan, np.maximum(r, 1.0))


def profile(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Share of the (non-NaN) problems with ``values <= grid[k]`` for each ``k``; (M, K)."""
    out = np.empty((values.shape[1], grid.size))
    for s in range(values.shape[1]):
        v = values[:, s][~np.isnan(values[:, s])]
        out[s] = (v[:, None] <= grid[None, :]).mean(axis=0) if v.size else np.nan
    return out


def area_scores(r: np.ndarray, tau_max: float) -> np.ndarray:
    """Normalised area under each method's performance profile on ``[1, tau_max]``."""
    with np.errstate(invalid="ignore"):
        part = np.maximum(tau_max - r, 0.0) / (tau_max - 1.0)
    return np.array([np.nanmean(part[:, s]) if (~np.isnan(part[:, s])).any() else np.nan
                     for s in range(r.shape[1])])


def ratio_grid(r: np.ndarray, tau_max: float) -> np.ndarray:
    finite = r[np.isfinite(r)]
    top = max(tau_max, float(finite.max()) if finite.size else tau_max) * 1.05
    return np.unique(np.concatenate([np.geomspace(1.0, top, 200), finite[finite <= top]]))


def budget_grid(T: np.ndarray) -> np.ndarray:
    finite = T[np.isfinite(T)]
    if not finite.size:
        return np.array([0.0, 1.0])
    return np.unique(np.concatenate([[0.0], np.linspace(0.0, float(finite.max()) * 1.05, 200), finite]))


def profiles_figure(methods: list[str], T_samples: np.ndarray, T_seconds: np.ndarray, epochs: np.ndarray,
                    tau_max: float, title: str) -> Figure | None:
    """Performance profiles (samples, seconds) and data profiles (epochs, seconds) in one figure."""
    if T_samples.size == 0:
        return None
    fig = new_figure(11.0, 6.5)
    axes = fig.subplots(2, 2)
    panels = [(axes[0, 0], ratios(T_samples), True, "performance ratio (samples)"),
              (axes[0, 1], ratios(T_seconds), True, "performance ratio (seconds)"),
              (axes[1, 0], epochs, False, "epochs to target"),
              (axes[1, 1], T_seconds, False, "seconds to target")]
    for ax, values, is_ratio, label in panels:
        grid = ratio_grid(values, tau_max) if is_ratio else budget_grid(values)
        curves = profile(values, grid)
        for s, method in enumerate(methods):
            style = series_style(s)
            ax.step(grid, curves[s], where="post", color=method_color(method.split(" ")[0]) if s < 7 else style["color"],
                    linestyle=style["linestyle"], label=method, linewidth=1.3)
        if is_ratio:
            ax.set_xscale("log")
            ax.axvline(tau_max, color="#999999", linestyle=":", linewidth=0.8)
        ax.set_xlabel(label)
        ax.set_ylabel("share of problems solved")
        ax.set_ylim(-0.02, 1.02)
    axes[0, 0].legend(fontsize=7, loc="lower right")
    set_title(fig, f"{title}: Dolan–Moré performance profiles (top) and Moré–Wild data profiles (bottom); "
                   f"dotted: τ = {tau_max:g}")
    return fig
