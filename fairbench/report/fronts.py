"""Trade-off fronts of a δ sweep (``+experiment=front``): what each bound buys and costs.

Runs are pooled by task -- the dataset and the constraint family, form and statistic, every
bound δ together -- and a task is drawn when its runs hold at least two distinct δ. Each run
is one point: the mean over its completed seeds of the **test** split's final-iterate
metrics. Three figures per task:

* loss against violation: test loss over the test max violation ``max(0, max_j c_j)`` (the
  violation of the true, thresholded rate where the run records one,
  ``max_violation_true``);
* accuracy against each fairness metric (Ind, Sp, Sf, Ina, Wd: :mod:`fairbench.metrics`);
* achieved gap against the given bound: the largest gap ``max_j c_j + δ`` (for the signed
  pairs ``±d − δ`` and for ``|d| − δ`` alike this is ``max |d|``) over δ, mean and standard
  deviation over seeds, with the line gap = δ: a method on or below it holds its bound on
  held-out data.

In the first two, the **non-dominated** points (Pareto, over every method and δ of the
task) are ringed and joined: a point is dominated when another is at least as good in both
coordinates and better in one (lower loss and violation; higher accuracy, lower unfairness).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fairbench.report.collect import Run
from fairbench.report.document import Block, Heading, Paragraph
from fairbench.report.grouping import CONSTRAINT_KEYS, slugify
from fairbench.report.style import REFERENCE, method_color, new_figure, set_title

SPLIT = "test"
FAIRNESS_METRICS = ("ind", "sp", "sf", "ina", "wd")
TRUE_VIOLATION = "max_violation_true"


@dataclass
class Point:
    """One run of a δ sweep: its method, bound and mean test metrics (NaN where absent)."""

    method: str
    delta: float
    values: dict[str, float]
    gap_std: float = float("nan")


@dataclass
class Front:
    """The runs of one task (one dataset and constraint, every δ)."""

    title: str
    slug: str
    points: list[Point] = field(default_factory=list)

    @property
    def deltas(self) -> list[float]:
        return sorted({p.delta for p in self.points})


def seed_values(run: Run) -> list[dict[str, float]]:
    """Per completed seed: the test metrics and the achieved gap ``max_j c_j + δ``."""
    rows = []
    for seed in run.completed:
        split = ((seed.metrics or {}).get("splits") or {}).get(SPLIT) or {}
        row = {k: float(v) for k, v in split.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        constraints = split.get("constraints")
        if isinstance(constraints, list) and constraints and run.delta is not None:
            row["gap"] = max(float(c) for c in constraints) + run.delta
        rows.append(row)
    return rows


def run_point(run: Run, method: str) -> Point | None:
    rows = seed_values(run)
    if run.delta is None or not rows:
        return None
    keys = {k for row in rows for k in row}
    values = {k: float(np.mean([row.get(k, np.nan) for row in rows])) for k in keys}
    gaps = [row["gap"] for row in rows if "gap" in row]
    return Point(method, run.delta, values, float(np.std(gaps)) if gaps else float("nan"))


def method_name(run: Run, algo_problems: dict[str, set[str]]) -> str:
    """``algo``, or ``algo/problem`` where one algorithm appears under several formulations."""
    return run.algo if len(algo_problems[run.algo]) == 1 else f"{run.algo}/{run.problem}"


def collect_fronts(runs: list[Run]) -> list[Front]:
    """The tasks whose runs hold at least two distinct δ, each with its points."""
    tasks: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        tasks[(run.dataset, *(str(run.flat_config.get(k)) for k in CONSTRAINT_KEYS))].append(run)
    fronts = []
    for key, members in tasks.items():
        if len({r.delta for r in members if r.delta is not None}) < 2:
            continue
        algo_problems: dict[str, set[str]] = defaultdict(set)
        for run in members:
            algo_problems[run.algo].add(run.problem)
        flat = members[0].flat_config
        form = "/".join(str(flat[k]) for k in CONSTRAINT_KEYS if flat.get(k) is not None)
        title = f"{key[0]}" + (f" ({form} constraints)" if form else "")
        front = Front(title, slugify(title))
        front.points = [p for r in members if (p := run_point(r, method_name(r, algo_problems))) is not None]
        if len({p.delta for p in front.points}) >= 2:
            fronts.append(front)
    return fronts


def non_dominated(costs: np.ndarray) -> np.ndarray:
    """Mask of the Pareto-optimal rows of ``costs`` (n x 2, both minimised; NaN rows excluded)."""
    finite = np.all(np.isfinite(costs), axis=1)
    mask = np.zeros(len(costs), dtype=bool)
    for i in np.flatnonzero(finite):
        others = costs[finite]
        dominated = np.any(np.all(others <= costs[i], axis=1) & np.any(others < costs[i], axis=1))
        mask[i] = not dominated
    return mask


def violation_key(points: list[Point]) -> str:
    """``max_violation_true`` when every point has it, else ``max_violation``."""
    has_true = all(np.isfinite(p.values.get(TRUE_VIOLATION, np.nan)) for p in points)
    return TRUE_VIOLATION if has_true else "max_violation"


def scatter_panel(ax: Axes, points: list[Point], x: str, y: str, maximise_y: bool) -> None:
    """Points per method (labelled by δ), the non-dominated ones ringed and joined."""
    xs = np.array([p.values.get(x, np.nan) for p in points])
    ys = np.array([p.values.get(y, np.nan) for p in points])
    for method in sorted({p.method for p in points}):
        idx = [i for i, p in enumerate(points) if p.method == method]
        ax.scatter(xs[idx], ys[idx], s=22, color=method_color(method), label=method, zorder=3)
        for i in idx:
            if np.isfinite(xs[i]) and np.isfinite(ys[i]):
                ax.annotate(f"{points[i].delta:g}", (xs[i], ys[i]), fontsize=6, xytext=(3, 2),
                            textcoords="offset points", color=method_color(method))
    front = non_dominated(np.column_stack([xs, -ys if maximise_y else ys]))
    if front.any():
        order = np.argsort(xs[front])
        ax.plot(xs[front][order], ys[front][order], color=REFERENCE, linestyle="--", linewidth=0.8,
                drawstyle="steps-post", zorder=2)
        ax.scatter(xs[front], ys[front], s=70, facecolors="none", edgecolors="black", linewidths=1.0,
                   label="non-dominated", zorder=4)
    ax.set_xlabel(f"{x} ({SPLIT})")
    ax.set_ylabel(f"{y} ({SPLIT})")
    ax.grid(alpha=0.3)


def loss_figure(front: Front) -> Figure:
    fig = new_figure(7.0, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    scatter_panel(ax, front.points, violation_key(front.points), "loss", maximise_y=False)
    ax.legend(fontsize=7)
    set_title(fig, f"{front.title}: test loss against test violation over δ {', '.join(f'{d:g}' for d in front.deltas)}")
    return fig


def accuracy_figure(front: Front) -> Figure | None:
    metrics = [m for m in FAIRNESS_METRICS if any(np.isfinite(p.values.get(m, np.nan)) for p in front.points)]
    if not metrics or not any(np.isfinite(p.values.get("accuracy", np.nan)) for p in front.points):
        return None
    fig = new_figure(3.2 * len(metrics), 3.6)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        scatter_panel(ax, front.points, metric, "accuracy", maximise_y=True)
    axes[0].legend(fontsize=6)
    set_title(fig, f"{front.title}: test accuracy against each fairness metric (smaller is fairer)")
    return fig


def gap_figure(front: Front) -> Figure | None:
    points = [p for p in front.points if np.isfinite(p.values.get("gap", np.nan))]
    if not points:
        return None
    fig = new_figure(7.0, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    for method in sorted({p.method for p in points}):
        mine = sorted((p for p in points if p.method == method), key=lambda p: p.delta)
        ax.errorbar([p.delta for p in mine], [p.values["gap"] for p in mine], yerr=[p.gap_std for p in mine],
                    marker="o", markersize=4, capsize=2, color=method_color(method), label=method)
    deltas = np.array(front.deltas)
    ax.plot(deltas, deltas, color=REFERENCE, linestyle="--", linewidth=1.0, label="gap = δ")
    ax.set_xscale("log")
    if all(p.values["gap"] > 0 for p in points):
        ax.set_yscale("log")
    ax.set_xlabel("given bound δ")
    ax.set_ylabel(f"achieved gap max_j c_j + δ ({SPLIT})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    set_title(fig, f"{front.title}: the gap each method achieves against the bound it was given")
    return fig


def front_blocks(runs: list[Run], add_figure: Callable[[str, str, Callable[[], Figure | None]], list[Block]]) -> list[Block]:
    """The report section: the three figures per task with a δ sweep (``add_figure``:
    :meth:`fairbench.report.build.FigureWriter.add`); nothing when no task has one."""
    fronts = collect_fronts(runs)
    if not fronts:
        return []
    blocks: list[Block] = [Heading("Trade-off fronts (δ sweeps)"),
                           Paragraph("One point per run: the mean over its completed seeds, test split, labelled "
                                     "by its δ; ringed and joined: the non-dominated points over every method "
                                     "and δ.")]
    for front in fronts:
        key = violation_key(front.points)
        blocks += add_figure(f"front_loss_{front.slug}", f"{front.title}: test loss against {key}.",
                             partial(loss_figure, front))
        blocks += add_figure(f"front_accuracy_{front.slug}", f"{front.title}: test accuracy against Ind, Sp, Sf, "
                             "Ina and Wd.", partial(accuracy_figure, front))
        blocks += add_figure(f"front_gap_{front.slug}", f"{front.title}: achieved test gap (max_j c_j + δ, mean ± "
                             "std over seeds) against the given δ; dashed: gap = δ.", partial(gap_figure, front))
    return blocks
