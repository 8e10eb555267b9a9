"""Group runs into experiments and methods, and name every run.

* An **experiment** is what one table of the paper compares: the same dataset and the same
  *reported* constraints (``problem.delta``, ``family``, ``form``, ``statistic``). An
  unconstrained SGD run and a constrained ALM run on the same data belong together, because
  every run reports the same constraints whatever it optimises.
* A **method** is an algorithm under one problem formulation: ``algo.name``, extended by
  ``/<problem.name>`` only when the same algorithm appears with several formulations.
* Runs of one method from one Hydra multirun (the same sweep directory, beside its
  ``multirun.yaml``) that differ only in the keys that multirun swept form a
  **hyperparameter sweep**: selection (:mod:`.selection`) picks the run that represents it.
* Any other runs of one method (separate runs under one folder, runs of several multiruns,
  runs that differ in a key no multirun swept) are **distinct runs**: each is its own row,
  never hidden by a selection.
* The keys that differ between a method's runs name each of them
  (``ssl_alm (tau=0.01, eta=0.05)``, ``sgd (budget.iterations=1)``) and give the Hydra
  override line of a selected combination.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairbench.report.collect import Run

#: besides the dataset and problem.delta, what makes the reported constraints the same
CONSTRAINT_KEYS = ("problem.family", "problem.form", "problem.statistic")


@dataclass
class Entry:
    """A run with its method's name, its display label and the sweep keys that distinguish it."""

    run: Run
    method: str
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class Method:
    name: str
    algo: str
    problem: str
    entries: list[Entry]
    varying: list[str]
    sweep: Path | None = None  # the multirun directory of a hyperparameter sweep

    @property
    def is_sweep(self) -> bool:
        return self.sweep is not None and len(self.entries) > 1 and bool(self.varying)


@dataclass
class Experiment:
    title: str
    slug: str
    delta: float | None
    methods: list[Method]

    @property
    def entries(self) -> list[Entry]:
        return [e for m in self.methods for e in m.entries]


def experiment_key(run: Run) -> tuple:
    return (run.dataset, run.delta, *(run.flat_config.get(k) for k in CONSTRAINT_KEYS))


def experiment_title(run: Run) -> str:
    flat = run.flat_config
    form = "/".join(str(flat[k]) for k in CONSTRAINT_KEYS[:2] if flat.get(k) is not None)
    delta = f", δ = {run.delta:g}" if run.delta is not None else ""
    return f"{run.dataset}{delta}" + (f" ({form} constraints)" if form else "")


def slugify(text: str) -> str:
    """A file-name-safe form of ``text`` (figure names per experiment)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "runs"


def short_key(key: str) -> str:
    """``algo.tau`` -> ``tau`` in labels (other keys keep their group)."""
    return key[len("algo."):] if key.startswith("algo.") else key


def format_value(value: Any) -> str:
    """A config value as Hydra override syntax (also used in labels)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    return text if re.fullmatch(r"[A-Za-z0-9_./+-]+", text) else "'" + text.replace("'", "\\'") + "'"


def varying_keys(runs: list[Run]) -> list[str]:
    """Config keys that every run has and whose values differ between ``runs``.

    A key only some runs have (a config written by another fairbench version, or a run
    without config.yaml) cannot be compared, so it does not make a sweep.
    """
    params = [r.hyperparameters() for r in runs]
    shared = set.intersection(*(set(p) for p in params)) if params else set()
    return [k for k in sorted(shared) if len({repr(p[k]) for p in params}) > 1]


def relative_names(paths: list[Path]) -> dict[Path, str]:
    """Shortest distinguishing names: paths relative to their common parent."""
    if len(paths) == 1:
        return {paths[0]: paths[0].name}
    common = Path(os.path.commonpath([str(p.resolve()) for p in paths]))
    return {p: str(p.resolve().relative_to(common)) or p.name for p in paths}


def covered(key: str, swept: tuple[str, ...]) -> bool:
    """Whether config key ``key`` is set by one of the ``swept`` override keys (``algo`` sets
    ``algo.*``; a ``+``/``++`` prefix does not matter)."""
    return any(key == s or key.startswith(s + ".") for s in (k.lstrip("+~") for k in swept))


def build_methods(name: str, runs: list[Run]) -> list[Method]:
    """The method's hyperparameter sweeps (one :class:`Method` each) and distinct runs (one
    single-run :class:`Method` each), all labelled by the keys that differ between ``runs``."""
    entries = build_method(name, runs).entries
    units: dict[Path, list[Entry]] = defaultdict(list)
    for entry in entries:
        units[entry.run.sweep if entry.run.sweep is not None else entry.run.path].append(entry)
    methods = []
    for unit in units.values():
        unit_runs = [e.run for e in unit]
        varying = varying_keys(unit_runs) if len(unit) > 1 else []
        swept = unit_runs[0].swept
        if unit_runs[0].sweep is not None and varying and (swept is None or all(covered(k, swept) for k in varying)):
            methods.append(Method(name, runs[0].algo, runs[0].problem, unit, varying, unit_runs[0].sweep))
        else:
            methods += [Method(name, runs[0].algo, runs[0].problem, [e], []) for e in unit]
    return methods


def build_method(name: str, runs: list[Run]) -> Method:
    varying = varying_keys(runs) if len(runs) > 1 else []
    entries = []
    for run in runs:
        params = run.hyperparameters()
        overrides = {k: params[k] for k in varying}
        detail = ", ".join(f"{short_key(k)}={format_value(v)}" for k, v in overrides.items())
        entries.append(Entry(run, name, f"{name} ({detail})" if detail else name, overrides))
    labels = [e.label for e in entries]
    clashing = [e for e in entries if labels.count(e.label) > 1]
    names = relative_names([e.run.path for e in clashing]) if clashing else {}
    for entry in clashing:
        entry.label = f"{entry.label} [{names[entry.run.path]}]"
    return Method(name, runs[0].algo, runs[0].problem, entries, varying)


def group_runs(runs: list[Run]) -> list[Experiment]:
    """Experiments (in order of first appearance) holding methods sorted by name."""
    by_experiment: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        by_experiment[experiment_key(run)].append(run)
    experiments = []
    slugs: set[str] = set()
    for members in by_experiment.values():
        problems_of: dict[str, set[str]] = defaultdict(set)
        for run in members:
            problems_of[run.algo].add(run.problem)
        by_method: dict[str, list[Run]] = defaultdict(list)
        for run in members:
            name = run.algo if len(problems_of[run.algo]) == 1 else f"{run.algo}/{run.problem}"
            by_method[name].append(run)
        title = experiment_title(members[0])
        delta = members[0].delta
        slug = slugify(members[0].dataset + (f" d{delta:g}" if delta is not None else ""))
        while slug in slugs:
            slug += "_"
        slugs.add(slug)
        methods = [m for name, rs in sorted(by_method.items())
                   for m in build_methods(name, sorted(rs, key=lambda r: str(r.path)))]
        experiments.append(Experiment(title, slug, members[0].delta, methods))
    return experiments


def override_line(method: Method, entry: Entry) -> str:
    """The Hydra overrides that reproduce ``entry``'s configuration of ``method``."""
    parts = [f"algo={method.algo}"]
    if "/" in method.name:
        parts.append(f"problem={method.problem}")
    parts += [f"{k}={format_value(v)}" for k, v in entry.overrides.items()]
    return " ".join(parts)
