"""What a run writes when things go wrong: a full disk, every seed diverging; and with what
mode its files are written."""

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from fairbench import cli
from fairbench.errors import FairbenchError
from clirun import main
from fairbench.recorder import atomic_write_text

RUN = ("budget.epochs=null", "budget.iterations=20", "log_every=10", "progress=false")



@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_get_the_mode_of_the_users_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "x.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o666 & ~umask


def no_space(*_args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_fails_one_write_with_one_line_and_leaves_the_old_file(tmp_path, monkeypatch, code):
    target = tmp_path / "x.json"
    atomic_write_text(target, "old")

    def full(*_args):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(FairbenchError) as info:
        atomic_write_text(target, "new")
    assert str(info.value).startswith(f"cannot write {target}: {os.strerror(code)}") and "\n" not in str(info.value)
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]  # no temporary file left


def test_a_run_on_a_full_disk_stops_with_one_line_and_keeps_every_finished_file(monkeypatch, capsys, tmp_path):
    out = tmp_path / "run"
    real_fsync = os.fsync
    finished = {}

    def fills_after_seed_0(fd):
        if (out / "summary.json").is_file():  # seed 0 is finished: the disk is full from now on
            if not finished:
                finished.update({p: p.read_bytes() for p in [out / "config.yaml", out / "summary.json",
                                                               *(out / "seed_0").iterdir()]})
            no_space()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fills_after_seed_0)
    code, _, err = main(monkeypatch, capsys, "seeds=[0,1]", "stack_seeds=off", *RUN, f"hydra.run.dir={out}")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and str(out / "seed_1") in lines[0], err
    assert "Traceback" not in err
    assert finished and all(path.read_bytes() == data for path, data in finished.items())
    assert json.loads((out / "seed_0" / "metrics.json").read_text())["status"] == "completed"
    assert not list(out.rglob("*.tmp"))


def test_a_full_disk_before_the_run_is_one_line_and_nothing_written(monkeypatch, capsys, tmp_path):
    """Hydra writes its own files (``.hydra/``, a log) before the job: on a full disk the
    command refuses first, in one line, instead of Hydra's traceback."""
    out = tmp_path / "run"
    real_statvfs = os.statvfs

    def full(path):
        stats = real_statvfs(path)
        return os.statvfs_result((stats.f_bsize, stats.f_frsize, stats.f_blocks, 0, 0, stats.f_files,
                                  stats.f_ffree, stats.f_favail, stats.f_flag, stats.f_namemax))

    monkeypatch.setattr(os, "statvfs", full)
    code, _, err = main(monkeypatch, capsys, "seeds=[0]", *RUN, f"hydra.run.dir={out}")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "hydra.run.dir" in lines[0] and "full" in lines[0], err
    assert not out.exists()


def test_a_run_whose_every_seed_diverged_says_so_and_exits_3(monkeypatch, capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = main(monkeypatch, capsys, "algo.lr=1e30", "seeds=[0,1]", "budget.epochs=null",
                             "budget.iterations=300", "progress=false", f"hydra.run.dir={out}")
    assert code == cli.EXIT_ALL_DIVERGED == 3, err
    assert "failed, every seed diverged (non-finite parameters or loss): no result" in stdout.splitlines()[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["all_diverged"] is True and summary["status"] == "failed"
    # one diverging seed among completed ones is not that
    code, stdout, err = main(monkeypatch, capsys, "seeds=[0]", *RUN, f"hydra.run.dir={tmp_path / 'ok'}")
    assert code == 0 and json.loads((tmp_path / "ok" / "summary.json").read_text())["all_diverged"] is False


def test_a_sweep_goes_on_after_a_job_whose_every_seed_diverged_then_exits_3(monkeypatch, capsys, tmp_path):
    sweep = tmp_path / "sweep"
    code, stdout, err = main(monkeypatch, capsys, "-m", "algo.lr=1e30,0.01", "seeds=[0]", "budget.epochs=null",
                             "budget.iterations=200", "progress=false", f"hydra.sweep.dir={sweep}")
    assert code == 3, err
    assert err.strip().splitlines()[-1] == "fairbench: every seed diverged in 1 of 2 jobs"
    statuses = sorted(json.loads(p.read_text())["status"] for p in Path(sweep).glob("*/summary.json"))
    assert statuses == ["completed", "failed"]
