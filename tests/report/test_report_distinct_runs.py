"""Selection applies to real sweeps only; distinct runs of one method stay distinct rows.

A real sweep is the runs of one Hydra multirun (beside its ``multirun.yaml``) that differ in
the keys it swept. Anything else -- separate runs under one folder, a run copied into a
sweep folder -- is shown run by run, labelled by the keys that differ.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from fairbench.report.build import shown_entries
from fairbench.report.collect import read_run
from fairbench.report.grouping import group_runs
from fairbench.report.selection import select_all
from rundirs import write_run


def with_budget(run: Path, iterations) -> Path:
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["budget"]["iterations"] = iterations
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return run


def shown(paths: list[Path]):
    issues: list = []
    experiments = group_runs([read_run(p, issues) for p in paths])
    assert not issues
    selections = select_all(experiments, 20, 1e-3)
    ((_, entries),) = shown_entries(experiments, selections, all_runs=False)
    return selections, sorted(e.label for e in entries)


def test_separate_runs_of_one_method_are_all_shown(tmp_path):
    # the preset's 10-seed result beside a 1-iteration try that violates nothing
    preset = with_budget(write_run(tmp_path / "runs/sgd/default", "sgd", seeds=tuple(range(10)), loss=0.45,
                                   violation=0.02), None)
    quick = with_budget(write_run(tmp_path / "runs/sgd/budget.iterations=1", "sgd", seeds=(0,), loss=0.69), 1)
    selections, labels = shown([preset, quick])
    assert selections == []
    assert labels == ["sgd (budget.iterations=1)", "sgd (budget.iterations=null)"]


def test_a_multirun_sweep_is_represented_by_its_selected_combination(tmp_path):
    root = tmp_path / "multirun"
    root.mkdir()
    (root / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": ["algo=alm", "algo.tau=0.01,0.05"]}}}))
    runs = [write_run(root / "algo.tau=0.01", "alm", hyper={"tau": 0.01}, loss=0.52, violation=0.0005),
            write_run(root / "algo.tau=0.05", "alm", hyper={"tau": 0.05}, loss=0.48, violation=0.02)]
    # a separate alm run elsewhere stays its own row beside the sweep's representative
    other = write_run(tmp_path / "runs/alm/default", "alm", hyper={"tau": 0.1}, loss=0.4, violation=0.0)
    selections, labels = shown([*runs, other])
    (sel,) = selections
    assert sel.method.sweep == root and sel.chosen is not None and sel.chosen.entry.run.path == runs[0]
    assert labels == ["alm (tau=0.01)", "alm (tau=0.1)"]


def test_runs_in_a_sweep_folder_differing_in_an_unswept_key_are_distinct(tmp_path):
    root = tmp_path / "multirun"
    root.mkdir()
    (root / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": ["algo.lr=0.005,0.01"]}}}))
    a = with_budget(write_run(root / "a", "sgd", loss=0.45, violation=0.02), None)
    b = with_budget(write_run(root / "b", "sgd", seeds=(0,), loss=0.69), 1)  # copied in by hand
    selections, labels = shown([a, b])
    assert selections == []
    assert labels == ["sgd (budget.iterations=1)", "sgd (budget.iterations=null)"]
