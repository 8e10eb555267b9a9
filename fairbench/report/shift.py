"""Fairness under shift: training-state vs other-state feasibility per method (``eval.states``).

For every method whose completed seeds carry ``shift`` metrics (the final model on the full
data of states it did not train on), the figure draws the true maximum constraint violation
``max_violation_true`` (constraints on the thresholded predictions) on the training states'
test split and on each other state, mean over completed seeds: one column per method, the
training states as a filled diamond, each other state as a dot. The table gives the same per
method: the training test split's value, the mean and the largest over the other states, and
how many other states the model is feasible in (true violation 0). Runs without ``shift``
are left out; with none left, no figure and no table.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fairbench.report.document import Block, Paragraph, Table
from fairbench.report.grouping import Entry
from fairbench.report.style import REFERENCE, method_color, new_figure, set_title

KEY = "max_violation_true"


def shift_values(entry: Entry) -> tuple[float | None, dict[str, float]] | None:
    """(training test-split value, {state: value}), means over completed seeds; None without shift."""
    seeds = [s.metrics for s in entry.run.completed if s.metrics and s.metrics.get("shift")]
    if not seeds:
        return None
    train = [m["splits"].get("test", {}).get(KEY) for m in seeds]
    train = [v for v in train if isinstance(v, (int, float))]
    states: dict[str, float] = {}
    for state in seeds[0]["shift"]:
        values = [m["shift"].get(state, {}).get(KEY) for m in seeds]
        values = [v for v in values if isinstance(v, (int, float))]
        if values:
            states[state] = float(np.mean(values))
    return (float(np.mean(train)) if train else None), states


def usable(entries: list[Entry]) -> list[tuple[Entry, float | None, dict[str, float]]]:
    out = []
    for entry in entries:
        values = shift_values(entry)
        if values is not None:
            out.append((entry, *values))
    return out


def shift_figure(entries: list[Entry], title: str) -> Figure | None:
    rows = usable(entries)
    if not rows:
        return None
    fig = new_figure(max(4.5, 1.0 + 0.9 * len(rows)), 3.6)
    ax = fig.subplots()
    for x, (entry, train, states) in enumerate(rows):
        color = method_color(entry.method)
        values = list(states.values())
        jitter = np.linspace(-0.18, 0.18, len(values)) if len(values) > 1 else np.zeros(len(values))
        ax.scatter(x + jitter, values, s=10, color=color, alpha=0.6, linewidths=0)
        if train is not None:
            ax.scatter([x], [train], s=60, marker="D", color=color, edgecolors="black", linewidths=0.6, zorder=3)
    ax.axhline(0.0, color=REFERENCE, linewidth=0.6, linestyle=":")
    ax.set_xticks(range(len(rows)), [e.label for e, _, _ in rows], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("true max violation (final model)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.25, linewidth=0.4, axis="y")
    handles = [Line2D([], [], marker="D", linestyle="", color="#444444", label="training states (test split)"),
               Line2D([], [], marker="o", linestyle="", color="#444444", alpha=0.6, label="each other state")]
    fig.legend(handles=handles, loc="outside lower center", fontsize=7, ncols=2, frameon=False)
    set_title(fig, f"{title}: feasibility on the training states vs states not trained on, mean over seeds")
    return fig


def shift_blocks(entries: list[Entry]) -> list[Block]:
    rows = usable(entries)
    if not rows:
        return []
    table = []
    for entry, train, states in rows:
        values = list(states.values())
        feasible = sum(v <= 0.0 for v in values)
        table.append([entry.label, "n/a" if train is None else f"{train:.4f}",
                      f"{np.mean(values):.4f}" if values else "n/a", f"{max(values):.4f}" if values else "n/a",
                      f"{feasible}/{len(values)}"])
    return [Paragraph("True max violation of the final model (mean over completed seeds): on the training "
                      "states' test split and on the full data of each other state (eval.states)."),
            Table(["Method", "Training states (test)", "Other states: mean", "Other states: max",
                   "Other states feasible"], table)]
