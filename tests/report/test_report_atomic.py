"""A report appears whole or not at all: a failure or SIGTERM mid-write keeps the old one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fairbench.report import build, cli
from fairbench.report.atomic import replace_directory
from rundirs import write_run


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def reported(tmp_path) -> tuple[Path, Path, dict[str, bytes]]:
    """A run, its report, and a snapshot of that report; then the run changes (more seeds)."""
    run = write_run(tmp_path / "runs" / "sgd", "sgd", seeds=(0,), rows=8, last=4)
    out = tmp_path / "report"
    assert cli.main([str(tmp_path / "runs"), "--out", str(out), "--quiet"]) == 0
    before = snapshot(out)
    assert "report.html" in before and "table.csv" in before
    write_run(run, "sgd", seeds=(0, 1), rows=8, last=4, loss=0.3)  # new numbers for a new report
    return tmp_path, out, before


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".report.")]


def test_a_failing_late_write_leaves_the_old_report_intact(reported, monkeypatch):
    tmp_path, out, before = reported

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(build, "to_html", broken)  # after the tables and figures are written
    with pytest.raises(OSError, match="disk full"):
        build.write_report([tmp_path / "runs"], out, build.Options(quiet=True))
    assert snapshot(out) == before and leftovers(tmp_path) == []


def test_sigterm_mid_write_leaves_the_old_report_intact(reported):
    tmp_path, out, before = reported
    script = textwrap.dedent(f"""
        import os, signal, sys
        from fairbench.report import build, cli
        real = build.to_html
        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            return real(*args, **kwargs)
        build.to_html = killed
        sys.exit(cli.main([{str(tmp_path / "runs")!r}, "--out", {str(out)!r}, "--quiet"]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 128 + 15, result.stderr
    assert snapshot(out) == before and leftovers(tmp_path) == []


def test_a_complete_write_replaces_the_old_report(reported):
    tmp_path, out, before = reported
    assert cli.main([str(tmp_path / "runs"), "--out", str(out), "--quiet"]) == 0
    after = snapshot(out)
    assert after.keys() == before.keys() and after["table.csv"] != before["table.csv"]
    assert leftovers(tmp_path) == []


def test_a_folder_with_other_files_is_not_replaced(tmp_path, capsys):
    write_run(tmp_path / "runs" / "sgd", "sgd", seeds=(0,), rows=8, last=4)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert cli.main([str(tmp_path / "runs"), "--out", str(out), "--quiet"]) == 2
    assert "holds notes.txt, which a report does not write" in capsys.readouterr().err
    assert snapshot(out) == {"notes.txt": b"keep me"}


def test_replace_directory_without_an_atomic_exchange(tmp_path, monkeypatch):
    monkeypatch.setattr("fairbench.report.atomic._exchange", lambda a, b: False)
    old, new = tmp_path / "out", tmp_path / "new"
    old.mkdir()
    (old / "a").write_text("old")
    new.mkdir()
    (new / "a").write_text("new")
    replace_directory(new, old)
    assert (old / "a").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
