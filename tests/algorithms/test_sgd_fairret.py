"""SGD + fairret regulariser on a small synthetic FairnessOracle."""

from __future__ import annotations

import warnings

import fairret.statistic
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fairbench.algorithms.sgd import SGD
from fairbench.algorithms.sgd_fairret import LOSSES, STATISTICS, SGDFairret
from fairbench.api import make_algorithm
from fairbench.errors import ConfigError
from fairbench.problems.fairness import FairnessOracle, TensorSplit
from known_problems import halfspace, one_torch_thread, synthetic_fairness_oracle, synthetic_split

one_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)


def run(oracle, iterations: int, seed: int = 0, **hyperparameters) -> SGDFairret:
    algo = make_algorithm("sgd_fairret", **hyperparameters)
    algo.setup(oracle, np.random.default_rng(seed))
    for _ in range(iterations):
        algo.step()
    return algo


@torch.no_grad()
def statistic_gap(oracle: FairnessOracle, statistic: str) -> float:
    """|s_0 - s_1| of the fairret statistic on the whole training split (probabilities)."""
    split = oracle.train
    pred = torch.sigmoid(oracle.model(split.X)).unsqueeze(1)
    sens = F.one_hot(split.group, 2).float()
    stat = getattr(fairret.statistic, statistic)()
    args = () if statistic == "PositiveRate" else (split.y.unsqueeze(1),)
    values = stat(pred, sens, *args)
    return float((values[0] - values[1]).abs())


@pytest.mark.parametrize("statistic, loss, weight", [("PositiveRate", "NormLoss", 5.0),
                                                      ("TruePositiveRate", "LSELoss", 10.0)])
def test_large_weight_shrinks_the_gap(statistic, loss, weight):
    """600 steps, lr 0.1, 12 per group: a large weight leaves at most half the statistic gap
    of weight 0 (model seeds 0-3: PositiveRate 0.36 -> at most 0.085 with weight 5;
    TruePositiveRate 0.13 -> at most 0.039 with weight 10)."""
    gaps = {}
    for w in (0.0, weight):
        oracle = synthetic_fairness_oracle(constrained=False)
        run(oracle, 600, lr=0.1, weight=w, statistic=statistic, loss=loss)
        gaps[w] = statistic_gap(oracle, statistic)
    assert gaps[0.0] > 0.1
    assert gaps[weight] < 0.5 * gaps[0.0]


class BalancedObjectiveOracle(FairnessOracle):
    """A FairnessOracle whose objective batches are the balanced batches of constraint stream 0."""

    def sample_objective(self, size: int):
        return self.sample_constraints(size // self.n_groups, stream=0)


def test_zero_weight_is_exactly_sgd_on_the_same_batches():
    """weight 0: bit-for-bit the trajectory of SGD (same lr) fed the same balanced batches."""
    split = synthetic_split()
    a = synthetic_fairness_oracle(constrained=False, split=split)
    b = synthetic_fairness_oracle(constrained=False, split=split)
    b = BalancedObjectiveOracle(b.model, split, 2, None, 0)
    np.testing.assert_array_equal(a.x, b.x)
    fr = make_algorithm("sgd_fairret", weight=0.0, lr=0.05, per_group=12)
    sgd = SGD(lr=0.05, batch_size=24, lr_rule="constant")
    fr.setup(a, np.random.default_rng(0))
    sgd.setup(b, np.random.default_rng(0))
    for _ in range(100):
        assert fr.step() == {"fairret_skipped": 0}
        sgd.step()
        np.testing.assert_array_equal(a.x, b.x)
    assert a.counters.samples == b.counters.samples and a.counters.grad_evals == b.counters.grad_evals
    assert fr.state() == {}


@pytest.mark.parametrize("loss", ["NormLoss", "LSELoss"])
@pytest.mark.parametrize("statistic", STATISTICS)
def test_every_statistic_and_loss_runs(statistic, loss):
    oracle = synthetic_fairness_oracle(constrained=False)
    x = oracle.x
    algo = run(oracle, 5, statistic=statistic, loss=loss, per_group=16)
    assert oracle.x is x and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.isfinite(algo.state()["fairret"])


def test_kl_projection_loss_through_fairret():
    pytest.importorskip("cvxpy")
    oracle = synthetic_fairness_oracle(constrained=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        algo = run(oracle, 3, loss="KLProjectionLoss", statistic="Accuracy", projection="fairret")
    assert algo._fairret is not None  # fairret's own loss object did the work
    assert np.isfinite(oracle.x).all() and np.isfinite(algo.state()["fairret"])


def test_exact_kl_projection_shrinks_the_gap():
    """The exact KL projection loss on PositiveRate with a large weight leaves at most half the
    gap of weight 0 (600 steps, lr 0.1, 12 per group, on the autograd oracle; measured: 0.36
    with weight 0, 0.065 with weight 20)."""
    statistic = "PositiveRate"
    gaps = {}
    for w in (0.0, 20.0):
        oracle = synthetic_fairness_oracle(constrained=False)
        algo = run(oracle, 600, lr=0.1, weight=w, statistic=statistic, loss="KLProjectionLoss")
        assert algo._fairret is None
        gaps[w] = statistic_gap(oracle, statistic)
    assert gaps[20.0] < 0.5 * gaps[0.0]


def test_missing_cvxpy_is_a_config_error(monkeypatch):
    from fairbench.algorithms import sgd_fairret

    monkeypatch.setattr(sgd_fairret, "cvxpy_available", lambda: False)
    with pytest.raises(ConfigError, match=r'^algo\.projection=\'fairret\': needs cvxpy.*pip install -e "\.\[kl\]".*projection=exact'):
        make_algorithm("sgd_fairret", loss="KLProjectionLoss", projection="fairret")
    make_algorithm("sgd_fairret", loss="KLProjectionLoss")  # the exact projection needs no cvxpy
    make_algorithm("sgd_fairret", loss="NormLoss")


def test_zero_target_statistic_skips_the_regulariser():
    """No positive labels: fairret cannot form TruePositiveRate's target (0), so every step uses
    the BCE alone, counted as skipped, and matches the weight-0 trajectory."""
    base = synthetic_split()
    split = TensorSplit(base.X, torch.zeros_like(base.y), base.group)
    xs = []
    for weight in (0.0, 1.0):
        oracle = synthetic_fairness_oracle(constrained=False, split=split)
        algo = make_algorithm("sgd_fairret", weight=weight, statistic="TruePositiveRate", loss="NormLoss")
        algo.setup(oracle, np.random.default_rng(0))
        skipped = sum(algo.step()["fairret_skipped"] for _ in range(10))
        assert skipped == (10 if weight else 0)
        xs.append(oracle.x.copy())
    np.testing.assert_array_equal(*xs)


def test_deterministic_given_seed():
    xs = []
    for _ in range(2):
        oracle = synthetic_fairness_oracle(seed=3, constrained=False)
        run(oracle, 30, seed=3)
        xs.append(oracle.x.copy())
    np.testing.assert_array_equal(*xs)


@pytest.mark.parametrize("key, value", [
    ("statistic", "DemographicParity"), ("loss", "L2Loss"), ("lr", -0.05), ("weight", -0.5), ("per_group", 0),
    ("projection", "scs"),
])
def test_config_errors_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"^algo\.{key}="):
        make_algorithm("sgd_fairret", **{key: value})


def test_unknown_names_list_the_accepted_ones():
    with pytest.raises(ConfigError, match="accepted: Accuracy, PositiveRate, TruePositiveRate"):
        make_algorithm("sgd_fairret", statistic="accuracy")
    with pytest.raises(ConfigError, match="accepted: " + ", ".join(LOSSES)):
        make_algorithm("sgd_fairret", loss="norm")


def test_per_group_larger_than_smallest_group():
    oracle = synthetic_fairness_oracle(constrained=False)
    n = oracle.smallest_group
    with pytest.raises(ConfigError, match=rf"^algo\.per_group={n + 1}: .*\({n}\)"):
        make_algorithm("sgd_fairret", per_group=n + 1).setup(oracle, np.random.default_rng(0))


def test_needs_a_fairness_oracle():
    with pytest.raises(ConfigError, match=r"^problem=.*sgd_fairret needs the model's outputs"):
        make_algorithm("sgd_fairret").setup(halfspace().oracle(), np.random.default_rng(0))
