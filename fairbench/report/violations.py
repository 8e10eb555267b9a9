"""The surrogate-vs-true violation figure: what the algorithm saw against what it achieved.

Per split (train, test) one panel: for every method the mean over completed seeds of
``max_violation`` (the constraints on the surrogate statistics the algorithm trained on:
mean losses or soft rates; solid) and ``max_violation_true`` (the same constraints on the
true statistics of the thresholded predictions; dashed) against iterations. For the loss
statistic the true statistic is the 0-1 error; for the weight-norm problem both coincide.
Runs written before the true columns existed are left out; with none left, no figure.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fairbench.report.grouping import Entry
from fairbench.report.style import method_color, new_figure, set_title
from fairbench.report.trajectories import draw

SPLITS = ("train", "test")


def violation_figure(entries: list[Entry], title: str) -> Figure | None:
    usable = []
    for entry in entries:
        frames = [s.trajectory for s in entry.run.completed if s.trajectory is not None
                  and "train_max_violation_true" in s.trajectory.columns]
        if frames:
            usable.append((entry, frames))
    if not usable:
        return None
    fig = new_figure(9.0, 3.8)
    axes = fig.subplots(1, len(SPLITS), sharex=True, squeeze=False)[0]
    for ax, split in zip(axes, SPLITS):
        for entry, frames in usable:
            color = method_color(entry.method)
            draw(ax, frames, "iteration", f"{split}_max_violation", color, "-")
            draw(ax, frames, "iteration", f"{split}_max_violation_true", color, "--")
        ax.set_title(split, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, linewidth=0.4)
    axes[0].set_ylabel("max(0, max_j c_j)", fontsize=8)
    handles = [Line2D([], [], color=method_color(e.method), label=e.label) for e, _ in usable]
    handles += [Line2D([], [], color="#444444", linestyle="-", label="surrogate (trained on)"),
                Line2D([], [], color="#444444", linestyle="--", label="true (thresholded)")]
    fig.legend(handles=handles, loc="outside lower center", fontsize=7, ncols=min(5, len(handles)), frameon=False)
    set_title(fig, f"{title}: surrogate vs true constraint violation, mean over seeds")
    return fig
