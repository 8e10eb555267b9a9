"""Tasks, their feasible targets, and every seed's time to reach one.

A **task** is what a verdict compares methods on: one dataset, one set of reported
constraints (an experiment of :mod:`.grouping`) and one model configuration. Its
**methods** are the runs shown for it (a sweep by its selected combination), merged over the
data-split seed (``dataset.split.seed``), which is a seed axis like the initialisation seed.
Every seed with a trajectory that completed or diverged is a **curve**; an instance of the
task is a pair (split seed, initialisation seed).

**Target**: training loss ``<= target`` and training max violation ``<= tol`` at a log point.
The target is the user's (``--target-loss``, one task only: a loss is not comparable across
tasks) or the task's own: with ``L*`` the best training loss any curve of the task reached at
a point with violation ``<= tol`` and ``L0`` the median initial training loss of its curves,

    target = L* + margin * (L0 - L*)

(the convergence test of Moré & Wild, "Benchmarking derivative-free optimization
algorithms", SIAM J. Optim. 20(1), 2009, with ``L*`` the best value any solver found).

**Time to target** of a curve: the iterations, samples, epochs, gradient evaluations and
training seconds at its first log point meeting the target; ``inf`` when none does (a
failure). Quartiles are taken over the seeds with failures as ``inf``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fairbench.errors import FairbenchError
from fairbench.report.grouping import Entry, Experiment, format_value, short_key, slugify

#: (trajectory column, title) of the measures of a time to target
MEASURES = (("iteration", "iterations"), ("samples", "samples"), ("epoch", "epochs"),
            ("grad_evals", "gradient evaluations"), ("train_seconds", "seconds"))
NEEDED = ("train_loss", "train_max_violation", *(column for column, _ in MEASURES))
COUNTED = ("completed", "diverged")  # a diverged seed is a failure; interrupted/missing ones are no data


@dataclass(frozen=True)
class TargetSpec:
    tolerance: float
    margin: float
    loss: float | None = None  # the user's target (one task only)


@dataclass
class Curve:
    method: str
    entry: Entry
    split_seed: int | None
    seed: int
    status: str
    trajectory: pd.DataFrame


@dataclass
class Task:
    title: str
    slug: str
    methods: list[str]
    curves: list[Curve] = field(default_factory=list)
    target: float | None = None
    why_none: str = ""  # why the task has no target

    def curves_of(self, method: str) -> list[Curve]:
        return [c for c in self.curves if c.method == method]


def method_name(entry: Entry) -> str:
    detail = ", ".join(f"{short_key(k)}={format_value(v)}" for k, v in entry.overrides.items())
    return f"{entry.method} ({detail})" if detail else entry.method


def model_key(entry: Entry) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in sorted(entry.run.flat_config.items())
                     if k.startswith("model."))


def build_tasks(shown: list[tuple[Experiment, list[Entry]]]) -> list[Task]:
    """The tasks of the shown entries, their methods and their curves (no target yet)."""
    tasks = []
    for experiment, entries in shown:
        by_model: dict[str, list[Entry]] = defaultdict(list)
        for entry in entries:
            by_model[model_key(entry)].append(entry)
        for model, members in by_model.items():
            title = experiment.title + (f" [{model}]" if len(by_model) > 1 and model else "")
            task = Task(title, slugify(experiment.slug + (" " + model if len(by_model) > 1 else "")), [])
            for entry in members:
                name = method_name(entry)
                if name not in task.methods:
                    task.methods.append(name)
                for seed in entry.run.seeds:
                    frame = seed.trajectory
                    if seed.status in COUNTED and frame is not None and all(c in frame for c in NEEDED):
                        task.curves.append(Curve(name, entry, entry.run.split_seed, seed.seed, seed.status, frame))
            tasks.append(task)
    return tasks


def feasible(frame: pd.DataFrame, tolerance: float) -> np.ndarray:
    return (frame["train_max_violation"].to_numpy(float) <= tolerance)


def task_target(task: Task, spec: TargetSpec) -> tuple[float | None, str]:
    """``(target, why)``: the task's target, or ``None`` and why no run defines one."""
    if spec.loss is not None:
        return spec.loss, ""
    if not task.curves:
        return None, "no seed has a trajectory with train_loss, train_max_violation and the budget columns"
    best = [np.nanmin(np.where(feasible(c.trajectory, spec.tolerance), c.trajectory["train_loss"], np.nan))
            for c in task.curves if feasible(c.trajectory, spec.tolerance).any()]
    best = [b for b in best if math.isfinite(b)]
    if not best:
        return None, f"no logged point of any run has train max violation <= {spec.tolerance:g}"
    low = min(best)
    start = float(np.median([c.trajectory["train_loss"].iloc[0] for c in task.curves]))
    return low + spec.margin * max(start - low, 0.0), ""


def set_targets(tasks: list[Task], spec: TargetSpec, strict: bool) -> None:
    """Give every task its target. ``strict`` (the user asked for targets explicitly): a task
    without one, or one ``--target-loss`` over several tasks, is an error (exit 2)."""
    if spec.loss is not None and len(tasks) > 1:
        raise FairbenchError(f"--target-loss {spec.loss:g}: one absolute loss for runs of {len(tasks)} tasks "
                             f"({'; '.join(t.title for t in tasks[:3])}); accepted only for runs of one task, "
                             "else use --target-margin")
    for task in tasks:
        task.target, task.why_none = task_target(task, spec)
        if strict and task.target is None:
            raise FairbenchError(f"target: no run of task {task.title!r} defines one ({task.why_none}); "
                                 "accepted: a --tolerance some run meets, or --target-loss")


def time_to_target(frame: pd.DataFrame, target: float, tolerance: float) -> dict[str, float]:
    """Every measure of :data:`MEASURES` at the first row meeting the target; ``inf`` if none."""
    hit = (frame["train_loss"].to_numpy(float) <= target) & feasible(frame, tolerance)
    if not hit.any():
        return {column: math.inf for column, _ in MEASURES}
    row = frame.iloc[int(np.argmax(hit))]
    return {column: float(row[column]) for column, _ in MEASURES}


def quartiles(values) -> tuple[float, float, float]:
    """Q1, median, Q3 (linear interpolation), failures (``inf``) counted as the largest values: a
    quantile that falls on or next to a failure is ``inf``."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return (math.nan,) * 3
    finite = array[np.isfinite(array)]
    ceiling = float(finite.max()) if finite.size else 0.0
    stand_in = np.where(np.isinf(array), 1e300, array)
    q = np.quantile(stand_in, [0.25, 0.5, 0.75])
    q1, q2, q3 = (math.inf if v > ceiling else float(v) for v in q)
    return q1, q2, q3


def times_frame(tasks: list[Task], tolerance: float) -> pd.DataFrame:
    """One row per curve of a task with a target: identity, status and every time to target."""
    rows = []
    for task in tasks:
        if task.target is None:
            continue
        for curve in task.curves:
            rows.append({"task": task.title, "method": curve.method, "run": str(curve.entry.run.path),
                         "split_seed": curve.split_seed, "seed": curve.seed, "status": curve.status,
                         "target_loss": task.target, "tolerance": tolerance,
                         **time_to_target(curve.trajectory, task.target, tolerance)})
    return pd.DataFrame(rows, columns=["task", "method", "run", "split_seed", "seed", "status", "target_loss",
                                       "tolerance", *(c for c, _ in MEASURES)])


def summary_rows(times: pd.DataFrame, task: Task) -> list[dict]:
    """Per method of ``task``: seeds, failures and (Q1, median, Q3) of every measure."""
    out = []
    for method in task.methods:
        mine = times[(times["task"] == task.title) & (times["method"] == method)]
        row = {"method": method, "seeds": len(mine), "failures": int(np.isinf(mine["iteration"]).sum())}
        for column, _ in MEASURES:
            row[column] = quartiles(mine[column])
        out.append(row)
    return out


def fmt(value: float) -> str:
    return "∞" if math.isinf(value) else ("n/a" if math.isnan(value) else f"{value:.4g}")
