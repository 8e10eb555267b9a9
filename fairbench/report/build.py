"""Assemble the whole report: read runs, select, write tables, figures, Markdown and HTML.

What is shown per method: every distinct run is a row of its own; a hyperparameter sweep (the
runs of one Hydra multirun that differ in its swept keys, :mod:`.grouping`) is represented
in the fairness table and the figures by its selected combination (or, when nothing meets
the rule, by its least violating one, marked as such), unless ``all_runs`` asks for every
combination. Every combination is always scored in the selection tables.

Nothing here raises on bad run data: unreadable files become :class:`Issue` entries, and a
figure that cannot be drawn is skipped with an issue naming it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TextIO

from matplotlib.figure import Figure

from fairbench.errors import FairbenchError
from fairbench.report.atomic import check_replaceable, staged_directory
from fairbench.report.collect import Issue, Run, find_run_dirs, one_line, read_runs
from fairbench.report.distributions import has_scores, scores_figure
from fairbench.report.document import Block, Bullets, Heading, Image, Links, Paragraph, Table, to_markdown
from fairbench.report.fronts import front_blocks
from fairbench.report.grouping import Entry, Experiment, group_runs, relative_names
from fairbench.report.html import to_html
from fairbench.report.radar import radar_figure
from fairbench.report.selection import (DEFAULT_LAST, DEFAULT_TOL, Selection, select_all, selection_blocks,
                                        selection_json)
from fairbench.report.shift import shift_blocks, shift_figure
from fairbench.report.style import save_figure
from fairbench.report.tables import csv_table, latex_table, table_blocks
from fairbench.report.trajectories import trajectory_figure
from fairbench.report.violations import violation_figure
from fairbench.report.verdicts import (VerdictOptions, compute_verdicts, verdict_blocks, verdict_settings,
                                       verdict_tables)
from fairbench.report.parquet import FOLDER as PARQUET_DIR, write_parquet
from fairbench.report.tuning import tuning_blocks

PROGRESS_MIN_RUNS = 10
FIGURE_DIR = "figures"
#: everything a report folder holds (its own files; a folder with others is not replaced)
ARTEFACTS = {"table.md", "table.tex", "table.csv", "selection.md", "selection.json", "report.md", "report.html",
             FIGURE_DIR, PARQUET_DIR}
Shown = list[tuple[Experiment, list[Entry]]]


@dataclass(frozen=True)
class Options:
    last: int = DEFAULT_LAST
    tol: float = DEFAULT_TOL
    all_runs: bool = False
    quiet: bool = False
    verdicts: VerdictOptions = VerdictOptions()


def shown_entries(experiments: list[Experiment], selections: list[Selection], all_runs: bool) -> Shown:
    """The runs that represent each method in the table and the figures."""
    representative = {id(s.method): s.representative for s in selections}
    shown = []
    for experiment in experiments:
        entries: list[Entry] = []
        for method in experiment.methods:
            chosen = representative.get(id(method))
            entries += method.entries if all_runs or chosen is None else [chosen.entry]
        shown.append((experiment, entries))
    return shown


class FigureWriter:
    """Saves figures under ``<out>/figures`` and turns failures into issues, never exceptions.

    ``named`` is the folder issues name (the report folder, when ``out`` is its staging copy).
    """

    def __init__(self, out: Path, issues: list[Issue], named: Path | None = None):
        self.out, self.issues, self.named = out, issues, named if named is not None else out

    def add(self, stem: str, caption: str, draw: Callable[[], Figure | None]) -> list[Block]:
        try:
            fig = draw()
            if fig is None:
                return []
            png, pdf = save_figure(fig, self.out / FIGURE_DIR, stem)
        except Exception as err:  # noqa: BLE001 - odd run data must not stop the rest of the report
            self.issues.append(Issue(self.named / FIGURE_DIR / f"{stem}.png", f"figure not drawn ({one_line(err)})"))
            return [Paragraph(f"Figure {stem} could not be drawn: see Problems.")]
        return [Image(f"{FIGURE_DIR}/{png}", f"{FIGURE_DIR}/{pdf}", caption)]


def figure_blocks(shown: Shown, figures: FigureWriter) -> list[Block]:
    blocks: list[Block] = [Heading("Training trajectories (Figures 1 and 2)")]
    for experiment, entries in shown:
        for x, name in (("iteration", "iterations"), ("train_seconds", "time")):
            blocks += figures.add(
                f"fig1_trajectories_{name}_{experiment.slug}",
                f"{experiment.title}: loss and constraint gaps against {name}, train and test; mean over completed "
                f"seeds with 25–75 % band; dashed lines: the bound.",
                partial(trajectory_figure, entries, experiment.delta, x, experiment.title))
    blocks.append(Heading("Surrogate vs true constraint violation"))
    for experiment, entries in shown:
        blocks += figures.add(f"violation_true_{experiment.slug}", f"{experiment.title}: max violation of the "
                              "constraints on the statistics trained on (solid) and on the thresholded predictions' "
                              "true statistics (dashed); mean over completed seeds with 25–75 % band.",
                              partial(violation_figure, entries, experiment.title))
    shift = [(x, e) for x, e in shown if shift_blocks(e)]
    if shift:
        blocks.append(Heading("Fairness under shift (states not trained on)"))
    for experiment, entries in shift:
        blocks += [*shift_blocks(entries), *figures.add(
            f"shift_{experiment.slug}", f"{experiment.title}: true max violation of the final model on the training "
            "states' test split (diamonds) and on each state it did not train on (dots); mean over completed seeds.",
            partial(shift_figure, entries, experiment.title))]
    blocks.append(Heading("Predicted probabilities per group (Figure 3)"))
    for experiment, entries in shown:
        missing = [e.label for e in entries if not has_scores(e)]
        if missing:
            which = "every method" if len(missing) == len(entries) else ", ".join(missing)
            blocks.append(Paragraph(f"{experiment.title}: skipped for {which}: no seed_<k>/scores_<split>.npz "
                                    "files (the runner does not write predicted scores yet)."))
        blocks += figures.add(f"fig3_scores_{experiment.slug}", f"{experiment.title}: densities of predicted "
                              "probabilities per group, completed seeds pooled; dotted: the 0.5 threshold.",
                              partial(scores_figure, entries, experiment.title, figures.issues))
    blocks.append(Heading("Fairness metrics per method (Figure 4)"))
    for experiment, entries in shown:
        blocks += figures.add(f"fig4_radar_{experiment.slug}", f"{experiment.title}: Ind, Sp, Sf, Ina, Wd and "
                              "1 − AUC per method, each axis scaled to its largest value; smaller is better.",
                              partial(radar_figure, entries, experiment.title))
    return blocks


def representation_block(selections: list[Selection], all_runs: bool) -> list[Block]:
    """Say which combination stands for each swept method (the table shows one row per method)."""
    if all_runs or not selections:
        return []
    items = []
    for sel in selections:
        rep = sel.representative
        if rep is None:
            items.append(f"{sel.method.name}: every combination (none has a completed seed)")
        else:
            how = "selected by the rule" if rep is sel.chosen else "least violating; the rule selected NONE"
            items.append(f"{sel.method.name}: {rep.entry.label} ({how})")
    return [Paragraph("Swept methods are represented in the table and figures by one combination "
                      "(all of them: --all-runs):"), Bullets(items)]


def runs_block(runs: list[Run], labels: dict[Path, str]) -> Table:
    names = relative_names([r.path for r in runs])
    rows = [[names[r.path], labels.get(r.path, r.algo), r.dataset + (" (SYNTHETIC)" if r.synthetic else ""),
             r.problem, f"{len(r.completed)}/{len(r.seeds)}", str(r.summary.get("status", "no summary"))]
            for r in runs]
    return Table(["Run", "Method", "Dataset", "Problem", "Seeds completed", "summary.json status"], rows)


def incomplete_block(runs: list[Run], labels: dict[Path, str]) -> list[Block]:
    rows = []
    for run in runs:
        for seed in run.seeds:
            if not seed.completed:
                iterations = (seed.metrics or {}).get("iterations", "")
                label = labels.get(run.path, run.algo)
                rows.append([label, str(run.path), str(seed.seed), seed.status, str(iterations)])
    if not rows:
        return [Paragraph("All seeds completed.")]
    return [Paragraph("Only completed seeds enter the tables and figures."),
            Table(["Method", "Run", "Seed", "Status", "Iterations"], rows)]


def write_files(out: Path, files: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")


def write_report(paths: list[Path], out: Path, options: Options, log: TextIO | None = None) -> list[Issue]:
    """Write every artefact into ``out``; return the problems found (also printed on ``log``, default stderr).

    The artefacts are written into a staging folder that replaces ``out`` only once all are
    written (:mod:`fairbench.report.atomic`)."""
    log = log if log is not None else sys.stderr
    check_replaceable(out, ARTEFACTS)
    issues: list[Issue] = []
    run_dirs = find_run_dirs(paths, issues, exclude=out)
    if not run_dirs:
        where = ", ".join(str(p) for p in paths)
        detail = f" ({'; '.join(str(i) for i in issues)})" if issues else ""
        raise FairbenchError(f"no run directories found in {where}{detail}: a run directory holds "
                             "config.yaml, summary.json or seed_<k>/")

    def progress(i: int, n: int, path: Path) -> None:
        if n >= PROGRESS_MIN_RUNS and not options.quiet:
            print(f"fairbench-report: reading run {i}/{n}: {path}", file=log, flush=True)

    runs = read_runs(run_dirs, issues, progress)
    experiments = group_runs(runs)
    selections = select_all(experiments, options.last, options.tol)
    shown = shown_entries(experiments, selections, options.all_runs)
    labels = {e.run.path: e.label for x in experiments for e in x.entries}
    verdicts = compute_verdicts(shown, options.verdicts, issues)  # a bad request stops here: nothing written
    with staged_directory(out) as stage:  # the report appears whole or not at all
        write_files(stage, {
            "table.md": to_markdown([Heading("Fairness metrics (Table 4)", 1), *table_blocks(shown, level=2)]),
            "table.tex": latex_table(shown),
            "table.csv": csv_table(shown),
            "selection.md": to_markdown([Heading("Hyperparameter selection", 1),
                                         *selection_blocks(selections, options.last, options.tol, level=2)]),
            "selection.json": json.dumps(selection_json(selections, options.last, options.tol), indent=2) + "\n",
        })
        writer = FigureWriter(stage, issues, named=out)
        figures = figure_blocks(shown, writer)
        judged = verdict_blocks(verdicts, writer)
        parquet = write_parquet(stage, runs, labels, verdict_tables(verdicts), verdict_settings(verdicts))

        synthetic = [labels[r.path] for r in runs if r.synthetic]
        blocks: list[Block] = [
            Heading("fairbench report", 1),
            Paragraph(f"{len(runs)} run directories from {', '.join(str(p) for p in paths)}; "
                      f"{sum(len(r.completed) for r in runs)} completed seeds; {len(issues)} problem(s)."),
            Links([(name, name) for name in ("table.md", "table.tex", "table.csv", "selection.md", "selection.json")]
                  + [(name, f"{PARQUET_DIR}/{name}") for name in parquet]),
        ]
        if synthetic:
            blocks.append(Paragraph("**Warning: SYNTHETIC data** (the embedded generated default, not census data) "
                                    f"in: {', '.join(synthetic)}."))
        blocks += [Heading("Runs"), runs_block(runs, labels),
                   Heading("Fairness metrics (Table 4)"), *representation_block(selections, options.all_runs),
                   *table_blocks(shown), *figures, *judged, *front_blocks(runs, writer.add),
                   *tuning_blocks(runs, writer.add),
                   Heading("Hyperparameter selection (appendix B)"),
                   *selection_blocks(selections, options.last, options.tol, level=3),
                   Heading("Seeds not completed"), *incomplete_block(runs, labels),
                   Heading("Problems"),
                   Bullets([f"`{i.path}`: {i.message}" for i in issues]) if issues else Paragraph("None.")]
        write_files(stage, {"report.md": to_markdown(blocks), "report.html": to_html(blocks, stage, "fairbench report")})
    for issue in issues:
        print(f"fairbench-report: problem: {issue}", file=log)
    return issues
