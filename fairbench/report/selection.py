"""Hyperparameter selection on a sweep (the paper's appendix B), with a stated rule.

Score of a combination: the loss and the max constraint violation of the last ``K`` logged
states of every completed seed's trajectory, pooled (so the std reflects both the
oscillation of the late iterates and the spread over seeds), on the train and validation
splits. ``max_violation`` is ``max(0, max_j c_j)``, hence never negative.

Rule (validation split): among the *eligible* combinations -- at least one completed seed,
no diverged seed, and mean validation max-violation ``<= tol`` -- choose the lowest mean
validation loss (ties: lower violation, then label). The default ``tol = 1e-3`` stands for
the paper's "(near) zero violation": exact zero is unattainable for stochastic iterates that
hover at the constraint boundary, and 1e-3 is a fifth of the paper's smallest bound
(δ = 0.005). When nothing is eligible no combination is chosen; the least violating one is
named instead, clearly marked as not satisfying the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fairbench.recorder import mean_std
from fairbench.report.grouping import Entry, Experiment, Method, override_line, short_key
from fairbench.report.document import Block, CodeBlock, Heading, Paragraph, Table
from fairbench.report.tables import cell

SCORE_SPLITS = ("val", "train")
QUANTITIES = ("loss", "max_violation")
DEFAULT_LAST = 20
DEFAULT_TOL = 1e-3


@dataclass
class Score:
    """One combination of a sweep, scored over its last ``K`` logged states."""

    entry: Entry
    override: str
    stats: dict[str, dict[str, float | None]]  # "val_loss" -> {"mean","std","n"}
    n_seeds: int
    n_diverged: int
    eligible: bool
    reason: str

    def value(self, key: str) -> float:
        mean = self.stats.get(key, {}).get("mean")
        return float("inf") if mean is None else float(mean)


@dataclass
class Selection:
    experiment: str
    method: Method
    scores: list[Score]
    chosen: Score | None
    closest: Score | None  # least violating, only when nothing is eligible

    @property
    def representative(self) -> Score | None:
        return self.chosen or self.closest


def rule_text(last: int, tol: float) -> str:
    return (f"Score: mean and std of the loss and of the max constraint violation over the last {last} "
            f"logged states of all completed seeds (pooled). Rule: among combinations with at least one "
            f"completed seed, no diverged seed and mean validation max-violation <= {tol:g}, choose the "
            f"lowest mean validation loss (ties: lower violation, then name). If none qualifies, none is "
            f"chosen and the least violating is shown instead.")


def score_entry(method: Method, entry: Entry, last: int, tol: float) -> Score:
    seeds = [s for s in entry.run.completed if s.trajectory is not None]
    n_diverged = sum(s.status == "diverged" for s in entry.run.seeds)
    stats: dict[str, dict[str, Any]] = {}
    for split in SCORE_SPLITS:
        for quantity in QUANTITIES:
            column = f"{split}_{quantity}"
            values = [s.trajectory[column].tail(last).to_numpy(dtype=float) for s in seeds
                      if column in s.trajectory.columns]
            stats[column] = mean_std(np.concatenate(values).tolist() if values else [])
    reasons = []
    if not seeds:
        reasons.append("no completed seed with a trajectory")
    if n_diverged:
        reasons.append(f"{n_diverged} seed(s) diverged")
    violation = stats["val_max_violation"]["mean"]
    if seeds and violation is None:
        reasons.append("no validation columns in trajectory")
    elif violation is not None and violation > tol:
        reasons.append(f"validation violation {violation:.4g} > tol {tol:g}")
    return Score(entry, override_line(method, entry), stats, len(seeds), n_diverged, not reasons,
                 "; ".join(reasons) or "eligible")


def select(experiment: Experiment, method: Method, last: int, tol: float) -> Selection:
    scores = [score_entry(method, e, last, tol) for e in method.entries]
    eligible = [s for s in scores if s.eligible]
    chosen = min(eligible, key=lambda s: (s.value("val_loss"), s.value("val_max_violation"), s.entry.label),
                 default=None)
    closest = None
    if chosen is None:
        scored = [s for s in scores if s.n_seeds]
        closest = min(scored, key=lambda s: (s.value("val_max_violation"), s.value("val_loss"), s.entry.label),
                      default=None)
    return Selection(experiment.title, method, scores, chosen, closest)


def select_all(experiments: list[Experiment], last: int, tol: float) -> list[Selection]:
    return [select(x, m, last, tol) for x in experiments for m in x.methods if m.is_sweep]


def selection_blocks(selections: list[Selection], last: int, tol: float, level: int = 2) -> list[Block]:
    """Markdown/HTML blocks: the rule, one table per sweep and the chosen override line."""
    blocks: list[Block] = [Paragraph(rule_text(last, tol))]
    if not selections:
        return blocks + [Paragraph("No hyperparameter sweep found: no Hydra multirun holds several runs of one "
                                   "method that differ in its swept keys (other runs are shown one by one).")]
    for sel in selections:
        keys = ", ".join(short_key(k) for k in sel.method.varying)
        where = f", sweep {sel.method.sweep.name}" if sel.method.sweep is not None else ""
        blocks.append(Heading(f"{sel.method.name} on {sel.experiment}{where} (varying: {keys})", level))
        header = ["Combination", "Seeds", "Val loss", "Val max viol.", "Train loss", "Train max viol.", "Status"]
        rows = []
        for s in sel.scores:
            mark = " **(chosen)**" if s is sel.chosen else ""
            rows.append([s.entry.label + mark, f"{s.n_seeds}/{len(s.entry.run.seeds)}",
                         *(cell(s.stats[f"{sp}_{q}"]) for sp in SCORE_SPLITS for q in QUANTITIES), s.reason])
        blocks.append(Table(header, rows))
        if sel.chosen is not None:
            blocks += [Paragraph("Chosen combination (paste into a run):"), CodeBlock(sel.chosen.override)]
        elif sel.closest is not None:
            blocks += [Paragraph(f"No combination satisfies the rule. Least violating (NOT selected): "
                                 f"{sel.closest.entry.label}"), CodeBlock(sel.closest.override)]
        else:
            blocks.append(Paragraph("No combination has a completed seed: nothing to select."))
    return blocks


def selection_json(selections: list[Selection], last: int, tol: float) -> dict[str, Any]:
    def score(s: Score) -> dict[str, Any]:
        return {"label": s.entry.label, "run": str(s.entry.run.path), "override": s.override,
                "hyperparameters": s.entry.overrides, "seeds_completed": s.n_seeds,
                "seeds_diverged": s.n_diverged, "eligible": s.eligible, "reason": s.reason, **s.stats}

    return {
        "rule": rule_text(last, tol), "last": last, "tol": tol, "split": "val",
        "sweeps": [{
            "experiment": sel.experiment, "method": sel.method.name, "varying": sel.method.varying,
            "sweep": str(sel.method.sweep) if sel.method.sweep is not None else None,
            "chosen": sel.chosen.override if sel.chosen else None,
            "chosen_label": sel.chosen.entry.label if sel.chosen else None,
            "closest_not_selected": sel.closest.override if sel.closest else None,
            "combinations": [score(s) for s in sel.scores],
        } for sel in selections],
    }
