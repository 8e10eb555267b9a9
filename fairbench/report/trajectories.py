"""Training trajectories (the paper's Figures 1 and 2).

One column per method; rows: train loss, test loss, train constraints, test constraints;
x = iterations or training time (seconds inside the algorithm's steps). Each curve is the
mean over completed seeds with the 25–75 % band, after interpolating every seed onto a
common grid that stops where the shortest seed stops (so every point averages all seeds).

Constraints are drawn as the **gap** they bound, with the bound as reference lines, as in
the paper: a signed pair ``+(d) - δ <= 0`` and ``-(d) - δ <= 0`` becomes one curve ``d``
(= ``c + δ`` of the "+" constraint) between lines at ``±δ``; an ``abs`` constraint
``|d| - δ`` becomes ``|d|`` under a line at ``δ``. Constraints of another shape are drawn
as raw values ``c`` with the feasibility line at 0. Many groups simply mean more curves
(five groups, all pairs: ten gaps), told apart by colour and style.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from fairbench.report.grouping import Entry
from fairbench.report.style import REFERENCE, method_color, new_figure, series_style, set_title

X_AXES = {"iteration": "iterations", "train_seconds": "training time (s)"}
SPLITS = ("train", "test")
TIME_POINTS = 200


@dataclass(frozen=True)
class GapView:
    """How to draw a run's constraints: which columns, shifted by how much, against which lines."""

    indices: list[int]
    labels: list[str]
    offset: float
    references: list[float]
    ylabel: str


def gap_view(names: list[str], delta: float | None, n_columns: int) -> GapView:
    """Read the constraint names written by the problem (``+(d)``/``-(d)`` pairs or ``|d|``)."""
    names = names if len(names) == n_columns else [f"c{j}" for j in range(n_columns)]
    if delta is not None and names:
        plus = {n[2:-1]: j for j, n in enumerate(names) if n.startswith("+(") and n.endswith(")")}
        minus = {n[2:-1] for n in names if n.startswith("-(") and n.endswith(")")}
        if plus and set(plus) == minus and 2 * len(plus) == len(names):
            return GapView(list(plus.values()), list(plus), delta, [delta, -delta], gap_label(list(plus), "gap"))
        if all(n.startswith("|") and n.endswith("|") for n in names):
            return GapView(list(range(len(names))), names, delta, [delta], gap_label(names, "|gap|"))
    return GapView(list(range(len(names))), names, 0.0, [0.0], gap_label(names, "constraint c (feasible ≤ 0)"))


def gap_label(labels: list[str], kind: str) -> str:
    """Axis label: the quantity itself when there is one, else its kind (the legend names them)."""
    return labels[0] if len(labels) == 1 else f"{kind}s (legend)"


def clean_curve(frame: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(x, y)`` of a trajectory's rows where both are finite, the last row of each repeated
    ``x`` kept, sorted by ``x`` (``None``: no such row)."""
    xs, ys = frame[x].to_numpy(dtype=float), frame[y].to_numpy(dtype=float)
    keep = np.flatnonzero(np.isfinite(xs) & np.isfinite(ys))
    if not len(keep):
        return None
    last = keep[::-1]  # the first of a value in reverse order is its last row
    values, first = np.unique(xs[last], return_index=True)
    return values, ys[last[first]]


def band(frames: list[pd.DataFrame], x: str, y: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Grid, mean, 25th and 75th percentile over seeds of ``y`` against ``x``."""
    curves = [c for c in (clean_curve(frame, x, y) for frame in frames) if c is not None]
    if not curves:
        return None
    end = min(cx[-1] for cx, _ in curves)
    if x == "iteration":
        grid = np.unique(np.concatenate([cx for cx, _ in curves]))
        grid = grid[grid <= end]
    else:
        grid = np.linspace(min(cx[0] for cx, _ in curves), end, TIME_POINTS)
    values = np.vstack([np.interp(grid, cx, cy) for cx, cy in curves])
    q25, q75 = np.percentile(values, [25, 75], axis=0)
    return grid, values.mean(axis=0), q25, q75


def draw(ax: Axes, frames: list[pd.DataFrame], x: str, y: str, color: str, linestyle: str = "-",
         offset: float = 0.0) -> bool:
    stats = band(frames, x, y)
    if stats is None:
        return False
    grid, mean, q25, q75 = stats
    ax.plot(grid, mean + offset, color=color, linestyle=linestyle, linewidth=1.3)
    ax.fill_between(grid, q25 + offset, q75 + offset, color=color, alpha=0.18, linewidth=0)
    return True


def trajectory_figure(entries: list[Entry], delta: float | None, x: str, title: str) -> Figure:
    """Figure 1/2 for one experiment; ``x`` is ``iteration`` or ``train_seconds``."""
    ncols = len(entries)
    fig = new_figure(2.7 * ncols + 0.9, 8.6)
    # each method keeps its own y scale: one unstable method (a diverging seed pulls the
    # mean far out) must not flatten every other column of its row
    axes = fig.subplots(4, ncols, sharex=True, squeeze=False)
    gap_labels: list[str] = []
    references: list[float] = []
    for col, entry in enumerate(entries):
        run = entry.run
        frames = [s.trajectory for s in run.completed if s.trajectory is not None]
        color = method_color(entry.method)
        axes[0, col].set_title(f"{entry.label}\n(n = {len(frames)} seeds)", fontsize=9, color=color)
        if not frames:
            for row in range(4):
                axes[row, col].text(0.5, 0.5, "no completed seed\nwith a trajectory", ha="center", va="center",
                                    transform=axes[row, col].transAxes, fontsize=8)
            continue
        n_con = sum(1 for c in frames[0].columns if c.startswith("train_c") and c[7:].isdigit())
        view = gap_view(run.constraint_names, run.delta if run.delta is not None else delta, n_con)
        if len(view.labels) > len(gap_labels):
            gap_labels, references = view.labels, view.references
        for row, split in enumerate(SPLITS):
            draw(axes[row, col], frames, x, f"{split}_loss", color)
            axes[2 + row, col].axhline(0.0, color=REFERENCE, linewidth=0.5, linestyle=":")
            for ref in view.references:
                axes[2 + row, col].axhline(ref, color=REFERENCE, linewidth=0.9, linestyle="--")
            many = len(view.indices) > 1
            for k, j in enumerate(view.indices):
                style = series_style(k) if many else {"color": color, "linestyle": "-"}
                draw(axes[2 + row, col], frames, x, f"{split}_c{j}", offset=view.offset, **style)
        if col == 0:
            for row, split in enumerate(SPLITS):
                axes[row, 0].set_ylabel(f"{split} loss (BCE)", fontsize=8)
                axes[2 + row, 0].set_ylabel(f"{split}: {view.ylabel}", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel(X_AXES[x], fontsize=8)
    for ax in axes.flat:
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, linewidth=0.4)
    fig.legend(handles=legend_handles(gap_labels, references), loc="outside lower center", fontsize=7,
               ncols=min(4, len(gap_labels) + 3), frameon=False)
    set_title(fig, f"{title}: mean over seeds with 25–75 % band, against {X_AXES[x]}")
    return fig


def legend_handles(gap_labels: list[str], references: list[float]) -> list:
    handles: list = [Line2D([], [], color="#444444", label="mean over seeds"),
                     Patch(color="#444444", alpha=0.18, label="25–75 % of seeds")]
    if references:
        bound = abs(references[0])
        text = "bound ±δ" if len(references) > 1 else ("bound δ" if bound else "feasibility c = 0")
        handles.append(Line2D([], [], color=REFERENCE, linestyle="--", label=f"{text} ({bound:g})"))
    if len(gap_labels) > 1:
        handles += [Line2D([], [], label=label, **series_style(k)) for k, label in enumerate(gap_labels)]
    return handles
