"""An interrupted or killed run, rerun into the same directory, continues its seeds from their
checkpoints and ends with the files of a run that was never interrupted, bit for bit (the
wall-clock columns aside)."""

import csv
import io
import json
import os
import pickle
import signal
from pathlib import Path
from types import MethodType

import pytest

from fairbench import training
from fairbench.cli import compose_job
from fairbench.runner import prepare_checks, run
from test_bad_input import invoke

BASE = ("progress=false", "dataset.n_rows=2000", "budget.epochs=null", "budget.iterations=120", "log_every=20",
        "checkpoint_every=25")
#: wall-clock entries of metrics.json (and the trajectory's train_seconds)
CLOCK = {"train_seconds", "iterations_per_second", "warmup_seconds", "stack_train_seconds", "provenance"}


class Killed(Exception):
    """Stands for a kill: the process stops in the middle of a step, writing nothing more."""


def hook_steps(monkeypatch, at: int, action):
    """Call ``action`` after training step ``at`` (counted over the run, the warm-up's copy
    aside), whatever step the method's variant binds."""
    real_bind = training.bind_variant
    calls = {"n": 0}

    def bind(algo, oracle):
        name = real_bind(algo, oracle)
        step = algo.step.__func__

        def counted(self):
            info = step(self)
            if self is algo:
                calls["n"] += 1
                if calls["n"] == at:
                    action()
            return info

        algo.step = MethodType(counted, algo)
        return name

    monkeypatch.setattr(training, "bind_variant", bind)
    return calls


def interrupt():
    os.kill(os.getpid(), signal.SIGINT)  # the runner's handler only sets its flag


def kill():
    raise Killed


def files(out: Path) -> dict[str, object]:
    """Every seed file, comparable: trajectories without train_seconds, metrics without the
    wall-clock entries, scores as bytes."""
    found = {}
    for path in sorted(out.glob("seed_*/*")):
        name = f"{path.parent.name}/{path.name}"
        if path.suffix == ".csv":
            rows = list(csv.reader(io.StringIO(path.read_text())))
            drop = rows[0].index("train_seconds")
            found[name] = [r[:drop] + r[drop + 1:] for r in rows]
        elif path.suffix == ".json":
            found[name] = {k: v for k, v in json.loads(path.read_text()).items() if k not in CLOCK}
        else:
            found[name] = path.read_bytes()
    return found


CASES = [
    pytest.param(("algo=ssl_alm", "seeds=[0,1]"), id="ssl_alm-stacked"),
    pytest.param(("algo=ghost", "seeds=[0]"), id="ghost-single"),
    pytest.param(("algo=ssw", "seeds=[0,1]", "stack_seeds=off"), id="ssw-one-seed-at-a-time"),
    pytest.param(("algo=sgd_fairret", "seeds=[0]", "problem.fast_path=off"), id="sgd_fairret-autograd"),
]


@pytest.mark.parametrize("at", [58, 60], ids=["between-log-points", "at-a-log-point"])
@pytest.mark.parametrize("args", CASES)
def test_interrupted_run_continues_to_the_same_files(tmp_path, monkeypatch, args, at):
    reference = tmp_path / "reference"
    run(compose_job([*BASE, *args]), reference)
    out = tmp_path / "out"
    calls = hook_steps(monkeypatch, at, interrupt)
    summary = run(compose_job([*BASE, *args]), out)
    assert summary["status"] == "interrupted" and calls["n"] == at
    checkpoints = sorted(p.name for p in out.glob("checkpoint_*.pkl"))
    assert checkpoints == (["checkpoint_0_1.pkl"] if "seeds=[0,1]" in args and "stack_seeds=off" not in args
                           else ["checkpoint_0.pkl"])
    first = json.loads((out / "seed_0" / "metrics.json").read_text())
    assert first["status"] == "interrupted" and first["iterations"] == at
    monkeypatch.undo()
    calls = hook_steps(monkeypatch, 10**9, interrupt)
    summary = run(compose_job([*BASE, *args]), out)
    assert summary["status"] == "completed"
    assert calls["n"] == (120 - at) + (120 if "stack_seeds=off" in args else 0)  # continued, not restarted
    assert files(out) == files(reference)
    assert not list(out.glob("checkpoint_*")) and not list(reference.glob("checkpoint_*"))


@pytest.mark.parametrize("args", [CASES[0], CASES[2]])
def test_killed_run_continues_from_its_last_checkpoint(tmp_path, monkeypatch, args):
    """A kill leaves no metrics for the seeds it stopped; the rerun continues from the last
    checkpoint (iteration 75 of a kill at 90) and ends as the uninterrupted run."""
    reference = tmp_path / "reference"
    run(compose_job([*BASE, *args]), reference)
    out = tmp_path / "out"
    hook_steps(monkeypatch, 90, kill)
    with pytest.raises(Killed):
        run(compose_job([*BASE, *args]), out)
    assert not (out / "seed_0" / "metrics.json").exists()
    monkeypatch.undo()
    calls = hook_steps(monkeypatch, 10**9, kill)
    run(compose_job([*BASE, *args]), out)
    assert calls["n"] == (120 - 75) + (120 if "stack_seeds=off" in args else 0)
    assert files(out) == files(reference)


def test_checkpoints_off_restarts_the_seed(tmp_path, monkeypatch):
    args = (*BASE, "algo=sgd", "seeds=[0]", "checkpoint_every=0")
    out = tmp_path / "out"
    hook_steps(monkeypatch, 58, interrupt)
    run(compose_job(list(args)), out)
    assert not list(out.glob("checkpoint_*"))
    monkeypatch.undo()
    calls = hook_steps(monkeypatch, 10**9, interrupt)
    run(compose_job(list(args)), out)
    assert calls["n"] == 120


def test_checkpoint_of_other_code_or_config_is_ignored(tmp_path, monkeypatch):
    """A checkpoint whose code identity or config differs from the current run's is not used
    (the run directory's rules refuse such a resume anyway; this is the checkpoint's own check)."""
    args = [*BASE, "algo=sgd", "seeds=[0]"]
    out = tmp_path / "out"
    hook_steps(monkeypatch, 58, interrupt)
    run(compose_job(args), out)
    monkeypatch.undo()
    path = out / "checkpoint_0.pkl"
    payload = pickle.loads(path.read_bytes())
    for change in ({"code": {**payload["identity"]["code"], "code_sha256": "0" * 64}},
                   {"config": {**payload["identity"]["config"], "log_every": 10}}):
        path.write_bytes(pickle.dumps({**payload, "identity": {**payload["identity"], **change}}))
        calls = hook_steps(monkeypatch, 58, interrupt)
        run(compose_job(args), out)
        assert calls["n"] == 58 and json.loads((out / "seed_0" / "metrics.json").read_text())["iterations"] == 58
        monkeypatch.undo()
        payload = pickle.loads(path.read_bytes())  # the fresh run's own checkpoint


@pytest.mark.parametrize("value", ["-1", "2.5", "often", "true"])
def test_bad_checkpoint_every(monkeypatch, capsys, tmp_path, value):
    """One line naming the key, exit 2, nothing written."""
    line = invoke(monkeypatch, capsys, tmp_path, f"checkpoint_every={value}")
    assert line.startswith("fairbench: error: checkpoint_every=") and "an integer >= 0" in line


@pytest.mark.parametrize("value", [0, None, 7])
def test_good_checkpoint_every(value):
    cfg = compose_job(["progress=false"])
    cfg.checkpoint_every = value
    prepare_checks(cfg)
