"""Exit codes and messages of ``fairbench-report``; the many-group trajectory figure."""

from __future__ import annotations

import subprocess
import sys

from fairbench.report import cli
from fairbench.report.collect import read_run
from fairbench.report.grouping import group_runs
from fairbench.report.trajectories import trajectory_figure
from rundirs import write_run


def test_no_runs_exit_2_one_line(tmp_path, capsys):
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    assert cli.main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fairbench-report: error: no run directories found")
    assert not (tmp_path / "empty" / "report").exists()


def test_missing_path_exit_2(tmp_path, capsys):
    assert cli.main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_module_entry_point(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fairbench.report", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stdout == ""


def test_five_group_problem_draws_every_gap(tmp_path):
    run = read_run(write_run(tmp_path / "run", "ssl_alm", n_groups=5, delta=0.05, seeds=(0, 1, 2)), [])
    (experiment,) = group_runs([run])
    fig = trajectory_figure(experiment.entries, experiment.delta, "train_seconds", experiment.title)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sum(label.startswith("L[") for label in labels) == 10  # all pairs of 5 groups, one curve per gap
    assert any("±δ" in label and "0.05" in label for label in labels)
    gap_axes = fig.axes[2]
    assert len(gap_axes.lines) == 10 + 3  # ten gap means, the two bounds and the zero line
    assert fig.axes[-1].get_xlabel() == "training time (s)"
