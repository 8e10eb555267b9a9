"""The fairness table (the paper's Table 4) as Markdown, LaTeX (booktabs) and CSV.

Numbers are recomputed from every completed seed's ``metrics.json`` (not taken from
``summary.json``), so the table is right even when a summary is stale or missing: mean and
sample std (ddof = 1; 0 for a single seed) via :func:`fairbench.recorder.mean_std`, the same
function the runner's summary uses.
"""

from __future__ import annotations

import csv
import io

from fairbench.recorder import mean_std
from fairbench.report.collect import Run
from fairbench.report.document import Block, Heading, Paragraph, Table
from fairbench.report.grouping import Entry, Experiment

#: (metrics.json key, column title); every one is "smaller is better" except AUC
TABLE_METRICS = (("ind", "Ind"), ("sp", "Sp"), ("sf", "Sf"), ("ina", "Ina"), ("wd", "Wd"), ("auc", "AUC"),
                 ("loss", "Loss"), ("max_violation", "Max viol."), ("max_violation_true", "Max viol. (true)"))
TABLE_SPLITS = ("train", "test")
CAPTION = ("Mean ± sample std over completed seeds. Ind: independence gap; Sp: separation (TPR + FPR gaps); "
           "Sf: sufficiency (PPV + NPV gaps); Ina: error rate; Wd: 1-Wasserstein distance between the groups' "
           "score distributions; AUC: pooled ROC AUC (larger is better); Loss: BCE; Max viol.: max(0, max_j c_j) on the statistics trained on (mean losses or soft "
           "rates); Max viol. (true): the same constraints on the true statistics of the thresholded predictions "
           "(0-1 error for the loss; n/a for runs without it). "
           "Gaps over more than two groups are the largest pairwise gap.")

Stats = dict[tuple[str, str], dict[str, float | None]]


def run_stats(run: Run) -> Stats:
    """``(split, metric) -> {"mean", "std", "n"}`` over the run's completed seeds."""
    completed = run.completed
    return {(split, key): mean_std([s.metrics["splits"][split].get(key) for s in completed])
            for split in TABLE_SPLITS for key, _ in TABLE_METRICS}


def cell(stats: dict[str, float | None]) -> str:
    return "n/a" if stats.get("mean") is None else f"{stats['mean']:.4f} ± {stats['std']:.4f}"


def latex_cell(stats: dict[str, float | None]) -> str:
    return "n/a" if stats.get("mean") is None else rf"${stats['mean']:.4f} \pm {stats['std']:.4f}$"


def seeds_cell(run: Run) -> str:
    return f"{len(run.completed)}/{len(run.seeds)}"


def table_blocks(shown: list[tuple[Experiment, list[Entry]]], level: int = 3) -> list[Block]:
    """One Markdown/HTML table per experiment: a row per method and split."""
    blocks: list[Block] = []
    header = ["Method", "Seeds", "Split", *(title for _, title in TABLE_METRICS)]
    for experiment, entries in shown:
        rows = []
        for entry in entries:
            stats = run_stats(entry.run)
            for i, split in enumerate(TABLE_SPLITS):
                first = [entry.label, seeds_cell(entry.run)] if i == 0 else ["", ""]
                rows.append(first + [split] + [cell(stats[(split, key)]) for key, _ in TABLE_METRICS])
        blocks += [Heading(experiment.title, level), Table(header, rows)]
    return blocks + [Paragraph(CAPTION)]


def csv_table(shown: list[tuple[Experiment, list[Entry]]]) -> str:
    """Full-precision CSV: a row per method, mean and std in separate columns."""
    columns = ["experiment", "dataset", "delta", "method", "algo", "problem", "run", "seeds_completed", "seeds_total"]
    columns += [f"{split}_{key}_{stat}" for split in TABLE_SPLITS for key, _ in TABLE_METRICS
                for stat in ("mean", "std")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for experiment, entries in shown:
        for entry in entries:
            run = entry.run
            row = {"experiment": experiment.title, "dataset": run.dataset, "delta": run.delta,
                   "method": entry.label, "algo": run.algo, "problem": run.problem, "run": str(run.path),
                   "seeds_completed": len(run.completed), "seeds_total": len(run.seeds)}
            for (split, key), stats in run_stats(run).items():
                for stat in ("mean", "std"):
                    value = stats[stat]
                    row[f"{split}_{key}_{stat}"] = "" if value is None else repr(value)
            writer.writerow(row)
    return buffer.getvalue()


def latex_escape(text: str) -> str:
    replacements = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                    "δ": r"$\delta$", "±": r"$\pm$"}
    return "".join(replacements.get(ch, ch) for ch in text)


def latex_table(shown: list[tuple[Experiment, list[Entry]]]) -> str:
    """One booktabs ``table`` per experiment (needs ``\\usepackage{booktabs}``)."""
    parts = ["% fairbench fairness table; requires \\usepackage{booktabs}"]
    titles = " & ".join(latex_escape(title) for _, title in TABLE_METRICS)
    for experiment, entries in shown:
        lines = [r"\begin{table}[t]", r"\centering", r"\small",
                 rf"\caption{{Fairness metrics, {latex_escape(experiment.title)}. {latex_escape(CAPTION)}}}",
                 r"\begin{tabular}{ll" + "c" * len(TABLE_METRICS) + "}", r"\toprule",
                 rf"Method & Split & {titles} \\", r"\midrule"]
        for n, entry in enumerate(entries):
            stats = run_stats(entry.run)
            if n:
                lines.append(r"\addlinespace")
            for i, split in enumerate(TABLE_SPLITS):
                name = latex_escape(entry.label) if i == 0 else ""
                cells = " & ".join(latex_cell(stats[(split, key)]) for key, _ in TABLE_METRICS)
                lines.append(rf"{name} & {split} & {cells} \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
