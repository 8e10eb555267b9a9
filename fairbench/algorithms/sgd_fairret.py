"""SGD with a fairret regulariser: loss + weight * fairness loss of a group statistic."""

from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn.functional as F

from fairbench.algorithms import fairret_numpy
from fairbench.algorithms.base import Algorithm
from fairbench.errors import check, check_in, check_positive

STATISTICS = ("Accuracy", "PositiveRate", "TruePositiveRate", "FalsePositiveRate",
              "PositivePredictiveValue", "FalseOmissionRate")
LOSSES = ("NormLoss", "LSELoss", "KLProjectionLoss")
PROJECTION_LOSSES = ("KLProjectionLoss",)


def _build_fairret(statistic: str, loss: str):
    """The fairret loss object and whether its statistic takes the labels."""
    import fairret.loss
    import fairret.statistic
    from fairret.loss import projection

    if loss in PROJECTION_LOSSES and projection.cp is None:
        raise_missing_cvxpy(loss)
    stat = getattr(fairret.statistic, statistic)()
    needs_label = len(inspect.signature(stat.num_slope).parameters) > 0
    return getattr(fairret.loss, loss)(stat), needs_label


def raise_missing_cvxpy(loss: str) -> None:
    check(False, "algo.loss", loss,
          'needs cvxpy, which is not installed: pip install -e ".[kl]" (or pip install cvxpy), '
          "or choose NormLoss or LSELoss")


class SGDFairret(Algorithm):
    """SGD on ``BCE + weight * R(logits, groups)``, ``R`` a fairret loss (Buyl et al. 2024).

    Iteration k, on one balanced batch ``B_k`` of ``per_group`` rows of every group (drawn
    with ``oracle.sample_constraints(per_group, stream=0)``)::

        x_{k+1} = x_k - lr * grad [ mean_{i in B_k} BCE(logit_i, y_i) + weight * R(logits_B, sens_B, y_B) ]

    ``R`` = fairret ``loss(statistic)``: the statistic (``Accuracy``, ``PositiveRate``,
    ``TruePositiveRate``, ...) per group versus overall, penalised by ``NormLoss`` (p = 1),
    ``LSELoss`` or ``KLProjectionLoss`` (needs cvxpy: ``pip install -e ".[kl]"``). fairret gets
    the logits (``pred_as_logit``: it applies the sigmoid itself), ``sens`` the one-hot float
    encoding of the batch's groups and, for label-dependent statistics, the labels, all as
    ``(N, 1)`` / ``(N, G)`` tensors. The gradient is one backward pass through
    ``oracle.custom_grad`` (a :class:`~fairbench.problems.fairness.FairnessOracle`).

    With ``weight = 0`` the regulariser is not evaluated at all, so the run is exactly SGD on
    the same balanced batches. On a batch where fairret cannot evaluate ``R`` (a target
    statistic of 0, e.g. ``TruePositiveRate`` on a batch without positives) the step uses the
    BCE alone; ``step`` returns ``{"fairret_skipped": 1}`` then (else 0).

    Paper run (experiment 1): batch 24 = 12 per group, ``Accuracy``, ``KLProjectionLoss``,
    ``weight = 0.5``, ``lr = 5e-2``; ``conf/algo/sgd_fairret.yaml`` has exactly these. The
    KL projection solves a small convex problem (cvxpy) every step; ``NormLoss`` and
    ``LSELoss`` need no optional dependency and are the constructor's default for that reason.
    """

    def __init__(self, lr: float = 5e-2, per_group: int = 12, weight: float = 0.5,
                 statistic: str = "Accuracy", loss: str = "NormLoss"):
        check_positive("algo.lr", lr)
        check_positive("algo.per_group", per_group, integer=True)
        check_positive("algo.weight", weight, allow_zero=True)
        check_in("algo.statistic", statistic, STATISTICS)
        check_in("algo.loss", loss, LOSSES)
        self.lr, self.per_group, self.weight = float(lr), int(per_group), float(weight)
        self.statistic, self.loss = statistic, loss
        self._fairret, self._needs_label = _build_fairret(statistic, loss)

    def setup(self, oracle, rng: np.random.Generator) -> None:
        super().setup(oracle, rng)
        check(callable(getattr(oracle, "custom_grad", None)), "problem", type(oracle).__name__,
              "sgd_fairret needs the model's outputs: use problem=unconstrained or problem=constrained")
        self.check_per_group("algo.per_group", self.per_group)
        self._n_groups = oracle.n_groups
        # fast path: fairret's violation losses in closed form on the numpy MLP oracle
        self._numpy = (callable(getattr(oracle, "logit_grad", None)) and self.loss in fairret_numpy.LOSSES
                       and self.statistic in fairret_numpy.COEFFICIENTS)
        self._last_fairret: torch.Tensor | float | None = None
        self._skipped = 0

    def _objective(self, logits: torch.Tensor, y: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        value = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean()
        if self.weight == 0:
            return value
        sens = F.one_hot(group, self._n_groups).to(logits.dtype)
        args = (y.unsqueeze(1),) if self._needs_label else ()
        try:
            reg = self._fairret(logits.unsqueeze(1), sens, *args)
        except NotImplementedError:  # fairret: "Target statistic is zero"
            self._skipped = 1
            return value
        self._last_fairret = reg.detach()
        return value + self.weight * reg

    def _objective_numpy(self, z: np.ndarray, y: np.ndarray, group: np.ndarray) -> tuple[float, np.ndarray]:
        """The same objective and its logit gradient in closed form (:mod:`fairret_numpy`)."""
        z64 = z.astype(np.float64)
        prob = 1.0 / (1.0 + np.exp(-z64))
        value = float(np.mean(np.logaddexp(0.0, z64) - y * z64))
        dz = (prob - y) / len(z)
        if self.weight == 0:
            return value, dz
        try:
            reg, dreg = fairret_numpy.violation_loss(self.statistic, self.loss, z64, y, group, self._n_groups)
        except fairret_numpy.ZeroTarget:
            self._skipped = 1
            return value, dz
        self._last_fairret = reg
        return value + self.weight * reg, dz + self.weight * dreg

    def step(self) -> dict[str, int]:
        oracle = self.oracle
        self._skipped = 0
        batch = oracle.sample_constraints(self.per_group, stream=0)
        if self._numpy:
            _, g = oracle.logit_grad(batch, self._objective_numpy)
        else:
            _, g = oracle.custom_grad(batch, self._objective)
        oracle.x -= self.lr * g
        return {"fairret_skipped": self._skipped}

    def state(self) -> dict[str, float]:
        """The last batch's regulariser value ``R`` (NaN before the first one; absent if weight is 0)."""
        if self.weight == 0:
            return {}
        return {"fairret": float("nan") if self._last_fairret is None else float(self._last_fairret)}
