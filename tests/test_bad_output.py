"""Bad output settings (``algo.output``, ``algo.tail_fraction``, ``algo.random_start`` against the
budget): refused when the command is validated, before anything is written: one line naming
the key, the value and what is accepted, exit 2 (tests/test_bad_input.py's ``invoke``)."""

import json

import pytest

from fairbench import cli
from fairbench.algorithms.output import check_output_budget
from fairbench.errors import ConfigError
from test_bad_input import invoke

CASES = [
    # the default budget (4 epochs) has no iterations
    (["algo=pbm", "algo.output=tail"], "algo.output='tail': needs budget.iterations"),
    (["algo=ghost", "algo.output=tail", "budget.epochs=2"], "algo.output='tail': needs budget.iterations"),
    # another limit could stop the run before or inside the tail
    (["algo=pbm", "algo.output=tail", "budget.iterations=100", "budget.epochs=1"],
     "budget.epochs=1: must be null with algo.output=tail: the tail is the last tail_fraction of budget.iterations (100)"),
    (["algo=ghost", "algo.output=tail", "budget.iterations=100", "budget.seconds=5"], "budget.seconds=5: must be null"),
    (["algo=nupi", "algo.output=tail", "budget.iterations=100", "budget.samples=800"], "budget.samples=800: must be null"),
    # a tail of no iteration
    (["algo=ialm", "algo.output=tail", "budget.iterations=100", "algo.tail_fraction=1e-20"],
     "algo.tail_fraction=1e-20: leaves no tail iteration of budget.iterations=100"),
    # values outside their domains, whatever the budget
    (["algo=ialm", "algo.output=tail", "budget.iterations=100", "algo.tail_fraction=abc"],
     "algo.tail_fraction='abc': must be a number in (0, 1]"),
    (["algo=gda", "algo.tail_fraction=1.5"], "algo.tail_fraction=1.5: must be a number in (0, 1]"),
    (["algo=gda", "algo.tail_fraction=0"], "algo.tail_fraction=0: must be a number in (0, 1]"),
    (["algo=nupi", "algo.output=best"], "algo.output='best': accepted: last, tail"),
    (["algo=ssw", "algo.output=tail"], "algo.output='tail': accepted: last, random"),
    # ssw's random iterate: none eligible when random_start is not below the iterations
    (["algo=ssw", "algo.output=random", "budget.iterations=100", "algo.random_start=100"],
     "algo.random_start=100: must be below budget.iterations (100) with algo.output=random"),
    (["algo=ssw", "algo.output=random", "budget.iterations=100", "algo.random_start=-1"],
     "algo.random_start=-1: must be an integer >= 0"),
    # a sweep: its second job is refused, and the first is not run either
    (["-m", "algo=pbm", "algo.output=tail", "budget.iterations=10", "budget.epochs=null,1"],
     "budget.epochs=1: must be null with algo.output=tail"),
    # algo_overrides apply before the check
    (["algo=pbm", "budget.iterations=10", "+algo_overrides={pbm:{output:tail,tail_fraction:1e-20}}"],
     "algo.tail_fraction=1e-20: leaves no tail iteration"),
]


@pytest.mark.parametrize("args,expected", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_output_setting(monkeypatch, capsys, tmp_path, args, expected):
    line = invoke(monkeypatch, capsys, tmp_path, *args)
    assert expected in line


def test_a_valid_tail_run_reports_the_algorithm_output(monkeypatch, tmp_path):
    """output=tail with budget.iterations alone runs, and reports the tail average."""
    out = tmp_path / "run"
    monkeypatch.setattr("sys.argv", ["fairbench", "algo=pbm", "algo.output=tail", "algo.tail_fraction=0.5",
                                     "budget.iterations=4", "seeds=[0]", "progress=false", f"hydra.run.dir={out}"])
    cli.main()
    metrics = json.loads(next(out.glob("**/metrics*.json")).read_text())
    assert metrics["output"] == "algorithm_output" and metrics["iterations"] == 4


def test_check_output_budget_directly():
    check_output_budget("last", 0.1, None, {"epochs": 4})            # last: any budget
    check_output_budget("tail", 1.0, 1, {"epochs": None})            # one iteration, all of it the tail
    check_output_budget("tail", 1e-3, 10, {})                        # floor(9.99) = 9 < 10: one tail iteration
    check_output_budget("random", 0.1, None, {}, random_start=10**9)  # no iterations budget: nothing to compare
    with pytest.raises(ConfigError, match="budget.epochs=4"):
        check_output_budget("tail", 0.1, 10, {"epochs": 4})
