"""Radar chart of the fairness metrics per method (the paper's Figure 4).

Axes: Ind, Sp, Sf, Ina, Wd and 1 − AUC, so that on every axis smaller (closer to the centre)
is better. The axes have different natural ranges, so each is scaled by its largest value
over all methods and both splits (printed in the axis label): a polygon touching the rim is
the worst method on that metric. Values are means over completed seeds.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fairbench.report.grouping import Entry
from fairbench.report.style import LINESTYLES, method_color, new_figure, set_title
from fairbench.report.tables import TABLE_SPLITS, run_stats

RADAR_METRICS = (("ind", "Ind"), ("sp", "Sp"), ("sf", "Sf"), ("ina", "Ina"), ("wd", "Wd"), ("auc", "1 − AUC"))


def radar_values(entry: Entry) -> dict[str, np.ndarray] | None:
    """Per split, the metric means in :data:`RADAR_METRICS` order (AUC as 1 − AUC)."""
    stats = run_stats(entry.run)
    values = {}
    for split in TABLE_SPLITS:
        means = [stats[(split, key)]["mean"] for key, _ in RADAR_METRICS]
        if any(m is None for m in means):
            return None
        values[split] = np.array([1.0 - m if key == "auc" else m for m, (key, _) in zip(means, RADAR_METRICS)])
    return values


def radar_figure(entries: list[Entry], title: str) -> Figure | None:
    """Train and test radars side by side; ``None`` when no method has a completed seed."""
    values = {e.label: v for e in entries if (v := radar_values(e)) is not None}
    shown = [e for e in entries if e.label in values]
    if not shown:
        return None
    scale = np.max(np.vstack([v[s] for v in values.values() for s in TABLE_SPLITS]), axis=0)
    scale[scale <= 0] = 1.0
    angles = np.linspace(0.0, 2 * np.pi, len(RADAR_METRICS), endpoint=False)
    closed = np.append(angles, angles[0])
    fig = new_figure(9.0, 4.8)
    handles = []
    used: dict[str, int] = {}
    styles = {}
    for entry in shown:
        color = method_color(entry.method)
        styles[entry.label] = (color, LINESTYLES[used.get(color, 0) % len(LINESTYLES)])
        used[color] = used.get(color, 0) + 1
        handles.append(Line2D([], [], color=color, linestyle=styles[entry.label][1], label=entry.label))
    for i, split in enumerate(TABLE_SPLITS):
        ax = fig.add_subplot(1, len(TABLE_SPLITS), i + 1, projection="polar")
        for entry in shown:
            color, linestyle = styles[entry.label]
            r = values[entry.label][split] / scale
            ax.plot(closed, np.append(r, r[0]), color=color, linestyle=linestyle, linewidth=1.3)
            ax.fill(closed, np.append(r, r[0]), color=color, alpha=0.08)
        ax.set_xticks(angles, [f"{name}\n(max {s:.3g})" for (_, name), s in zip(RADAR_METRICS, scale)], fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["", "", "", ""])
        ax.set_title(f"{split} (scaled to max; smaller is better)", fontsize=9)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=7, frameon=False)
    set_title(fig, f"{title}: fairness metrics per method (mean over seeds)")
    return fig
