"""Variance you can read: the two seed axes apart, and test fairness gaps with intervals.

**Two seed axes.** A final metric ``y[i, k]`` of a method on split seed ``i``
(``dataset.split.seed``: which rows train and which test) and initialisation seed ``k`` is
split by the one-way random-effects analysis of variance (method of moments; Searle, Casella
& McCulloch, *Variance Components*, 1992, ch. 3): with ``n_i`` seeds on split ``i``,

    init-seed variance  s_w^2 = pooled within-split sample variance,
    split-seed variance s_b^2 = max(0, var_i(mean_k y[i, k]) - s_w^2 / n_bar),

``n_bar`` the mean ``n_i``. One split seed gives ``s_b^2`` as "n/a" (the axis was not swept).

**Test gaps with intervals.** The final predicted probabilities on the test split
(``seed_<k>/scores_test.npz``) give, per seed, the group mean losses (binary cross-entropy
from the saved float32 probabilities, clipped to ``[1e-7, 1 - 1e-7]``), hence the constraint
values ``c`` (the run's ``problem`` settings) and their maximum, and the independence gap
(largest difference of the groups' positive rates at 0.5). Test rows are resampled with
replacement (the same draw for every seed of a run, since they share the test set; split
seeds independently) and each statistic is averaged over the method's seeds: the percentile
interval at the stated level is its confidence interval. **Verdict** on the constraint:
*holds* when the interval of the mean ``max_j c_j`` lies at or below 0, *violated* when it
lies above 0, *undecided* otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fairbench.problems.constraints import ConstraintSpec
from fairbench.problems.statistics import CELL_LABELS, label_counts, row_values_np
from fairbench.report.collect import Issue, read_scores
from fairbench.report.stats import BOOTSTRAP_SEED, bootstrap_interval
from fairbench.report.targets import Task

#: (metrics.json test key, title) of the decomposed final metrics
DECOMPOSED = (("loss", "test loss"), ("max_violation", "test max violation"), ("ind", "test Ind"))
CLIP = 1e-7


def decompose(values_by_split: dict) -> tuple[float, float, int, int]:
    """``(split-seed variance, init-seed variance, splits, values)`` of ``{split seed: [values]}``
    (see the module doc); NaN where the design cannot say."""
    groups = [np.asarray([v for v in vs if v is not None and math.isfinite(v)], dtype=float)
              for vs in values_by_split.values()]
    groups = [g for g in groups if g.size]
    n = sum(g.size for g in groups)
    dof = sum(g.size - 1 for g in groups)
    within = sum(float(((g - g.mean()) ** 2).sum()) for g in groups) / dof if dof > 0 else math.nan
    if len(groups) < 2:
        return math.nan, within, len(groups), n
    means = np.array([g.mean() for g in groups])
    n_bar = n / len(groups)
    between = float(means.var(ddof=1)) - (within / n_bar if math.isfinite(within) else 0.0)
    return max(between, 0.0), within, len(groups), n


def variance_rows(tasks: list[Task]) -> list[dict]:
    """Per task, method and decomposed metric: both variances over the completed seeds."""
    rows = []
    for task in tasks:
        for method in task.methods:
            curves = [c for c in task.curves_of(method) if c.status == "completed"]
            for key, title in DECOMPOSED:
                by_split: dict = {}
                for curve in curves:
                    seed = next(s for s in curve.entry.run.seeds if s.seed == curve.seed)
                    by_split.setdefault(curve.split_seed, []).append(seed.metrics["splits"]["test"].get(key))
                split_var, init_var, splits, n = decompose(by_split)
                rows.append({"task": task.title, "method": method, "metric": title, "split_seeds": splits,
                             "values": n, "split_seed_variance": split_var, "init_seed_variance": init_var})
    return rows


@dataclass
class SeedScores:
    values: np.ndarray  # per-row quantity of the constraints' statistic (BCE for loss, soft rate, ...)
    cell: np.ndarray  # each row's cell (its group, or group within its label block); -1: in none
    positive: np.ndarray  # per-row prediction >= 0.5
    group: np.ndarray


def group_means(values: np.ndarray, group: np.ndarray, idx: np.ndarray, n_groups: int) -> np.ndarray:
    """(B, G) group (or cell) means of ``values`` over each bootstrap draw of rows ``idx`` (B, n)."""
    out = np.empty((idx.shape[0], n_groups))
    for g in range(n_groups):
        member = (group == g)
        counts = member[idx].sum(axis=1)
        out[:, g] = (values * member)[idx].sum(axis=1) / np.maximum(counts, 1)
    return out


def seed_scores(arrays, spec: ConstraintSpec, n_groups: int) -> SeedScores:
    """A seed's test rows as the constraints see them: the statistic's per-row quantity (from
    the logit of the saved score, at the problem's temperature) and each row's cell."""
    p = np.clip(arrays.scores, CLIP, 1 - CLIP)
    y = arrays.y.astype(float)
    group = arrays.group
    z = np.log(p) - np.log1p(-p)
    values = row_values_np(spec.statistic, z, y, 1.0 / spec.temperature)
    labels = CELL_LABELS[spec.statistic]
    if labels is None:
        cell = group
    else:
        cell = np.full(group.shape, -1)
        for b, label in enumerate(labels):
            rows = y == label
            cell[rows] = b * n_groups + group[rows]
    return SeedScores(values, cell, (arrays.scores >= 0.5).astype(float), group)


def run_draws(curves, spec: ConstraintSpec, proportions, names, draws: int, rng, issues,
              counts: np.ndarray | None = None) -> np.ndarray | None:
    """(B, seeds, 2): bootstrap draws of (max_j c_j, Ind) for each seed of one run, or None
    (``counts``: the training counts per group and label, which a conditional rate binds)."""
    seeds = []
    for curve in curves:
        seed = next(s for s in curve.entry.run.seeds if s.seed == curve.seed)
        arrays = read_scores(seed, "test", issues)
        if arrays is None:
            continue
        seeds.append(seed_scores(arrays, spec, len(names)))
    if not seeds:
        return None
    n = seeds[0].group.size
    if any(s.group.size != n for s in seeds):
        return None
    bound = spec.bind(proportions, names, counts)
    idx = np.vstack([np.arange(n), rng.integers(0, n, (draws, n))])  # row 0: the test set itself
    out = np.empty((draws + 1, len(seeds), 2))
    for k, s in enumerate(seeds):
        stats = group_means(s.values, s.cell, idx, bound.n_cells)
        rates = group_means(s.positive, s.group, idx, len(names))
        out[:, k, 0] = bound.values(stats).max(axis=1)
        out[:, k, 1] = rates.max(axis=1) - rates.min(axis=1)
    return out


def gap_rows(tasks: list[Task], level: float, draws: int, issues: list[Issue]) -> list[dict]:
    """Per task and method: the mean test max_j c_j and Ind over seeds, their bootstrap
    intervals at ``level`` and the verdict on the constraint."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    rows = []
    for task in tasks:
        for method in task.methods:
            curves = [c for c in task.curves_of(method) if c.status == "completed"]
            per_run: dict = {}
            for curve in curves:
                per_run.setdefault(curve.entry.run.path, []).append(curve)
            parts = []
            for path, members in per_run.items():
                run = members[0].entry.run
                flat = run.flat_config
                try:
                    # (runs written before temperature and aggregate existed: a plain sigmoid, no aggregate)
                    spec = ConstraintSpec(delta=float(flat["problem.delta"]), family=flat["problem.family"],
                                          form=flat["problem.form"], statistic=flat["problem.statistic"],
                                          temperature=float(flat.get("problem.temperature", 1.0)),
                                          aggregate=flat.get("problem.aggregate"))
                except Exception as err:  # noqa: BLE001 - odd or missing problem settings are issues
                    issues.append(Issue(path / "config.yaml", f"no test-gap interval: problem settings ({err})"))
                    continue
                names = run.group_names
                train = [read_scores(s, "train", issues) for s in run.completed]
                train = [t for t in train if t is not None]
                share = (np.bincount(train[0].group, minlength=len(names)) / train[0].group.size if train
                         else np.full(len(names), 1 / max(len(names), 1)))
                if spec.family == "vs_all" and len(names) > 2 and not train:
                    issues.append(Issue(path, "no test-gap interval: vs_all constraints need scores_train.npz"))
                    continue
                counts = None
                if CELL_LABELS[spec.statistic] is not None:
                    source = train[0] if train else None
                    if source is None:
                        issues.append(Issue(path, "no test-gap interval: a conditional rate needs scores_train.npz"))
                        continue
                    counts = label_counts(source.group, source.y.astype(int), len(names))
                draw = run_draws(members, spec, share, names, draws, rng, issues, counts)
                if draw is not None:
                    parts.append(draw)
            if not parts:
                continue
            stacked = np.concatenate(parts, axis=1).mean(axis=1)  # (B + 1, 2): the seeds' mean
            (c_lo, c_hi), (i_lo, i_hi) = (bootstrap_interval(stacked[1:, j], level) for j in range(2))
            verdict = "holds" if c_hi <= 0 else ("violated" if c_lo > 0 else "undecided")
            rows.append({"task": task.title, "method": method, "seeds": int(sum(p.shape[1] for p in parts)),
                         "test_max_c": float(stacked[0, 0]), "test_max_c_lo": c_lo, "test_max_c_hi": c_hi,
                         "test_ind": float(stacked[0, 1]), "test_ind_lo": i_lo, "test_ind_hi": i_hi,
                         "level": level, "verdict": verdict})
    return rows
