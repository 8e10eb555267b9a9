"""The report's trade-off fronts (δ sweeps) and tuning sections, on hand-made runs."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from fairbench.report.build import Options, write_report
from fairbench.report.collect import Run, SeedResult
from fairbench.report.fronts import collect_fronts, gap_figure, loss_figure, non_dominated, violation_key
from fairbench.report.tuning import collect_studies, default_run
from rundirs import write_run


def fake_run(algo: str, delta: float, loss: float, violation: float, constraints: list[float],
             dataset: str = "synthetic", extra: dict | None = None, seeds: int = 2) -> Run:
    config = {"dataset": {"name": dataset}, "algo": {"name": algo},
              "problem": {"name": "constrained", "delta": delta, "family": "pairs", "form": "signed",
                          "statistic": "loss"}}
    test = {"loss": loss, "max_violation": violation, "accuracy": 1 - loss, "ind": violation, "sp": 0.1,
            "sf": 0.1, "ina": loss, "wd": 0.01, "constraints": constraints, **(extra or {})}
    seed_results = [SeedResult(s, Path(f"/nowhere/seed_{s}"), "completed", {"splits": {"test": test}})
                    for s in range(seeds)]
    return Run(Path(f"/nowhere/{algo}-{delta}"), config, {}, seeds=seed_results)


def test_non_dominated_marks_exactly_the_pareto_points():
    costs = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.6, 0.6], [1.0, 1.0], [0.5, 0.5], [np.nan, 0.0]])
    assert non_dominated(costs).tolist() == [True, True, True, False, False, True, False]


def test_a_delta_sweep_makes_one_front_per_task_with_the_achieved_gap():
    runs = [fake_run("ssw", 0.01, 0.5, 0.0, [-0.004, -0.016]),     # gap |d| = 0.006 <= 0.01
            fake_run("ssw", 0.05, 0.45, 0.01, [0.01, -0.11]),       # gap 0.06
            fake_run("sgd", 0.01, 0.40, 0.05, [0.05, -0.07]),
            fake_run("sgd", 0.005, 0.40, 0.0, [-0.001, -0.009], dataset="oklahoma_race")]  # a lone delta
    (front,) = collect_fronts(runs)
    assert front.title.startswith("synthetic") and front.deltas == [0.01, 0.05]
    gaps = {(p.method, p.delta): p.values["gap"] for p in front.points}
    assert gaps == pytest.approx({("ssw", 0.01): 0.006, ("ssw", 0.05): 0.06, ("sgd", 0.01): 0.06})
    assert violation_key(front.points) == "max_violation"
    assert loss_figure(front) is not None and gap_figure(front) is not None


def test_the_true_violation_is_used_where_every_run_records_it():
    runs = [fake_run("ssw", d, 0.5, 0.0, [0.0, -0.02], extra={"max_violation_true": 0.03}) for d in (0.01, 0.02)]
    (front,) = collect_fronts(runs)
    assert violation_key(front.points) == "max_violation_true"


def test_no_front_without_at_least_two_deltas():
    assert collect_fronts([fake_run("ssw", 0.01, 0.5, 0.0, [0.0]), fake_run("sgd", 0.01, 0.4, 0.1, [0.1])]) == []


def make_tuning(root: Path, losses_violations: list[tuple[float, float]]) -> Path:
    """A tuning sweep folder: trial_<k> runs with tune.objective set and their summaries edited
    to known validation numbers, plus the sweep's hydra records."""
    sweep = root / "tuning" / "sweep"
    for k, (loss, violation) in enumerate(losses_violations):
        trial = write_run(sweep / f"trial_{k}", "ssl_alm", hyper={"tau": 0.01 * (k + 1)})
        config = yaml.safe_load((trial / "config.yaml").read_text())
        config["tune"] = {"objective": "feasible_val_loss", "tolerance": 0.001, "penalty": 10.0}
        (trial / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        summary = json.loads((trial / "summary.json").read_text())
        summary["val"]["loss"]["mean"], summary["val"]["max_violation"]["mean"] = loss, violation
        (trial / "summary.json").write_text(json.dumps(summary))
        (trial / ".hydra").mkdir()
        (trial / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
            {"hydra": {"job": {"num": k}, "sweeper": {"params": {"algo.tau": "tag(log, interval(0.001, 0.1))"}}}}))
    (sweep / "optimization_results.yaml").write_text("name: optuna\n")
    return sweep


def test_tuning_studies_track_the_best_feasible_validation_loss_after_k_trials(tmp_path):
    sweep = make_tuning(tmp_path, [(0.40, 0.02), (0.55, 0.0), (0.60, 0.0005), (0.50, 0.0)])
    default = write_run(tmp_path / "runs" / "default", "ssl_alm")
    other_budget = write_run(tmp_path / "runs" / "other", "ssl_alm")
    config = yaml.safe_load((other_budget / "config.yaml").read_text())
    config["budget"]["epochs"] = 9
    (other_budget / "config.yaml").write_text(yaml.safe_dump(config))
    from fairbench.report.collect import read_run
    issues: list = []
    runs = [read_run(p, issues) for p in sorted(sweep.glob("trial_*"))] + [read_run(default, issues),
                                                                             read_run(other_budget, issues)]
    (study,) = collect_studies(runs)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert study.searched == ("algo.tau",)
    best = study.best_after()
    assert math.isnan(best[0]) and best[1:].tolist() == [0.55, 0.55, 0.50]
    assert study.best.number == 3 and study.trials[0].score == pytest.approx(10.02)
    assert default_run(study, runs).path == default  # same setup; the other budget is not a default


def test_the_report_draws_fronts_and_tuning_with_png_and_pdf(tmp_path):
    for delta in (0.01, 0.05):
        write_run(tmp_path / "front" / f"ssw-delta={delta}", "ssw", delta=delta, seeds=(0,))
    make_tuning(tmp_path, [(0.5, 0.0), (0.45, 0.0)])
    out = tmp_path / "report"
    write_report([tmp_path], out, Options(quiet=True), log=io.StringIO())
    html = (out / "report.html").read_text()
    assert "Trade-off fronts" in html and "Tuning (Optuna" in html
    for stem in ("front_loss_synthetic_pairs_signed_loss_constraints",
                 "front_accuracy_synthetic_pairs_signed_loss_constraints",
                 "front_gap_synthetic_pairs_signed_loss_constraints", "tuning_cost"):
        assert (out / "figures" / f"{stem}.png").is_file() and (out / "figures" / f"{stem}.pdf").is_file(), stem
        assert f"figures/{stem}.pdf" in html
    markdown = (out / "report.md").read_text()
    assert "figures/tuning_cost.png" in markdown
    assert "| ssl_alm | synthetic | 2/2 | tau=0.02 | 0.4500 | 0.0000 |" in markdown
