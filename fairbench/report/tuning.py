"""Tuning studies (``+experiment=tune_<method>``): what tuning costs, and what it buys.

A *study* is the set of trial runs of one tuning sweep: runs with ``tune.objective`` set,
from one sweep directory (Hydra's Optuna sweeper writes ``optimization_results.yaml`` there).
Each trial's score is recomputed from its ``summary.json`` with the rule the job returned
(:func:`fairbench.tuning.score`: validation split only), trials ordered as the sweeper ran
them (``hydra.job.num``).

* **Tuning cost**: the best feasible validation loss after ``k`` trials, per study (a step
  curve; it starts at the first feasible trial, none before).
* **Tuned against default**: the best trial next to the study's default trial -- its first
  trial, the composed configuration of the sweep (the method's defaults), marked
  ``tune.trial=defaults`` by :mod:`fairbench.tuning_sweeper` -- or, for a study without one
  (an older sweep, another sweeper), a default run of the same method: a run among the
  reported ones that is no tuning trial, on the same dataset, problem, model and budget,
  preferably one whose command line set none of the searched keys. Validation and test
  numbers are shown for both; the test numbers entered no choice.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import yaml
from matplotlib.figure import Figure

from fairbench.report.collect import Run
from fairbench.report.document import Block, Heading, Paragraph, Table
from fairbench.report.grouping import format_value
from fairbench.report.style import method_color, new_figure, set_title
from fairbench.tuning import score, split_means

#: what must be equal for a run to be a trial's default counterpart
SAME_SETUP = ("dataset.", "problem.", "model.", "budget.", "default_budget.")


@dataclass
class Trial:
    run: Run
    number: int
    score: float
    feasible: bool


@dataclass
class Study:
    method: str
    dataset: str
    where: Path
    searched: tuple[str, ...]
    trials: list[Trial]

    @property
    def default(self) -> Trial | None:
        """The trial of the composed configuration (``tune.trial=defaults``), if any."""
        return next((t for t in self.trials if tune_settings(t.run).get("trial") == "defaults"), None)

    @property
    def best(self) -> Trial | None:
        feasible = [t for t in self.trials if t.feasible]
        return min(feasible, key=lambda t: (t.score, t.number)) if feasible else None

    def best_after(self) -> np.ndarray:
        """The best feasible score among the first ``k`` trials, ``k = 1..n`` (NaN: none yet)."""
        best, out = math.inf, []
        for trial in self.trials:
            if trial.feasible:
                best = min(best, trial.score)
            out.append(best if math.isfinite(best) else math.nan)
        return np.array(out)


def tune_settings(run: Run) -> dict | None:
    tune = run.config.get("tune")
    return tune if isinstance(tune, dict) and tune.get("objective") is not None else None


def hydra_record(run: Run) -> dict:
    """The run's ``.hydra/hydra.yaml`` (``{}`` when unreadable)."""
    try:
        data = yaml.safe_load((run.path / ".hydra" / "hydra.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    hydra = data.get("hydra") if isinstance(data, dict) else None
    return hydra if isinstance(hydra, dict) else {}


def trial_number(hydra: dict, run: Run, fallback: int) -> int:
    """``hydra.job.num``, else the last digits of the run's directory name."""
    try:
        return int(hydra["job"]["num"])
    except (KeyError, TypeError, ValueError):
        digits = re.findall(r"\d+", run.path.name)
        return int(digits[-1]) if digits else fallback


def searched_keys(hydra: dict, run: Run) -> tuple[str, ...]:
    """The keys of the sweeper's search space (``hydra.sweeper.params``), else the run's swept keys."""
    params = (hydra.get("sweeper") or {}).get("params") if isinstance(hydra.get("sweeper"), dict) else None
    return tuple(sorted(str(k) for k in params)) if isinstance(params, dict) and params else (run.swept or ())


def collect_studies(runs: list[Run]) -> list[Study]:
    by_sweep: dict[Path, list[Run]] = defaultdict(list)
    for run in runs:
        if tune_settings(run) is not None:
            by_sweep[run.sweep if run.sweep is not None else run.path.parent].append(run)
    studies = []
    for where, members in sorted(by_sweep.items()):
        trials, searched = [], set()
        for i, run in enumerate(members):
            tune, hydra = tune_settings(run), hydra_record(run)
            value = score(run.summary, tune)
            _, violation = split_means(run.summary)
            feasible = math.isfinite(value) and violation <= float(tune["tolerance"])
            trials.append(Trial(run, trial_number(hydra, run, i), value, feasible))
            searched.update(searched_keys(hydra, run))
        trials.sort(key=lambda t: t.number)
        studies.append(Study(members[0].algo, members[0].dataset, where, tuple(sorted(searched)), trials))
    return studies


def cost_figure(studies: list[Study]) -> Figure | None:
    curves = [s for s in studies if np.isfinite(s.best_after()).any()]
    if not curves:
        return None
    fig = new_figure(7.0, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    for study in curves:
        best = study.best_after()
        label = f"{study.method} ({study.dataset})" if len({s.dataset for s in curves}) > 1 else study.method
        ax.step(np.arange(1, len(best) + 1), best, where="post", color=method_color(study.method), label=label)
        ax.scatter(np.arange(1, len(best) + 1), best, s=8, color=method_color(study.method))
    ax.set_xlabel("trials k")
    ax.set_ylabel("best feasible validation loss after k trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    set_title(fig, "Tuning cost: the best feasible validation loss after k trials, per method")
    return fig


def overrides_of(run: Run) -> list[str]:
    try:
        data = yaml.safe_load((run.path / ".hydra" / "overrides.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in data] if isinstance(data, list) else []


def default_run(study: Study, runs: list[Run]) -> Run | None:
    """The study's default trial, else a non-tuning run with the study's setup (module
    docstring), or None."""
    if study.default is not None:
        return study.default.run
    reference = study.trials[0].run.flat_config

    def setup(flat: dict) -> dict:
        return {k: v for k, v in flat.items() if k.startswith(SAME_SETUP)}

    candidates = [r for r in runs if tune_settings(r) is None and r.algo == study.method and r.completed
                  and setup(r.flat_config) == setup(reference)]
    untouched = [r for r in candidates
                 if not any(o.lstrip("+~").split("=", 1)[0] in study.searched for o in overrides_of(r))]
    chosen = untouched or candidates
    return chosen[0] if chosen else None


def numbers(run: Run | None) -> list[str]:
    if run is None:
        return ["n/a"] * 4
    values = [*split_means(run.summary, "val"), *split_means(run.summary, "test")]
    return [f"{v:.4f}" if math.isfinite(v) else "n/a" for v in values]


def comparison_table(studies: list[Study], runs: list[Run]) -> Table:
    rows = []
    for study in studies:
        best = study.best
        default = default_run(study, runs)
        setting = ", ".join(f"{k.removeprefix('algo.')}={format_value(best.run.flat_config.get(k))}"
                            for k in study.searched) if best else "none feasible"
        rows.append([study.method, study.dataset, f"{sum(t.feasible for t in study.trials)}/{len(study.trials)}",
                     setting, *numbers(best.run if best else None),
                     str(default.path) if default else "none found", *numbers(default)])
    return Table(["Method", "Dataset", "Feasible trials", "Best setting", "Tuned val loss", "Tuned val viol.",
                  "Tuned test loss", "Tuned test viol.", "Default run", "Default val loss", "Default val viol.",
                  "Default test loss", "Default test viol."], rows)


def tuning_blocks(runs: list[Run], add_figure: Callable[[str, str, Callable[[], Figure | None]], list[Block]]) -> list[Block]:
    """The report section (``add_figure``: :meth:`fairbench.report.build.FigureWriter.add`);
    nothing when no run is a tuning trial."""
    studies = collect_studies(runs)
    if not studies:
        return []
    return [Heading("Tuning (Optuna, feasibility-first validation score)"),
            Paragraph("Trial score: mean validation loss if the mean validation max violation is within "
                      "tune.tolerance, else tune.penalty + violation (fairbench/tuning.py). Test numbers "
                      "entered no choice; they are shown for comparison only. Default: the study's first "
                      "trial, the method's configuration as composed (tune.trial=defaults); for a study "
                      "without one, a non-tuning run of the method with the same dataset, problem, model "
                      "and budget among the reported runs (mean over its completed seeds)."),
            *add_figure("tuning_cost", "Best feasible validation loss after k trials, per tuning study.",
                        partial(cost_figure, studies)),
            *([] if any(s.best for s in studies) else
              [Paragraph("No trial of any study was feasible: no tuning-cost curve.")]),
            comparison_table(studies, runs)]
