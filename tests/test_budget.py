"""Budgets: the limits a user sets replace the default, the first reached stops a seed, and
every seed records which limit stopped it; one-off start-up costs are outside the timed
region."""

import json
import time

import pytest

from fairbench.algorithms.sgd import SGD
from fairbench.budget import Budget, describe_stop
from fairbench.cli import compose_job
from fairbench.errors import ConfigError
from fairbench.progress import Progress
from fairbench.runner import run


def run_job(tmp_path, *overrides):
    summary = run(compose_job(["progress=false", "seeds=[0]", "stack_seeds=off", *overrides]), tmp_path)
    metrics = json.loads((tmp_path / "seed_0" / "metrics.json").read_text())
    return summary, metrics


def test_a_user_budget_replaces_the_default_epochs(tmp_path):
    # 5000 iterations of batch 8 are more than the default's 4 epochs of the synthetic data
    summary, metrics = run_job(tmp_path, "budget.iterations=5000", "log_every=1000")
    assert metrics["iterations"] == 5000 and metrics["epochs"] > 2
    assert metrics["stopped_by"] == {"budget": "iterations", "limit": 5000, "value": 5000}
    assert summary["budget"] == {"iterations": 5000, "epochs": None, "samples": None, "seconds": None}
    assert summary["stopped_by"] == {"0": metrics["stopped_by"]}


def test_without_a_budget_the_default_applies_and_is_recorded(tmp_path):
    summary, metrics = run_job(tmp_path, "log_every=1000")
    assert summary["budget"]["epochs"] == 4 and summary["budget"]["iterations"] is None
    stop = metrics["stopped_by"]
    assert stop["budget"] == "epochs" and stop["limit"] == 4 and 4 <= stop["value"] < 4.01
    assert metrics["epochs"] == stop["value"]


def test_several_user_budgets_combine_and_the_first_reached_stops(tmp_path):
    _, metrics = run_job(tmp_path, "budget.iterations=300", "budget.samples=800", "log_every=50")
    # SGD draws 8 rows an iteration: 800 samples come at iteration 100, before 300 iterations
    assert metrics["iterations"] == 100
    assert metrics["stopped_by"] == {"budget": "samples", "limit": 800, "value": 800}


def test_budget_reached_names_the_first_limit_in_order():
    budget = Budget(iterations=10, samples=80)
    assert budget.reached(9, 72, 0.0, 100) is None
    assert budget.reached(10, 80, 0.0, 100) == {"budget": "iterations", "limit": 10, "value": 10}
    assert Budget(epochs=0.5).reached(3, 50, 0.0, 100) == {"budget": "epochs", "limit": 0.5, "value": 0.5}
    assert describe_stop({"budget": "seconds", "limit": 3, "value": 3.0001}) == "stopped by budget.seconds=3 (at 3)"


def test_no_budget_and_no_default_is_refused():
    with pytest.raises(ConfigError, match="default_budget"):
        Budget.of_job({"budget": {}, "default_budget": {}})
    with pytest.raises(ConfigError, match="default_budget.epoch"):
        Budget.of_job({"budget": {}, "default_budget": {"epoch": 4}})


def test_closing_line_names_the_budget_that_stopped_the_seed(tmp_path, capsys):
    import sys

    cfg = compose_job(["progress=true", "seeds=[0]", "budget.iterations=50", "log_every=10"])
    run(cfg, tmp_path, Progress(1, Budget.of_job(cfg), stream=sys.stderr))
    assert "stopped by budget.iterations=50 (at 50)" in capsys.readouterr().err


def test_one_off_start_up_costs_are_outside_the_timed_region(tmp_path, monkeypatch):
    """A step's first call in a process that pays a one-off cost (as loading or compiling
    kernels does) is made by the warm-up, before the clock of a seconds budget starts."""
    step, paid = SGD.step, {"done": False}

    def first_call_is_slow(self):
        if not paid["done"]:
            paid["done"] = True
            time.sleep(0.5)
        return step(self)

    monkeypatch.setattr(SGD, "step", first_call_is_slow)
    _, metrics = run_job(tmp_path, "budget.seconds=0.2", "log_every=100000")
    assert metrics["stopped_by"]["budget"] == "seconds"
    assert metrics["warmup_seconds"] >= 0.5 and metrics["train_seconds"] < 0.45
    assert metrics["iterations"] > 100
