"""fairret's violation losses in closed form (the SGD-Fairret fast path) against fairret itself."""

import inspect

import numpy as np
import pytest
import torch

fairret_loss = pytest.importorskip("fairret.loss")
fairret_statistic = pytest.importorskip("fairret.statistic")

from fairbench.algorithms.fairret_numpy import COEFFICIENTS, LOSSES, ZeroTarget, violation_loss  # noqa: E402


def fairret_value_and_grad(statistic, loss, z, y, group, n_groups):
    stat = getattr(fairret_statistic, statistic)()
    fn = getattr(fairret_loss, loss)(stat)
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    sens = torch.nn.functional.one_hot(torch.tensor(group), n_groups).double()
    args = (torch.tensor(y).unsqueeze(1),) if inspect.signature(stat.num_slope).parameters else ()
    value = fn(zt.unsqueeze(1), sens, *args)
    value.backward()
    return value.item(), zt.grad.numpy()


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("statistic", sorted(COEFFICIENTS))
def test_value_and_gradient_equal_fairrets(statistic, loss):
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(25):
        n_groups = int(rng.integers(2, 6))
        group = np.repeat(np.arange(n_groups), 12)
        z = rng.normal(size=group.size) * 2
        y = (rng.random(group.size) < 0.4).astype(float)
        try:
            expected, expected_grad = fairret_value_and_grad(statistic, loss, z, y, group, n_groups)
        except NotImplementedError:  # fairret: "Target statistic is zero"
            with pytest.raises(ZeroTarget):
                violation_loss(statistic, loss, z, y, group, n_groups)
            continue
        value, grad = violation_loss(statistic, loss, z, y, group, n_groups)
        # fairret's LSELoss subtracts log(G) computed in float32
        assert value == pytest.approx(expected, abs=1e-7 if loss == "LSELoss" else 1e-12)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-12)
        checked += 1
    assert checked > 10


def test_zero_target_is_reported_like_fairret():
    group = np.repeat([0, 1], 4)
    y = np.zeros(8)  # no positives: TruePositiveRate's overall value is 0/0
    with pytest.raises(ZeroTarget):
        violation_loss("TruePositiveRate", "NormLoss", np.zeros(8), y, group, 2)


@pytest.mark.parametrize("loss", LOSSES)
def test_sgd_fairret_fast_path_matches_autograd_trajectory(tmp_path, loss):
    import csv

    from fairbench.cli import compose_job
    from fairbench.runner import run

    def losses(out):
        with (out / "seed_0" / "trajectory.csv").open() as fh:
            return np.array([[float(r["train_loss"]), float(r["test_c0"])] for r in csv.DictReader(fh)])

    common = ["algo=sgd_fairret", f"algo.loss={loss}", "seeds=[0]", "budget.iterations=200",
              "budget.epochs=null", "log_every=50", "progress=false"]
    run(compose_job([*common, "problem.fast_path=off"]), tmp_path / "autograd")
    run(compose_job(common), tmp_path / "fast")
    np.testing.assert_allclose(losses(tmp_path / "fast"), losses(tmp_path / "autograd"), rtol=2e-4, atol=2e-5)
