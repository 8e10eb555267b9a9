"""fairbench's GDA, extragradient and nuPI against Cooper 1.0.1, step for step (tests/algorithms/peers.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairbench.api import make_algorithm
import peers
from peers import STEPS, Recorder, assert_agree, torch_constraints, torch_objective, torch_params, torch_primal

cooper = pytest.importorskip("cooper", reason="cooper-optim is not installed (pip install -e '.[peers]')")
from cooper.optim import nuPI as CooperNuPI  # noqa: E402
from cooper.optim.torch_optimizers.nupi_optimizer import nuPIInitType  # noqa: E402


@pytest.fixture(autouse=True)
def _float64():
    yield from peers.float64_default()


class Fairness(cooper.ConstrainedMinimizationProblem):
    """The peers problem as a Cooper CMP; ``rows`` (objective, constraint) set before each roll."""

    def __init__(self):
        super().__init__()
        multiplier = cooper.multipliers.DenseMultiplier(num_constraints=2, dtype=torch.float64)
        self.constraint = cooper.Constraint(multiplier=multiplier, constraint_type=cooper.ConstraintType.INEQUALITY,
                                            formulation_type=cooper.formulations.Lagrangian)
        self.rows = None

    def compute_cmp_state(self, x):
        f_rows, c_rows = self.rows
        state = cooper.ConstraintState(violation=torch_constraints(x, c_rows))
        return cooper.CMPState(loss=torch_objective(x, f_rows), observed_constraints={self.constraint: state})

    def lam(self):
        return self.constraint.multiplier.weight.detach().numpy().reshape(-1)


def run_pair(name, make_optimizer, kinds, primal="sgd", lr=0.05, eta=0.5, dual=None, **settings):
    rec = Recorder()
    oracle = rec.oracle()
    algo = make_algorithm(name, primal=primal, lr=lr, eta=eta, **settings)
    algo.setup(oracle, np.random.default_rng(0))
    cmp = Fairness()
    x = torch_params()
    dual_opt = dual(cmp) if dual else torch.optim.SGD(cmp.dual_parameters(), lr=eta, maximize=True)
    opt = make_optimizer(cmp, x, dual_opt)
    for _ in range(STEPS):
        algo.step()
        rows = rec.take(kinds)
        cmp.rows = (rows[0], rows[1])
        opt.roll(compute_cmp_state_kwargs={"x": x})
        yield oracle.x, algo.multipliers, x.detach().numpy(), cmp.lam()


def optimizer(cls, primal, lr):
    return lambda cmp, x, dual_opt: cls(cmp=cmp, primal_optimizers=torch_primal(x, primal, lr), dual_optimizers=dual_opt)


@pytest.mark.parametrize("primal", ["sgd", "adam"])
@pytest.mark.parametrize("order, cls, kinds", [
    ("simultaneous", cooper.optim.SimultaneousOptimizer, "fc"),
    ("primal_dual", cooper.optim.AlternatingPrimalDualOptimizer, "fcc"),
    ("dual_primal", cooper.optim.AlternatingDualPrimalOptimizer, "fc"),
])
def test_gda_matches_cooper(order, cls, kinds, primal):
    assert_agree(run_pair("gda", optimizer(cls, primal, 0.05), kinds, primal=primal, order=order))


@pytest.mark.parametrize("primal", ["sgd", "adam"])
def test_extragradient_matches_cooper(primal):
    """Cooper's ExtraAdam divides by ``sqrt(v) + eps`` after folding the bias corrections into
    the step (Kingma & Ba's "eps-hat" form), torch.optim.Adam (and fairbench) by
    ``sqrt(v)/sqrt(1 - beta2^t) + eps``; the two agree as eps -> 0, so the Adam case runs with
    eps = 1e-30 on both sides."""
    from cooper.optim import ExtraAdam, ExtraSGD

    def make(cmp, x, dual_opt):
        p = ExtraAdam([x], lr=0.05, eps=1e-30) if primal == "adam" else ExtraSGD([x], lr=0.05)
        return cooper.optim.ExtrapolationConstrainedOptimizer(cmp=cmp, primal_optimizers=p, dual_optimizers=dual_opt)

    assert_agree(run_pair("extragradient", make, "fcfc", primal=primal, sample="same", eps=1e-30,
                          dual=lambda cmp: ExtraSGD(cmp.dual_parameters(), lr=0.5, maximize=True)))


def test_nupi_zeros_matches_cooper():
    """xi_{-1} = 0: the paper's recursion and Cooper's ZEROS initialisation agree."""
    dual = lambda cmp: CooperNuPI(cmp.dual_parameters(), lr=0.5, Kp=0.4, Ki=1.0, ema_nu=0.3,
                                  init_type=nuPIInitType.ZEROS, maximize=True)
    assert_agree(run_pair("nupi", optimizer(cooper.optim.SimultaneousOptimizer, "sgd", 0.05), "fc", dual=dual,
                          kp=0.4, ki=1.0, nu=0.3, init="zeros", order="simultaneous", dual_max=None))


def test_nupi_cooper_sgd_init_departs_from_the_paper_at_step_two():
    """Cooper's SGD initialisation documents xi_{-1} = e_0 (so xi_0 = e_0) but stores xi_0 = 0:
    its second multiplier step exceeds the paper's by lr K_P (1 - nu) e_0 (no projection here:
    the multipliers start at 5)."""
    kp, ki, nu, eta = 0.4, 1.0, 0.3, 0.5
    rec = Recorder()
    oracle = rec.oracle()
    algo = make_algorithm("nupi", lr=1e-12, eta=eta, kp=kp, ki=ki, nu=nu, init="sgd", order="simultaneous",
                          dual_max=None)
    algo.setup(oracle, np.random.default_rng(0))
    algo.multipliers[:] = 5.0
    cmp = Fairness()
    cmp.constraint.multiplier.weight.data.fill_(5.0)
    x = torch_params()
    dual = CooperNuPI(cmp.dual_parameters(), lr=eta, Kp=kp, Ki=ki, ema_nu=nu, init_type=nuPIInitType.SGD, maximize=True)
    opt = cooper.optim.SimultaneousOptimizer(cmp=cmp, primal_optimizers=torch.optim.SGD([x], lr=1e-12),
                                             dual_optimizers=dual)
    e = []
    for step in range(2):
        algo.step()
        cmp.rows = tuple(rec.take("fc"))
        e.append(torch_constraints(x, cmp.rows[1]).detach().numpy())
        opt.roll(compute_cmp_state_kwargs={"x": x})
        diff = cmp.lam() - algo.multipliers
        if step == 0:
            np.testing.assert_allclose(diff, 0.0, atol=1e-12)
    np.testing.assert_allclose(diff, eta * kp * (1 - nu) * e[0], atol=1e-9)
    assert np.abs(diff).max() > 1e-4
