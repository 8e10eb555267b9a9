"""The appendix-B selection rule on hand-made sweeps whose right answer is known."""

from __future__ import annotations

from pathlib import Path

from fairbench.report.collect import read_run
from fairbench.report.grouping import format_value, group_runs
from fairbench.report.selection import Selection, select_all, selection_json
from rundirs import write_run

# tau -> final val loss, final val max-violation, val loss before the last 20 states
SWEEP = {
    0.1: dict(loss=0.40, violation=0.01, early_loss=None),     # lowest loss, but violates: never chosen
    0.05: dict(loss=0.45, violation=0.0, early_loss=5.0),      # best among feasible over the last 20 states
    0.01: dict(loss=0.50, violation=0.0002, early_loss=0.30),  # best only if early states counted
}


def sweep(tmp_path: Path, combos: dict, **common) -> list[Path]:
    (tmp_path / "multirun.yaml").write_text("hydra: {overrides: {task: ['algo=alm', 'algo.tau=0.1,0.05,0.01']}}\n")
    return [write_run(tmp_path / f"algo=alm,algo.tau={tau}", "alm", hyper={"tau": tau}, seeds=(0, 1), **kw, **common)
            for tau, kw in combos.items()]


def selections(paths: list[Path], last: int = 20, tol: float = 1e-3) -> list[Selection]:
    issues: list = []
    runs = [read_run(p, issues) for p in paths]
    assert not issues
    return select_all(group_runs(runs), last, tol)


def test_lowest_loss_that_meets_tolerance(tmp_path):
    (sel,) = selections(sweep(tmp_path, SWEEP))
    assert sel.chosen is not None and sel.chosen.override == "algo=alm algo.tau=0.05"
    by_tau = {s.entry.overrides["algo.tau"]: s for s in sel.scores}
    assert not by_tau[0.1].eligible and "violation" in by_tau[0.1].reason
    assert by_tau[0.1].value("val_loss") < sel.chosen.value("val_loss")
    assert abs(sel.chosen.stats["val_loss"]["mean"] - 0.45) < 1e-12
    assert sel.chosen.stats["val_loss"]["n"] == 2 * 20


def test_last_k_states_decide(tmp_path):
    (sel,) = selections(sweep(tmp_path, SWEEP), last=30)  # the whole trajectory: early losses count
    assert sel.chosen.override == "algo=alm algo.tau=0.01"


def test_tolerance_option(tmp_path):
    (sel,) = selections(sweep(tmp_path, SWEEP), tol=0.02)
    assert sel.chosen.override == "algo=alm algo.tau=0.1"


def test_nothing_feasible_chooses_nothing(tmp_path):
    combos = {0.1: dict(loss=0.4, violation=0.03), 0.2: dict(loss=0.5, violation=0.02)}
    (sel,) = selections(sweep(tmp_path, combos))
    assert sel.chosen is None and sel.closest.override == "algo=alm algo.tau=0.2"
    data = selection_json([sel], 20, 1e-3)["sweeps"][0]
    assert data["chosen"] is None and data["closest_not_selected"] == "algo=alm algo.tau=0.2"


def test_diverged_seed_disqualifies(tmp_path):
    paths = sweep(tmp_path, {0.1: dict(loss=0.4, violation=0.0), 0.2: dict(loss=0.5, violation=0.0)})
    write_run(paths[0], "alm", hyper={"tau": 0.1}, seeds=(0, 1), loss=0.4, statuses={1: "diverged"})
    (sel,) = selections(paths)
    assert sel.chosen.override == "algo=alm algo.tau=0.2"
    assert "diverged" in next(s.reason for s in sel.scores if s.entry.run.path == paths[0])


def test_override_values_are_hydra_syntax():
    assert [format_value(v) for v in (0.01, 1e-05, True, None, [64, 32], "component", "a b")] == [
        "0.01", "1e-05", "true", "null", "[64,32]", "component", "'a b'"]
