"""scripts/perf_doc.py: how `scripts/bench.py --out PATH` writes a run into docs/performance.md."""

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("perf_doc", REPO / "scripts" / "perf_doc.py")
perf_doc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(perf_doc)

TABLE = "| method | fast it/s |\n|---|---:|\n| sgd | 1,234 |"
CPUINFO = ("processor\t: 0\nmodel name\t: Test CPU 9000 @ 3.0GHz\nflags\t: fpu\n\n"
           "processor\t: 1\nmodel name\t: Test CPU 9000 @ 3.0GHz\nflags\t: fpu\n")


def section(date, body=TABLE):
    return perf_doc.run_section(body, "python scripts/bench.py --out docs/performance.md", date=date,
                                cpu=("Test CPU", 2), libs={"python": "3.11.7", "numpy": "2.0", "torch": "2.13.0",
                                                           "numba": "0.60"})


def current(text):
    return text.split(perf_doc.CURRENT_START)[1].split(perf_doc.CURRENT_END)[0]


def history(text):
    return text.split(perf_doc.HISTORY_START)[1]


def test_cpu_info_reads_the_model_and_counts_the_processors():
    assert perf_doc.cpu_info(CPUINFO) == ("Test CPU 9000 @ 3.0GHz", 2)


def test_a_run_section_names_date_machine_versions_command_and_holds_the_table():
    text = section("2030-01-02")
    assert text.startswith("### Run of 2030-01-02\n")
    assert "- machine: Test CPU, 2 cores" in text
    assert "- versions: python 3.11.7, numpy 2.0, torch 2.13.0, numba 0.60" in text
    assert "- command: `python scripts/bench.py --out docs/performance.md`" in text
    assert TABLE in text


def test_versions_name_python_numpy_torch_numba():
    assert list(perf_doc.versions()) == ["python", "numpy", "torch", "numba"]


def test_first_run_on_a_new_document_is_current_and_the_history_is_empty(tmp_path):
    path = tmp_path / "docs" / "performance.md"
    perf_doc.update_file(path, section("2030-01-01"))
    text = path.read_text()
    assert "### Run of 2030-01-01" in current(text)
    assert history(text).strip() == ""


def test_a_new_run_replaces_the_current_section_and_pushes_the_old_one_first_into_the_history(tmp_path):
    path = tmp_path / "performance.md"
    path.write_text(perf_doc.TEMPLATE + "\n### Older, hand-written history\n\nkept as it is\n")
    for date in ("2030-01-01", "2030-02-01", "2030-03-01"):
        perf_doc.update_file(path, section(date, body=TABLE.replace("1,234", date)))
    text = path.read_text()
    assert current(text).count("### Run of") == 1 and "### Run of 2030-03-01" in current(text)
    past = history(text)
    # newest first, then the older runs, then the hand-written history, nothing lost
    order = [past.index(f"### Run of {d}") for d in ("2030-02-01", "2030-01-01")]
    assert order == sorted(order) and past.index("### Older, hand-written history") > order[-1]
    assert "kept as it is" in past and "| sgd | 2030-01-01 |" in past
    assert text.count(perf_doc.CURRENT_START) == text.count(perf_doc.HISTORY_START) == 1


def test_a_document_without_the_markers_is_refused_before_the_benchmark_runs(tmp_path):
    path = tmp_path / "bench.md"
    path.write_text("# some other file\n")
    with pytest.raises(ValueError, match="bench:current:start"):
        perf_doc.check_document(path)
    perf_doc.check_document(tmp_path / "missing.md")  # a new file is fine


def test_the_write_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "performance.md"
    perf_doc.update_file(path, section("2030-01-01"))
    before = path.read_text()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        perf_doc.update_file(path, section("2030-02-01"))
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["performance.md"]


def test_the_repository_document_takes_a_run():
    perf_doc.check_document(REPO / "docs" / "performance.md")
