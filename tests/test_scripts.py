"""The measurement scripts beside the benchmark run end to end (on the synthetic default)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_ab_steps_times_both_revisions_and_compares_their_parameters():
    """The working tree against itself: both sides timed, and the same parameters reported."""
    env = {k: v for k, v in os.environ.items() if k != "FAIRBENCH_DATA_DIR"}
    out = subprocess.run([sys.executable, str(SCRIPTS / "ab_steps.py"), ".", ".", "--method", "ssl_alm", "--seeds",
                          "2", "--rounds", "1", "--steps", "5", "--warmup", "2"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("ssl_alm, 2 seed(s), 1 alternating rounds of 5 steps")
    assert lines[-1].endswith("bitwise the same for both revisions")
    assert sum("median" in line for line in lines) == 1  # '.' twice: one revision's row


def test_ab_steps_reports_a_revision_that_does_not_exist():
    out = subprocess.run([sys.executable, str(SCRIPTS / "ab_steps.py"), ".", "no-such-revision-xyz"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "ab_steps: revision 'no-such-revision-xyz' is not a commit of this repository; accepted: a git revision, "
        "or . for the working tree"]


def test_bench_quick_measures_a_method_and_its_reference_implementations(tmp_path):
    """``bench.py --quick`` on nuPI: fairbench's paths, and its humancompatible-train and Cooper
    loops each paired with fairbench measured right after (both reference columns filled)."""
    if importlib.util.find_spec("humancompatible") is None or importlib.util.find_spec("cooper") is None:
        pytest.skip("humancompatible-train and cooper-optim are not installed (the peers extra)")
    env = {k: v for k, v in os.environ.items() if k != "FAIRBENCH_DATA_DIR"}
    report = tmp_path / "bench.json"
    out = subprocess.run([sys.executable, str(SCRIPTS / "bench.py"), "--quick", "--methods", "nupi", "--skip-stacked",
                          "--json", str(report)], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr
    assert "| method | fast it/s (oracle) |" in out.stdout and "| cooper it/s | fast/cooper |" in out.stdout
    data = json.loads(report.read_text())
    assert data["single"]["nupi"]["fast"]["it_s"] > 0
    for peer in ("hct", "cooper"):
        entry = data[peer]["results"]["nupi"]
        assert entry["it_s"] > 0 and entry["paired_fast_it_s"] > 0
        assert entry["ratio"] == pytest.approx(entry["paired_fast_it_s"] / entry["it_s"])
    row = next(line for line in out.stdout.splitlines() if line.startswith("| nupi |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 9 and cells[6].endswith("x") and cells[8].endswith("x")
