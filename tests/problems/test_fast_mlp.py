"""The fast paths (NumpyMLPOracle, and CompiledMLPOracle where numba is installed) agree with
the autograd FairnessOracle."""

import numpy as np
import pytest
import torch
from torch import nn

from fairbench.models import MLP
from fairbench.problems.fairness import FairnessOracle, TensorSplit
from fairbench.backends.compiled.mlp import CompiledMLPOracle
from fairbench.backends.numpy_oracle import NumpyMLPOracle
from fairbench.backends.oracles import build_fairness_oracle, compiled_available, oracle_path
from fairbench.problems.penalized import PenalizedOracle
import configs

RTOL, ATOL = 1e-4, 1e-6
NO_NUMBA = pytest.mark.skipif(not compiled_available(), reason="numba is not installed (the fast extra)")


@pytest.fixture(params=[NumpyMLPOracle, pytest.param(CompiledMLPOracle, marks=NO_NUMBA)], ids=["numpy", "compiled"])
def fast_cls(request):
    """The fast oracle under test."""
    return request.param


def make_split(n=600, d=9, n_groups=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    group = (rng.random(n) < 0.3).astype(np.int64) if n_groups == 2 else rng.integers(0, n_groups, n)
    y = (X[:, 0] + 0.8 * group / n_groups + rng.normal(size=n) > 0.3).astype(np.float32)
    return TensorSplit.from_arrays(X, y, group)


def make_pair(split, n_groups=2, family="pairs", form="signed", activation="relu", seed=0, delta=0.01,
              constrained=True, fast_cls=NumpyMLPOracle, hidden=(64, 32)):
    """The autograd and the fast oracle from the same initial model and the same seed."""
    props = np.bincount(split.group.numpy(), minlength=n_groups) / len(split)
    bound = configs.constraint_spec(delta=delta, family=family, form=form).bind(props, [f"g{g}" for g in range(n_groups)])
    oracles = []
    for cls in (FairnessOracle, fast_cls):
        torch.manual_seed(seed)
        model = MLP(split.X.shape[1], list(hidden), activation)
        oracles.append(cls(model, split, n_groups, bound if constrained else None, seed=seed))
    return oracles[0], oracles[1], bound


def close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL)


def same_rows(a, b):
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
    assert a.size == b.size and a.per_group == b.per_group


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_objective_value_and_gradient_agree(activation, fast_cls):
    ref, fast, _ = make_pair(make_split(), activation=activation, fast_cls=fast_cls)
    np.testing.assert_array_equal(ref.x, fast.x)
    for size in (8, 1, 33):
        a, b = ref.sample_objective(size), fast.sample_objective(size)
        same_rows(a, b)
        fa, ga = ref.objective(a, grad=True)
        fb, gb = fast.objective(b, grad=True)
        assert isinstance(fb, float) and gb.dtype == np.float32 and gb.shape == fast.x.shape
        close(fa, fb)
        close(ga, gb)
        assert fast.objective(b)[1] is None
        close(ref.objective(a)[0], fast.objective(b)[0])
    assert ref.counters == fast.counters


@pytest.mark.parametrize("n_groups", [2, 5])
@pytest.mark.parametrize("family", ["pairs", "vs_all"])
@pytest.mark.parametrize("form", ["signed", "abs"])
def test_constraints_jacobian_and_lagrangian_agree(n_groups, family, form, fast_cls):
    ref, fast, bound = make_pair(make_split(n_groups=n_groups), n_groups, family, form, fast_cls=fast_cls)
    m = bound.n_constraints
    for per_group in (8, 3):
        ca, cb = ref.sample_constraints(per_group, stream=0), fast.sample_constraints(per_group, stream=0)
        oa, ob = ref.sample_objective(8), fast.sample_objective(8)
        same_rows(ca, cb)
        same_rows(oa, ob)
        va, Ja = ref.constraints(ca, jac=True)
        vb, Jb = fast.constraints(cb, jac=True)
        assert vb.dtype == np.float32 and Jb.dtype == np.float32 and Jb.shape == (m, fast.x.size)
        close(va, vb)
        close(Ja, Jb)
        vb2, none = fast.constraints(cb)
        assert none is None
        close(vb, vb2)
        # array weights
        w = np.linspace(-0.5, 1.5, m).astype(np.float32)
        fa, c2a, ga = ref.lagrangian_grad(oa, ca, w)
        fb, c2b, gb = fast.lagrangian_grad(ob, cb, w)
        close(fa, fb)
        close(c2a, c2b)
        close(ga, gb)
        # the numpy gradient is grad f + w @ J
        _, gf = fast.objective(ob, grad=True)
        close(gb, gf + w @ Jb)
        ref.objective(oa, grad=True)  # (keep the counters in step)
        # callable weights see the sampled c once; obj_batch=None leaves f out
        seen_a, seen_b = [], []
        fa, _, ga = ref.lagrangian_grad(None, ca, lambda c: seen_a.append(c.copy()) or 2.0 * np.abs(c))
        fb, _, gb = fast.lagrangian_grad(None, cb, lambda c: seen_b.append(c.copy()) or 2.0 * np.abs(c))
        assert fa == fb == 0.0 and len(seen_b) == 1
        close(seen_a[0], seen_b[0])
        close(ga, gb)
        # weights given as a plain list (the autograd oracle accepts anything torch.as_tensor does)
        close(ref.lagrangian_grad(oa, ca, list(map(float, w)))[2], fast.lagrangian_grad(ob, cb, list(map(float, w)))[2])
    assert ref.counters == fast.counters


@pytest.mark.parametrize("hidden,activation", [((5,), "relu"), ((16, 128, 32), "tanh"), ((40, 8, 8, 24), "sigmoid")])
def test_other_depths_and_widths_agree(hidden, activation, fast_cls):
    """Any depth and any widths (a layer wider than the first and the last, one hidden layer)."""
    ref, fast, bound = make_pair(make_split(n_groups=3), 3, "pairs", "abs", activation, hidden=hidden,
                                 fast_cls=fast_cls)
    for n_obj, per_group in ((8, 8), (3, 5)):
        oa, ob = ref.sample_objective(n_obj), fast.sample_objective(n_obj)
        ca, cb = ref.sample_constraints(per_group), fast.sample_constraints(per_group)
        for a, b in zip(ref.objective_and_constraints(oa, ca), fast.objective_and_constraints(ob, cb)):
            close(a, b)
        w = np.linspace(0.5, -1.0, bound.n_constraints).astype(np.float32)
        for a, b in zip(ref.lagrangian_grad(oa, ca, w), fast.lagrangian_grad(ob, cb, w)):
            close(a, b)
    assert ref.counters == fast.counters


FUSED_RTOL, FUSED_ATOL = 1e-5, 1e-7  # one numpy pass vs two: float32 rounding only


@pytest.mark.parametrize("n_groups", [2, 5])
@pytest.mark.parametrize("form", ["signed", "abs"])
def test_objective_and_constraints_fuses_the_two_calls(n_groups, form, monkeypatch, fast_cls):
    """``objective_and_constraints`` on the numpy oracle equals ``objective(grad=True)`` and
    ``constraints(jac=True)`` on the same batches, counted the same; one pass when the objective
    batch has ``per_group`` rows (Ghost's sets), two otherwise. The autograd oracle's base default
    gives the same to float tolerance."""
    ref, fast, bound = make_pair(make_split(n_groups=n_groups), n_groups, "pairs", form, fast_cls=fast_cls)
    m = bound.n_constraints
    for n_obj, per_group in ((1, 1), (4, 4), (16, 16), (8, 3), (1, 4)):
        oa, ob = ref.sample_objective(n_obj), fast.sample_objective(n_obj)
        ca, cb = ref.sample_constraints(per_group, stream=1), fast.sample_constraints(per_group, stream=1)
        same_rows(oa, ob)
        same_rows(ca, cb)
        before = fast.counters.grad_evals
        with monkeypatch.context() as patch:
            if n_obj == per_group:  # the fused pass must not fall back to the separate ones
                for name in ("_objective_np", "_constraints_np"):
                    patch.setattr(fast, name, lambda *args: pytest.fail("two passes where one was expected"))
            f, g, c, J = fast.objective_and_constraints(ob, cb)
        assert fast.counters.grad_evals - before == n_obj + n_groups * per_group
        assert isinstance(f, float) and g.dtype == c.dtype == J.dtype == np.float32
        assert g.shape == fast.x.shape and c.shape == (m,) and J.shape == (m, fast.x.size)
        f2, g2 = fast.objective(ob, grad=True)
        c2, J2 = fast.constraints(cb, jac=True)
        for fused, separate in ((f, f2), (g, g2), (c, c2), (J, J2)):
            np.testing.assert_allclose(fused, separate, rtol=FUSED_RTOL, atol=FUSED_ATOL)
        fr, gr, cr, Jr = ref.objective_and_constraints(oa, ca)
        for fused, default in ((f, fr), (g, gr), (c, cr), (J, Jr)):
            close(default, fused)
        ref.objective(oa, grad=True)  # (keep the counters in step)
        ref.constraints(ca, jac=True)
    assert ref.counters == fast.counters


@pytest.mark.parametrize("n_groups", [2, 5])
@pytest.mark.parametrize("form", ["signed", "abs"])
def test_objective_and_constraints_halves_equal_the_three_calls(n_groups, form, monkeypatch, fast_cls):
    """``objective_and_constraints_halves`` gives S1 (odd positions), S2 (even) and S3 (all) as
    the three ``objective_and_constraints`` calls on the ``split_batch`` halves give them,
    counted the same; the compiled oracle from one pass over S3's rows (it must not fall back),
    the numpy and autograd oracles by the three calls. Odd halves are refused as before."""
    from fairbench.problems.base import Oracle, split_batch

    ref, fast, bound = make_pair(make_split(n_groups=n_groups), n_groups, "pairs", form, fast_cls=fast_cls)
    m = bound.n_constraints
    for size in (2, 8, 32):
        oa, ob = ref.sample_objective(size), fast.sample_objective(size)
        ca, cb = ref.sample_constraints(size, stream=1), fast.sample_constraints(size, stream=1)
        before = fast.counters.grad_evals
        with monkeypatch.context() as patch:
            if fast_cls is CompiledMLPOracle:
                patch.setattr(fast, "objective_and_constraints", lambda *args: pytest.fail("three passes, not one"))
            sets = fast.objective_and_constraints_halves(ob, cb)
        assert fast.counters.grad_evals - before == 2 * (size + n_groups * size)
        (o1, o2), (c1, c2) = split_batch(ob), split_batch(cb)
        for got, (obj, con) in zip(sets, ((o1, c1), (o2, c2), (ob, cb))):
            f, g, c, J = got
            assert isinstance(f, float) and g.dtype == c.dtype == J.dtype == np.float32
            assert g.shape == fast.x.shape and c.shape == (m,) and J.shape == (m, fast.x.size)
            for fused, separate in zip(got, Oracle.objective_and_constraints(fast, obj, con)):
                np.testing.assert_allclose(fused, separate, rtol=FUSED_RTOL, atol=FUSED_ATOL)
        for got, default in zip(sets, ref.objective_and_constraints_halves(oa, ca)):
            for a, b in zip(got, default):
                close(b, a)
    with pytest.raises(ValueError, match="cannot halve"):
        fast.objective_and_constraints_halves(fast.sample_objective(3), fast.sample_constraints(3, stream=1))


@NO_NUMBA
@pytest.mark.parametrize("n_groups, family, form", [(2, "pairs", "signed"), (5, "pairs", "signed"),
                                                    (5, "vs_all", "signed"), (2, "pairs", "abs")])
def test_compiled_halves_are_the_numpy_formulas_bit_for_bit(n_groups, family, form, monkeypatch):
    """The compiled halves' kernel (``mlp_kernels.halves_sets``) forms S1, S2 and S3 from the pass's
    block means and gradients exactly as numpy's formulas do: halves' averages ``(a + b) * 0.5``
    in float32, ``c = M s - delta`` and ``J = dc/ds @ (statistics' gradients)``; where the kernel
    forms ``c`` and ``J`` itself (two signed pair constraints) and where numpy does. The sets of
    one call are new arrays (a later call does not overwrite them)."""
    from fairbench.backends.compiled import mlp_kernels

    _, fast, bound = make_pair(make_split(n_groups=n_groups), n_groups, family, form, fast_cls=CompiledMLPOracle)
    assert fast._M_halves.shape[0] == (2 if (n_groups, family, form) == (2, "pairs", "signed") else 0)
    seen = []
    kernel = mlp_kernels.halves_sets
    monkeypatch.setattr(fast._k, "halves_sets", lambda means, grads, *rest: (seen.append((means.copy(), grads.copy())),
                                                                             kernel(means, grads, *rest))[1])
    G = n_groups
    for size in (2, 4, 16):
        sets = fast.objective_and_constraints_halves(fast.sample_objective(size), fast.sample_constraints(size, stream=1))
        kept = [tuple(np.array(a, copy=True) for a in s) for s in sets]
        means, grads = seen[-1]
        half = np.float32(0.5)
        expected = [(means[0], means[1:G + 1], grads[0], grads[1:G + 1]),
                    (means[G + 1], means[G + 2:], grads[G + 1], grads[G + 2:])]
        expected.append(((means[0] + means[G + 1]) * half, (means[1:G + 1] + means[G + 2:]) * half,
                         (grads[0] + grads[G + 1]) * half, (grads[1:G + 1] + grads[G + 2:]) * half))
        for (f, g, c, J), (f_e, stats, g_e, stat_grads) in zip(sets, expected):
            assert f == float(f_e)
            np.testing.assert_array_equal(g, g_e)
            np.testing.assert_array_equal(c, fast._constraint_values(stats))
            np.testing.assert_array_equal(J, np.dot(fast._jmap(stats), stat_grads))
        fast.objective_and_constraints_halves(fast.sample_objective(size), fast.sample_constraints(size, stream=1))
        for s, k in zip(sets, kept):
            for a, b in zip(s, k):
                np.testing.assert_array_equal(a, b)


def test_objective_and_constraints_without_constraints(fast_cls):
    ref, fast, _ = make_pair(make_split(), constrained=False, fast_cls=fast_cls)
    fa, ga, ca, Ja = ref.objective_and_constraints(ref.sample_objective(4), ref.sample_constraints(4))
    fb, gb, cb, Jb = fast.objective_and_constraints(fast.sample_objective(4), fast.sample_constraints(4))
    close(fa, fb)
    close(ga, gb)
    assert ca.shape == cb.shape == (0,) and Ja.shape == Jb.shape == (0, fast.x.size)
    assert ref.counters == fast.counters


def test_unconstrained_oracle_agrees(fast_cls):
    ref, fast, _ = make_pair(make_split(), constrained=False, fast_cls=fast_cls)
    assert fast.n_constraints == 0
    a, b = ref.sample_constraints(4), fast.sample_constraints(4)
    ca, Ja = ref.constraints(a, jac=True)
    cb, Jb = fast.constraints(b, jac=True)
    assert ca.shape == cb.shape == (0,) and Ja.shape == Jb.shape == (0, fast.x.size)
    fa, ga = ref.objective(ref.sample_objective(8), grad=True)
    fb, gb = fast.objective(fast.sample_objective(8), grad=True)
    close(fa, fb)
    close(ga, gb)
    assert ref.counters == fast.counters


def test_sgd_trajectories_agree(fast_cls):
    ref, fast, _ = make_pair(make_split(), fast_cls=fast_cls)
    for _ in range(200):
        a, b = ref.sample_objective(8), fast.sample_objective(8)
        same_rows(a, b)
        ref.x -= 0.05 * ref.objective(a, grad=True)[1]
        fast.x -= 0.05 * fast.objective(b, grad=True)[1]
    np.testing.assert_allclose(fast.x, ref.x, rtol=0, atol=1e-4)
    assert ref.counters == fast.counters
    assert fast.counters.samples == 1600 and fast.counters.grad_evals == 1600


@pytest.mark.parametrize("form,n_groups", [("signed", 2), ("abs", 5)])
def test_primal_dual_trajectories_agree(form, n_groups, fast_cls):
    ref, fast, bound = make_pair(make_split(n_groups=n_groups), n_groups, "vs_all", form, delta=0.002,
                                 fast_cls=fast_cls)
    lams = {id(ref): np.zeros(bound.n_constraints, np.float32), id(fast): np.zeros(bound.n_constraints, np.float32)}
    for k in range(200):
        batches = []
        for o in (ref, fast):
            obj, con = o.sample_objective(8), o.sample_constraints(4, stream=k % 2)
            batches.append((obj, con))
            lam = lams[id(o)]
            _, c, g = o.lagrangian_grad(obj, con, lam)
            o.x -= 0.05 * g
            np.maximum(lam + 0.5 * c, 0.0, out=lam)
        same_rows(batches[0][0], batches[1][0])
        same_rows(batches[0][1], batches[1][1])
    np.testing.assert_allclose(fast.x, ref.x, rtol=0, atol=1e-4)
    np.testing.assert_allclose(lams[id(fast)], lams[id(ref)], rtol=0, atol=1e-4)
    assert ref.counters == fast.counters


def test_parameters_are_shared_with_the_torch_model(fast_cls):
    split = make_split()
    _, fast, _ = make_pair(split, fast_cls=fast_cls)
    model = fast.model
    rows = np.arange(20)
    # numpy -> torch: an in-place update of oracle.x changes the model
    fast.x -= 0.1 * fast.objective(fast.sample_objective(8), grad=True)[1]
    fast.x[0] = 1.5
    assert model[0].weight[0, 0].item() == 1.5
    with torch.no_grad():
        np.testing.assert_allclose(model(split.X[rows]).numpy(), fast.logits(rows), rtol=1e-5, atol=1e-6)
        # torch -> numpy: editing the model's weights changes what the oracle evaluates
        model[-1].bias.add_(0.75)
        model[2].weight.mul_(0.5)
        expected = model(split.X[rows]).numpy()
    assert model[-1].bias.item() == fast.x[-1]
    np.testing.assert_allclose(fast.logits(rows), expected, rtol=1e-5, atol=1e-6)
    # the numpy layer weights are views of oracle.x, never copies
    for W, _, b, *_ in fast._hidden:
        assert np.shares_memory(W, fast.x) and np.shares_memory(b, fast.x)
    assert np.shares_memory(fast._w_out, fast.x) and np.shares_memory(fast.x, fast.flat.numpy())


def test_custom_grad_and_penalized_wrapper_work_through_the_fast_oracle(fast_cls):
    ref, fast, bound = make_pair(make_split(), delta=1e-4, fast_cls=fast_cls)

    def loss_fn(logits, y, group):
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + (logits * group).mean() ** 2

    a, b = ref.sample_constraints(6), fast.sample_constraints(6)
    va, ga = ref.custom_grad(a, loss_fn)
    vb, gb = fast.custom_grad(b, loss_fn)
    close(va, vb)
    close(ga, gb)
    pa = PenalizedOracle(ref, weight=0.7, penalty="positive", per_group=6, delta=1e-4)
    pb = PenalizedOracle(fast, weight=0.7, penalty="positive", per_group=6, delta=1e-4)
    fa, ga = pa.objective(pa.sample_objective(10), grad=True)
    fb, gb = pb.objective(pb.sample_objective(10), grad=True)
    close(fa, fb)
    close(ga, gb)
    assert ref.counters == fast.counters
    assert oracle_path(pb) == fast_cls.fast_path_name and oracle_path(pa) == "autograd"


class Doubler(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, 1)

    def forward(self, x):
        return 2 * self.lin(x).squeeze(-1)


class WiderMLP(MLP):
    def forward(self, x):
        return super().forward(x) * 2


def test_supports_only_plain_fairbench_mlps():
    torch.manual_seed(0)
    assert NumpyMLPOracle.supports(MLP(9, [64, 32], "relu"))
    assert NumpyMLPOracle.supports(MLP(9, [64, 32], "tanh"))
    assert NumpyMLPOracle.supports(MLP(9, [16], "sigmoid"))
    assert not NumpyMLPOracle.supports(nn.Sequential(nn.Linear(9, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 1)))
    assert not NumpyMLPOracle.supports(nn.Sequential(nn.Linear(9, 8), nn.ReLU(), nn.Linear(8, 1)))
    assert not NumpyMLPOracle.supports(Doubler(9))
    assert not NumpyMLPOracle.supports(WiderMLP(9, [8], "relu"))
    double = configs.model(9, hidden=[8]).double()
    assert not NumpyMLPOracle.supports(double)
    hooked = configs.model(9, hidden=[8])
    hooked[0].register_forward_hook(lambda m, i, o: o * 2)
    assert not NumpyMLPOracle.supports(hooked)
    odd = configs.model(9, hidden=[8])
    odd[1] = nn.GELU()
    assert not NumpyMLPOracle.supports(odd)
    with pytest.raises(TypeError):
        NumpyMLPOracle(Doubler(9), make_split(), 2, None, seed=0)


def test_build_fairness_oracle_picks_the_path():
    split = make_split()
    torch.manual_seed(0)

    def build(fast_path, model=None):
        return build_fairness_oracle(model or configs.model(9, hidden=[8]), split, 2, None, seed=0, fast_path=fast_path)

    auto, numpy_path, off = build("auto"), build("numpy"), build("off")
    assert type(auto) is (CompiledMLPOracle if compiled_available() else NumpyMLPOracle)
    assert oracle_path(auto) == ("compiled" if compiled_available() else "numpy")
    assert type(numpy_path) is NumpyMLPOracle and oracle_path(numpy_path) == "numpy"
    assert type(off) is FairnessOracle and oracle_path(off) == "autograd"
    for fast_path in ("auto", "numpy", "compiled") if compiled_available() else ("auto", "numpy"):
        assert type(build(fast_path, Doubler(9))) is FairnessOracle
    if compiled_available():
        assert type(build("compiled")) is CompiledMLPOracle
    from fairbench.errors import ConfigError
    with pytest.raises(ConfigError, match="problem.fast_path"):
        build("fast")


@NO_NUMBA
@pytest.mark.parametrize("hidden", [(64, 32), (5, 70), (16, 8, 4)])
def test_compiled_forward_on_either_side_of_the_transposed_weights(hidden):
    """From ``TRANSPOSED_FROM`` rows on the forward kernel multiplies each hidden layer from a
    transposed copy of its weights: logits of batches just below and above that size, and far
    above, are those of a float64 forward of the torch model's weights (wide, narrow and deep
    layers: a copy with rows and columns swapped would fail here)."""
    from fairbench.backends.compiled.mlp_kernels import TRANSPOSED_FROM

    split = make_split()
    _, fast, _ = make_pair(split, fast_cls=CompiledMLPOracle, hidden=hidden)
    fast.x[:] = np.random.default_rng(1).normal(scale=0.3, size=fast.x.shape)  # no symmetry to hide behind
    rows = np.random.default_rng(2).permutation(len(split))
    linears = [m for m in fast.model.modules() if isinstance(m, torch.nn.Linear)]
    for n in (8, TRANSPOSED_FROM - 1, TRANSPOSED_FROM, 40, 300):
        h = split.X.numpy()[rows[:n]].astype(np.float64)
        for k, lin in enumerate(linears):
            h = h @ lin.weight.detach().numpy().astype(np.float64).T + lin.bias.detach().numpy()
            if k < len(linears) - 1:
                h = np.maximum(h, 0.0)
        np.testing.assert_allclose(fast.logits(rows[:n]), h[:, 0], rtol=1e-5, atol=1e-5)


def test_compiled_path_without_numba_is_refused_in_one_line(monkeypatch):
    """``problem.fast_path=compiled`` where numba is missing: a ConfigError naming the key, the
    value, the extra to install and what works without it; ``auto`` falls back to numpy."""
    import fairbench.problems.problem as problem_module
    from fairbench.errors import ConfigError

    monkeypatch.setattr(problem_module, "compiled_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"problem.fast_path='compiled': needs numba.*\[fast\].*auto, numpy, off"):
        configs.problem("constrained", fast_path="compiled")
    assert configs.problem("constrained", fast_path="auto").fast_path == "auto"


@NO_NUMBA
def test_compiled_and_numpy_paths_agree_on_a_primal_dual_run():
    """Both fast paths from the same model and seed: same rows, parameters within float32 rounding."""
    split = make_split(n_groups=3)
    _, numpy_oracle, bound = make_pair(split, 3, "vs_all", "abs", delta=0.002)
    _, compiled, _ = make_pair(split, 3, "vs_all", "abs", delta=0.002, fast_cls=CompiledMLPOracle)
    lams = [np.zeros(bound.n_constraints, np.float32) for _ in range(2)]
    for k in range(150):
        for o, lam in zip((numpy_oracle, compiled), lams):
            _, c, g = o.lagrangian_grad(o.sample_objective(8), o.sample_constraints(4, stream=k % 2), lam)
            o.x -= 0.05 * g
            np.maximum(lam + 0.5 * c, 0.0, out=lam)
    np.testing.assert_allclose(compiled.x, numpy_oracle.x, rtol=0, atol=1e-5)
    np.testing.assert_allclose(lams[1], lams[0], rtol=0, atol=1e-5)
    assert numpy_oracle.counters == compiled.counters


def test_a_weights_callback_may_evaluate_the_oracle_again(fast_cls):
    """``lagrangian_grad``'s weights callable (and ``custom_grad``'s loss) may call the oracle on
    other batches of the same size before the gradient is formed: the result is unchanged."""
    _, fast, bound = make_pair(make_split(), fast_cls=fast_cls)
    w = np.full(bound.n_constraints, 0.5, np.float32)
    ob, cb, other = fast.sample_objective(8), fast.sample_constraints(4), fast.sample_constraints(4, stream=1)
    same_size = fast.sample_constraints(8, stream=1)  # as many rows as ob and cb together

    def weights(c):
        fast.constraints(same_size, jac=True)
        fast.lagrangian_grad(fast.sample_objective(8), other, w)
        return w

    plain, nested = fast.lagrangian_grad(ob, cb, w), fast.lagrangian_grad(ob, cb, weights)
    for a, b in zip(plain, nested):
        np.testing.assert_array_equal(a, b)

    def bce(logits, y, group):
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, y)

    def bce_after_another_call(logits, y, group):
        fast.custom_grad(other, bce)
        return bce(logits, y, group)

    np.testing.assert_array_equal(fast.custom_grad(cb, bce)[1], fast.custom_grad(cb, bce_after_another_call)[1])


def test_non_finite_parameters_give_non_finite_values(fast_cls):
    """A diverged model (a NaN weight) shows as NaN losses and constraints on every path, as with
    torch: nothing in the fast passes turns it back into finite numbers."""
    ref, fast, _ = make_pair(make_split(), fast_cls=fast_cls)
    for o in (ref, fast):
        o.x[0] = np.nan
        with np.errstate(invalid="ignore"):
            f, _ = o.objective(o.sample_objective(8), grad=True)
            c, _ = o.constraints(o.sample_constraints(4), jac=True)
        assert np.isnan(f) and np.isnan(c).all()


def test_a_batch_that_does_not_match_its_layout_is_refused(fast_cls):
    """A balanced batch must hold per_group rows of every group (the compiled kernels read
    exactly that many, without bounds checks): otherwise a ValueError, as on the numpy path."""
    from fairbench.problems.base import Batch

    _, fast, bound = make_pair(make_split(), fast_cls=fast_cls)
    good = fast.sample_constraints(4)
    short = Batch(6, good.data[:6], per_group=4)
    with pytest.raises(ValueError):
        fast.constraints(short, jac=True)
    with pytest.raises(ValueError):
        fast.lagrangian_grad(fast.sample_objective(2), short, np.ones(bound.n_constraints, np.float32))


def test_weights_of_the_wrong_length_are_refused(fast_cls):
    """The compiled kernel reads m weights per seed without bounds checks: a weights vector of
    another length is a ValueError on every path, never a silent reshape."""
    _, fast, bound = make_pair(make_split(), fast_cls=fast_cls)
    m = bound.n_constraints
    for wrong in (np.ones(m + 1, np.float32), np.ones((2, m), np.float32), lambda c: np.ones(m + 1, np.float32)):
        with pytest.raises(ValueError):
            fast.lagrangian_grad(fast.sample_objective(2), fast.sample_constraints(4), wrong)


def test_compiled_path_whose_kernels_do_not_import_is_refused(monkeypatch):
    """numba installed but the kernels do not import: ``fast_path=compiled`` is refused with one
    ConfigError, single-seed and stacked alike (``auto`` takes the numpy path)."""
    import fairbench.backends.oracles as fast_mlp_module
    import fairbench.backends.stacking as stacked_module
    from fairbench.errors import ConfigError

    monkeypatch.setattr(fast_mlp_module, "use_compiled", lambda fast_path: False)
    monkeypatch.setattr(stacked_module, "use_compiled", lambda fast_path: False)
    split = make_split()
    bound = configs.constraint_spec(delta=0.01).bind(np.array([0.7, 0.3]), ["a", "b"])
    with pytest.raises(ConfigError, match="problem.fast_path='compiled': numba is installed but"):
        build_fairness_oracle(configs.model(9, hidden=[8]), split, 2, None, seed=0, fast_path="compiled")
    with pytest.raises(ConfigError, match="problem.fast_path='compiled'"):
        stacked_module.stacked_oracle(configs.problem("constrained", fast_path="compiled"), [configs.model(9, hidden=[8]), configs.model(9, hidden=[8])], split,
                                      bound, [0, 1])
    assert type(build_fairness_oracle(configs.model(9, hidden=[8]), split, 2, None, seed=0, fast_path="auto")) is NumpyMLPOracle


def draw_three(oracle, n_obj, per_group):
    """SSL-ALM's three batches: objective rows, then constraint streams 0 and 1."""
    return (oracle.sample_objective(n_obj) if n_obj else None, oracle.sample_constraints(per_group, stream=0),
            oracle.sample_constraints(per_group, stream=1))


@pytest.mark.parametrize("n_groups", [2, 5])
@pytest.mark.parametrize("form", ["signed", "abs"])
def test_lagrangian_grad_and_values_is_the_two_calls(n_groups, form, fast_cls):
    """``lagrangian_grad_and_values(zeta, xi1, xi2, weights)`` is ``v = constraints(xi2)`` then
    ``lagrangian_grad(zeta, xi1, weights(., v))``: on the autograd oracle (the base class's
    default) and on the fast ones (the compiled one runs one forward pass over the three
    batches and the backward pass over the first two), with the same counters; with and
    without objective rows, with callable and array weights."""
    split = make_split(n_groups=n_groups)
    ref, fast, bound = make_pair(split, n_groups, "pairs", form, fast_cls=fast_cls)
    _, twin, _ = make_pair(split, n_groups, "pairs", form, fast_cls=fast_cls)  # makes the two calls
    m = bound.n_constraints
    lam = np.linspace(-0.5, 0.5, m).astype(np.float32)

    def weights(c, v):
        return lam + 0.3 * c - 2.0 * v

    for n_obj, per_group in ((8, 8), (5, 3), (0, 4)):
        seen = []
        batches = [draw_three(o, n_obj, per_group) for o in (ref, fast, twin)]
        results = [o.lagrangian_grad_and_values(*b, lambda c, v: seen.append((c.copy(), v.copy())) or weights(c, v))
                   for o, b in zip((ref, fast), batches)]
        ob, cb, vb = batches[2]
        v2, _ = twin.constraints(vb)
        f2, c2, g2 = twin.lagrangian_grad(ob, cb, lambda c: weights(c, v2))
        (fa, ca, va, ga), (fb, cb_, vb_, gb) = results
        assert len(seen) == 2 and isinstance(fb, float) and (fb == 0.0) == (n_obj == 0)
        assert cb_.shape == vb_.shape == (m,) and gb.shape == fast.x.shape and gb.dtype == np.float32
        for a, b in zip(seen[0], seen[1]):  # the callable saw c and v, the same on both oracles
            close(a, b)
        close(seen[1][0], cb_)
        close(seen[1][1], vb_)
        for a, b in zip((fa, ca, va, ga), (fb, cb_, vb_, gb)):
            close(a, b)
        # the one pass and the two calls multiply batches of other heights, which BLAS may round
        # differently: a few float32 ulps of the losses (~0.7, ulp 6e-8) in c = s_a - s_b - delta
        for a, b in zip((f2, c2, v2, g2), (fb, cb_, vb_, gb)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=5e-7)
        # array weights
        w = weights(ca, va)
        batches = [draw_three(o, n_obj, per_group) for o in (ref, fast, twin)]  # (the twin's streams keep up)
        for a, b in zip(*(o.lagrangian_grad_and_values(*bs, w) for o, bs in zip((ref, fast), batches))):
            close(a, b)
        fast.x -= 0.1 * gb  # move, so that the next round evaluates elsewhere
        ref.x -= 0.1 * ga
        twin.x -= 0.1 * gb
    assert ref.counters == fast.counters


@pytest.mark.parametrize("n_groups", [2, 3])
def test_sample_lagrangian_grad_and_values_is_the_four_calls(n_groups, fast_cls):
    """``sample_lagrangian_grad_and_values(n, pg, weights, streams)`` draws and evaluates what
    ``sample_objective``, ``sample_constraints`` twice and ``lagrangian_grad_and_values`` do:
    the same numbers (bitwise against a twin oracle that makes the four calls), the same
    counters, and streams left where the four calls leave them, over enough steps to cross
    many pass boundaries (the compiled oracle draws the rows straight into one array); on the
    autograd oracle (the base class's default) too, and with other streams."""
    split = make_split(n=120, n_groups=n_groups)
    ref, fast, bound = make_pair(split, n_groups, "pairs", "signed", fast_cls=fast_cls)
    ref2, twin, _ = make_pair(split, n_groups, "pairs", "signed", fast_cls=fast_cls)
    lam = np.linspace(-0.5, 0.5, bound.n_constraints).astype(np.float32)

    def weights(c, v):
        return lam + 0.3 * c - 2.0 * v

    for step in range(60):
        n_obj, per_group = (7, 5) if step % 3 else (16, 9)
        streams = (0, 1) if step % 4 else (2, 0)
        for fused, four_calls in ((fast, twin), (ref, ref2)):
            got = fused.sample_lagrangian_grad_and_values(n_obj, per_group, weights, streams)
            batches = (four_calls.sample_objective(n_obj), four_calls.sample_constraints(per_group, stream=streams[0]),
                       four_calls.sample_constraints(per_group, stream=streams[1]))
            want = four_calls.lagrangian_grad_and_values(*batches, weights)
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b)
            assert type(got[0]) is float
            assert fused.counters == four_calls.counters
            fused.x -= 0.05 * got[3]
            four_calls.x -= 0.05 * want[3]
    for a, b in ((fast, twin), (ref, ref2)):  # the streams are where the four calls left them
        same_rows(a.sample_objective(50), b.sample_objective(50))
        for stream in (0, 1, 2):
            same_rows(a.sample_constraints(11, stream=stream), b.sample_constraints(11, stream=stream))
    with pytest.raises(ValueError, match="rows per group"):
        fast.sample_lagrangian_grad_and_values(8, 0, weights)


@NO_NUMBA
def test_compiled_lagrangian_grad_and_values_reads_its_one_pass():
    """The compiled oracle's fused pass: the backward pass reads the first rows of a forward pass
    over more rows (a kernel that read the layout of the rows it back-propagates would take the
    wrong activations: this compares with the two calls on a wide and a deep model), the
    weights callable may call the oracle again, and a value batch of another layout is refused."""
    from fairbench.problems.base import Batch

    split = make_split(n_groups=3)
    for hidden in ((64, 32), (7,), (16, 8, 4)):
        _, fast, bound = make_pair(split, 3, "vs_all", "signed", fast_cls=CompiledMLPOracle, hidden=hidden)
        _, twin, _ = make_pair(split, 3, "vs_all", "signed", fast_cls=CompiledMLPOracle, hidden=hidden)
        w = np.linspace(0.2, 1.0, bound.n_constraints).astype(np.float32)
        ob, cb, vb = draw_three(fast, 8, 8)
        f, c, v, g = fast.lagrangian_grad_and_values(ob, cb, vb, w)
        v2, _ = twin.constraints(vb)
        f2, c2, g2 = twin.lagrangian_grad(ob, cb, w)
        for a, b in zip((f2, c2, v2, g2), (f, c, v, g)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        other = fast.sample_constraints(8, stream=1)

        def nested(c, v):
            fast.lagrangian_grad_and_values(fast.sample_objective(8), other, other, w)
            fast.constraints(other, jac=True)
            return w

        for a, b in zip((f, c, v, g), fast.lagrangian_grad_and_values(ob, cb, vb, nested)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="value batch"):
        fast.lagrangian_grad_and_values(ob, cb, Batch(12, vb.data[:12], per_group=8), w)
