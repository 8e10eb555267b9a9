"""Stacked seeds in the runner: the same per-seed files as one seed at a time, per-seed
budgets, divergence and signals, determinism, resume."""

import csv
import io
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from fairbench.cli import compose_job
from fairbench.errors import ConfigError
from fairbench.backends.oracles import compiled_available
from fairbench.runner import run

SEEDS = "seeds=[0,1,2]"
COUNT_COLUMNS = ("iteration", "samples", "grad_evals", "epoch")
# the fast path a default run takes here: compiled where numba is installed, else numpy
FAST_PATH = "compiled" if compiled_available() else "numpy"
STACKED_PATH = f"{FAST_PATH}-stacked"
NOT_COMPARED = {"train_seconds", "iterations_per_second", "oracle_path", "algorithm_path", "stack_size",
                "stack_train_seconds", "warmup_seconds", "provenance"}


def run_in_process(tmp_path: Path, name: str, *overrides: str) -> Path:
    out = tmp_path / name
    run(compose_job(["progress=false", *overrides]), out)
    return out


def table(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    return rows[0], rows[1:]


def metrics(out: Path, seed: int) -> dict:
    return json.loads((out / f"seed_{seed}" / "metrics.json").read_text())


def assert_same_trajectory(a: Path, b: Path, rtol: float = 1e-4) -> None:
    """Equal columns, identical counts, every other value within ``rtol`` (train_seconds aside)."""
    head_a, rows_a = table(a)
    head_b, rows_b = table(b)
    assert head_a == head_b and len(rows_a) == len(rows_b)
    for col, name in enumerate(head_a):
        if name == "train_seconds":
            continue
        va, vb = [r[col] for r in rows_a], [r[col] for r in rows_b]
        if name in COUNT_COLUMNS or name.startswith("n_"):
            assert va == vb, name
        else:
            np.testing.assert_allclose(np.array(va, float), np.array(vb, float), rtol=rtol, atol=1e-7, err_msg=name)


def assert_same_metrics(ma: dict, mb: dict) -> None:
    assert set(ma) - NOT_COMPARED == set(mb) - NOT_COMPARED
    for key in set(ma) - NOT_COMPARED - {"splits"}:
        assert ma[key] == mb[key], key
    for split, values in ma["splits"].items():
        for key, value in values.items():
            np.testing.assert_allclose(np.array(value, float), np.array(mb["splits"][split][key], float),
                                       rtol=1e-4, atol=1e-7, err_msg=f"{split}.{key}")


def assert_stacked_equals_sequential(tmp_path: Path, seeds: list[int], *args: str) -> tuple[Path, Path]:
    stacked = run_in_process(tmp_path, "stacked", *args)
    single = run_in_process(tmp_path, "single", *args, "stack_seeds=off")
    for seed in seeds:
        assert_same_trajectory(stacked / f"seed_{seed}" / "trajectory.csv", single / f"seed_{seed}" / "trajectory.csv")
        ms, m1 = metrics(stacked, seed), metrics(single, seed)
        assert ms["oracle_path"] == STACKED_PATH and ms["stack_size"] == len(seeds)
        assert m1["oracle_path"] == FAST_PATH and "stack_size" not in m1
        assert_same_metrics(ms, m1)
        for split in ("train", "val", "test"):
            a = np.load(stacked / f"seed_{seed}" / f"scores_{split}.npz")
            b = np.load(single / f"seed_{seed}" / f"scores_{split}.npz")
            np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-4, atol=1e-6)
    sa = json.loads((stacked / "summary.json").read_text())
    sb = json.loads((single / "summary.json").read_text())
    assert sa["status"] == sb["status"] and sa["seed_status"] == sb["seed_status"]
    return stacked, single


@pytest.mark.parametrize("args", [
    ("algo=sgd",),
    ("algo=sgd", "problem=penalized"),
    ("algo=sgd_penalized",),
    ("algo=ssl_alm",),
    ("algo=alm", "problem.form=abs"),
    ("algo=ssw", "algo.tol=0.02"),  # seeds switch differently: masked draws
    ("algo=ssw", "algo.output=random", "algo.step_c=adaptive"),
    ("algo=pbm", "algo.dual_min=0.05", "algo.epoch_length=25"),
    ("algo=ialm", "algo.primal=adam", "algo.sigma=1.01"),
    ("algo=nupi", "algo.order=simultaneous", "algo.penalty=1.0"),
    ("algo=gda", "algo.order=primal_dual", "algo.output=tail"),
    ("algo=extragradient", "algo.sample=fresh", "algo.primal=adam"),
], ids=lambda a: " ".join(a))
def test_stacked_run_equals_one_seed_at_a_time(tmp_path, args):
    stacked, _ = assert_stacked_equals_sequential(tmp_path, [0, 1, 2], *args, SEEDS, "budget.epochs=null",
                                                  "budget.iterations=60", "log_every=20")
    if "algo=ssw" in args:
        steps = [metrics(stacked, s)["events"]["constraint_steps"] for s in (0, 1, 2)]
        assert 0 < min(steps) and max(steps) < 60  # both kinds of step happened


def test_sample_budget_is_per_seed(tmp_path):
    """SSW seeds draw different numbers of rows per step: each stops at its own iteration."""
    stacked, _ = assert_stacked_equals_sequential(tmp_path, [0, 1, 2], "algo=ssw", "algo.tol=0.05", SEEDS,
                                                  "budget.epochs=null", "budget.samples=1500", "log_every=10")
    iterations = [metrics(stacked, s)["iterations"] for s in (0, 1, 2)]
    assert len(set(iterations)) > 1
    assert all(metrics(stacked, s)["samples"] >= 1500 for s in (0, 1, 2))


def test_diverging_seed_stops_alone(tmp_path, monkeypatch):
    """Seed 1's parameters become NaN at step 50: it is marked diverged at the next log point
    (60), while seeds 0 and 2 run on, unchanged."""
    from fairbench.algorithms.sgd import SGD

    step = SGD.step
    calls = {"n": 0}

    def poisoned(self):
        step(self)
        calls["n"] += 1
        if calls["n"] == 50 and self.oracle.x.ndim == 2:
            self.oracle.x[1, :5] = np.nan

    args = ("algo=sgd", SEEDS, "budget.epochs=null", "budget.iterations=100", "log_every=20")
    reference = run_in_process(tmp_path, "ref", *args)
    monkeypatch.setattr(SGD, "step", poisoned)
    out = run_in_process(tmp_path, "div", *args)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed_status"] == {"0": "completed", "1": "diverged", "2": "completed"}
    assert summary["status"] == "partial"
    m1 = metrics(out, 1)
    assert m1["status"] == "diverged" and m1["iterations"] == 60 and m1["splits"] == {}
    assert not (out / "seed_1" / "scores_test.npz").exists()
    _, rows = table(out / "seed_1" / "trajectory.csv")
    assert [r[0] for r in rows] == ["0", "20", "40", "60"]
    for seed in (0, 2):
        assert metrics(out, seed)["iterations"] == 100
        assert_same_trajectory(out / f"seed_{seed}" / "trajectory.csv",
                               reference / f"seed_{seed}" / "trajectory.csv", rtol=0)


def test_all_seeds_diverging(tmp_path):
    out = run_in_process(tmp_path, "d", "algo.lr=1e30", SEEDS, "budget.epochs=null", "budget.iterations=300")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"diverged": 3} and summary["status"] == "failed"
    assert all(metrics(out, s)["iterations"] < 300 for s in (0, 1, 2))


def test_signal_interrupts_every_running_seed(tmp_path, monkeypatch):
    from fairbench.algorithms.ssl_alm import SSLALM

    step = SSLALM.step
    calls = {"n": 0}

    def interrupted(self):
        info = step(self)
        calls["n"] += 1
        if calls["n"] == 1 + 33:  # (call 1 is the warm-up step of a copy, before the timed loop)
            os.kill(os.getpid(), signal.SIGINT)  # the runner's handler only sets its flag
        return info

    monkeypatch.setattr(SSLALM, "step", interrupted)
    cfg = compose_job(["progress=false", "algo=ssl_alm", SEEDS, "budget.epochs=null", "budget.iterations=100",
                       "log_every=20"])
    summary = run(cfg, tmp_path / "int")
    assert summary["interrupted_by"] == signal.SIGINT and summary["status"] == "interrupted"
    assert summary["seed_status"] == {"0": "interrupted", "1": "interrupted", "2": "interrupted"}
    for seed in (0, 1, 2):
        m = metrics(tmp_path / "int", seed)
        assert m["iterations"] == 33 and m["oracle_path"] == STACKED_PATH
        _, rows = table(tmp_path / "int" / f"seed_{seed}" / "trajectory.csv")
        assert [r[0] for r in rows] == ["0", "20", "33"]


def test_stacked_runs_are_deterministic(tmp_path):
    args = ("algo=ssl_alm", SEEDS, "budget.epochs=null", "budget.iterations=60", "log_every=20")
    a = run_in_process(tmp_path, "a", *args)
    b = run_in_process(tmp_path, "b", *args)
    for seed in (0, 1, 2):
        head, rows_a = table(a / f"seed_{seed}" / "trajectory.csv")
        _, rows_b = table(b / f"seed_{seed}" / "trajectory.csv")
        drop = head.index("train_seconds")
        assert [r[:drop] + r[drop + 1:] for r in rows_a] == [r[:drop] + r[drop + 1:] for r in rows_b]
        assert metrics(a, seed)["splits"] == metrics(b, seed)["splits"]


def test_resume_stacks_only_the_pending_seeds(tmp_path):
    args = ("algo=sgd", "budget.epochs=null", "budget.iterations=40", "log_every=20")
    out = run_in_process(tmp_path, "res", "seeds=[0,1]", *args)
    before = {p: p.read_bytes() for p in out.glob("seed_*/*")}
    run_in_process(tmp_path, "res", "seeds=[0,1,2,3]", *args, "stack_seeds=off")  # stack_seeds may change
    assert {p: p.read_bytes() for p in out.glob("seed_[01]/*")} == before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"completed": 4}
    assert metrics(out, 2)["oracle_path"] == FAST_PATH
    out2 = run_in_process(tmp_path, "res2", "seeds=[0,1]", *args, "stack_seeds=off")
    run_in_process(tmp_path, "res2", "seeds=[0,1,2,3]", *args)
    assert [metrics(out2, s).get("stack_size") for s in range(4)] == [None, None, 2, 2]
    assert_same_trajectory(out2 / "seed_3" / "trajectory.csv", out / "seed_3" / "trajectory.csv")


def test_when_seeds_are_not_stacked(tmp_path):
    base = ("budget.epochs=null", "budget.iterations=20", "log_every=20")
    one = run_in_process(tmp_path, "one", "seeds=[5]", *base)
    assert metrics(one, 5)["oracle_path"] == FAST_PATH
    timed = run_in_process(tmp_path, "timed", "seeds=[0,1]", "budget.epochs=null", "budget.seconds=0.05")
    assert {metrics(timed, s)["oracle_path"] for s in (0, 1)} == {FAST_PATH}
    autograd = run_in_process(tmp_path, "autograd", "seeds=[0,1]", "problem.fast_path=off", *base)
    assert {metrics(autograd, s)["oracle_path"] for s in (0, 1)} == {"autograd"}
    fairret = run_in_process(tmp_path, "fairret", "seeds=[0,1]", "algo=sgd_fairret", "algo.loss=NormLoss", *base)
    assert "stack_size" not in metrics(fairret, 0)
    with pytest.raises(ConfigError, match="stack_seeds"):
        run_in_process(tmp_path, "bad", "seeds=[0,1]", "stack_seeds=maybe", *base)


def test_stacked_events_sum_per_seed_as_single_runs_would():
    from fairbench.lanes import StackedEvents

    events = StackedEvents(3)
    events.add({"steps": np.array([1, 0, 1])}, np.arange(3))
    stopped = events.of(1)  # seed 1 stops here: the runner takes its totals when it finishes it
    events.add({"steps": np.array([1, 1, 1]), "shared": 2}, np.array([0, 2]))
    events.add({"steps": np.array([0.5, 0.5, 0.5])}, np.array([0]))  # a float count promotes the total
    events.add(None, np.arange(3))
    assert events.of(0) == {"steps": 2.5, "shared": 2}
    assert stopped == {"steps": 0} and isinstance(stopped["steps"], int)
    assert events.of(2) == {"steps": 2, "shared": 2}
    assert isinstance(events.of(2)["shared"], int)
    flags = StackedEvents(2)
    for _ in range(3):  # booleans are counted, not or-ed; float32 values add up in float64
        flags.add({"reset": np.array([True, False]), "share": np.float32(0.1)}, np.arange(2))
    assert flags.of(0)["reset"] == 3 and flags.of(1)["reset"] == 0
    assert flags.of(0)["share"] == 3 * float(np.float32(0.1))
