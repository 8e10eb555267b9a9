"""Where humancompatible-train 0.4.2's iALM and PBM depart from their papers, shown on the
peers problem (tests/algorithms/peers.py); docs/methods.md says which one fairbench follows.

- iALM (Li, Chen, Liu, Lu & Xu, Comput. Optim. Appl. 2024): the paper's augmented Lagrangian
  of ``c(x) <= 0`` is Rockafellar's ``f + beta/2 ||[c + lam/beta]_+||^2 - ||lam||^2/(2 beta)``,
  whose gradient in ``x`` is ``grad f + J^T [lam + beta c]_+``; the reference (and fairbench)
  use ``grad f + J^T (lam + beta [c]_+)``, which keeps the pull ``lam`` of a satisfied
  constraint.
- PBM (Ben-Tal & Zibulevsky 1997): the paper's multiplier update is ``lam <- lam phi'(c/p)``;
  the reference damps it, ``lam <- gamma lam + (1 - gamma) lam phi'(c/p)`` (gamma = 0.1 by
  default, annealed towards 1). fairbench accepts ``gamma = 0``, the paper's update.
- PBM, reference only: its annealing epoch advances only with ``gamma_annealing``, so
  ``penalty_annealing`` alone never anneals K; fairbench's epoch advances every
  ``epoch_length`` iterations whichever schedule is on.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairbench.algorithms.pbm import pbf
from fairbench.api import make_algorithm
import peers
from peers import TOL, Recorder, assert_agree, run_pair, torch_constraints, torch_objective, torch_params

hct = pytest.importorskip("humancompatible.train.dual_optim",
                          reason="humancompatible-train is not installed (pip install -e '.[peers]')")


@pytest.fixture(autouse=True)
def _float64():
    yield from peers.float64_default()


def one_step(name, dual, lam0, lr=0.05, **settings):
    """One step of fairbench's ``name`` and of the reference ``dual`` from multipliers ``lam0``;
    returns (fairbench x, fairbench lam, reference x, reference lam, objective rows, constraint rows)."""
    rec = Recorder()
    oracle = rec.oracle()
    algo = make_algorithm(name, primal="sgd", lr=lr, **settings)
    algo.setup(oracle, np.random.default_rng(0))
    algo.multipliers[:] = lam0
    x = torch_params()
    algo.step()
    f_rows, c_rows = rec.take("fc")
    dual.forward_update(torch_objective(x, f_rows), torch_constraints(x, c_rows)).backward()
    with torch.no_grad():
        x -= lr * x.grad
    return oracle.x, algo.multipliers, x.detach().numpy(), dual.duals.detach().numpy(), f_rows, c_rows


def test_ialm_humancompatible_augmented_term_departs_from_the_paper():
    """From lam_0 = 1 (the satisfied constraint's multiplier stays positive), one step:
    ``form=reference`` and the reference agree; the paper's Rockafellar term, differentiated by
    autograd with the same updated multipliers, gives a step that differs by ``lr beta J_i^T c_i``
    on the satisfied constraint ``i`` (``c_i < 0``), and not at all on the violated one. The
    default ``form=paper`` takes the paper's step: its dual step ``lam + w max(c, -lam/beta)``
    and then the gradient of the Rockafellar term at the new multipliers."""
    beta, lr = 0.5, 0.05
    dual = hct.iALM(m=2, beta=beta, sigma=1.0, gamma=1.0, is_ineq=True, dual_range=(0.0, 100.0),
                    init_duals=torch.ones(2, dtype=torch.float64))
    x_fb, lam_fb, x_ref, lam_ref, f_rows, c_rows = one_step("ialm", dual, 1.0, lr=lr, form="reference", beta=beta,
                                                             sigma=1.0, gamma=1.0)
    np.testing.assert_allclose(x_fb, x_ref, atol=1e-12)
    np.testing.assert_allclose(lam_fb, lam_ref, atol=1e-12)
    x0 = torch.tensor(peers.X0, requires_grad=True)

    def rockafellar_step(lam):
        c = torch_constraints(x0, c_rows)
        term = torch_objective(x0, f_rows) + beta / 2 * (torch.clamp(c + lam / beta, min=0) ** 2).sum() \
            - (lam @ lam) / (2 * beta)
        return (x0 - lr * torch.autograd.grad(term, x0)[0]).detach().numpy(), c.detach().numpy()

    x_paper, c = rockafellar_step(torch.tensor(lam_ref))
    assert (c < 0).sum() == 1 and (lam_ref + beta * c > 0).all()
    J = torch.autograd.functional.jacobian(lambda v: torch_constraints(v, c_rows), torch.tensor(peers.X0)).numpy()
    satisfied = np.where(c < 0, c, 0.0)
    np.testing.assert_allclose(x_ref - x_paper, lr * beta * J.T @ satisfied, atol=1e-12)
    assert np.abs(x_ref - x_paper).max() > 1e-4

    dual = hct.iALM(m=2, beta=beta, sigma=1.0, gamma=1.0, is_ineq=True, dual_range=(0.0, 100.0),
                    init_duals=torch.ones(2, dtype=torch.float64))
    x_fb, lam_fb, *_ = one_step("ialm", dual, 1.0, lr=lr, form="paper", beta=beta, sigma=1.0, gamma=1.0)
    d = np.maximum(c, -1.0 / beta)
    lam_paper = np.clip(1.0 + min(beta, 1.0 / np.linalg.norm(d)) * d, 0.0, 100.0)
    np.testing.assert_allclose(lam_fb, lam_paper, atol=1e-12)
    np.testing.assert_allclose(x_fb, rockafellar_step(torch.tensor(lam_paper))[0], atol=1e-12)


def test_pbm_humancompatible_damps_the_papers_multiplier_update():
    """One step from lam_0 = 1, p_0 = 1, gamma = 0.3, no annealing: the reference's multipliers
    are ``gamma lam_0 + (1 - gamma) lam_0 phi'(c)``, the paper's ``lam_0 phi'(c)``; they differ
    by ``gamma lam_0 (1 - phi'(c))`` (and fairbench, with the same gamma, is the reference)."""
    gamma = 0.3
    dual = hct.PBM(m=2, penalty_mult=0.5, gamma=gamma, penalty_update="dimin", pbf="quadratic_logarithmic",
                   dual_range=(1e-9, 100.0), penalty_range=(0.1, 1.0), gamma_annealing=False,
                   penalty_annealing=False, init_duals=torch.ones(2, dtype=torch.float64),
                   init_penalties=torch.ones(2, dtype=torch.float64))
    _, lam_fb, _, lam_ref, _, c_rows = one_step("pbm", dual, 1.0, pbf="quadratic_logarithmic", penalty_update="dimin",
                                                penalty_mult=0.5, gamma=gamma, gamma_annealing=False,
                                                penalty_annealing=False, dual_min=1e-9)
    np.testing.assert_allclose(lam_fb, lam_ref, atol=1e-12)
    c = torch_constraints(torch.tensor(peers.X0), c_rows).numpy()
    paper = 1.0 * pbf("quadratic_logarithmic", c / 1.0)[1]
    np.testing.assert_allclose(lam_ref - paper, gamma * (1.0 - paper), atol=1e-12)
    assert np.abs(lam_ref - paper).max() > 1e-3


def pbm_pair(gamma, gamma_annealing, penalty_annealing, epoch_length, penalty_min, update="dimin"):
    dual = hct.PBM(m=2, penalty_mult=0.5, gamma=gamma, penalty_update=update, pbf="quadratic_logarithmic",
                   dual_range=(1e-9, 100.0), penalty_range=(penalty_min, 1.0), gamma_annealing=gamma_annealing,
                   penalty_annealing=penalty_annealing, epoch_length=epoch_length,
                   init_duals=torch.ones(2, dtype=torch.float64), init_penalties=torch.ones(2, dtype=torch.float64))
    return run_pair("pbm", dual, lam0=1.0, extra=lambda algo, dual: (algo.penalties, dual.param_groups[0]["params"][1]
                                                                     .detach().numpy()),
                    pbf="quadratic_logarithmic", penalty_update=update, penalty_mult=0.5, gamma=gamma,
                    gamma_annealing=gamma_annealing, penalty_annealing=penalty_annealing, epoch_length=epoch_length,
                    dual_min=1e-9, penalty_min=penalty_min)


def test_pbm_gamma_zero_is_the_papers_update_in_both():
    """gamma = 0 (fairbench accepts it): the paper's ``lam <- lam phi'(c/p)``, p <- K p, in
    fairbench and the reference alike, over 120 steps."""
    pairs = list(pbm_pair(0.0, False, False, 25, 0.1))
    for x, lam, x_ref, lam_ref, p, p_ref in pairs:
        np.testing.assert_allclose(p, p_ref, atol=TOL, rtol=0)
    assert_agree([pair[:4] for pair in pairs])


def test_pbm_humancompatible_penalty_annealing_needs_gamma_annealing():
    """``penalty_annealing`` without ``gamma_annealing``: the reference's annealing epoch never
    advances (it counts iterations only under gamma annealing), so its K stays 0.5; fairbench
    anneals K every 5 iterations. Identical for the first epoch, then the penalties part."""
    for k, (x, lam, x_ref, lam_ref, p, p_ref) in enumerate(pbm_pair(0.3, False, True, 5, 1e-3)):
        if k < 5:
            np.testing.assert_allclose(p, p_ref, atol=1e-12)
        elif k == 5:
            # the penalty step of iteration 5 uses K_1 = annealed(0.5, 1) = 2/3 in fairbench
            np.testing.assert_allclose(p / p_ref, (2.0 / 3.0) / 0.5, rtol=1e-9)
            return
    pytest.fail("fewer than six steps")
