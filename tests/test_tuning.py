"""Tuning: the feasibility-first score a job returns to Hydra's Optuna sweeper, on a toy whose
best feasible setting is known, end to end through the CLI, and its bad inputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from omegaconf import OmegaConf

import clirun
from fairbench.errors import ConfigError
from fairbench.tuning import check_tune, feasible_score, job_return, score

TUNE = {"objective": "feasible_val_loss", "tolerance": 0.001, "penalty": 10.0}


def summary(val_loss: float, val_violation: float, test_loss: float = 0.3, test_violation: float = 0.0,
            diverged: int = 0) -> dict:
    counts = {"completed": 3} | ({"diverged": diverged} if diverged else {})
    return {"counts": counts,
            "val": {"loss": {"mean": val_loss, "std": 0.0, "n": 3}, "max_violation": {"mean": val_violation}},
            "test": {"loss": {"mean": test_loss}, "max_violation": {"mean": test_violation}}}


def test_feasible_settings_score_their_loss_infeasible_ones_the_penalty_plus_violation():
    assert feasible_score(0.42, 0.0005, 0.001, 10.0) == 0.42
    assert feasible_score(0.42, 0.001, 0.001, 10.0) == 0.42  # the tolerance itself is feasible
    assert feasible_score(0.20, 0.03, 0.001, 10.0) == pytest.approx(10.03)
    assert feasible_score(0.20, 0.03, 0.001, math.inf) == math.inf
    assert feasible_score(math.nan, 0.0, 0.001, 10.0) == math.inf
    # every infeasible setting scores worse than every feasible one; less violation is better
    assert feasible_score(0.9, 0.0, 0.001, 10.0) < feasible_score(0.1, 0.002, 0.001, 10.0) \
        < feasible_score(0.1, 0.5, 0.001, 10.0)


def test_the_score_reads_the_validation_split_only():
    base = score(summary(0.5, 0.0), TUNE)
    assert base == 0.5
    for test_loss, test_violation in ((0.01, 0.0), (9.0, 0.9), (math.nan, math.nan)):
        assert score(summary(0.5, 0.0, test_loss, test_violation), TUNE) == base
    assert score(summary(0.5, 0.2, test_violation=0.0), TUNE) == pytest.approx(10.2)


def test_a_run_with_a_diverged_seed_or_no_result_scores_inf():
    assert score(summary(0.5, 0.0, diverged=1), TUNE) == math.inf
    assert score({"counts": {"diverged": 3}, "status": "diverged"}, TUNE) == math.inf


def test_without_an_objective_a_job_returns_its_exit_code():
    cfg = OmegaConf.create({"tune": {"objective": None, "tolerance": 0.001, "penalty": 10.0}})
    assert job_return(cfg, summary(0.5, 0.0), 3) == 3
    cfg.tune.objective = "feasible_val_loss"
    assert job_return(cfg, summary(0.5, 0.0), 0) == 0.5


@pytest.mark.parametrize("key,value", [("objective", "val_loss"), ("tolerance", -0.1), ("tolerance", math.inf),
                                       ("penalty", 0.0), ("penalty", "big"), ("tolerance", True)])
def test_bad_tune_settings_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"^tune\.{key}="):
        check_tune(OmegaConf.create(TUNE | {key: value}))


# -- a toy whose best feasible setting is known ------------------------------------------------------
# loss(x) = (x - 0.8)^2 + 0.3 is smallest at x = 0.8, but the constraint x <= 0.5 (violation
# max(0, x - 0.5)) makes x = 0.5 the best feasible setting; within the tolerance 0.001, at most
# x = 0.501.
def toy_summary(x: float) -> dict:
    return summary((x - 0.8) ** 2 + 0.3, max(0.0, x - 0.5), test_loss=(x - 0.9) ** 2, test_violation=0.0)


def test_on_the_toy_the_best_score_is_the_best_feasible_setting_not_the_unconstrained_one():
    grid = np.round(np.linspace(0.0, 1.0, 101), 2)
    scores = [score(toy_summary(x), TUNE) for x in grid]
    assert grid[int(np.argmin(scores))] == 0.5
    assert min(scores) == pytest.approx(0.39)
    # test numbers never enter: the test loss alone would pick x = 0.9
    assert grid[int(np.argmin([toy_summary(x)["test"]["loss"]["mean"] for x in grid]))] == 0.9


def test_tpe_on_the_toy_score_converges_to_the_constraint_boundary():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0), direction="minimize")
    study.optimize(lambda trial: score(toy_summary(trial.suggest_float("x", 0.0, 1.0)), TUNE), n_trials=60)
    best = study.best_params["x"]
    assert 0.40 <= best <= 0.501
    assert study.best_value == pytest.approx((best - 0.8) ** 2 + 0.3)


# -- end to end: Hydra's Optuna sweeper over fairbench jobs ---------------------------------------
def test_a_tuning_sweep_returns_each_trials_validation_score_to_optuna(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FAIRBENCH_OUTPUT_DIR", str(tmp_path))
    command = ("+experiment=tune_sgd", "hydra/launcher=basic", "hydra.sweeper.n_trials=3", "seeds=[0]",
               "budget.iterations=30", "log_every=10", "tune.tolerance=0.05", "progress=false")
    code, out, err = clirun.main(monkeypatch, capsys, *command)
    assert code == 0, err
    (sweep,) = (tmp_path / "tuning").iterdir()
    trials = sorted(sweep.glob("trial_*"))
    assert [t.name for t in trials] == ["trial_0", "trial_1", "trial_2"]
    scores = []
    for trial in trials:
        config = yaml.safe_load((trial / "config.yaml").read_text())
        assert config["tune"]["objective"] == "feasible_val_loss" and config["algo"]["name"] == "sgd"
        scores.append(score(yaml.safe_load((trial / "summary.json").read_text()), config["tune"]))
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(min(scores))
    assert set(result["best_params"]) == {"algo.lr", "algo.batch_size"}
    # the same command again: the seeded sampler proposes the same trials, whose seeds are done
    written = {t: (t / "seed_0" / "metrics.json").stat().st_mtime_ns for t in trials}
    code, out, err = clirun.main(monkeypatch, capsys, *command)
    assert code == 0, err
    assert {t: (t / "seed_0" / "metrics.json").stat().st_mtime_ns for t in trials} == written
    assert sorted(sweep.glob("trial_*")) == trials
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text()) == result


# -- bad input: one line, exit 2, nothing written ---------------------------------------------------
@pytest.mark.parametrize("args,line", [
    (("+experiment=tune", "algo=sgd"), "hydra.sweeper.params={}: a search space"),
    (("+experiment=tune_sgd", "tune.objective=null"), "tune.objective=None: feasible_val_loss"),
    (("+experiment=tune", "algo=sgd", "algo.lr=interval(-0.1,0.1)"), "algo.lr=-0.1: must be a number > 0"),
    (("+experiment=tune_ssl_alm", "algo.beta=interval(0.5,1.5)"), "algo.beta=1.5:"),
    (("+experiment=front", "algo=sgd", "problem.delta=0.01,0"), "problem.delta=0: must be a number > 0"),
    (("+experiment=front", "algo=ssw", "problem.delta=-0.02,0.01"), "problem.delta=-0.02: must be a number > 0"),
    (("tune.penalty=0",), "tune.penalty=0: a number > 0"),
    (("+experiment=tune_gda", "tune.trial=maybe"), "tune.trial='maybe': accepted: None, defaults"),
])
def test_bad_sweeps_are_refused_in_one_line_before_anything_is_written(monkeypatch, capsys, tmp_path: Path,
                                                                        args, line):
    out = tmp_path / "out"
    monkeypatch.setenv("FAIRBENCH_OUTPUT_DIR", str(out))
    code, stdout, err = clirun.main(monkeypatch, capsys, *args, "hydra/launcher=basic", "seeds=[0]",
                                    "budget.iterations=5")
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"fairbench: error: {line}"), err
    assert not out.exists()


# -- the first trial of a tuning sweep is the composed configuration (the report's default) ------------
def test_the_first_trial_runs_the_defaults_and_the_report_compares_the_best_with_it(monkeypatch, capsys, tmp_path):
    from fairbench.report.collect import read_run
    from fairbench.report.tuning import collect_studies, comparison_table, default_run

    monkeypatch.setenv("FAIRBENCH_OUTPUT_DIR", str(tmp_path))
    code, out, err = clirun.main(monkeypatch, capsys, "+experiment=tune_sgd", "hydra/launcher=basic",
                                 "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=3", "seeds=[0]",
                                 "budget.iterations=30", "log_every=10", "tune.tolerance=0.05", "progress=false",
                                 "algo.batch_size=16")  # a fixed override: part of the composed configuration
    assert code == 0, err
    (sweep,) = (tmp_path / "tuning").iterdir()
    trials = sorted(sweep.glob("trial_*"))
    configs = [yaml.safe_load((t / "config.yaml").read_text()) for t in trials]
    defaults = yaml.safe_load((Path(__file__).parents[1] / "fairbench/conf/algo/sgd.yaml").read_text())
    assert configs[0]["tune"]["trial"] == "defaults"
    assert configs[0]["algo"]["lr"] == defaults["lr"] and configs[0]["algo"]["batch_size"] == 16
    assert [c["tune"]["trial"] for c in configs[1:]] == [None, None]
    assert all(c["algo"]["lr"] != defaults["lr"] for c in configs[1:])  # sampled by TPE
    issues: list = []
    runs = [read_run(t, issues) for t in trials]
    (study,) = collect_studies(runs)
    assert study.default.run.path == trials[0] and default_run(study, runs).path == trials[0]
    table = comparison_table([study], runs)
    assert table.rows[0][8] == str(trials[0])


def test_a_default_outside_the_search_space_is_sampled_and_the_trial_is_not_marked(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FAIRBENCH_OUTPUT_DIR", str(tmp_path))
    code, out, err = clirun.main(monkeypatch, capsys, "+experiment=tune", "algo=sgd", "hydra/launcher=basic",
                                 "algo.lr=tag(log, interval(0.01, 0.1))", "hydra.sweeper.n_trials=1", "seeds=[0]",
                                 "budget.iterations=10", "log_every=10", "progress=false")
    assert code == 0, err
    (trial,) = (tmp_path / "tuning").glob("*/trial_0")
    config = yaml.safe_load((trial / "config.yaml").read_text())
    assert config["tune"]["trial"] is None and 0.01 <= config["algo"]["lr"] <= 0.1  # sgd's default 0.005 is outside
