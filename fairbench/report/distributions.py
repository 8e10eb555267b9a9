"""Per-group distributions of predicted probabilities (the paper's Figure 3).

Needs ``seed_<k>/scores_<split>.npz`` (arrays ``scores``, ``y``, ``group``), an optional
file of the run directory. Scores of all completed seeds are pooled per group, so each
curve shows what the method produces across seeds; densities (not counts) make groups of
very different sizes comparable. The dotted line is the 0.5 decision threshold.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fairbench.report.collect import Issue, ScoreArrays, read_scores
from fairbench.report.grouping import Entry
from fairbench.report.style import REFERENCE, method_color, new_figure, series_style, set_title

SPLITS = ("test", "train")
BINS = np.linspace(0.0, 1.0, 41)


def pooled_scores(entry: Entry, split: str, issues: list[Issue]) -> list[ScoreArrays]:
    arrays = (read_scores(seed, split, issues) for seed in entry.run.completed)
    return [a for a in arrays if a is not None]


def has_scores(entry: Entry) -> bool:
    """Whether any completed seed of ``entry`` has a scores file (cheap: no file is read)."""
    return any((seed.directory / f"scores_{split}.npz").is_file() for seed in entry.run.completed for split in SPLITS)


def scores_figure(entries: list[Entry], title: str, issues: list[Issue]) -> Figure | None:
    """Rows: splits with scores; columns: methods with scores. ``None`` when there are none."""
    data = {(e.label, split): pooled_scores(e, split, issues) for e in entries if has_scores(e) for split in SPLITS}
    splits = [sp for sp in SPLITS if any(data.get((e.label, sp)) for e in entries)]
    shown = [e for e in entries if any(data.get((e.label, sp)) for sp in splits)]
    if not shown:
        return None
    fig = new_figure(2.7 * len(shown) + 0.9, 2.3 * len(splits) + 1.0)
    axes = fig.subplots(len(splits), len(shown), sharex=True, sharey="row", squeeze=False)
    n_groups = 0
    for col, entry in enumerate(shown):
        names = entry.run.group_names
        axes[0, col].set_title(entry.label, fontsize=9, color=method_color(entry.method))
        for row, split in enumerate(splits):
            ax = axes[row, col]
            arrays = data[(entry.label, split)]
            if not arrays:
                ax.text(0.5, 0.5, f"no {split} scores", ha="center", va="center", transform=ax.transAxes, fontsize=8)
                continue
            scores = np.concatenate([a.scores for a in arrays])
            group = np.concatenate([a.group for a in arrays])
            groups = max(int(group.max()) + 1, len(names))
            n_groups = max(n_groups, groups)
            for g in range(groups):
                member = scores[group == g]
                if member.size:
                    density, edges = np.histogram(member, bins=BINS, density=True)
                    ax.stairs(density, edges, linewidth=1.1, **series_style(g))
            ax.axvline(0.5, color=REFERENCE, linestyle=":", linewidth=0.9)
            ax.tick_params(labelsize=7)
            if col == 0:
                ax.set_ylabel(f"{split}: density", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("predicted probability P(y = 1)", fontsize=8)
    names = shown[0].run.group_names
    handles = [Line2D([], [], label=names[g] if g < len(names) else f"group {g}", **series_style(g))
               for g in range(n_groups)]
    handles.append(Line2D([], [], color=REFERENCE, linestyle=":", label="threshold 0.5"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(6, len(handles)), fontsize=7, frameon=False)
    set_title(fig, f"{title}: predicted probabilities per group (all completed seeds pooled)")
    return fig
