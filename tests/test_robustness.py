"""Faults and determinism: signals, resume, divergence, atomic writes, byte-identical runs."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fairbench.api import algorithm_names
from fairbench.cli import compose_job
from fairbench.recorder import atomic_write_text
from fairbench.runner import run


def run_in_process(tmp_path: Path, name: str, *overrides: str) -> Path:
    cfg = compose_job(["progress=false", *overrides])
    out = tmp_path / name
    run(cfg, out)
    return out


def without_column(text: str, column: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    drop = rows[0].index(column)
    return "\n".join(",".join(r[:drop] + r[drop + 1:]) for r in rows)


@pytest.mark.parametrize("algo", algorithm_names())
def test_same_config_and_seed_give_identical_trajectories(tmp_path, algo):
    """Byte-identical trajectory files apart from the wall-clock column ``train_seconds``."""
    args = (f"algo={algo}", "seeds=[3]", "budget.iterations=60", "log_every=20")
    a = run_in_process(tmp_path, "a", *args)
    b = run_in_process(tmp_path, "b", *args)
    ta = (a / "seed_3" / "trajectory.csv").read_text()
    tb = (b / "seed_3" / "trajectory.csv").read_text()
    assert without_column(ta, "train_seconds") == without_column(tb, "train_seconds")
    ma = json.loads((a / "seed_3" / "metrics.json").read_text())["splits"]
    mb = json.loads((b / "seed_3" / "metrics.json").read_text())["splits"]
    assert ma == mb


def test_different_seeds_differ(tmp_path):
    out = run_in_process(tmp_path, "r", "seeds=[0,1]", "budget.iterations=50", "log_every=50")
    t0 = (out / "seed_0" / "trajectory.csv").read_text()
    t1 = (out / "seed_1" / "trajectory.csv").read_text()
    assert without_column(t0, "train_seconds") != without_column(t1, "train_seconds")


def test_outputs_record_provenance(tmp_path):
    out = run_in_process(tmp_path, "p", "seeds=[0]", "budget.iterations=20", "threads=1")
    for path in (out / "summary.json", out / "seed_0" / "metrics.json"):
        prov = json.loads(path.read_text())["provenance"]
        assert {"fairbench_version", "git_commit", "torch_version", "threads"} <= set(prov)
        assert prov["threads"] == 1
    assert "algo:" in (out / "config.yaml").read_text()


def test_diverging_seed_is_marked_and_others_go_on(tmp_path):
    out = run_in_process(tmp_path, "d", "algo.lr=1e30", "seeds=[0,1]", "budget.iterations=300")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed_status"] == {"0": "diverged", "1": "diverged"}
    assert summary["counts"] == {"diverged": 2} and summary["status"] == "failed"
    assert json.loads((out / "seed_0" / "metrics.json").read_text())["iterations"] < 300


def test_resume_skips_finished_seeds_and_never_overwrites(tmp_path):
    args = ("seeds=[0,1]", "budget.iterations=30")
    out = run_in_process(tmp_path, "res", *args)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("seed_*/*")}
    run_in_process(tmp_path, "res", *args)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("seed_*/*")}
    assert before == after


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    atomic_write_text(target, "old")

    def boom(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def test_sigterm_mid_run_flushes_marks_interrupted_and_rerun_resumes(tmp_path):
    out = tmp_path / "kill"
    # 2 training seconds a seed, a row every 500 iterations (>= 4 rows a second even on a slow day)
    cmd = [sys.executable, "-m", "fairbench", "seeds=[0,1]", "budget.epochs=null", "budget.seconds=2",
           "log_every=500", f"hydra.run.dir={out}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trajectory_started = time.time()
    while time.time() - trajectory_started < 60 and not (out / "config.yaml").exists():
        time.sleep(0.2)
    time.sleep(1.0)  # inside seed 0's 2 training seconds
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["seed_status"] == {"0": "interrupted", "1": "pending"}
    metrics = json.loads((out / "seed_0" / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and 0 < metrics["train_seconds"] < 2
    rows = (out / "seed_0" / "trajectory.csv").read_text().splitlines()
    assert len(rows) >= 3 and rows[-1].split(",")[0] == str(metrics["iterations"])
    # the same command resumes: seed 0 did not finish, so it runs again, then seed 1
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["counts"] == {"completed": 2}


def test_resume_refuses_a_directory_of_another_config(tmp_path):
    from fairbench.errors import FairbenchError

    run_in_process(tmp_path, "mix", "seeds=[0]", "budget.iterations=20")
    with pytest.raises(FairbenchError, match="resume=false"):
        run_in_process(tmp_path, "mix", "seeds=[0]", "budget.iterations=40")
    # more seeds of the same config is a resume, not a conflict
    out = run_in_process(tmp_path, "mix", "seeds=[0,1]", "budget.iterations=20")
    assert json.loads((out / "summary.json").read_text())["counts"] == {"completed": 2}


def test_interrupted_resume_still_counts_seeds_finished_earlier(tmp_path, monkeypatch):
    """A resumed run stopped by a signal before reaching a finished seed keeps that seed in
    the summary (not ``pending``)."""
    args = ("seeds=[0,1]", "budget.iterations=40", "stack_seeds=off")
    out = run_in_process(tmp_path, "r", *args)
    (out / "seed_0" / "metrics.json").unlink()  # seed 0 must run again, seed 1 is finished
    import fairbench.runner as runner

    original = runner.train_group

    def interrupted_train_group(ctx, seeds, algo, flag, progress, done):
        flag.signal_number = signal.SIGTERM  # as if the signal came during this seed
        return original(ctx, seeds, algo, flag, progress, done)

    monkeypatch.setattr(runner, "train_group", interrupted_train_group)
    summary = run(compose_job(["progress=false", *args]), out)
    assert summary["seed_status"] == {"0": "interrupted", "1": "completed"}
    assert summary["test"]["loss"]["n"] == 1
