"""The reference implementations of the primal–dual methods as minimal training loops, for
scripts/bench.py's comparison: humancompatible-train 0.4.2 (PBM, iALM, nuPI) and Cooper 1.0.1
(GDA, extragradient, nuPI), on the problem fairbench's step solves.

Every loop draws, per step, the rows of bench.py's ``HctData`` (an objective batch of
``batch_size`` rows and a balanced constraint batch of ``per_group`` rows of every group), runs
the same MLP forward on them, forms the mean BCE loss and the signed loss-gap constraints
(:func:`signed_constraints`), and steps as its library's documentation does:

- humancompatible-train: ``lgr = dual.forward_update(loss, c)``, ``lgr.backward()``,
  ``optimizer.step()``, ``optimizer.zero_grad()``, with its ``PBM``, ``iALM`` or ``nuPI`` dual
  optimizer and torch's SGD or Adam (``algo.primal``), the method's settings from its config;
- Cooper: a ``ConstrainedMinimizationProblem`` with one inequality constraint group and a
  Lagrangian formulation, ``optimizer.roll()`` of the constrained optimizer that matches the
  method's order (``SimultaneousOptimizer``, ``AlternatingPrimalDualOptimizer``,
  ``AlternatingDualPrimalOptimizer``; extragradient: ``ExtrapolationConstrainedOptimizer``
  with ``ExtraSGD``/``ExtraAdam``), dual steps by torch SGD ascent or Cooper's ``nuPI``. Both
  evaluations of one roll (extrapolation, the alternating re-evaluation) see the step's rows,
  as fairbench's ``sample=same`` does.

Each ``*_loop`` function returns a ``step()`` callable; nothing here is timed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: what each humancompatible-train loop runs (the report's legend)
HCT_TARGETS = {
    "pbm": "PBM (dual_optim.PBM: the method's pbf, penalty update, annealing) + torch {primal}",
    "ialm": "iALM (dual_optim.iALM, is_ineq) + torch {primal}",
    "nupi": "nuPI (dual_optim.nuPI, is_ineq, gains eta ki, eta kp) + torch {primal}",
}
#: Cooper's constrained optimizer per order (GDA, nuPI)
COOPER_ORDERS = {"simultaneous": "SimultaneousOptimizer", "primal_dual": "AlternatingPrimalDualOptimizer",
                 "dual_primal": "AlternatingDualPrimalOptimizer"}


def hct_what(method: str, hp: dict) -> str:
    """The legend of :func:`hct_loop` for ``method`` with settings ``hp``."""
    return HCT_TARGETS[method].format(primal="Adam" if hp["primal"] == "adam" else "SGD")


def cooper_what(method: str, hp: dict) -> str:
    """The legend of :func:`cooper_loop` for ``method`` with settings ``hp``."""
    adam = hp["primal"] == "adam"
    if method == "extragradient":
        return f"ExtrapolationConstrainedOptimizer + {'ExtraAdam' if adam else 'ExtraSGD'} primal, ExtraSGD dual"
    dual = "cooper.optim.nuPI" if method == "nupi" else "SGD ascent"
    return f"{COOPER_ORDERS[hp['order']]} + torch {'Adam' if adam else 'SGD'} primal, {dual} dual"


def signed_constraints(group_losses: torch.Tensor, delta: float) -> torch.Tensor:
    """fairbench's two-group signed loss constraints: +-(L_0 - L_1) - delta <= 0."""
    diff = group_losses[0] - group_losses[1]
    return torch.stack([diff - delta, -diff - delta])


def draw_rows(data, hp: dict) -> torch.Tensor:
    """One step's rows: the objective batch, then the balanced constraint batch."""
    return torch.cat([data.objective_rows(hp["batch_size"]), data.balanced_rows(hp["per_group"])])


def loss_and_constraints(model, data, rows: torch.Tensor, hp: dict, delta: float):
    """The mean BCE loss of the objective rows and the constraints of the constraint rows."""
    batch, per_group = hp["batch_size"], hp["per_group"]
    losses = F.binary_cross_entropy_with_logits(model(data.X[rows]), data.y[rows], reduction="none")
    group_losses = losses[batch:].view(data.n_groups, per_group).mean(dim=1)
    return losses[:batch].mean(), signed_constraints(group_losses, delta)


def torch_primal(params, hp: dict) -> torch.optim.Optimizer:
    """torch's SGD or Adam with the method's primal settings (fairbench's PrimalStep is torch's rule)."""
    if hp["primal"] == "adam":
        return torch.optim.Adam(params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                                weight_decay=hp["weight_decay"])
    return torch.optim.SGD(params, lr=hp["lr"], weight_decay=hp["weight_decay"])


def hct_loop(data, model, method: str, hp: dict, delta: float):
    """humancompatible-train's dual optimizer of ``method`` (pbm, ialm, nupi) in its README loop."""
    from humancompatible.train import dual_optim

    m = 2
    if method == "pbm":
        dual = dual_optim.PBM(
            m=m, penalty_mult=hp["penalty_mult"], gamma=hp["gamma"], delta=hp["delta"],
            penalty_update=hp["penalty_update"], pbf=hp["pbf"], init_duals=torch.full((m,), hp["dual_min"]),
            init_penalties=torch.full((m,), hp["penalty_max"]), dual_range=(hp["dual_min"], hp["dual_max"]),
            penalty_range=(hp["penalty_min"], hp["penalty_max"]), gamma_annealing=hp["gamma_annealing"],
            penalty_annealing=hp["penalty_annealing"], epoch_length=hp["epoch_length"],
            rho=hp["rho"] if hp["penalty_update"] == "alm" else None)
    elif method == "ialm":
        dual = dual_optim.iALM(m=m, beta=hp["beta"], sigma=hp["sigma"], gamma=hp["gamma"],
                               init_duals=torch.zeros(m), is_ineq=True, dual_range=(0.0, hp["dual_max"]))
    elif method == "nupi":
        upper = hp["dual_max"] if hp["dual_max"] is not None else float("inf")
        dual = dual_optim.nuPI(m=m, nu=hp["nu"], init_duals=torch.zeros(m), penalty=hp["penalty"],
                               dual_range=(0.0, upper), ki=hp["eta"] * hp["ki"], kp=hp["eta"] * hp["kp"],
                               is_ineq=True)
    else:
        raise ValueError(f"no humancompatible-train loop for {method}")
    primal = torch_primal(model.parameters(), hp)

    def step():
        loss, c = loss_and_constraints(model, data, draw_rows(data, hp), hp, delta)
        dual.forward_update(loss, c).backward()
        primal.step()
        primal.zero_grad()

    return step


def cooper_loop(data, model, method: str, hp: dict, delta: float):
    """Cooper's constrained optimizer for ``method`` (gda, extragradient, nupi) and its ``roll``."""
    import cooper
    from cooper.optim import ExtraAdam, ExtraSGD
    from cooper.optim import nuPI as CooperNuPI
    from cooper.optim.torch_optimizers.nupi_optimizer import nuPIInitType

    class Fairness(cooper.ConstrainedMinimizationProblem):
        def __init__(self):
            super().__init__()
            multiplier = cooper.multipliers.DenseMultiplier(num_constraints=2)
            self.constraint = cooper.Constraint(multiplier=multiplier,
                                                constraint_type=cooper.ConstraintType.INEQUALITY,
                                                formulation_type=cooper.formulations.Lagrangian)
            self.rows = None

        def compute_cmp_state(self):
            loss, c = loss_and_constraints(model, data, self.rows, hp, delta)
            return cooper.CMPState(loss=loss,
                                   observed_constraints={self.constraint: cooper.ConstraintState(violation=c)})

    cmp = Fairness()
    params = list(model.parameters())
    if method == "extragradient":
        if hp["primal"] == "adam":
            primal = ExtraAdam(params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                               weight_decay=hp["weight_decay"])
        else:
            primal = ExtraSGD(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
        dual = ExtraSGD(cmp.dual_parameters(), lr=hp["eta"], maximize=True)
        optimizer = cooper.optim.ExtrapolationConstrainedOptimizer(cmp=cmp, primal_optimizers=primal,
                                                                   dual_optimizers=dual)
    elif method in ("gda", "nupi"):
        if method == "nupi":
            init = nuPIInitType.SGD if hp["init"] == "sgd" else nuPIInitType.ZEROS
            dual = CooperNuPI(cmp.dual_parameters(), lr=hp["eta"], Kp=hp["kp"], Ki=hp["ki"], ema_nu=hp["nu"],
                              init_type=init, maximize=True)
        else:
            dual = torch.optim.SGD(cmp.dual_parameters(), lr=hp["eta"], maximize=True)
        cls = getattr(cooper.optim, COOPER_ORDERS[hp["order"]])
        optimizer = cls(cmp=cmp, primal_optimizers=torch_primal(params, hp), dual_optimizers=dual)
    else:
        raise ValueError(f"no Cooper loop for {method}")

    def step():
        cmp.rows = draw_rows(data, hp)
        optimizer.roll()

    return step
