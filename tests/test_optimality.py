"""Optimality columns: stationarity and complementarity against finite differences and known KKT points."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import clirun
import configs
from fairbench.optimality import COLUMNS, TrainOptimality, least_squares_multipliers, measures, method_multipliers
from fairbench.problems.callable import CallableOracle
from fairbench.problems.fairness import TensorSplit
from fairbench.problems.statistics import cell_rows

A = np.array([[2.0, 1.0], [2.5, 0.5], [1.5, 1.5]])  # rows of the toy's data; mean (2, 1)


def toy_oracle(x0) -> CallableOracle:
    """min mean_i 0.5 ||x - a_i||^2  s.t.  x1 + x2 - 1 <= 0,  x1^2 - 4 <= 0 (KKT point (1, 0), lam = (1, 0))."""
    return CallableOracle(
        x0=np.asarray(x0, dtype=float),
        objective=lambda x, rows: (0.5 * np.mean(np.sum((x - A[rows]) ** 2, axis=1)), x - A[rows].mean(axis=0)),
        constraints=lambda x, rows: (np.array([x.sum() - 1.0, x[0] ** 2 - 4.0]), np.array([[1.0, 1.0], [2 * x[0], 0.0]])),
        n_constraints=2, n_rows=3)


def full(oracle: CallableOracle, x):
    rows = np.arange(3)
    f, g = oracle._objective(x, rows)
    c, J = oracle._constraints(x, rows)
    return f, np.asarray(g), np.asarray(c), np.asarray(J)


def fd_grad(fun, x, h=1e-6):
    return np.array([(fun(x + h * e) - fun(x - h * e)) / (2 * h) for e in np.eye(len(x))])


def test_stationarity_is_the_norm_of_the_finite_difference_lagrangian_gradient():
    oracle = toy_oracle([0.3, -0.7])
    x = oracle.x.copy()
    lam = np.array([0.4, 0.25])
    _, g, c, J = full(oracle, x)
    got = measures(g, J, c, lam)

    def lagrangian(z):
        f, _, cz, _ = full(oracle, z)
        return f + lam @ cz

    assert got["train_stationarity"] == pytest.approx(np.linalg.norm(fd_grad(lagrangian, x)), rel=1e-7)
    assert got["train_complementarity"] == pytest.approx(np.abs(lam * c).sum())
    assert oracle.counters.samples == 0 and oracle.counters.grad_evals == 0


def test_least_squares_multipliers_vanish_at_the_kkt_point_and_not_elsewhere():
    oracle = toy_oracle([1.0, 0.0])
    _, g, c, J = full(oracle, oracle.x)
    lam = least_squares_multipliers(g, J, c)
    assert lam == pytest.approx([1.0, 0.0], abs=1e-10)  # the inactive x1^2 <= 4 gets none
    kkt = measures(g, J, c, None)
    assert kkt["train_stationarity"] == pytest.approx(0.0, abs=1e-10)
    assert kkt["train_complementarity"] == pytest.approx(0.0, abs=1e-10)
    # a feasible interior point: no multiplier helps without paying complementarity, grad f remains
    _, g, c, J = full(oracle, np.array([0.0, 0.0]))
    interior = measures(g, J, c, None)
    assert 0 < interior["train_stationarity"] <= np.linalg.norm(g)
    assert interior["train_complementarity"] > 0


def test_no_constraints_and_non_finite_inputs():
    assert measures(np.array([3.0, 4.0]), np.zeros((0, 2)), np.zeros(0), None) == {
        "train_stationarity": 5.0, "train_complementarity": 0.0}
    bad = measures(np.array([np.nan, 1.0]), np.ones((1, 2)), np.array([0.1]), None)
    assert all(np.isnan(v) for v in bad.values())


def test_method_multipliers_per_seed_and_shape():
    class Algo:
        multipliers = np.array([[1.0, 2.0], [3.0, 4.0]])

    assert method_multipliers(Algo(), 2, 1).tolist() == [3.0, 4.0]
    assert method_multipliers(Algo(), 3, 1) is None  # not these constraints: least squares instead
    assert method_multipliers(object(), 2, None) is None


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()

    def forward(self, x):
        return self.net(x).squeeze(-1)


def set_params(params, x):
    """Write the flat vector ``x`` into the parameters ``params`` (in their order)."""
    offset = 0
    with torch.no_grad():
        for p in params:
            p.copy_(torch.as_tensor(x[offset:offset + p.numel()]).view_as(p))
            offset += p.numel()


def double_mlp(n_features: int = 3, activation: str = "tanh") -> nn.Module:
    """A fairbench MLP in float64 (its log points take the numpy pass of fairbench.optimality_mlp)."""
    return configs.model(n_features, hidden=[5, 4], activation=activation).double()


@pytest.mark.parametrize("form", ["signed", "abs"])
@pytest.mark.parametrize("make_model", [Tiny, double_mlp], ids=["autograd", "numpy"])
def test_model_gradient_and_jacobian_match_finite_differences(form, make_model):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 40
    split = TensorSplit(torch.as_tensor(rng.standard_normal((n, 3))), torch.as_tensor(rng.integers(0, 2, n) * 1.0),
                        torch.as_tensor(rng.integers(0, 3, n)))
    bound = configs.constraint_spec(delta=0.01, form=form, family="pairs").bind(np.full(3, 1 / 3), ["a", "b", "c"])
    model = make_model()
    params = list(model.parameters())
    x0 = torch.cat([p.detach().reshape(-1) for p in params]).numpy().copy()

    def set_x(x):
        set_params(params, x)

    def values(x):
        set_x(x)
        with torch.no_grad():
            losses = F.binary_cross_entropy_with_logits(model(split.X), split.y, reduction="none").numpy()
        group = split.group.numpy()
        s = np.array([losses[group == g].mean() for g in range(3)])
        return losses.mean(), bound.values(s), s

    f0, c0, s0 = values(x0)
    optimality = TrainOptimality(split, bound)
    set_x(x0)
    g, J = optimality.derivatives(model, s0)
    assert g == pytest.approx(fd_grad(lambda z: values(z)[0], x0), abs=1e-7)
    for j in range(len(c0)):
        assert J[j] == pytest.approx(fd_grad(lambda z: values(z)[1][j], x0), abs=1e-7)
    lam = np.linspace(0.1, 0.5, len(c0))
    set_x(x0)
    got = optimality.columns(model, s0, c0, lam)
    expected = np.linalg.norm(fd_grad(lambda z: values(z)[0] + lam @ values(z)[1], x0))
    assert got["train_stationarity"] == pytest.approx(expected, rel=1e-6)
    assert all(p.grad is None for p in params)  # autograd.grad: no gradient buffer written


@pytest.mark.parametrize("statistic, form", [("positive_rate", "signed"), ("equalized_odds", "signed"),
                                             ("positive_rate", "aggregate")])
@pytest.mark.parametrize("make_model", [Tiny, double_mlp], ids=["autograd", "numpy"])
def test_rate_statistics_jacobian_matches_finite_differences(statistic, form, make_model):
    """For a rate statistic the Jacobian is taken through the cells' soft rates, not the losses."""
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    n = 60
    split = TensorSplit(torch.as_tensor(rng.standard_normal((n, 3))), torch.as_tensor(rng.integers(0, 2, n) * 1.0),
                        torch.as_tensor(rng.integers(0, 3, n)))
    spec = configs.constraint_spec(delta=0.01, form=form, family="pairs", statistic=statistic,
                                   aggregate="norm" if form == "aggregate" else None)
    counts = np.stack([np.bincount(split.group.numpy()[split.y.numpy() == label], minlength=3) for label in (0, 1)], 1)
    counts = counts.astype(float)
    bound = spec.bind(np.full(3, 1 / 3), ["a", "b", "c"], counts)
    model = make_model()
    params = list(model.parameters())
    x0 = torch.cat([p.detach().reshape(-1) for p in params]).numpy().copy()

    def set_x(x):
        set_params(params, x)

    cells = cell_rows(split.group.numpy(), split.y.numpy(), 3, statistic)

    def constraints(x):
        set_x(x)
        with torch.no_grad():
            p = torch.sigmoid(model(split.X)).numpy()
        return bound.values(np.array([p[rows].mean() for rows in cells]))

    set_x(x0)
    with torch.no_grad():
        losses = F.binary_cross_entropy_with_logits(model(split.X), split.y, reduction="none").numpy()
    group_losses = np.array([losses[split.group.numpy() == g].mean() for g in range(3)])
    _, J = TrainOptimality(split, bound).derivatives(model, group_losses)
    c0 = constraints(x0)
    assert J.shape == (len(c0), len(x0))
    for j in range(len(c0)):
        assert J[j] == pytest.approx(fd_grad(lambda z: constraints(z)[j], x0), abs=1e-7)


def mixed_split(n: int, seed: int, dtype=torch.float64) -> TensorSplit:
    rng = np.random.default_rng(seed)
    return TensorSplit(torch.as_tensor(rng.standard_normal((n, 3)), dtype=dtype),
                       torch.as_tensor(rng.integers(0, 2, n), dtype=dtype), torch.as_tensor(rng.integers(0, 3, n)))


def bound_for(split: TensorSplit, statistic: str, form: str):
    spec = configs.constraint_spec(delta=0.01, form=form, family="pairs", statistic=statistic,
                                   aggregate="norm" if form == "aggregate" else None)
    y, group = split.y.numpy(), split.group.numpy()
    counts = np.stack([np.bincount(group[y == label], minlength=3) for label in (0, 1)], 1).astype(float)
    return spec.bind(np.bincount(group, minlength=3) / len(group), ["a", "b", "c"], counts)


@pytest.mark.parametrize("statistic, form", [("loss", "signed"), ("loss", "abs"), ("positive_rate", "signed"),
                                             ("true_positive_rate", "signed"), ("equalized_odds", "signed"),
                                             ("accuracy", "aggregate")])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_the_numpy_pass_equals_autograd_in_float64(monkeypatch, statistic, form, activation):
    """The MLP's full-batch pass (blocks of 16 rows here, so sets span several blocks) gives the
    autograd gradient and Jacobian, and so the same columns, to 1e-10 in float64."""
    import fairbench.optimality_mlp as numpy_pass

    monkeypatch.setattr(numpy_pass, "BLOCK", 16)
    torch.manual_seed(1)
    split = mixed_split(150, 4)
    bound = bound_for(split, statistic, form)
    model = double_mlp(activation=activation)
    optimality = TrainOptimality(split, bound)
    with torch.no_grad():
        losses = F.binary_cross_entropy_with_logits(model(split.X), split.y, reduction="none").numpy()
    group_losses = np.array([losses[split.group.numpy() == g].mean() for g in range(3)])
    assert numpy_pass.mlp_arrays(model) is not None
    g, J = optimality.derivatives(model, group_losses)
    g_ref, J_ref = optimality.autograd_derivatives(model, group_losses)
    assert np.abs(g - g_ref).max() <= 1e-10 * max(1.0, np.abs(g_ref).max())
    assert np.abs(J - J_ref).max() <= 1e-10 * max(1.0, np.abs(J_ref).max())
    c = np.linspace(-0.02, 0.01, J.shape[0])
    for lam in (None, np.linspace(0.1, 0.5, J.shape[0])):
        got, want = measures(g, J, c, lam), measures(g_ref, J_ref, c, lam)
        assert got == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_the_numpy_pass_in_float32_agrees_with_autograd_to_rounding():
    torch.manual_seed(2)
    split = mixed_split(400, 5, torch.float32)
    bound = bound_for(split, "positive_rate", "signed")
    model = configs.model(3, hidden=[8, 6], activation="relu")
    optimality = TrainOptimality(split, bound)
    g, J = optimality.derivatives(model, np.zeros(3))
    g_ref, J_ref = optimality.autograd_derivatives(model, np.zeros(3))
    assert g == pytest.approx(g_ref, rel=1e-4, abs=1e-6) and J == pytest.approx(J_ref, rel=1e-4, abs=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_trajectories_carry_the_columns_last(monkeypatch, capsys, tmp_path):
    code, _, err = clirun.main(monkeypatch, capsys, "algo=ssl_alm", "seeds=[0]", "budget.epochs=null",
                               "budget.iterations=20", "log_every=10", "progress=false", f"hydra.run.dir={tmp_path}")
    assert code == 0, err
    with open(tmp_path / "seed_0" / "trajectory.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[-2:] == list(COLUMNS) and len(rows) == 3
    assert all(float(r["train_stationarity"]) > 0 and float(r["train_complementarity"]) >= 0 for r in rows)


def test_nnls_matches_scipy():
    from scipy.optimize import nnls as reference

    from fairbench.optimality import nnls

    rng = np.random.default_rng(3)
    for trial in range(200):
        m, n = rng.integers(1, 12), rng.integers(1, 9)
        A, b = rng.standard_normal((m + n, n)), rng.standard_normal(m + n) * (1 + trial % 3)
        got, want = nnls(A, b), reference(A, b)[0]
        assert (got >= 0).all()
        assert np.linalg.norm(A @ got - b) == pytest.approx(np.linalg.norm(A @ want - b), rel=1e-9, abs=1e-12)


def test_eval_optimality_false_leaves_the_columns_out(tmp_path):
    from fairbench.cli import compose_job
    from fairbench.runner import run

    run(compose_job(["progress=false", "seeds=[0]", "budget.iterations=20", "log_every=10",
                     "eval.optimality=false"]), tmp_path / "off")
    header = (tmp_path / "off" / "seed_0" / "trajectory.csv").read_text().splitlines()[0].split(",")
    assert not set(COLUMNS) & set(header) and "train_loss" in header


def test_eval_optimality_must_be_a_boolean():
    from fairbench.errors import ConfigError
    from fairbench.eval_settings import parse_eval

    with pytest.raises(ConfigError, match="eval.optimality"):
        parse_eval({"eval": {"optimality": "yes"}})
    assert parse_eval({"eval": {"optimality": False}}).optimality is False


@pytest.mark.parametrize("statistic, form, family", [("loss", "abs", "pairs"), ("loss", "signed", "vs_all"),
                                                     ("positive_rate", "signed", "pairs"),
                                                     ("equalized_odds", "abs", "vs_all")])
def test_the_one_pass_residual_is_grad_f_plus_j_transpose_lambda(statistic, form, family, monkeypatch):
    """Beyond the column limit the residual is one weighted backward pass; it equals the
    G-pass ``g + J^T lam`` (float64), and columns() takes it when the cells exceed the limit."""
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    n, G = 90, 4
    split = TensorSplit(torch.as_tensor(rng.standard_normal((n, 3))), torch.as_tensor(np.tile([0.0, 1.0], n // 2)),
                        torch.as_tensor(np.repeat(np.arange(G), n // G + 1)[:n]))
    counts = np.stack([np.bincount(split.group.numpy()[split.y.numpy() == label], minlength=G) for label in (0, 1)], 1)
    shares = np.bincount(split.group.numpy(), minlength=G) / n
    bound = configs.constraint_spec(delta=0.01, form=form, family=family, statistic=statistic).bind(
        shares, list("abcd"), counts.astype(float))
    model = Tiny()
    with torch.no_grad():
        losses = F.binary_cross_entropy_with_logits(model(split.X), split.y, reduction="none").numpy()
    group_losses = np.array([losses[split.group.numpy() == g].mean() for g in range(G)])
    lam = np.linspace(0.1, 0.9, bound.n_constraints)
    optimality = TrainOptimality(split, bound)
    g, J = optimality.derivatives(model, group_losses)
    np.testing.assert_allclose(optimality.lagrangian_gradient(model, group_losses, lam), g + J.T @ lam,
                               rtol=0, atol=1e-12)
    c = bound.values(group_losses) if statistic == "loss" else np.zeros(bound.n_constraints)
    small = optimality.columns(model, group_losses, c, lam)
    monkeypatch.setattr("fairbench.constraint_columns.PER_CONSTRAINT_STATE_LIMIT", 1)  # every cell count beyond it
    large = optimality.columns(model, group_losses, c, lam)
    unknown = optimality.columns(model, group_losses, c, None)
    assert large["train_stationarity"] == pytest.approx(small["train_stationarity"], rel=1e-12)
    assert large["train_complementarity"] == small["train_complementarity"]
    assert all(np.isnan(v) for v in unknown.values())   # least squares would need J


def test_with_eval_subsample_the_columns_are_taken_on_the_training_subsample(tmp_path):
    """eval.subsample: the columns of a log point are those of the evaluation's stratified
    training subsample (the rows its train_loss and train_c<j> are on), not of the whole split."""
    from fairbench.cli import compose_job
    from fairbench.runner import prepare, run
    from fairbench.training import build_model

    overrides = ["progress=false", "seeds=[0]", "budget.iterations=20", "log_every=10", "eval.subsample=300",
                 "problem=demographic_parity"]
    run(compose_job(overrides), tmp_path / "run")
    with open(tmp_path / "run" / "seed_0" / "trajectory.csv") as handle:
        first = next(csv.DictReader(handle))
    assert int(first["iteration"]) == 0
    ctx = prepare(compose_job(overrides), tmp_path / "ctx")
    assert len(ctx.optimality.split) == 300 and ctx.optimality.split is ctx.evaluator.splits["train"]
    model = build_model(ctx, 0)  # the seed's initial model: the first row's iterate
    train = ctx.evaluator.evaluate(model, ctx.bound)["train"]
    assert train.loss == pytest.approx(float(first["train_loss"]), rel=1e-6)
    on_subsample = ctx.optimality.columns(model, train.group_losses, train.constraints, None)
    assert on_subsample["train_stationarity"] == pytest.approx(float(first["train_stationarity"]), rel=1e-6)
    full = ctx.final_evaluator.evaluate(model, ctx.bound)["train"]
    whole = TrainOptimality(ctx.splits["train"], ctx.bound).columns(model, full.group_losses, full.constraints, None)
    assert whole["train_stationarity"] != pytest.approx(on_subsample["train_stationarity"], rel=1e-3)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_a_diverged_mlp_gets_nan_columns_without_warnings(activation):
    split = mixed_split(60, 7, torch.float32)
    bound = bound_for(split, "positive_rate", "signed")
    model = configs.model(3, hidden=[4], activation=activation)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    columns = TrainOptimality(split, bound).columns(model, np.zeros(3), np.zeros(6), None)
    assert all(np.isnan(columns[k]) for k in COLUMNS)


@pytest.mark.parametrize("statistic, form", [("loss", "abs"), ("loss", "signed"), ("positive_rate", "signed"),
                                             ("true_positive_rate", "abs"), ("equalized_odds", "signed")])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_the_numpy_one_pass_residual_equals_autograd_in_float64(monkeypatch, statistic, form, activation):
    """Beyond the column limit a stock MLP's weighted pass runs in numpy (blocks of 16 rows
    here): it equals the autograd weighted pass and the G-pass ``g + J^T lam`` to 1e-10."""
    import fairbench.optimality as optimality_module
    import fairbench.optimality_mlp as numpy_pass

    monkeypatch.setattr(numpy_pass, "BLOCK", 16)
    torch.manual_seed(3)
    split = mixed_split(150, 6)
    bound = bound_for(split, statistic, form)
    model = double_mlp(activation=activation)
    with torch.no_grad():
        losses = F.binary_cross_entropy_with_logits(model(split.X), split.y, reduction="none").numpy()
    group_losses = np.array([losses[split.group.numpy() == g].mean() for g in range(3)])
    lam = np.linspace(0.1, 0.9, bound.n_constraints)
    optimality = TrainOptimality(split, bound)
    assert numpy_pass.mlp_arrays(model) is not None
    got = optimality.lagrangian_gradient(model, group_losses, lam)
    g, J = optimality.autograd_derivatives(model, group_losses)
    monkeypatch.setattr(optimality_module, "mlp_arrays", lambda model: None)  # the autograd pass
    reference = optimality.lagrangian_gradient(model, group_losses, lam)
    scale = max(1.0, np.abs(reference).max())
    assert np.abs(got - reference).max() <= 1e-10 * scale
    assert np.abs(got - (g + J.T @ lam)).max() <= 1e-10 * scale
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("path", ["lookup", "dense rows", "autograd"])
def test_the_one_pass_residual_on_compact_features_is_the_dense_one(monkeypatch, path):
    """Compact one-hot features: the numpy weighted pass reads the rows block by block, through
    the lookup first layer (to float32 rounding) or, with the lookup off, as dense rows (bitwise
    the dense split's result); the autograd one runs in chunks of rows (to rounding)."""
    import fairbench.optimality as optimality_module
    import fairbench.problems.mlp_rows as mlp_rows
    from fairbench.data import load_dataset

    data = load_dataset({"source": "synthetic", "n_rows": 2000, "encoding": "onehot", "protected": ["RAC1P"],
                         "cache": False})
    compact = TensorSplit.from_arrays(data.train.X, data.train.y, data.train.group)
    dense = TensorSplit(torch.as_tensor(np.asarray(data.train.X)), compact.y, compact.group)
    G = int(compact.group.max()) + 1
    y, group = compact.y.numpy(), compact.group.numpy()
    counts = np.stack([np.bincount(group[y == label], minlength=G) for label in (0, 1)], 1).astype(float)
    bound = configs.constraint_spec(delta=0.01, form="signed", family="vs_all", statistic="positive_rate").bind(
        np.bincount(group, minlength=G) / len(group), [str(g) for g in range(G)], counts)
    torch.manual_seed(4)
    model = configs.model(compact.X.shape[1], hidden=[8], activation="relu")
    if path == "autograd":
        monkeypatch.setattr(optimality_module, "mlp_arrays", lambda model: None)
        monkeypatch.setattr(optimality_module, "COMPACT_CHUNK_ROWS", 100)
    if path == "dense rows":
        monkeypatch.setattr(mlp_rows, "LOOKUP", False)
    lam = np.linspace(0.1, 0.9, bound.n_constraints)
    got = TrainOptimality(compact, bound).lagrangian_gradient(model, np.zeros(G), lam)
    want = TrainOptimality(dense, bound).lagrangian_gradient(model, np.zeros(G), lam)
    if path == "dense rows":
        assert got.tobytes() == want.tobytes()
    else:
        assert not np.array_equal(got, np.zeros_like(got))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
