"""fairbench's PBM, iALM and nuPI against humancompatible-train 0.4.2, step for step (tests/algorithms/peers.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairbench.api import make_algorithm
import peers
from peers import Recorder, assert_agree, run_pair, torch_constraints, torch_objective, torch_params

hct = pytest.importorskip("humancompatible.train.dual_optim",
                          reason="humancompatible-train is not installed (pip install -e '.[peers]')")


@pytest.fixture(autouse=True)
def _float64():
    yield from peers.float64_default()


@pytest.mark.parametrize("primal", ["sgd", "adam"])
@pytest.mark.parametrize("pbf", ["quadratic_logarithmic", "quadratic_reciprocal"])
@pytest.mark.parametrize("update", ["dimin_adapt", "dimin", "aimd", "const"])
def test_pbm_matches_humancompatible(primal, pbf, update):
    dual = hct.PBM(m=2, penalty_mult=0.5, gamma=0.3, delta=1.0, penalty_update=update, pbf=pbf,
                   dual_range=(1e-9, 100.0), penalty_range=(0.1, 1.0), gamma_annealing=True,
                   penalty_annealing=True, epoch_length=25, init_duals=torch.full((2,), 1.0, dtype=torch.float64),
                   init_penalties=torch.ones(2, dtype=torch.float64))
    assert_agree(run_pair("pbm", dual, primal=primal, pbf=pbf, penalty_update=update, penalty_mult=0.5,
                          gamma=0.3, epoch_length=25, dual_min=1e-9, lam0=1.0))


@pytest.mark.parametrize("primal", ["sgd", "adam"])
def test_ialm_matches_humancompatible(primal):
    """``form=reference``: humancompatible's augmented term (the default, the paper's, departs:
    test_peers_hct_papers.py)."""
    dual = hct.iALM(m=2, beta=0.5, sigma=1.0, gamma=0.02, is_ineq=True, dual_range=(0.0, 100.0),
                    init_duals=torch.zeros(2, dtype=torch.float64))
    assert_agree(run_pair("ialm", dual, primal=primal, form="reference", beta=0.5, sigma=1.0, gamma=0.02))


def test_nupi_pure_integral_matches_humancompatible():
    """With kp = 0 nuPI is gradient ascent in both, and they agree."""
    dual = hct.nuPI(m=2, nu=0.5, ki=0.5, kp=0.0, is_ineq=True, dual_range=(0.0, 100.0),
                    init_duals=torch.zeros(2, dtype=torch.float64))
    assert_agree(run_pair("nupi", dual, eta=1.0, ki=0.5, kp=0.0, nu=0.5, init="sgd", order="dual_primal"))


def test_nupi_humancompatible_departs_from_the_paper_at_step_two():
    """humancompatible-train takes the sgd first step (eta K_I e_0) but then continues from
    xi_0 = (1 - nu) e_0 instead of the paper's xi_0 = e_0: at step 2 its multipliers exceed
    the paper's by kp (1 - nu) nu e_0 (before projection; here both stay positive)."""
    kp, ki, nu = 0.5, 0.5, 0.5
    dual = hct.nuPI(m=2, nu=nu, ki=ki, kp=kp, is_ineq=True, dual_range=(-100.0, 100.0),
                    init_duals=torch.full((2,), 5.0, dtype=torch.float64))
    rec = Recorder()
    oracle = rec.oracle()
    algo = make_algorithm("nupi", eta=1.0, ki=ki, kp=kp, nu=nu, init="sgd", order="dual_primal", lr=1e-12)
    algo.setup(oracle, np.random.default_rng(0))
    algo.multipliers[:] = 5.0
    x = torch_params()
    e = []
    for step in range(2):
        algo.step()
        f_rows, c_rows = rec.take("fc")
        e.append(torch_constraints(x, c_rows).detach().numpy())
        dual.forward_update(torch_objective(x, f_rows), torch_constraints(x, c_rows))
        diff = dual.duals.detach().numpy() - algo.multipliers
        if step == 0:
            np.testing.assert_allclose(diff, 0.0, atol=1e-12)
    np.testing.assert_allclose(diff, kp * (1 - nu) * nu * e[0], atol=1e-9)
    assert np.abs(diff).max() > 1e-4
