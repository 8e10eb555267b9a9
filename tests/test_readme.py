"""The README is a user's document: small, no commit hashes or clock times, and the set-up
commands CI runs come first."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
SETUP = ['python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/fairbench',
         ".venv/bin/python -m pytest"]
# 7 to 40 hex digits with at least one letter and one digit: what `git log --oneline` prints
COMMIT = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")
CLOCK = re.compile(r"\b([01]?\d|2[0-3]):[0-5]\d\b")


def test_readme_is_at_most_25_kib():
    assert README.stat().st_size <= 25_600


def test_readme_names_no_commit():
    text = README.read_text()
    assert COMMIT.findall(text) == []


def test_readme_has_no_clock_times():
    text = README.read_text()
    assert [m.group(0) for m in CLOCK.finditer(text)] == []


def test_the_first_code_block_is_exactly_the_two_setup_commands():
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", README.read_text(), re.S | re.M)
    assert blocks[0].splitlines() == SETUP


def test_the_patterns_catch_what_they_are_for():
    assert COMMIT.findall("measured at 109e44d, see a7c79ac1") == ["109e44d", "a7c79ac1"]
    assert COMMIT.findall("14,333 rows, 1234567 steps, accepted, 2e-3") == []
    assert CLOCK.findall("at 08:19 and 9:05") and not CLOCK.findall("ratio 1:1000, 2.5:1")
