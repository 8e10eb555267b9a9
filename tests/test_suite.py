"""The suite preset: tasks x methods x split seeds, any launcher, one report over any folders."""

from __future__ import annotations

import io
import itertools

import yaml

import clirun
from fairbench import CONF_DIR, cli
from fairbench.jobdirs import register_resolvers
from fairbench.report.build import Options, write_report


def suite_params() -> dict:
    return yaml.safe_load((CONF_DIR / "experiment" / "suite.yaml").read_text())["hydra"]["sweeper"]["params"]


def test_the_suite_plans_every_task_method_and_split_seed_once():
    register_resolvers()
    params = suite_params()
    tasks, algos, splits = (str(params[k]).split(",") for k in ("+task", "algo", "dataset.split.seed"))
    assert set(tasks) <= {p.stem for p in (CONF_DIR / "task").glob("*.yaml")}
    assert sorted(algos) == sorted(p.stem for p in (CONF_DIR / "algo").glob("*.yaml"))
    jobs = cli.job_override_lists(["+experiment=suite"], False)
    combos = {tuple(sorted(o for o in job if not o.startswith("+experiment"))) for job in jobs}
    expected = {tuple(sorted((f"+task={t}", f"algo={a}", f"dataset.split.seed={s}")))
                for t, a, s in itertools.product(tasks, algos, splits)}
    assert len(jobs) == len(expected) and combos == expected


def test_the_command_line_narrows_the_suite():
    register_resolvers()
    jobs = cli.job_override_lists(["+experiment=suite", "+task=synthetic", "algo=sgd,ssw"], False)
    assert sorted(tuple(sorted(j)) for j in jobs) == sorted(
        tuple(sorted(["+experiment=suite", "+task=synthetic", f"algo={a}", f"dataset.split.seed={s}"]))
        for a in ("sgd", "ssw") for s in (0, 1))


def test_every_suite_job_is_valid_on_the_census_data(acs_root, monkeypatch, tmp_path):
    monkeypatch.setenv("FAIRBENCH_OUTPUT_DIR", str(tmp_path / "out"))
    register_resolvers()
    cli.validate_invocation(["+experiment=suite", "hydra/launcher=basic"]).result()
    assert not (tmp_path / "out").exists()


def test_runs_of_separate_commands_merge_in_one_report(monkeypatch, capsys, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for out, split in ((first, 0), (second, 1)):
        monkeypatch.setenv("FAIRBENCH_OUTPUT_DIR", str(out))
        code, _, err = clirun.main(monkeypatch, capsys, "+experiment=suite", "+task=synthetic", "algo=sgd",
                                   f"dataset.split.seed={split}", "hydra/launcher=basic", "seeds=[0]",
                                   "budget.epochs=0.02", "progress=false")
        assert code == 0, err
    report = tmp_path / "report"
    write_report([first, second], report, Options(quiet=True), log=io.StringIO())
    markdown = (report / "report.md").read_text()
    assert "2 run directories" in markdown
    assert "dataset.split.seed=0" in markdown and "dataset.split.seed=1" in markdown
