"""Missing and corrupt files are reported by path; failed seeds are listed; the rest is reported."""

from __future__ import annotations

import csv
import io
import shutil
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from fairbench.report import cli
from rundirs import write_run


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> tuple[Path, dict[str, Path], str, str]:
    """A multirun with one of each problem; returns (root, broken paths, report.md, stderr)."""
    root = tmp_path_factory.mktemp("broken") / "sweep"
    sgd = write_run(root / "algo=sgd", "sgd", seeds=(0, 1, 2))
    alm = write_run(root / "algo=alm", "alm", seeds=(0, 1, 2), statuses={2: "diverged"})
    ssl = write_run(root / "algo=ssl_alm", "ssl_alm", seeds=(0, 1, 2, 3), statuses={2: "interrupted"})
    bare = write_run(root / "algo=ssw", "ssw", seeds=(0,))
    paths = {
        "missing metrics": sgd / "seed_1" / "metrics.json",
        "corrupt metrics": sgd / "seed_2" / "metrics.json",
        "corrupt trajectory": alm / "seed_0" / "trajectory.csv",
        "missing trajectory": alm / "seed_1" / "trajectory.csv",
        "corrupt summary": bare / "summary.json",
        "missing config": bare / "config.yaml",
    }
    paths["missing metrics"].unlink()
    paths["corrupt metrics"].write_text('{"seed": 2, "status": "compl')
    paths["corrupt trajectory"].write_bytes(b"\x00\x01garbage\n\xff\xfe")
    paths["missing trajectory"].unlink()
    paths["corrupt summary"].write_text("[1, 2")
    paths["missing config"].unlink()
    shutil.rmtree(ssl / "seed_3")
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        assert cli.main([str(root), "--quiet"]) == 0
    return root, paths, (root / "report" / "report.md").read_text(), stderr.getvalue()


def problems_section(markdown: str) -> str:
    return markdown.split("## Problems", 1)[1]


@pytest.mark.parametrize("what", ["missing metrics", "corrupt metrics", "corrupt trajectory", "missing trajectory",
                                  "corrupt summary", "missing config"])
def test_problem_reported_by_path(broken, what):
    _, paths, markdown, stderr = broken
    assert str(paths[what]) in problems_section(markdown)
    assert str(paths[what]) in stderr
    expected = "missing" if what.startswith("missing") else "unreadable"
    line = next(line for line in stderr.splitlines() if str(paths[what]) in line)
    assert expected in line


def test_failed_seeds_listed(broken):
    _, _, markdown, _ = broken
    section = markdown.split("## Seeds not completed", 1)[1].split("## Problems", 1)[0]
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[2:4]) for line in section.splitlines()
            if line.startswith("| ")}
    assert {("2", "diverged"), ("2", "interrupted"), ("3", "not run"), ("1", "missing"), ("2", "unreadable")} <= rows


def test_rest_still_reported(broken):
    root, _, markdown, _ = broken
    rows = {row["method"]: row for row in csv.DictReader((root / "report" / "table.csv").open())}
    assert rows["sgd"]["seeds_completed"] == "1" and rows["sgd"]["test_loss_std"] == "0.0"
    assert rows["alm"]["seeds_completed"] == "2" and rows["ssl_alm"]["seeds_completed"] == "2"
    assert list((root / "report" / "figures").glob("fig1_trajectories_iterations_*.png"))
    assert "skipped for every method" in markdown  # Figure 3 without scores files
