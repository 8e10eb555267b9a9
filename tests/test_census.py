"""Every fairness method on the real census task (experiment 1's data, Oklahoma 2018 race):
after a short run, the train loss-gap violation is lower than SGD's at the same budget."""

import pytest

from fairbench.cli import compose_job
from fairbench.runner import run

ITERATIONS = 500
FAIR_METHODS = ["alm", "ssl_alm", "ssw", "sgd_penalized", "sgd_fairret", "ghost"]


def train_violation(tmp_path, acs_root, monkeypatch, algo: str) -> float:
    monkeypatch.setenv("FAIRBENCH_DATA_DIR", str(acs_root))
    cfg = compose_job([f"algo={algo}", "dataset=oklahoma_race", "seeds=[0]", f"budget.iterations={ITERATIONS}",
                       "budget.epochs=null", "log_every=250", "progress=false"])
    summary = run(cfg, tmp_path / algo)
    assert summary["status"] == "completed"
    return summary["train"]["max_violation"]["mean"]


@pytest.fixture(scope="module")
def sgd_violation(tmp_path_factory, acs_root):
    with pytest.MonkeyPatch.context() as monkeypatch:
        return train_violation(tmp_path_factory.mktemp("sgd"), acs_root, monkeypatch, "sgd")


@pytest.mark.parametrize("algo", FAIR_METHODS)
def test_fair_method_violates_less_than_sgd(tmp_path, acs_root, monkeypatch, sgd_violation, algo):
    violation = train_violation(tmp_path, acs_root, monkeypatch, algo)
    assert violation < sgd_violation - 0.01, (algo, violation, sgd_violation)
