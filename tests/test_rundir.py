"""Run directories: one config, one code, one run at a time, inside the output root; every
refusal is one line, before anything is written (``fairbench.rundir``, ``fairbench.jobdirs``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairbench import cli, provenance, rundir
from fairbench.errors import FairbenchError
from clirun import main

RUN = ("budget.epochs=null", "budget.iterations=20", "log_every=10", "progress=false")



def snapshot(root: Path) -> dict:
    """Every file under ``root`` (hidden ones included): its bytes and modification time."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fairbench: error: ") and "Traceback" not in err, err
    return lines[0]


def test_resume_false_into_a_directory_with_results_is_refused_and_writes_nothing(monkeypatch, capsys, tmp_path):
    """A run directory holds the results of exactly one config: a new config with resume=false
    must not replace seed 0 and config.yaml and keep seeds 1-2 of the old one."""
    out = tmp_path / "run"
    code, _, err = main(monkeypatch, capsys, "seeds=[0,1,2]", *RUN, f"hydra.run.dir={out}")
    assert code == 0, err
    before = snapshot(out)
    code, _, err = main(monkeypatch, capsys, "seeds=[0]", *RUN, "algo.lr=0.02", "resume=false", f"hydra.run.dir={out}")
    assert code == 2
    line = one_line(err)
    assert f"hydra.run.dir={out} already holds results" in line and "resume=false" in line
    assert snapshot(out) == before
    # the same config again with resume=false: still refused (it would train seed 0 twice)
    code, _, err = main(monkeypatch, capsys, "seeds=[0,1,2]", *RUN, "resume=false", f"hydra.run.dir={out}")
    assert code == 2 and "already holds results" in one_line(err)
    assert snapshot(out) == before


def test_resume_false_with_the_default_directories_starts_a_new_one_each_time(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FAIRBENCH_OUTPUT_DIR", str(tmp_path / "outputs"))
    for _ in range(2):
        code, _, err = main(monkeypatch, capsys, "seeds=[0]", *RUN, "resume=false")
        assert code == 0, err
    runs = sorted((tmp_path / "outputs" / "runs" / "synthetic" / "sgd").iterdir())
    assert len(runs) == 2 and all((run / "seed_0" / "metrics.json").is_file() for run in runs)


def test_a_refused_single_run_leaves_hydras_files_alone(monkeypatch, capsys, tmp_path):
    out = tmp_path / "run"
    assert main(monkeypatch, capsys, "seeds=[0]", *RUN, f"hydra.run.dir={out}")[0] == 0
    before = snapshot(out)
    assert (out / ".hydra" / "config.yaml") in before
    code, _, err = main(monkeypatch, capsys, "seeds=[0]", *RUN, "problem.delta=0.01", f"hydra.run.dir={out}")
    assert code == 2
    line = one_line(err)
    assert f"hydra.run.dir={out} holds results of a different config (problem differ)" in line
    assert snapshot(out) == before


def test_a_refused_sweep_names_the_sweep_dir_and_writes_nothing(monkeypatch, capsys, tmp_path):
    """As a paper preset rerun with problem.delta=0.01: its job directories (named by the
    method) hold the preset's results; the refusal overwrote .hydra/ and multirun.yaml."""
    sweep = tmp_path / "sweep"
    args = ["-m", "algo=sgd,alm", "hydra.sweep.subdir=${algo.name}", f"hydra.sweep.dir={sweep}", "seeds=[0]", *RUN]
    assert main(monkeypatch, capsys, *args)[0] == 0
    before = snapshot(sweep)
    assert sweep / "multirun.yaml" in before and sweep / "sgd" / ".hydra" / "overrides.yaml" in before
    code, _, err = main(monkeypatch, capsys, *args, "problem.delta=0.01")
    assert code == 2
    line = one_line(err)
    assert f"(in hydra.sweep.dir={sweep}) holds results of a different config" in line and "hydra.run.dir" not in line
    assert snapshot(sweep) == before


def test_resume_refuses_seeds_that_other_code_trained(monkeypatch, capsys, tmp_path):
    out = tmp_path / "run"
    args = ("seeds=[0,1]", *RUN, f"hydra.run.dir={out}")
    assert main(monkeypatch, capsys, *args)[0] == 0
    metrics_path = out / "seed_1" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    assert metrics["provenance"]["code_sha256"] == provenance.code_sha256()
    metrics["provenance"]["code_sha256"] = "0" * 64  # as if a method's code was edited since
    metrics_path.write_text(json.dumps(metrics))
    before = snapshot(out)
    code, _, err = main(monkeypatch, capsys, *args)
    assert code == 2
    line = one_line(err)
    assert "seed_1 trained by other code (code_sha256 000000000000 then" in line and "remove the directory" in line
    assert snapshot(out) == before
    # the runner itself refuses too (the Python API, or a race with the command's check)
    from fairbench.runner import run

    with pytest.raises(FairbenchError, match="trained by other code"):
        run(cli.compose_job(["seeds=[0,1]", *RUN]), out)


def test_code_identity_covers_what_trains_and_not_the_report(tmp_path, monkeypatch):
    package = tmp_path / "fairbench"
    (package / "algorithms").mkdir(parents=True)
    (package / "report").mkdir()
    (package / "algorithms" / "sgd.py").write_text("lr = 0.1\n")
    (package / "report" / "tables.py").write_text("width = 80\n")

    def digest():
        provenance.code_sha256.cache_clear()
        return provenance.code_sha256()

    monkeypatch.setattr(provenance, "PACKAGE", package)
    try:
        first = digest()
        (package / "report" / "tables.py").write_text("width = 100\n")
        assert digest() == first
        (package / "algorithms" / "sgd.py").write_text("lr = 0.2\n")
        assert digest() != first
    finally:
        monkeypatch.undo()
        provenance.code_sha256.cache_clear()
    # results recorded before the hash existed are compared by version and commit
    now = {"fairbench_version": "0.1.0", "git_commit": "b" * 40, "code_sha256": "c" * 64}
    assert provenance.code_differences({"fairbench_version": "0.1.0", "git_commit": "a" * 40}, now)
    assert not provenance.code_differences({"fairbench_version": "0.1.0", "git_commit": "a" * 40,
                                            "code_sha256": "c" * 64}, now)  # a commit of no code
    assert not provenance.code_differences({}, now)


HOLD = """
import sys, time
from pathlib import Path
from fairbench import rundir
with rundir.claimed(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_directory_held_by_another_run_is_refused_with_its_holder(monkeypatch, capsys, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = main(monkeypatch, capsys, "seeds=[0]", *RUN, f"hydra.run.dir={out}")
        assert code == rundir.EXIT_BUSY == 75
        line = one_line(err)
        assert f"{out} is in use by pid {holder.pid} on " in line and "rerun to resume" in line
        assert sorted(p.name for p in out.iterdir()) == [rundir.LOCK_FILE]  # Hydra wrote nothing
        from fairbench.runner import run

        with pytest.raises(rundir.RunDirBusy, match=f"pid {holder.pid}"):
            run(cli.compose_job(["seeds=[0]", *RUN]), out)
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone (killed: the kernel released its lock): the directory is free
    assert main(monkeypatch, capsys, "seeds=[0]", *RUN, f"hydra.run.dir={out}")[0] == 0


def test_two_identical_commands_at_once_train_every_seed_once(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "fairbench", "seeds=[0,1]", "stack_seeds=off", "budget.epochs=null",
           "budget.seconds=1", "log_every=200", f"hydra.run.dir={out}"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=240), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, rundir.EXIT_BUSY]), results
    trained = sum(err.count("completed:") for _, _, err in results)
    assert trained == 2, results  # seed 0 and seed 1, each by one command only
    for code, _, err in results:
        if code == rundir.EXIT_BUSY:
            assert "is in use by pid" in one_line(err)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"completed": 2}


def test_lock_is_reentrant_in_a_process_and_names_its_holder(tmp_path):
    out = tmp_path / "run"
    with rundir.claimed(out):
        with rundir.claimed(out):
            assert rundir.holder(out) is None  # this process holds it
        assert f"pid {os.getpid()} on " in (out / rundir.LOCK_FILE).read_text()
    assert rundir.holder(out) is None


def test_directory_names_from_overrides_stay_inside_the_output_root(monkeypatch, capsys, tmp_path):
    root = tmp_path / "outputs"
    monkeypatch.setenv("FAIRBENCH_OUTPUT_DIR", str(root))
    code, _, err = main(monkeypatch, capsys, "+tag=../../../../../../escaped/x", "seeds=[0]", *RUN)
    assert code == 0, err
    runs = [p.parent for p in tmp_path.rglob("summary.json")]
    assert len(runs) == 1 and runs[0].parent == root / "runs" / "synthetic" / "sgd"
    assert runs[0].name.startswith("+tag=..%2F..%2F..%2F") and not (tmp_path / "escaped").exists()
    # a name that names a directory itself
    code, _, err = main(monkeypatch, capsys, "algo.name=../../elsewhere", "seeds=[0]", *RUN)
    assert code == 2 and "algo.name='../../elsewhere': a plain name" in one_line(err)


def test_dirname_is_one_injective_component_of_bounded_length():
    from fairbench.jobdirs import _dirname

    assert _dirname("dataset.table=../../x.csv") == "dataset.table=..%2F..%2Fx.csv"
    assert _dirname("a=x%2Fy") != _dirname("a=x/y")
    long_a, long_b = _dirname("a=" + "x" * 400), _dirname("a=" + "x" * 399 + "y")
    assert len(long_a.encode()) <= 255 and long_a != long_b and "/" not in long_a
    assert _dirname("") == "default"


def test_a_directory_that_cannot_be_written_is_one_line(monkeypatch, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = main(monkeypatch, capsys, "seeds=[0]", *RUN, f"hydra.run.dir={blocker / 'run'}")
    assert code == 2
    assert f"hydra.run.dir='{blocker / 'run'}': a directory that can be written ({blocker} is not a directory)" \
        in one_line(err)
    monkeypatch.setenv("FAIRBENCH_OUTPUT_DIR", str(blocker / "outputs"))
    code, _, err = main(monkeypatch, capsys, "seeds=[0]", *RUN)
    assert code == 2
    assert f"FAIRBENCH_OUTPUT_DIR='{blocker / 'outputs'}': an output root that can be written" in one_line(err)
    assert blocker.read_text() == "not a directory" and sorted(tmp_path.iterdir()) == [blocker]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_a_read_only_output_root_is_one_line(monkeypatch, capsys, tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        code, _, err = main(monkeypatch, capsys, "seeds=[0]", *RUN, f"hydra.run.dir={root / 'run'}")
    finally:
        root.chmod(0o700)
    assert code == 2 and f"({root} is not writable)" in one_line(err)
    assert list(root.iterdir()) == []


def test_a_fresh_directory_is_the_launching_processes_wherever_the_job_is_composed():
    """resume=false: the sweep directory's suffix is resolved once (validation, Hydra and each
    worker, which composes its job again from the pickled sweep config, agree)."""
    import pickle

    from omegaconf import OmegaConf

    from fairbench.jobdirs import fresh_stamp, use_fresh_stamp

    cli.register_resolvers()
    use_fresh_stamp(None)
    try:
        stamp = fresh_stamp()
        assert stamp == fresh_stamp() and stamp.endswith(f"-{os.getpid()}")
        cfg = cli.compose_job(["resume=false"], hydra_config=True)
        swept = str(cfg.hydra.sweep.dir)
        assert swept.endswith("-" + stamp)
        use_fresh_stamp("20000101-000000-1")  # another process's clock and pid
        copied = pickle.loads(pickle.dumps(cfg))
        again = cli.compose_job(["resume=false"], hydra_config=True)
        OmegaConf.copy_cache(from_config=copied, to_config=again)  # as Hydra does in a worker
        assert str(again.hydra.sweep.dir) == swept
    finally:
        use_fresh_stamp(None)


@pytest.mark.parametrize("launcher", ["basic", "parallel"])
def test_two_jobs_of_a_sweep_in_one_directory_are_refused_before_anything_is_written(monkeypatch, capsys,
                                                                                    tmp_path, launcher):
    sweep = tmp_path / "sweep"
    code, _, err = main(monkeypatch, capsys, "-m", f"hydra/launcher={launcher}", "algo.lr=0.1,0.2", "seeds=[0]",
                        *RUN, f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=same")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "hydra.sweep.subdir" in lines[0] and "jobs 0 and 1" in lines[0]
    assert not sweep.exists()
