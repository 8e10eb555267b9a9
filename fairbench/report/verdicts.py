"""The report's verdicts: optimality at the end, time to a feasible target, profiles and
scores over the suite, paired tests, the two seed variances and test gaps with intervals.

:func:`compute_verdicts` does every computation (and refuses bad requests, before anything is
written); :func:`verdict_blocks` renders them; :func:`verdict_tables` gives the Parquet tables.
The definitions are in :mod:`.targets`, :mod:`.profiles`, :mod:`.stats` and :mod:`.variance`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from fairbench.report.collect import Issue
from fairbench.report.document import Block, Heading, Paragraph, Table
from fairbench.report.profiles import area_scores, problem_matrix, profiles_figure, ratios
from fairbench.report.stats import mean_ranks, paired_tests
from fairbench.report.targets import MEASURES, TargetSpec, Task, build_tasks, fmt, set_targets, summary_rows, times_frame
from fairbench.report.variance import gap_rows, variance_rows

DEFAULT_TOLERANCE = 1e-3
DEFAULT_MARGIN = 0.1
DEFAULT_RATIO = 4.0
DEFAULT_LEVEL = 0.95
DEFAULT_DRAWS = 1000


@dataclass(frozen=True)
class VerdictOptions:
    tolerance: float = DEFAULT_TOLERANCE
    margin: float = DEFAULT_MARGIN
    target_loss: float | None = None
    profile_ratio: float = DEFAULT_RATIO
    level: float = DEFAULT_LEVEL
    draws: int = DEFAULT_DRAWS
    strict: bool = False  # the user set the target: a task without one is an error


@dataclass
class Verdicts:
    options: VerdictOptions
    tasks: list[Task]
    times: pd.DataFrame
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    tests: pd.DataFrame = field(default_factory=pd.DataFrame)
    variances: pd.DataFrame = field(default_factory=pd.DataFrame)
    gaps: pd.DataFrame = field(default_factory=pd.DataFrame)
    optimality: pd.DataFrame = field(default_factory=pd.DataFrame)
    matrices: dict = field(default_factory=dict)
    dropped: int = 0


def final_optimality(tasks: list[Task]) -> pd.DataFrame:
    """Per task and method: median over completed seeds of the last row's optimality columns."""
    rows = []
    for task in tasks:
        for method in task.methods:
            last = [c.trajectory.iloc[-1] for c in task.curves_of(method) if c.status == "completed"]
            row = {"task": task.title, "method": method, "seeds": len(last)}
            for column in ("train_loss", "train_max_violation", "train_stationarity", "train_complementarity"):
                values = [float(r[column]) for r in last if column in r.index]
                row[column] = float(np.median(values)) if values else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def compute_verdicts(shown, options: VerdictOptions, issues: list[Issue]) -> Verdicts:
    """Everything the verdict sections show; raises :class:`FairbenchError` on a bad request."""
    tasks = build_tasks(shown)
    set_targets(tasks, TargetSpec(options.tolerance, options.margin, options.target_loss), options.strict)
    times = times_frame(tasks, options.tolerance)
    verdicts = Verdicts(options, tasks, times, optimality=final_optimality(tasks))
    if not times.empty:
        methods, T_samples, dropped = problem_matrix(times, "samples")
        _, T_seconds, _ = problem_matrix(times, "train_seconds")
        _, T_epochs, _ = problem_matrix(times, "epoch")
        verdicts.dropped = dropped
        verdicts.matrices = {"methods": methods, "samples": T_samples, "seconds": T_seconds, "epochs": T_epochs}
        if T_samples.size:
            tau = options.profile_ratio
            verdicts.scores = pd.DataFrame({
                "method": methods, "problems": (~np.isnan(T_samples)).sum(axis=0),
                "solved": np.isfinite(T_samples).sum(axis=0),
                "score_samples": area_scores(ratios(T_samples), tau), "score_seconds": area_scores(ratios(T_seconds), tau),
                "mean_rank_samples": mean_ranks(T_samples), "mean_rank_seconds": mean_ranks(T_seconds),
                "profile_ratio": tau}).sort_values("score_samples", ascending=False, kind="stable")
            alpha = 1 - options.level
            verdicts.tests = pd.DataFrame([{"measure": name, **row} for name, T in (("samples", T_samples),
                                                                                   ("seconds", T_seconds))
                                           for row in paired_tests(methods, T, alpha)])
    verdicts.variances = pd.DataFrame(variance_rows(tasks))
    verdicts.gaps = pd.DataFrame(gap_rows(tasks, options.level, options.draws, issues))
    return verdicts


def g(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def frame_table(frame: pd.DataFrame, columns: list[tuple[str, str]]) -> Table:
    return Table([title for _, title in columns],
                 [[v if isinstance(v, str) else g(v) for v in (row[c] for c, _ in columns)]
                  for _, row in frame.iterrows()])


def verdict_blocks(v: Verdicts, figures) -> list[Block]:
    o = v.options
    blocks: list[Block] = [Heading("Optimality at the end (training split)")]
    if not v.optimality.empty:
        blocks += [Paragraph("Median over completed seeds of the last logged point: stationarity ‖∇f + Jᵀλ‖ with the "
                             "method's multipliers, or least-squares multipliers for methods that keep none; "
                             "complementarity Σ|λ_j c_j| (docs/verdicts.md). n/a: runs older than these columns."),
                   frame_table(v.optimality, [("task", "Task"), ("method", "Method"), ("seeds", "Seeds"),
                                              ("train_loss", "Train loss"), ("train_max_violation", "Max viol."),
                                              ("train_stationarity", "Stationarity"),
                                              ("train_complementarity", "Complementarity")])]
    target = (f"the user's training loss {o.target_loss:g}" if o.target_loss is not None else
              f"L* + {o.margin:g}·(L0 − L*), L* the best training loss any run of the task reached with max violation "
              f"≤ {o.tolerance:g}, L0 the median initial loss")
    blocks += [Heading("Time to a feasible target"),
               Paragraph(f"Target: training loss ≤ {target}, and training max violation ≤ {o.tolerance:g}, at a log "
                         "point. Median [Q1, Q3] over seeds (split and initialisation seeds); a failure (never, or "
                         "diverged) counts as ∞.")]
    for task in v.tasks:
        if task.target is None:
            blocks.append(Paragraph(f"{task.title}: no target ({task.why_none})."))
            continue
        rows = []
        for row in summary_rows(v.times, task):
            rows.append([row["method"], str(row["seeds"]), str(row["failures"])] +
                        [f"{fmt(row[c][1])} [{fmt(row[c][0])}, {fmt(row[c][2])}]" for c, _ in MEASURES])
        blocks += [Heading(f"{task.title} (target loss {task.target:.5g})", 3),
                   Table(["Method", "Seeds", "Failures", *(title for _, title in MEASURES)], rows)]
    blocks.append(Heading("Profiles and scores over the suite"))
    if v.scores.empty:
        blocks.append(Paragraph("No problem with a target: no profile."))
    else:
        m = v.matrices
        problems = m["samples"].shape[0]
        blocks += [Paragraph(f"{problems} problems (task × split seed × initialisation seed"
                             + (f"; {v.dropped} dropped: not run by every method of their task" if v.dropped else "")
                             + f"). Score: area under the performance profile on [1, {o.profile_ratio:g}], "
                             "normalised (1: fastest on every problem). Mean rank: 1 = fastest."),
                   frame_table(v.scores, [("method", "Method"), ("problems", "Problems"), ("solved", "Solved"),
                                          ("score_samples", "Score (samples)"), ("score_seconds", "Score (seconds)"),
                                          ("mean_rank_samples", "Mean rank (samples)"),
                                          ("mean_rank_seconds", "Mean rank (seconds)")])]
        blocks += figures.add("verdict_profiles_suite", "Performance profiles in samples and seconds (top), data profiles "
                              "in epochs and seconds (bottom), over every problem of the suite.",
                              partial(profiles_figure, m["methods"], m["samples"], m["seconds"], m["epochs"],
                                      o.profile_ratio, "Suite"))
        if not v.tests.empty:
            blocks += [Paragraph(f"Paired comparisons on the same problems: Wilcoxon signed-rank on log time to "
                                 f"target (failures slower than any success), Holm-corrected over all pairs; "
                                 f"verdict at level {1 - o.level:g}."),
                       frame_table(v.tests, [("measure", "Measure"), ("a", "A"), ("b", "B"), ("problems", "Problems"),
                                             ("a_faster", "A faster"), ("b_faster", "B faster"), ("ties", "Ties"),
                                             ("median_log2_ratio", "Median log2(T_A/T_B)"), ("p", "p"),
                                             ("p_holm", "p (Holm)"), ("verdict", "Verdict")])]
    blocks.append(Heading("Variance: split seeds and initialisation seeds"))
    if not v.variances.empty:
        blocks += [Paragraph("One-way random-effects decomposition of final test metrics over completed seeds: "
                             "between split seeds (dataset.split.seed) and between initialisation seeds within a "
                             "split. n/a: one split seed (the axis was not swept)."),
                   frame_table(v.variances, [("task", "Task"), ("method", "Method"), ("metric", "Metric"),
                                             ("split_seeds", "Split seeds"), ("values", "Seeds"),
                                             ("split_seed_variance", "Split-seed variance"),
                                             ("init_seed_variance", "Init-seed variance")])]
    blocks.append(Heading("Test fairness gaps with confidence intervals"))
    if v.gaps.empty:
        blocks.append(Paragraph("No seed_<k>/scores_test.npz: no interval."))
    else:
        blocks += [Paragraph(f"Mean over seeds of the test max_j c_j (≤ 0: the constraint holds) and of the test "
                             f"independence gap Ind, with {o.level:.0%} bootstrap intervals over test rows "
                             f"({o.draws} draws). Verdict: holds when the interval of max_j c_j is ≤ 0, violated when "
                             "it is > 0, else undecided."),
                   frame_table(v.gaps, [("task", "Task"), ("method", "Method"), ("seeds", "Seeds"),
                                        ("test_max_c", "Test max c"), ("test_max_c_lo", "lo"), ("test_max_c_hi", "hi"),
                                        ("test_ind", "Test Ind"), ("test_ind_lo", "lo"), ("test_ind_hi", "hi"),
                                        ("verdict", "Constraint on test")])]
    return blocks


def verdict_tables(v: Verdicts) -> dict[str, pd.DataFrame]:
    return {"time_to_target": v.times, "profile_scores": v.scores, "paired_tests": v.tests,
            "variance": v.variances, "test_gaps": v.gaps, "final_optimality": v.optimality}


def verdict_settings(v: Verdicts) -> dict:
    o = v.options
    return {"tolerance": o.tolerance, "target_margin": o.margin, "target_loss_given": o.target_loss,
            "profile_ratio": o.profile_ratio, "level": o.level}
