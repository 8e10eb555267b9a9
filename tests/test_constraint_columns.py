"""Per-constraint trajectory columns are capped at large m, the same for every method and
path: summaries of the constraint values, group losses and multiplier-like state."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fairbench.algorithms.base import PER_CONSTRAINT_STATE_LIMIT
from fairbench.api import make_algorithm
from fairbench.backends import stacked_methods
from fairbench.constraint_columns import cap_state, columns_record
from fairbench.problems.evaluation import SplitEvaluation
from fairbench.training import trajectory_row

import clirun

LIMIT = PER_CONSTRAINT_STATE_LIMIT


def evaluation(m: int, groups: int, seed: int = 0) -> SplitEvaluation:
    rng = np.random.default_rng(seed)
    return SplitEvaluation(loss=0.5, group_losses=rng.uniform(0.2, 0.9, groups), constraints=rng.normal(0, 0.1, m),
                           scores=None, constraints_true=rng.normal(0, 0.1, m), rate_gaps={"pr_gap": 0.1})


def row(m: int, groups: int, state: dict) -> dict:
    return trajectory_row(10, 100, 100, 1.0, 1000, {"train": evaluation(m, groups)}, {}, state)


def test_at_the_limit_every_constraint_has_its_column():
    ev = evaluation(LIMIT, 3)
    out = row(LIMIT, 3, {f"lambda_{j}": float(j) for j in range(LIMIT)})
    assert [out[f"train_c{j}"] for j in range(LIMIT)] == list(ev.constraints)
    assert [out[f"train_c{j}_true"] for j in range(LIMIT)] == list(ev.constraints_true)
    assert out["lambda_7"] == 7.0 and "lambda_max" not in out and "train_c_mean" not in out
    assert [out[f"train_loss_g{g}"] for g in range(3)] == list(ev.group_losses)


def test_beyond_the_limit_summaries_replace_the_columns():
    m, groups = LIMIT + 1, LIMIT + 5
    ev = evaluation(m, groups)
    lam = np.linspace(-1.0, 2.0, m)
    out = row(m, groups, {"gamma": 0.1, **{f"lambda_{j}": float(v) for j, v in enumerate(lam)},
                          **{f"penalty_{j}": 1.0 for j in range(3)}})
    assert not any(k.startswith("train_c") and k[7:].split("_")[0].isdigit() for k in out)
    assert not any(k.startswith("lambda_") and k[7:].isdigit() for k in out)
    assert out["train_max_violation"] == max(0.0, ev.constraints.max())
    assert out["train_c_violated"] == int((ev.constraints > 0).sum())
    assert out["train_c_violated_true"] == int((ev.constraints_true > 0).sum())
    assert out["train_c_mean"] == pytest.approx(ev.constraints.mean())
    assert out["train_c_min_true"] == ev.constraints_true.min()
    assert out["train_loss_g_max"] == ev.group_losses.max() and "train_loss_g0" not in out
    assert out["lambda_max"] == 2.0 and out["lambda_min"] == -1.0
    assert out["lambda_norm"] == pytest.approx(np.linalg.norm(lam)) and out["lambda_nonzero"] == m
    assert out["gamma"] == 0.1 and out["penalty_2"] == 1.0  # small families stay per entry


@pytest.mark.parametrize("name", ["gda", "pbm", "extragradient", "ialm"])
def test_every_multiplier_method_is_summarised_like_ssl_alm(name):
    """A method whose own state() lists every multiplier gets the same summary columns as
    SSL-ALM, which summarises itself."""
    m = LIMIT + 3
    lam = np.abs(np.random.default_rng(1).normal(size=m))
    algo = make_algorithm(name)
    algo.multipliers = lam
    if name == "pbm":
        algo.penalties = np.ones(m)
    if name == "ialm":
        algo.penalty = 1.0
    ssl = make_algorithm("ssl_alm")
    ssl.lam, ssl.slack = lam, np.zeros(m)
    ours, theirs = cap_state(algo.state()), cap_state(ssl.state())
    for key in ("lambda_max", "lambda_min", "lambda_mean", "lambda_norm", "lambda_nonzero"):
        assert ours[key] == theirs[key]
    assert len(ours) <= 12


def test_the_stacked_state_is_summarised_like_the_single_seed_one():
    m = LIMIT + 1
    rng = np.random.default_rng(2)

    class Stacked:  # SSL-ALM's stacked multipliers: (seeds, m)
        lam, slack = rng.normal(size=(2, m)), np.zeros((2, m))

    stacked = stacked_methods._ssl_alm_state(Stacked)
    single = make_algorithm("ssl_alm")
    single.lam, single.slack = Stacked.lam[1], Stacked.slack[1]
    assert cap_state({k: v[1] for k, v in stacked.items()}) == single.state()


def test_a_run_beyond_the_limit_writes_summaries_and_says_so(tmp_path, monkeypatch, capsys):
    """pairs over the synthetic RAC1P x SEX x AGEP groups: m = G(G-1) signed constraints, above the limit."""
    out = tmp_path / "run"
    code, _, err = clirun.main(monkeypatch, capsys, "dataset=synthetic", "dataset.n_rows=6000",
                               "dataset.protected=[RAC1P,SEX,AGEP]", "dataset.min_group_rows=1",
                               "problem=constrained", "problem.family=pairs", "algo=gda", "seeds=[0]",
                               "budget.iterations=4", "log_every=2", "progress=false", f"hydra.run.dir={out}")
    assert code == 0, err
    metrics = json.loads(next(out.rglob("metrics.json")).read_text())
    m = len(metrics["constraint_names"])
    assert m > LIMIT
    assert metrics["trajectory_columns"] == columns_record(m, len(metrics["group_names"]))
    frame = pd.read_csv(next(out.rglob("trajectory.csv")))
    assert {"train_c_mean", "val_c_violated_true", "lambda_norm", "lambda_max"} <= set(frame.columns)
    assert len(frame.columns) < 200 and "train_c0" not in frame.columns
