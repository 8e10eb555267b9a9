"""Verdicts on hand-made results with known answers: time to target, profiles, scores, tests,
variances, intervals, parquet, and the bad requests (one line, exit 2, nothing written)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fairbench.report import cli
from fairbench.report.profiles import area_scores, problem_matrix, profile, ratios
from fairbench.report.stats import holm, mean_ranks, paired_tests
from fairbench.report.targets import quartiles, time_to_target
from fairbench.report.variance import decompose
from rundirs import write_run


def curve(losses, violations, step=100):
    n = len(losses)
    return pd.DataFrame({"iteration": np.arange(n) * step, "samples": np.arange(n) * 10 * step,
                         "epoch": np.arange(n) * 0.5, "grad_evals": np.arange(n) * 20 * step,
                         "train_seconds": np.arange(n) * 0.25, "train_loss": losses,
                         "train_max_violation": violations})


def test_time_to_target_needs_both_loss_and_feasibility():
    frame = curve([0.9, 0.5, 0.4, 0.3], [0.0, 0.2, 0.0, 0.0])
    # row 1 has the loss but violates; row 2 is the first feasible point under the target
    assert time_to_target(frame, 0.5, 1e-3) == {"iteration": 200.0, "samples": 2000.0, "epoch": 1.0,
                                                "grad_evals": 4000.0, "train_seconds": 0.5}
    assert all(math.isinf(v) for v in time_to_target(frame, 0.1, 1e-3).values())


def test_quartiles_count_failures_last():
    assert quartiles([1, 2, 3, 4, 5]) == (2.0, 3.0, 4.0)
    assert quartiles([1, 2, 3, math.inf, math.inf]) == (2.0, 3.0, math.inf)
    assert quartiles([math.inf] * 3) == (math.inf,) * 3


def test_twice_as_fast_ties_and_never():
    # columns: fast, slow (always twice), twin (ties with fast), never (no success)
    T = np.array([[1.0, 2.0, 1.0, np.inf], [3.0, 6.0, 3.0, np.inf], [0.5, 1.0, 0.5, np.inf]])
    r = ratios(T)
    assert r[:, 0].tolist() == [1, 1, 1] and r[:, 1].tolist() == [2, 2, 2] and np.isinf(r[:, 3]).all()
    rho = profile(r, np.array([1.0, 1.5, 2.0, 100.0]))
    assert rho[0].tolist() == [1, 1, 1, 1] and rho[1].tolist() == [0, 0, 1, 1]
    assert rho[2].tolist() == [1, 1, 1, 1] and rho[3].tolist() == [0, 0, 0, 0]
    assert area_scores(r, 4.0) == pytest.approx([1.0, 2 / 3, 1.0, 0.0])
    assert mean_ranks(T).tolist() == [1.5, 3.0, 1.5, 4.0]


def test_nobody_solves_a_problem_counts_it_unsolved_for_all():
    r = ratios(np.array([[np.inf, np.inf], [1.0, 2.0]]))
    assert np.isinf(r[0]).all() and area_scores(r, 2.0) == pytest.approx([0.5, 0.0])


def test_wilcoxon_with_holm_on_known_answers():
    T = np.column_stack([np.arange(1.0, 11.0), 2 * np.arange(1.0, 11.0), np.arange(1.0, 11.0)])
    rows = {(r["a"], r["b"]): r for r in paired_tests(["fast", "slow", "twin"], T, 0.05)}
    fs = rows[("fast", "slow")]
    assert fs["a_faster"] == 10 and fs["p"] == pytest.approx(2 / 2 ** 10)  # exact two-sided signed-rank
    assert fs["median_log2_ratio"] == pytest.approx(-1.0) and fs["verdict"] == "fast faster"
    # two equal smallest of three p-values: x3, then x2 raised to the running maximum, x3
    assert fs["p_holm"] == pytest.approx(3 * 2 / 2 ** 10) == rows[("slow", "twin")]["p_holm"]
    tie = rows[("fast", "twin")]
    assert tie["ties"] == 10 and tie["p"] == 1.0 and tie["verdict"] == "no difference shown"
    assert rows[("slow", "twin")]["verdict"] == "twin faster"
    never = paired_tests(["a", "never"], np.column_stack([np.ones(8), np.full(8, np.inf)]), 0.05)[0]
    assert never["a_faster"] == 8 and never["verdict"] == "a faster"


def test_holm_step_down():
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])


def test_problem_matrix_pairs_on_split_and_init_seeds_and_drops_unpaired():
    times = pd.DataFrame({"task": ["t"] * 5, "method": ["a", "a", "a", "b", "b"], "split_seed": [0, 0, 1, 0, 1],
                          "seed": [0, 1, 0, 0, 0], "samples": [1.0, 2.0, 3.0, 4.0, 5.0]})
    methods, T, dropped = problem_matrix(times, "samples")
    assert methods == ["a", "b"] and dropped == 1  # (split 0, seed 1): b lacks it
    assert sorted(map(tuple, T.tolist())) == [(1.0, 4.0), (3.0, 5.0)]


def test_variance_decomposition_separates_the_axes():
    # split effect +-1, init effect +-0.1 (crossed): between-split ~ 2 (var of means), within ~ 0.0133
    values = {0: [-1.1, -1.0, -0.9], 1: [0.9, 1.0, 1.1]}
    split_var, init_var, splits, n = decompose(values)
    assert (splits, n) == (2, 6) and init_var == pytest.approx(0.01)
    assert split_var == pytest.approx(2.0 - 0.01 / 3)
    assert math.isnan(decompose({0: [1.0, 2.0]})[0])


def run_pair(root, fast_rows=12, slow_rows=24, **kw):
    """Two methods on one task: ssl_alm's trajectories reach the target after fewer rows than alm's."""
    write_run(root / "fast", "ssl_alm", seeds=(0, 1, 2), loss=0.40, early_loss=0.7, rows=30, last=30 - fast_rows,
              scores=True, **kw)
    write_run(root / "slow", "alm", seeds=(0, 1, 2), loss=0.41, early_loss=0.7, rows=30, last=30 - slow_rows,
              scores=True, **kw)
    return root


def test_report_renders_verdicts_and_parquet(tmp_path):
    root = run_pair(tmp_path / "suite")
    assert cli.main([str(root), "--quiet", "--target-margin", "0.5", "--tolerance", "0.01"]) == 0
    report = (root / "report" / "report.md").read_text()
    for heading in ("Time to a feasible target", "Profiles and scores over the suite", "Variance: split seeds",
                    "Test fairness gaps with confidence intervals", "Optimality at the end"):
        assert heading in report
    folder = root / "report" / "parquet"
    times = pd.read_parquet(folder / "time_to_target.parquet")
    assert set(times["method"]) == {"ssl_alm", "alm"} and len(times) == 6
    # late (target-meeting) rows start at row 12 for ssl_alm and row 24 for alm: twice as fast
    assert (times[times["method"] == "ssl_alm"]["iteration"] == 1200).all()
    assert (times[times["method"] == "alm"]["iteration"] == 2400).all()
    scores = pd.read_parquet(folder / "profile_scores.parquet").set_index("method")
    assert scores.loc["ssl_alm", "score_samples"] == 1.0 and scores.loc["alm", "score_samples"] == pytest.approx(2 / 3)
    assert scores.loc["ssl_alm", "mean_rank_samples"] == 1.0 and "report_fairbench_version" in scores
    trajectories = pd.read_parquet(folder / "trajectories.parquet")
    assert {"run", "method", "split_seed", "seed", "status", "git_commit", "train_loss"} <= set(trajectories.columns)
    gaps = pd.read_parquet(folder / "test_gaps.parquet")
    assert (gaps["test_max_c_lo"] <= gaps["test_max_c"]).all() and (gaps["test_max_c"] <= gaps["test_max_c_hi"]).all()
    assert set(gaps["verdict"]) <= {"holds", "violated", "undecided"}
    assert (root / "report" / "figures" / "verdict_profiles_suite.png").is_file()
    assert (root / "report" / "figures" / "verdict_profiles_suite.pdf").is_file()
    html = (root / "report" / "report.html").read_text()
    assert "aria-sort" in html and "<script>" in html


def test_target_no_run_defines_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    write_run(tmp_path / "suite" / "a", "sgd", violation=0.05)  # every train point violates by 0.05
    assert cli.main([str(tmp_path / "suite"), "--tolerance", "0.001"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run of task" in err and "--target-loss" in err
    assert not (tmp_path / "suite" / "report").exists()
    assert [p.name for p in (tmp_path / "suite").iterdir()] == ["a"]  # no partial folder either


def test_one_target_loss_over_several_tasks_is_refused(tmp_path, capsys):
    write_run(tmp_path / "suite" / "a", "sgd", delta=0.005)
    write_run(tmp_path / "suite" / "b", "sgd", delta=0.05)
    assert cli.main([str(tmp_path / "suite"), "--target-loss", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--target-loss 0.5" in err and "2 tasks" in err
    assert not (tmp_path / "suite" / "report").exists()


def test_default_report_notes_a_task_without_target(tmp_path):
    write_run(tmp_path / "suite" / "a", "sgd", violation=0.05)
    assert cli.main([str(tmp_path / "suite"), "--quiet"]) == 0
    assert "no target (no logged point of any run has train max violation" in (
        tmp_path / "suite" / "report" / "report.md").read_text()


@pytest.mark.parametrize(("gap", "verdict"), [(0.0, "holds"), (1.0, "violated")])
def test_test_gap_interval_and_verdict(tmp_path, gap, verdict):
    """Two groups predicted equally well (loss gap 0 < delta) or group 1 much worse (gap >> delta)."""
    from fairbench.report.collect import read_run
    from fairbench.report.grouping import group_runs
    from fairbench.report.targets import build_tasks
    from fairbench.report.variance import gap_rows

    run_dir = write_run(tmp_path / "run", "sgd", seeds=(0, 1), delta=0.2)
    rng = np.random.default_rng(0)
    expected = []
    for seed in (0, 1):
        group = np.repeat([0, 1], 1000)
        y = rng.integers(0, 2, 2000)
        right = np.where(group == 1, 0.8 - 0.7 * gap, 0.8) + rng.uniform(-0.05, 0.05, 2000)  # P(true label)
        scores = np.where(y == 1, right, 1 - right)
        np.savez(run_dir / f"seed_{seed}" / "scores_test.npz", scores=scores, y=y, group=group)
        losses = -np.log(right)
        expected.append(abs(losses[:1000].mean() - losses[1000:].mean()) - 0.2)  # pairs/signed: |L0 - L1| - delta
    (experiment,) = group_runs([read_run(run_dir, [])])
    issues = []
    (row,) = gap_rows(build_tasks([(experiment, experiment.entries)]), 0.95, 200, issues)
    assert not issues and row["verdict"] == verdict and row["seeds"] == 2
    assert row["test_max_c_lo"] <= row["test_max_c"] <= row["test_max_c_hi"]
    assert row["test_max_c"] == pytest.approx(np.mean(expected), abs=1e-9)


def test_test_gap_rows_follow_the_constraints_statistic():
    """A rate constraint's test rows are the soft rates of the saved scores, in their cells
    (group within label for conditional rates), not the losses."""
    from types import SimpleNamespace

    import configs
    from fairbench.report.variance import seed_scores

    scores = np.array([0.9, 0.2, 0.7, 0.4])
    arrays = SimpleNamespace(scores=scores, y=np.array([1, 0, 1, 0]), group=np.array([0, 0, 1, 1]))
    rates = seed_scores(arrays, configs.constraint_spec(statistic="positive_rate"), 2)
    np.testing.assert_allclose(rates.values, scores, rtol=1e-6)
    assert rates.cell.tolist() == [0, 0, 1, 1]
    odds = seed_scores(arrays, configs.constraint_spec(statistic="equalized_odds"), 2)
    assert odds.cell.tolist() == [0, 2, 1, 3]  # TPR cells (y = 1) first, then FPR cells
    sharp = seed_scores(arrays, configs.constraint_spec(statistic="positive_rate", temperature=0.5), 2)
    np.testing.assert_allclose(sharp.values, 1 / (1 + ((1 - scores) / scores) ** 2), rtol=1e-6)
