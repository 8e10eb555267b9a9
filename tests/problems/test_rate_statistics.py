"""Rate statistics (positive rate, TPR, FPR, accuracy, equalized odds) and the aggregate form:
fairret's definitions on the same inputs, and every oracle path against autograd."""

import numpy as np
import pytest
import torch
from fairret.loss import LSELoss, NormLoss
from fairret.statistic import Accuracy, FalsePositiveRate, PositiveRate, TruePositiveRate

from fairbench.backends.compiled.mlp import CompiledMLPOracle, CompiledStackedMLPOracle
from fairbench.backends.numpy_oracle import NumpyMLPOracle
from fairbench.backends.oracles import compiled_available
from fairbench.backends.stacked import StackedMLPOracle
from fairbench.errors import ConfigError
from fairbench.models import MLP
from fairbench.problems.fairness import FairnessOracle, TensorSplit
from fairbench.problems.statistics import cell_rows, cell_statistics, label_counts, row_values_torch
import configs

NO_NUMBA = pytest.mark.skipif(not compiled_available(), reason="numba is not installed (the fast extra)")
RATES = ["positive_rate", "true_positive_rate", "false_positive_rate", "accuracy", "equalized_odds"]
FAIRRET = {"positive_rate": PositiveRate, "true_positive_rate": TruePositiveRate,
           "false_positive_rate": FalsePositiveRate, "accuracy": Accuracy}


def make_split(n=600, d=9, n_groups=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    group = rng.integers(0, n_groups, n)
    y = (X[:, 0] + 0.5 * group + rng.normal(size=n) > 0.5).astype(np.float32)
    return TensorSplit.from_arrays(X, y, group)


def bind(split, statistic, n_groups=3, **spec):
    group, y = split.group.numpy(), split.y.numpy()
    props = np.bincount(group, minlength=n_groups) / len(split)
    return configs.constraint_spec(statistic=statistic, **spec).bind(
        props, [f"g{g}" for g in range(n_groups)], label_counts(group, y, n_groups))


def soft_cell_stats(statistic, z, y, group, n_groups, temperature=1.0):
    """Cell statistics by our definition: the per-row quantity averaged over each cell."""
    q = row_values_torch(statistic, torch.as_tensor(z), torch.as_tensor(y), temperature).numpy()
    return np.array([q[rows].mean() for rows in cell_rows(group, y, n_groups, statistic)])


@pytest.mark.parametrize("statistic", list(FAIRRET))
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_soft_statistics_equal_fairret(statistic, temperature):
    rng = np.random.default_rng(1)
    n, G = 200, 3
    z = rng.normal(size=n).astype(np.float32)
    y = (rng.random(n) < 0.4).astype(np.float32)
    group = rng.integers(0, G, n)
    sens = torch.nn.functional.one_hot(torch.as_tensor(group), G).float()
    p = torch.sigmoid(torch.as_tensor(z) / temperature)[:, None]
    ours = soft_cell_stats(statistic, z, y, group, G, temperature)
    args = () if statistic == "positive_rate" else (torch.as_tensor(y)[:, None],)
    theirs = FAIRRET[statistic]()(p, sens, *args).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    # equalized odds stacks the TPR cells, then the FPR cells
    if statistic == "true_positive_rate":
        eo = soft_cell_stats("equalized_odds", z, y, group, G, temperature)
        fpr = FalsePositiveRate()(p, sens, torch.as_tensor(y)[:, None]).numpy()
        np.testing.assert_allclose(eo, np.concatenate([theirs, fpr]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("statistic", ["positive_rate", "true_positive_rate", "equalized_odds"])
@pytest.mark.parametrize("aggregate,fairret_loss", [("norm", NormLoss), ("lse", LSELoss)])
def test_aggregate_equals_fairret_violation_loss(statistic, aggregate, fairret_loss):
    """R(s) with the batch's own shares is fairret's loss of the same predictions."""
    rng = np.random.default_rng(2)
    n, G = 300, 3
    z = rng.normal(size=n).astype(np.float32)
    y = (rng.random(n) < 0.4).astype(np.float32)
    group = rng.integers(0, G, n)
    split = TensorSplit.from_arrays(np.zeros((n, 1)), y, group)
    bound = bind(split, statistic, G, form="aggregate", aggregate=aggregate, delta=0.2)
    s = soft_cell_stats(statistic, z, y, group, G)
    sens = torch.nn.functional.one_hot(torch.as_tensor(group), G).float()
    labels = torch.as_tensor(y)[:, None]
    stats = {"positive_rate": [PositiveRate()], "true_positive_rate": [TruePositiveRate()],
             "equalized_odds": [TruePositiveRate(), FalsePositiveRate()]}[statistic]
    expected = sum(float(fairret_loss(st)(torch.as_tensor(z)[:, None], sens,
                                          *(() if statistic == "positive_rate" else (labels,))))
                   for st in stats)
    assert bound.n_constraints == 1
    np.testing.assert_allclose(bound.values(s), [expected - 0.2], rtol=1e-5, atol=1e-6)
    # torch values and the analytic dR/ds agree with autograd
    st = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    value = bound.values(st)
    (grad,) = torch.autograd.grad(value.sum(), st)
    np.testing.assert_allclose(value.detach().numpy(), bound.values(s), rtol=1e-12)
    np.testing.assert_allclose(bound.jacobian_map(s)[0], grad.numpy(), rtol=1e-9, atol=1e-12)


def oracle_pair(split, bound, cls, seed=0):
    oracles = []
    for c in (FairnessOracle, cls):
        torch.manual_seed(seed)
        model = MLP(split.X.shape[1], [16, 8], "relu")
        oracles.append(c(model, split, bound.n_cells, bound, seed=seed))
    return oracles


def close(a, b, rtol=2e-4, atol=2e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


@pytest.mark.parametrize("cls", [NumpyMLPOracle, pytest.param(CompiledMLPOracle, marks=NO_NUMBA)],
                         ids=["numpy", "compiled"])
@pytest.mark.parametrize("statistic", RATES)
@pytest.mark.parametrize("form", ["signed", "abs", "aggregate"])
def test_fast_paths_agree_with_autograd(cls, statistic, form):
    split = make_split()
    bound = bind(split, statistic, form=form, aggregate="lse" if form == "aggregate" else None,
                 temperature=0.7, family="vs_all")
    ref, fast = oracle_pair(split, bound, cls)
    assert ref.n_groups == fast.n_groups == bound.n_cells
    for per_group in (8, 4):
        a, b = ref.sample_constraints(per_group), fast.sample_constraints(per_group)
        np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
        # balanced by cell: block k holds rows of cell k only
        cells = cell_rows(split.group.numpy(), split.y.numpy(), 3, statistic)
        for k, rows in enumerate(cells):
            assert np.isin(np.asarray(b.data)[k * per_group:(k + 1) * per_group], rows).all()
        ca, Ja = ref.constraints(a, jac=True)
        cb, Jb = fast.constraints(b, jac=True)
        close(ca, cb)
        close(Ja, Jb)
        oa, ob = ref.sample_objective(per_group), fast.sample_objective(per_group)
        fa, ga, ca2, Ja2 = ref.objective_and_constraints(oa, a)
        fb, gb, cb2, Jb2 = fast.objective_and_constraints(ob, b)
        close(fa, fb), close(ga, gb), close(ca2, cb2), close(Ja2, Jb2)
        w = np.linspace(0.1, 1.0, bound.n_constraints).astype(np.float32)
        fa, ca, ga = ref.lagrangian_grad(oa, a, w)
        fb, cb, gb = fast.lagrangian_grad(ob, b, w)
        close(fa, fb), close(ca, cb), close(ga, gb)
        # the Lagrangian's gradient is grad f + J^T w
        close(gb, ref.objective(oa, grad=True)[1] + w @ Ja)
        v_batch = fast.sample_constraints(per_group, stream=1)
        fb, cb, vb, gb2 = fast.lagrangian_grad_and_values(ob, b, v_batch, lambda c, v: w)
        close(cb, ca), close(gb2, gb), close(vb, fast.constraints(v_batch)[0])


@pytest.mark.parametrize("cls", [StackedMLPOracle, pytest.param(CompiledStackedMLPOracle, marks=NO_NUMBA)],
                         ids=["numpy", "compiled"])
def test_stacked_rates_agree_with_single_seed(cls):
    split = make_split()
    bound = bind(split, "equalized_odds", temperature=0.5)
    seeds = [3, 4]
    models = []
    for s in seeds:
        torch.manual_seed(s)
        models.append(MLP(split.X.shape[1], [16, 8], "relu"))
    stacked = cls(models, split, bound.n_cells, bound, seeds)
    singles = []
    for s in seeds:
        torch.manual_seed(s)
        singles.append(NumpyMLPOracle(MLP(split.X.shape[1], [16, 8], "relu"), split, bound.n_cells, bound, seed=s))
    batch = stacked.sample_constraints(4)
    c, J = stacked.constraints(batch, jac=True)
    for k, single in enumerate(singles):
        cs, Js = single.constraints(single.sample_constraints(4), jac=True)
        close(c[k], cs), close(J[k], Js)


def test_a_group_without_a_needed_label_is_refused():
    split = make_split()
    y = split.y.numpy().copy()
    y[split.group.numpy() == 1] = 0.0
    bad = TensorSplit.from_arrays(split.X.numpy(), y, split.group.numpy())
    with pytest.raises(ConfigError, match="problem.statistic.*g1"):
        bind(bad, "true_positive_rate")
    bind(bad, "false_positive_rate")  # every group has a row with y = 0


def test_true_statistics_of_hard_predictions():
    rng = np.random.default_rng(3)
    n, G = 500, 2
    pred = (rng.random(n) < 0.5).astype(float)
    y = (rng.random(n) < 0.3).astype(float)
    group = rng.integers(0, G, n)
    pos = np.zeros((G, 2))
    np.add.at(pos, (group, y.astype(int)), pred)
    counts = label_counts(group, y, G)
    for g in range(G):
        rows = group == g
        tpr = pred[rows & (y == 1)].mean()
        fpr = pred[rows & (y == 0)].mean()
        np.testing.assert_allclose(cell_statistics("positive_rate", pos, counts)[g], pred[rows].mean())
        np.testing.assert_allclose(cell_statistics("equalized_odds", pos, counts)[[g, G + g]], [tpr, fpr])
        np.testing.assert_allclose(cell_statistics("loss", pos, counts)[g], (pred[rows] != y[rows]).mean())


HALVES_CASES = [(statistic, family, form) for statistic in RATES
                for family, form in (("pairs", "signed"), ("vs_all", "signed"), ("pairs", "abs"), ("pairs", "aggregate"))]


@pytest.mark.parametrize("cls", [NumpyMLPOracle, pytest.param(CompiledMLPOracle, marks=NO_NUMBA)],
                         ids=["numpy", "compiled"])
@pytest.mark.parametrize("statistic,family,form", HALVES_CASES)
@pytest.mark.parametrize("n_groups", [2, 3])
def test_ghost_halves_of_a_rate_equal_the_three_calls(cls, statistic, family, form, n_groups, monkeypatch):
    """Stochastic Ghost's S1, S2, S3 (``objective_and_constraints_halves``) for a rate statistic:
    on the compiled oracle from one pass (it must not fall back to the three calls), S1 and S2
    bit for bit the calls on the halves, S3's ``f`` to 1e-12 and its ``g``, ``c``, ``J`` to
    float32 rounding (S3's own pass sums in another order); the numpy oracle makes the three calls,
    each one fused pass as for the loss; counted as the three calls."""
    from fairbench.problems.base import split_batch

    split = make_split(n_groups=n_groups)
    bound = bind(split, statistic, n_groups, family=family, form=form, temperature=0.7,
                 aggregate="norm" if form == "aggregate" else None)
    _, fast = oracle_pair(split, bound, cls)
    compiled = cls is CompiledMLPOracle
    m = bound.n_constraints
    for size in (2, 8, 32):
        ob, cb = fast.sample_objective(size), fast.sample_constraints(size, stream=1)
        before = fast.counters.grad_evals
        with monkeypatch.context() as patch:
            if compiled:
                patch.setattr(fast, "objective_and_constraints", lambda *args: pytest.fail("three passes, not one"))
            else:  # each set in one fused pass, as for the loss
                for name in ("_objective_np", "_constraints_np"):
                    patch.setattr(fast, name, lambda *args: pytest.fail("two passes where one was expected"))
            sets = fast.objective_and_constraints_halves(ob, cb)
        assert fast.counters.grad_evals - before == 2 * (size + bound.n_cells * size)
        (o1, o2), (c1, c2) = split_batch(ob), split_batch(cb)
        for j, (got, (obj, con)) in enumerate(zip(sets, ((o1, c1), (o2, c2), (ob, cb)))):
            f, g, c, J = got
            assert isinstance(f, float) and g.dtype == c.dtype == J.dtype == np.float32
            assert g.shape == fast.x.shape and c.shape == (m,) and J.shape == (m, fast.x.size)
            f_e, g_e, c_e, J_e = fast.objective_and_constraints(obj, con)  # (the three-pass path's call)
            if j < 2:
                assert f == f_e
                for a, b in ((g, g_e), (c, c_e), (J, J_e)):
                    np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_allclose(f, f_e, rtol=1e-12, atol=0)
                # (float32 rounding of terms of order 1: an aggregate's dR/ds times the rates' slopes)
                for a, b in ((g, g_e), (c, c_e), (J, J_e)):
                    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the sets of one call are new arrays (a later call does not overwrite them)
    sets = fast.objective_and_constraints_halves(fast.sample_objective(4), fast.sample_constraints(4, stream=1))
    kept = [tuple(np.array(a, copy=True) for a in s) for s in sets]
    fast.objective_and_constraints_halves(fast.sample_objective(4), fast.sample_constraints(4, stream=1))
    for s, k in zip(sets, kept):
        for a, b in zip(s, k):
            np.testing.assert_array_equal(a, b)
