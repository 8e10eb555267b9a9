"""fairbench's ALM, SSL-ALM and switching subgradient (``ssw``) against humancompatible-train
0.4.2 (``ALM``, ``ALM`` + ``MoreauEnvelope``, ``SSG``), step for step (tests/algorithms/peers.py).

The paper's ALM / SSL-ALM (Huang, Zhang & Alacaoglu 2025) turns ``c(x) <= 0`` into
``c(x) + s = 0`` with a slack ``s >= 0`` that takes a projected step. humancompatible-train's
``ALM`` is a dual optimizer over whatever constraint tensor it is given, so the reference side
hands it ``c(x; xi_1) + s`` as an equality group (``is_ineq=False``) with ``s`` a torch
parameter clipped at 0 after each step; ``MoreauEnvelope`` wraps the primal optimizer (of
``x`` and ``s``) for SSL-ALM's proximal term ``mu/2 ||(x, s) - z||^2``.

Two places where humancompatible-train departs from the paper (each test below shows the
difference; fairbench follows the paper):

- The augmented term. The paper's primal gradient is ``J(xi_1)^T (lam + rho c(x; xi_2))``
  with ``xi_2`` independent of ``xi_1`` (an unbiased estimate of the gradient of
  ``rho/2 ||c(x) + s||^2``); the reference's ``rho/2 ||c_t||^2`` differentiates the one
  estimate it was given, ``rho J(xi_1)^T c(x; xi_1)``. With full-group constraint batches
  (``per_group`` = the group size, so ``c(x; xi_1) = c(x; xi_2)``) the two agree.
- The safeguard. The paper resets a multiplier beyond the bound to 0; the reference clamps
  it to ``dual_range``.

The switching subgradient: the paper (Huang & Lin 2023) decides on one constraint batch and
steps along the subgradient of ``max_j c_j`` on a fresh one; the reference's ``SSG``
differentiates the batch it decided on. Its two step sizes are one SGD learning rate
``eta_f`` and ``constraint_scale = eta_c / eta_f``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fairbench.api import make_algorithm
import peers
from peers import N, STEPS, TOL, Recorder, assert_agree, torch_constraints, torch_objective, torch_params, torch_primal

hct = pytest.importorskip("humancompatible.train.dual_optim",
                          reason="humancompatible-train is not installed (pip install -e '.[peers]')")

GROUP_SIZE = N // 2          # per_group = GROUP_SIZE: every constraint batch is the whole group
TAU, ETA, RHO = 0.05, 0.5, 1.0
BOUND = 100.0                # large: no safeguard fires in the equivalence runs


@pytest.fixture(autouse=True)
def _float64():
    yield from peers.float64_default()


class ReferenceALM:
    """humancompatible-train's ALM on ``c(x; xi_1) + s = 0``, with the slack ``s`` clipped at 0
    after each primal step, and (``mu > 0``) the primal optimizers wrapped in MoreauEnvelope.
    With ``primal=adam`` ``x`` takes Adam's step and ``s`` plain SGD (as fairbench)."""

    def __init__(self, primal, rho=RHO, mu=0.0, beta=1.0, bound=BOUND):
        self.x = torch_params()
        self.s = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        self.dual = hct.ALM(m=2, lr=ETA, penalty=rho, augmentation="quadratic" if rho > 0 else None,
                            is_ineq=False, dual_range=(-bound, bound), init_duals=torch.zeros(2, dtype=torch.float64))
        if primal == "sgd":
            inner = [torch.optim.SGD([self.x, self.s], lr=TAU)]
        else:
            inner = [torch_primal(self.x, "adam", TAU), torch.optim.SGD([self.s], lr=TAU)]
        self.inner = inner
        self.opts = [hct.MoreauEnvelope(o, mu=mu, beta=beta) for o in inner] if mu > 0 else inner

    def step(self, f_rows, c_rows):
        for o in self.inner:
            o.zero_grad()
        c = torch_constraints(self.x, c_rows) + self.s
        self.dual.forward_update(torch_objective(self.x, f_rows), c).backward()
        for o in self.opts:
            o.step()
        with torch.no_grad():
            self.s.clamp_(min=0.0)

    def state(self):
        return self.x.detach().numpy().copy(), self.dual.duals.detach().numpy().copy()


def fairbench_alm(name, primal, per_group, rho=RHO, bound=BOUND, **settings):
    rec = Recorder()
    oracle = rec.oracle()
    algo = make_algorithm(name, primal=primal, tau=TAU, eta=ETA, rho=rho, per_group=per_group,
                          dual_bound=bound, dual_reset="component", **settings)
    algo.setup(oracle, np.random.default_rng(0))
    return rec, oracle, algo


def run_alm_pair(name, primal, rho=RHO, mu=0.0, beta=1.0, per_group=GROUP_SIZE):
    settings = {"mu": mu, "beta": beta} if name == "ssl_alm" else {}
    rec, oracle, algo = fairbench_alm(name, primal, per_group, rho=rho, **settings)
    ref = ReferenceALM(primal, rho=rho, mu=mu, beta=beta)
    slack_moved = 0.0
    for _ in range(STEPS):
        algo.step()
        _, f_rows, c_rows = rec.take("cfc")     # c(x; xi_2), then grad f(zeta) + J(xi_1)^T w
        ref.step(f_rows, c_rows)
        np.testing.assert_allclose(algo.slack, ref.s.detach().numpy(), atol=TOL, rtol=0)
        slack_moved = max(slack_moved, float(algo.slack.max()))
        yield (oracle.x.copy(), algo.multipliers.copy(), *ref.state())
    assert slack_moved > 1e-4    # the slack's projected step was exercised


@pytest.mark.parametrize("primal", ["sgd", "adam"])
def test_alm_matches_humancompatible(primal):
    """rho > 0 with full-group constraint batches: the paper's two-sample augmented gradient
    and the reference's one-sample one coincide."""
    assert_agree(run_alm_pair("alm", primal))


@pytest.mark.parametrize("primal", ["sgd", "adam"])
def test_alm_without_penalty_matches_humancompatible_on_minibatches(primal):
    """rho = 0 (the plain Lagrangian with slacks): agreement on 8-row constraint minibatches."""
    assert_agree(run_alm_pair("alm", primal, rho=0.0, per_group=8))


@pytest.mark.parametrize("primal", ["sgd", "adam"])
def test_ssl_alm_matches_humancompatible_moreau_envelope(primal):
    """SSL-ALM = ALM + MoreauEnvelope(mu, beta): the proximal gradient mu ((x, s) - z) with the
    old centre, then z <- z + beta ((x, s)_old - z), then the step, in both."""
    assert_agree(run_alm_pair("ssl_alm", primal, mu=2.0, beta=0.5))


def test_ssl_alm_without_penalty_matches_humancompatible_on_minibatches():
    assert_agree(run_alm_pair("ssl_alm", "sgd", rho=0.0, mu=2.0, beta=0.5, per_group=8))


def test_alm_humancompatible_augmented_term_departs_from_the_paper():
    """On minibatches the reference's augmented gradient is ``rho J(xi_1)^T c(x; xi_1)``, the
    paper's ``rho J(xi_1)^T c(x; xi_2)``: after one step the iterates differ by exactly
    ``tau rho J(xi_1)^T (c(x_0; xi_2) - c(x_0; xi_1))`` (the slack starts at 0, the dual step
    and the objective term are the same in both)."""
    rec, oracle, algo = fairbench_alm("alm", "sgd", 8)
    ref = ReferenceALM("sgd")
    algo.step()
    xi_2, f_rows, xi_1 = rec.take("cfc")
    ref.step(f_rows, xi_1)
    x0 = torch.tensor(peers.X0, requires_grad=True)
    J = torch.autograd.functional.jacobian(lambda v: torch_constraints(v, xi_1), x0).numpy()
    c1, c2 = (torch_constraints(x0, r).detach().numpy() for r in (xi_1, xi_2))
    np.testing.assert_allclose(ref.state()[1], algo.multipliers, atol=1e-12)   # the same dual step
    diff = ref.state()[0] - oracle.x
    np.testing.assert_allclose(diff, TAU * RHO * J.T @ (c2 - c1), atol=1e-12)
    assert np.abs(diff).max() > 1e-5


def test_alm_humancompatible_clamps_where_the_paper_resets():
    """Multiplier bound 0.05: the paper's safeguard (fairbench, ``dual_reset=component``)
    resets a multiplier beyond the bound to 0, the reference clamps it to the bound. Identical
    up to the first step where a multiplier crosses the bound; there they differ by the bound."""
    bound = 0.05
    rec, oracle, algo = fairbench_alm("alm", "sgd", GROUP_SIZE, bound=bound)
    ref = ReferenceALM("sgd", bound=bound)
    for _ in range(STEPS):
        reset = algo.step()["dual_resets"]
        _, f_rows, c_rows = rec.take("cfc")
        ref.step(f_rows, c_rows)
        x_ref, lam_ref = ref.state()
        if reset:
            over = np.abs(lam_ref) >= bound
            np.testing.assert_allclose(algo.multipliers[over], 0.0)
            np.testing.assert_allclose(np.abs(lam_ref[over]), bound)
            return
        np.testing.assert_allclose(oracle.x, x_ref, atol=TOL, rtol=0)
        np.testing.assert_allclose(algo.multipliers, lam_ref, atol=TOL, rtol=0)
    pytest.fail("no multiplier reached the bound")


# -- the switching subgradient -------------------------------------------------------------

def ssw_steps(algo, rec):
    """One fairbench ssw step: its switching rows, and (constraint step) the fresh rows or
    (objective step) the objective rows."""
    constraint_step = algo.step()["constraint_steps"] == 1
    (switch_rows,) = rec.take("c")
    (rows,) = rec.take("c" if constraint_step else "f")
    return constraint_step, switch_rows, rows


@pytest.mark.parametrize("rule", ["constant", "diminishing"])
def test_ssw_matches_humancompatible_ssg(rule):
    """Full-group constraint batches (the switching batch and the fresh batch hold the same
    rows); ``step_f = step_c = tol_rule = rule``: the reference's learning rate and tolerance
    are set to ``eta_f / sqrt(k+1)`` and ``tol / sqrt(k+1)`` each step. Both switch alike at
    every step, take both kinds of step, and agree in the iterate; SSG's multipliers stay 0."""
    eta_f, eta_c, tol = 0.5, 0.2, 1e-3
    rec = Recorder()
    oracle = rec.oracle()
    algo = make_algorithm("ssw", eta_f=eta_f, eta_c=eta_c, step_f=rule, step_c=rule, tol=tol, tol_rule=rule,
                          per_group=GROUP_SIZE, output="last")
    algo.setup(oracle, np.random.default_rng(0))
    x = torch_params()
    opt = torch.optim.SGD([x], lr=eta_f)
    ssg = hct.SSG(m=2, constraint_tol=tol, constraint_scale=eta_c / eta_f)
    kinds = []
    for k in range(STEPS):
        decay = 1.0 / math.sqrt(k + 1) if rule == "diminishing" else 1.0
        opt.param_groups[0]["lr"] = eta_f * decay
        ssg.constraint_tol = tol * decay
        constraint_step, switch_rows, rows = ssw_steps(algo, rec)
        opt.zero_grad()
        loss_rows = rows if not constraint_step else np.arange(8)   # unused on a constraint step
        ssg.forward_update(torch_objective(x, loss_rows), torch_constraints(x, switch_rows)).backward()
        opt.step()
        assert ssg.last_switched_to_constraints == constraint_step, k
        np.testing.assert_allclose(oracle.x, x.detach().numpy(), atol=TOL, rtol=0)
        np.testing.assert_array_equal(ssg.duals.numpy(), 0.0)
        kinds.append(constraint_step)
    assert 10 <= sum(kinds) <= STEPS - 10, sum(kinds)   # both branches were exercised


def test_ssg_humancompatible_differentiates_the_switching_batch():
    """On minibatches the reference steps along the gradient of ``c_i`` on the batch it
    switched on; the paper (and fairbench) on a fresh batch: after the first (constraint)
    step the iterates differ by exactly ``eta_c (grad c_i(x_0; xi') - grad c_i(x_0; xi))``."""
    eta_f, eta_c = 0.5, 0.2
    rec = Recorder()
    oracle = rec.oracle()
    algo = make_algorithm("ssw", eta_f=eta_f, eta_c=eta_c, step_f="constant", step_c="constant", tol=1e-3,
                          tol_rule="constant", per_group=8, output="last")
    algo.setup(oracle, np.random.default_rng(0))
    x = torch_params()
    opt = torch.optim.SGD([x], lr=eta_f)
    ssg = hct.SSG(m=2, constraint_tol=1e-3, constraint_scale=eta_c / eta_f)
    constraint_step, xi, fresh = ssw_steps(algo, rec)
    assert constraint_step
    ssg.forward_update(torch_objective(x, np.arange(8)), torch_constraints(x, xi)).backward()
    opt.step()
    assert ssg.last_switched_to_constraints
    x0 = torch.tensor(peers.X0, requires_grad=True)
    i = int(torch.argmax(torch_constraints(x0, xi)))
    grad = [torch.autograd.grad(torch_constraints(x0, r)[i], x0)[0].numpy() for r in (xi, fresh)]
    diff = x.detach().numpy() - oracle.x
    np.testing.assert_allclose(diff, eta_c * (grad[1] - grad[0]), atol=1e-12)
    assert np.abs(diff).max() > 1e-4
