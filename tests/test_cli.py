"""The ``fairbench`` command end to end, through a subprocess as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SUMMARY_METRICS = {"loss", "max_violation", "ind", "sp", "sf", "ina", "wd", "auc"}


def fairbench(*args, env=None, cwd=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "fairbench", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300)


def check_run_dir(run_dir: Path, seeds, synthetic: bool):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["synthetic"] is synthetic
    assert summary["seeds"] == list(seeds) and summary["status"] == "completed"
    for split in ("train", "val", "test"):
        assert SUMMARY_METRICS <= set(summary[split])
        for stats in summary[split].values():
            assert stats["mean"] is not None and stats["std"] is not None
    assert (run_dir / "config.yaml").is_file()
    for seed in seeds:
        header = (run_dir / f"seed_{seed}" / "trajectory.csv").read_text().splitlines()[0].split(",")
        for column in ("iteration", "train_seconds", "samples", "grad_evals", "train_loss", "test_loss",
                       "train_c0", "train_max_violation", "val_max_violation"):
            assert column in header
        metrics = json.loads((run_dir / f"seed_{seed}" / "metrics.json").read_text())
        assert metrics["status"] == "completed" and set(metrics["splits"]) == {"train", "val", "test"}
    return summary


def test_default_run_on_embedded_synthetic_data(tmp_path):
    out = tmp_path / "run"
    result = fairbench("seeds=[0,1]", "budget.iterations=200", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr
    assert "SYNTHETIC" in result.stdout
    summary = check_run_dir(out, [0, 1], synthetic=True)
    assert summary["algo"] == "sgd" and summary["dataset"] == "synthetic"
    assert summary["iterations"]["mean"] == 200


def test_oklahoma_race_on_real_data(tmp_path, acs_root):
    data = acs_root
    out = tmp_path / "ok"
    result = fairbench("dataset=oklahoma_race", "seeds=[0]", "budget.iterations=300", f"hydra.run.dir={out}",
                       env={"FAIRBENCH_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    summary = check_run_dir(out, [0], synthetic=False)
    assert summary["group_names"] == ["white", "non-white"]
    assert "OK_0.csv" in summary["data_source"]


def test_folktables_format_fixture_through_the_cli(tmp_path, folktables_root):
    out = tmp_path / "fk"
    result = fairbench("dataset=oklahoma_race", "dataset.source=folktables", f"dataset.root={folktables_root}",
                       "seeds=[0]", "budget.iterations=50", "log_every=25", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr
    summary = check_run_dir(out, [0], synthetic=False)
    assert "psam_p40.csv" in summary["data_source"]


def test_missing_data_is_one_line_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path / "never"
    result = fairbench("dataset=oklahoma_race", f"dataset.root={tmp_path / 'empty'}", f"hydra.run.dir={out}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "FAIRBENCH_DATA_DIR" in lines[0] and "dataset.download=true" in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists() and not (tmp_path / "empty").exists()


# the process boundary (exit status, stderr as the shell sees it) for one case of each kind:
# an option, a value, a sweep; every kind of bad input is covered in process by
# tests/test_bad_input.py (each case here took ~4.5 s as a subprocess)
@pytest.mark.parametrize("args,expected", [
    (["algo=nope"], "algo='nope': accepted:"),
    (["algo.lr=-1"], "algo.lr=-1: must be a number > 0"),
    (["-m", "algo.lr=0.01,-0.5"], "algo.lr=-0.5"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, expected):
    out = tmp_path / "never"
    result = fairbench(*args, f"hydra.run.dir={out}", f"hydra.sweep.dir={out}")
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_multirun_sweep_writes_one_run_per_combination(tmp_path):
    sweep = tmp_path / "sweep"
    result = fairbench("-m", "algo.lr=0.001,0.005", "seeds=[0,1]", "budget.iterations=100",
                       f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    runs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert len(runs) == 2
    assert sorted(r.name for r in runs) == ["algo.lr=0.001,budget.iterations=100,seeds=[0,1]",
                                               "algo.lr=0.005,budget.iterations=100,seeds=[0,1]"]
    for run in runs:
        check_run_dir(run, [0, 1], synthetic=True)


@pytest.mark.parametrize("preset", ["paper_oklahoma", "paper_virginia", "paper_oklahoma_positive_rate"])
def test_paper_presets_run_every_method_once_at_its_paper_budget(preset):
    """The preset's sweep (ordered longest job first for parallel launchers) holds each method
    of its ``paper_iterations`` exactly once, and each job gets that method's iteration count."""
    from fairbench.cli import compose_job, job_override_lists, register_resolvers

    register_resolvers()
    jobs = job_override_lists([f"+experiment={preset}"], multirun=False)
    cfgs = [compose_job(job) for job in jobs]
    names = [cfg.algo.name for cfg in cfgs]
    assert sorted(names) == sorted(cfgs[0].paper_iterations) and len(set(names)) == len(names)
    for cfg in cfgs:
        assert cfg.budget.iterations == cfg.paper_iterations[cfg.algo.name]
        assert cfg.budget.epochs is None and cfg.budget.seconds is None
        assert cfg.log_every == (10 if cfg.algo.name == "ghost" else 100)  # as the paper's code saved them
    # the preset runs its jobs on both cores unless another launcher is asked for
    launcher = compose_job([f"+experiment={preset}"], hydra_config=True).hydra.launcher
    assert "joblib" in launcher._target_.lower() and launcher.n_jobs == 2
    basic = compose_job([f"+experiment={preset}", "hydra/launcher=basic"], hydra_config=True).hydra.launcher
    assert "basic" in basic._target_.lower()
