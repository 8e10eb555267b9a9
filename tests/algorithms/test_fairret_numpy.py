"""fairret's violation losses in closed form (the SGD-Fairret fast path) against fairret itself."""

import inspect
import warnings

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


@pytest.mark.parametrize("loss", [*LOSSES, "KLProjectionLoss"])
def test_sgd_fairret_fast_path_matches_autograd_trajectory(tmp_path, loss):
    """Closed form on the numpy oracle vs fairret / torch autograd (KLProjectionLoss: the exact
    projection, KL and gradient through torch on the autograd path)."""
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


# -- the exact KL projection ----------------------------------------------------------------
from fairbench.algorithms import fairret_numpy  # noqa: E402


def random_batch(rng, n_groups, per_group, scale=2.0, positives=0.4):
    group = np.repeat(np.arange(n_groups), per_group)
    z = rng.normal(size=group.size) * scale
    y = (rng.random(group.size) < positives).astype(float)
    return z, y, group


def kl(q, p):
    return float(np.sum(q * np.log(q / p) + (1 - q) * np.log((1 - q) / (1 - p))))


def residuals(statistic, q, z, y, group, n_groups):
    """The fair constraints ``intercept_g + sum_{i in g} beta_i q_i`` at ``q``."""
    intercept, beta = fairret_numpy.fair_constraint(statistic, 1 / (1 + np.exp(-z)), y, group, n_groups)
    return intercept + np.bincount(group, beta * q, minlength=n_groups)


@pytest.mark.parametrize("statistic", sorted(COEFFICIENTS))
def test_exact_projection_is_the_minimiser_cvxpy_finds(statistic):
    """Against cvxpy's exponential-cone solver run to tight tolerances: the constraints hold to
    1e-10, the KL is no larger than cvxpy's, and the two projections agree."""
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(1)
    solved = 0
    for _ in range(12):
        n_groups = int(rng.integers(2, 5))
        z, y, group = random_batch(rng, n_groups, int(rng.integers(4, 20)))
        try:
            q = fairret_numpy.kl_projection(statistic, z, y, group, n_groups)
        except (fairret_numpy.InfeasibleProjection, ZeroDivisionError):
            continue
        p = 1 / (1 + np.exp(-z))
        intercept, beta = fairret_numpy.fair_constraint(statistic, p, y, group, n_groups)
        var = cp.Variable(len(z))
        problem = cp.Problem(cp.Minimize(cp.sum(cp.kl_div(var, p) + cp.kl_div(1 - var, 1 - p))),
                             [intercept[g] + beta[group == g] @ var[group == g] == 0 for g in range(n_groups)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            problem.solve(solver="CLARABEL", tol_feas=1e-12, tol_gap_abs=1e-12, tol_gap_rel=1e-12)
        reference = np.clip(var.value, 1e-12, 1 - 1e-12)
        assert np.abs(residuals(statistic, q, z, y, group, n_groups)).max() < 1e-10
        assert kl(q, p) <= kl(reference, p) + 1e-9
        np.testing.assert_allclose(q, reference, atol=1e-4)
        solved += 1
    assert solved >= 6


@pytest.mark.parametrize("statistic", sorted(COEFFICIENTS))
def test_projection_satisfies_kkt_on_hard_instances(statistic):
    """Saturated logits (|z| up to 40), tiny and large groups, scalar and vector paths: the
    projection is feasible to the tolerance and has the stationary form sigmoid(z - beta lam)."""
    rng = np.random.default_rng(2)
    solved = 0
    for scale, per_group in [(0.01, 3), (8.0, 12), (40.0, 12), (3.0, 200)]:
        for positives in (0.1, 0.5, 0.9):
            z, y, group = random_batch(rng, 3, per_group, scale, positives)
            try:
                u = fairret_numpy.projection_logits(statistic, z, y, group, 3)
            except (fairret_numpy.InfeasibleProjection, ZeroDivisionError):
                continue
            q = 1 / (1 + np.exp(-u))
            _, beta = fairret_numpy.fair_constraint(statistic, 1 / (1 + np.exp(-z)), y, group, 3)
            size = np.abs(beta).sum() + len(z)
            assert np.abs(residuals(statistic, q, z, y, group, 3)).max() <= 1e-9 * size
            for g in range(3):  # u - z = -beta * lam_g on every row of group g
                rows = (group == g) & (beta != 0)
                if rows.any():
                    lam = -(u - z)[rows] / beta[rows]
                    np.testing.assert_allclose(lam, lam[0], rtol=1e-9, atol=1e-9)
            solved += 1
    assert solved >= 6


def test_scalar_and_vector_paths_agree(monkeypatch):
    rng = np.random.default_rng(3)
    z, y, group = random_batch(rng, 2, 30)
    small = fairret_numpy.projection_logits("Accuracy", z, y, group, 2)
    monkeypatch.setattr(fairret_numpy, "SCALAR_ROWS", 0)
    np.testing.assert_allclose(fairret_numpy.projection_logits("Accuracy", z, y, group, 2), small, rtol=0, atol=1e-12)


def test_row_order_does_not_matter():
    rng = np.random.default_rng(4)
    z, y, group = random_batch(rng, 3, 10)
    perm = rng.permutation(len(z))
    q = fairret_numpy.kl_projection("PositiveRate", z, y, group, 3)
    np.testing.assert_allclose(fairret_numpy.kl_projection("PositiveRate", z[perm], y[perm], group[perm], 3), q[perm],
                               rtol=0, atol=1e-13)


def test_group_without_positives():
    """TruePositiveRate on a group without positives: no constraint there (q = p); PPV on it:
    no prediction in (0, 1) meets it, reported as infeasible (the step skips R)."""
    rng = np.random.default_rng(5)
    z, y, group = random_batch(rng, 2, 8)
    y[group == 1] = 0.0
    y[:3] = 1.0
    q = fairret_numpy.kl_projection("TruePositiveRate", z, y, group, 2)
    np.testing.assert_array_equal(q[group == 1], (1 / (1 + np.exp(-z)))[group == 1])
    with pytest.raises(fairret_numpy.InfeasibleProjection):
        fairret_numpy.kl_projection("PositivePredictiveValue", z, y, group, 2)


@pytest.mark.parametrize("statistic", ["Accuracy", "PositiveRate", "TruePositiveRate"])
def test_kl_projection_loss_value_and_gradient_equal_torch(statistic):
    """R and dR/dz equal torch's kl_div of fairret's KLProjectionLoss.torch_distance_with_logits
    with the projection held fixed (as fairret detaches it)."""
    rng = np.random.default_rng(6)
    for _ in range(10):
        z, y, group = random_batch(rng, 2, 12, scale=3.0)
        q = fairret_numpy.kl_projection(statistic, z, y, group, 2)
        value, grad = fairret_numpy.kl_projection_loss(statistic, z, y, group, 2)
        zt = torch.tensor(z, requires_grad=True)
        log_pred = torch.stack([torch.nn.functional.logsigmoid(-zt), torch.nn.functional.logsigmoid(zt)], dim=1)
        expected = torch.nn.functional.kl_div(log_pred, torch.tensor(np.stack([1 - q, q], 1)), reduction="batchmean")
        expected.backward()
        assert value == pytest.approx(expected.item(), rel=1e-9, abs=1e-15)
        np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-9, atol=1e-15)


def test_fairrets_own_projection_is_inexact_and_scaled():
    """What ``projection: fairret`` reproduces (fairret 0.1.3): after 10 SCS iterations the
    fair constraints are not met as tightly as by the exact projection, and the rows [1 - q, q]
    are divided by their mean, so they sum to 2 before the clamp to [0, 1]."""
    pytest.importorskip("cvxpy")
    rng = np.random.default_rng(7)
    z, y, group = random_batch(rng, 2, 12)
    loss = fairret_loss.KLProjectionLoss(fairret_statistic.Accuracy())
    sens = torch.nn.functional.one_hot(torch.tensor(group), 2).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proj = loss._fit_cvxpy(torch.sigmoid(torch.tensor(z)).unsqueeze(1), sens, torch.tensor(y).unsqueeze(1))
    scs = proj[:, 1].numpy()
    exact = fairret_numpy.kl_projection("Accuracy", z, y, group, 2)
    assert np.abs(residuals("Accuracy", scs, z, y, group, 2)).max() > 1e3 * np.abs(
        residuals("Accuracy", exact, z, y, group, 2)).max()
    normalised = proj / proj.mean(dim=-1, keepdim=True)  # fairret's force_proj_normalized step
    np.testing.assert_allclose(normalised.sum(dim=1).numpy(), 2.0, rtol=1e-12)


def test_already_fair_predictions_cost_nothing_exactly_but_not_in_fairret():
    """One group: every prediction is already fair, so the projection is the prediction and the
    KL projection loss is 0 with a zero gradient. fairret 0.1.3's own loss (the rows scaled by
    2 and clamped) is ~0.45 there, with a gradient that pulls every prediction towards 0.5."""
    rng = np.random.default_rng(8)
    z, y, group = random_batch(rng, 1, 24)
    value, grad = fairret_numpy.kl_projection_loss("Accuracy", z, y, group, 1)
    assert value == 0.0 and np.all(grad == 0.0)
    pytest.importorskip("cvxpy")
    zt = torch.tensor(z, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fairrets = fairret_loss.KLProjectionLoss(fairret_statistic.Accuracy())(
            zt.unsqueeze(1), torch.ones(len(z), 1, dtype=torch.float64), torch.tensor(y).unsqueeze(1))
    fairrets.backward()
    p = 1 / (1 + np.exp(-z))
    assert fairrets.item() > 0.1
    # a descent step moves p towards 0.5: with q = p the gradient is p (2p - 1) / B below 0.5 and
    # (2p - 1)(1 - p) / B above; SCS's 10 iterations leave q != p, which flips some (here 1 in 7)
    confident = np.abs(p - 0.5) > 0.1
    assert np.mean(np.sign(zt.grad.numpy()[confident]) == np.sign(p - 0.5)[confident]) > 0.75
