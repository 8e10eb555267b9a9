"""The measurement scripts beside the benchmark run end to end (on the synthetic default)."""

import os
import subprocess
import sys
from pathlib import Path

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
