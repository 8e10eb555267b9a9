"""Evaluation at scale: the log points' fixed stratified subsample (``eval.subsample``), and the
final model on other states' full data (``eval.states``), on small state tables written here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairbench.cli import compose_job
from fairbench.data import load_dataset, synthetic
from fairbench.data.coding import FEATURES, LABEL
from fairbench.data.shift import load_state
from fairbench.errors import ConfigError
from fairbench.eval_settings import MIN_GROUP_ROWS, parse_eval, subsample_rows
from fairbench.runner import run


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FAIRBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("array-cache")))


def write_states(root: Path, rows: dict[str, int]) -> Path:
    for i, (state, n) in enumerate(rows.items()):
        frame = synthetic.generate(n, seed=20 + i)
        table = frame[list(FEATURES)].copy()
        table["PINCP"] = frame[LABEL].astype(bool)
        path = root / "acs" / "preprocessed" / f"{state}_0.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
    return root


def test_subsample_keeps_each_group_share_and_a_minimum():
    rng = np.random.default_rng(0)
    group = rng.choice(4, size=20000, p=[0.7, 0.25, 0.0495, 0.0005])
    rows = subsample_rows(group, 4, 1000, seed=3, split_index=0)
    assert np.all(np.diff(rows) > 0)  # row order, no repeats
    counts, full = np.bincount(group[rows], minlength=4), np.bincount(group, minlength=4)
    assert counts[3] == min(full[3], MIN_GROUP_ROWS)
    assert abs(counts[0] - 1000 * full[0] / group.size) <= 1 and abs(counts[1] - 1000 * full[1] / group.size) <= 1
    assert 1000 <= counts.sum() <= 1000 + MIN_GROUP_ROWS
    np.testing.assert_array_equal(rows, subsample_rows(group, 4, 1000, seed=3, split_index=0))  # fixed
    assert not np.array_equal(rows, subsample_rows(group, 4, 1000, seed=4, split_index=0))
    assert subsample_rows(group, 4, 20000, seed=3, split_index=0) is None  # whole split


@pytest.mark.parametrize(("overrides", "text"), [
    (["eval.subsample=0"], "eval.subsample=0: must be an integer > 0"),
    (["eval.subsample=2.5"], "eval.subsample=2.5: must be an integer > 0"),
    (["eval.states=[OK,ZZ]"], "eval.states=['OK', 'ZZ']: null, all, a state code"),
    (["+eval.rows=3"], "eval.rows=3: not a key of eval"),
])
def test_bad_eval_values_are_refused(overrides, text):
    with pytest.raises(ConfigError) as info:
        parse_eval(compose_job(overrides))
    assert str(info.value).startswith(text)


def test_log_points_use_the_subsample_and_the_final_metrics_the_full_splits(tmp_path):
    cfg = compose_job(["progress=false", "seeds=[0]", "budget.iterations=60", "log_every=20", "eval.subsample=300",
                       "problem=demographic_parity"])
    run(cfg, tmp_path)
    trajectory = pd.read_csv(tmp_path / "seed_0" / "trajectory.csv")
    assert set(trajectory["eval_rows"]) == {900}  # 300 rows of each split at every log point
    metrics = json.loads((tmp_path / "seed_0" / "metrics.json").read_text())
    assert metrics["eval"] == {"subsample": 300, "log_rows": {"train": 300, "val": 300, "test": 300},
                               "final_rows": {"train": 14400, "val": 1800, "test": 1800}}
    assert json.loads((tmp_path / "summary.json").read_text())["eval"]["subsample"] == 300
    # the same model on the full splits (the metrics) differs from the subsample's last row
    assert metrics["splits"]["train"]["loss"] != trajectory["train_loss"].iloc[-1]
    full = tmp_path / "full"
    run(compose_job(["progress=false", "seeds=[0]", "budget.iterations=60", "log_every=20",
                     "problem=demographic_parity"]), full)
    again = json.loads((full / "seed_0" / "metrics.json").read_text())
    assert again["splits"] == metrics["splits"]  # final metrics do not depend on eval.subsample
    assert "eval_rows" not in pd.read_csv(full / "seed_0" / "trajectory.csv").columns


@pytest.mark.parametrize("encoding", ["ordinal", "onehot"])
def test_other_state_is_prepared_as_the_training_data(tmp_path, encoding):
    root = write_states(tmp_path, {"OK": 1500, "VT": 800})
    spec = {"root": str(root), "state": "OK", "protected": ["SEX"], "encoding": encoding}
    data = load_dataset(spec)
    other = load_state(spec, "VT", data)
    assert other.split.X.shape == (800, data.n_features) and other.dropped_rows == 0
    assert other.split.X.dtype == np.float32 and sorted(set(other.split.group.tolist())) == [0, 1]
    if encoding == "onehot":  # levels from the data: VT's rows land in OK's columns by name
        assert other.unseen_level_rows >= 0
        return
    # VT's own preparation, unscaled and scaled by OK's training columns, gives the same rows
    alone = load_dataset({**spec, "state": "VT"})
    raw = np.concatenate([s.X for s in alone.splits().values()]).astype(np.float64) * alone.scale[1] + alone.scale[0]
    expected = np.sort(np.round((raw - data.scale[0]) / data.scale[1], 4), axis=0)
    np.testing.assert_allclose(np.sort(np.round(other.split.X.astype(np.float64), 4), axis=0), expected, atol=2e-4)
    assert not np.allclose(data.scale[0], alone.scale[0])


def test_eval_states_reports_every_metric_and_true_violations_per_state(tmp_path, monkeypatch):
    root = write_states(tmp_path / "data", {"OK": 1500, "TX": 900, "VT": 600})
    monkeypatch.setenv("FAIRBENCH_DATA_DIR", str(root))  # (restored after the test: later tests read the real one)
    out = tmp_path / "run"
    cfg = compose_job(["progress=false", "seeds=[0,1]", "budget.iterations=40", "log_every=20",
                       "dataset=oklahoma_race", "dataset.protected=[SEX]", "~dataset.groups",
                       "problem=demographic_parity", "eval.states=all"])
    run(cfg, out)
    metrics = json.loads((out / "seed_1" / "metrics.json").read_text())
    assert list(metrics["shift"]) == ["TX", "VT"]
    tx = metrics["shift"]["TX"]
    assert tx["rows"] == 900 and tx["shares"] == "state" and tx["constraints_evaluated"] == len(tx["constraints_true"])
    assert tx["max_violation_true"] == max(0.0, max(tx["constraints_true"]))
    for key in ("ind", "sp", "auc", "loss", "accuracy", "max_violation"):
        assert key in tx
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shift"]["VT"]["max_violation"]["n"] == 2 and summary["eval"]["states"] == "all"
    from fairbench.report.build import Options, write_report
    report = tmp_path / "report"
    write_report([out], report, Options(quiet=True))
    text = (report / "report.md").read_text()
    assert "Fairness under shift" in text and "Other states feasible" in text
    assert list((report / "figures").glob("shift_*.png")) and list((report / "figures").glob("shift_*.pdf"))


@pytest.mark.parametrize(("value", "text"), [("OK", "states the model trains on cannot be other states: OK"),
                                             ("CA", "no ACS data for CA")])
def test_a_training_or_missing_state_is_refused_with_nothing_written(tmp_path, value, text):
    root = write_states(tmp_path / "data", {"OK": 600})
    env = {**os.environ, "FAIRBENCH_DATA_DIR": str(root), "FAIRBENCH_OUTPUT_DIR": str(tmp_path / "out"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-m", "fairbench", "dataset=oklahoma_race", "seeds=[0]",
                             "budget.iterations=5", f"eval.states={value}"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert text in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
