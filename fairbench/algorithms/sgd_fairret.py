"""SGD with a fairret regulariser: loss + weight * fairness loss of a group statistic."""

from __future__ import annotations

import importlib.util
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
PROJECTION_LOSSES = fairret_numpy.PROJECTION_LOSSES
#: how a projection loss finds the projection: exactly (numpy, no cvxpy) or by fairret's cvxpy call
PROJECTIONS = ("exact", "fairret")


def cvxpy_available() -> bool:
    """Whether cvxpy can be imported (checked without importing it: ~120 MB)."""
    return importlib.util.find_spec("cvxpy") is not None


def statistic_needs_label(statistic: str) -> bool:
    """Whether fairret's ``statistic`` takes the labels (TruePositiveRate does, PositiveRate not)."""
    import fairret.statistic

    return len(inspect.signature(getattr(fairret.statistic, statistic)().num_slope).parameters) > 0


def build_fairret(statistic: str, loss: str):
    """fairret's loss object ``loss(statistic)``, for the autograd path. Imported only then:
    ``fairret.loss`` imports cvxpy when it is installed (~120 MB per process)."""
    import fairret.loss
    import fairret.statistic

    return getattr(fairret.loss, loss)(getattr(fairret.statistic, statistic)())


def raise_missing_cvxpy() -> None:
    check(False, "algo.projection", "fairret",
          'needs cvxpy for fairret\'s KLProjectionLoss, which is not installed: pip install -e ".[kl]" '
          "(or pip install cvxpy), or use algo.projection=exact (no cvxpy)")


class SGDFairret(Algorithm):
    """SGD on ``BCE + weight * R(logits, groups)``, ``R`` a fairret loss (Buyl et al. 2024).

    Iteration k, on one balanced batch ``B_k`` of ``per_group`` rows of every group (drawn
    with ``oracle.sample_constraints(per_group, stream=0)``)::

        x_{k+1} = x_k - lr * grad [ mean_{i in B_k} BCE(logit_i, y_i) + weight * R(logits_B, sens_B, y_B) ]

    ``R`` = fairret ``loss(statistic)``: the statistic (``Accuracy``, ``PositiveRate``,
    ``TruePositiveRate``, ...) per group versus overall, penalised by ``NormLoss`` (p = 1),
    ``LSELoss`` or ``KLProjectionLoss``. fairret gets the logits (``pred_as_logit``: it
    applies the sigmoid itself), ``sens`` the one-hot float encoding of the batch's groups
    and, for label-dependent statistics, the labels, all as ``(N, 1)`` / ``(N, G)`` tensors.
    The gradient is one backward pass through ``oracle.custom_grad`` (a
    :class:`~fairbench.problems.fairness.FairnessOracle`).

    ``KLProjectionLoss``: ``R = (1/B) sum_i KL(Bern(q_i) || Bern(p_i))``, ``q`` the projection
    of the predictions ``p`` onto the predictions whose group statistics all equal the overall
    statistic of ``p``, held fixed in the gradient. ``projection`` says how ``q`` is found:

    * ``exact`` (default): the exact projection, one multiplier per group found by safeguarded
      Newton (:func:`fairbench.algorithms.fairret_numpy.projection_logits`; residual <= 1e-13
      relative), in numpy, no cvxpy.
    * ``fairret``: fairret 0.1.3's own ``KLProjectionLoss``, as the paper's code ran it
      (needs cvxpy: ``pip install -e ".[kl]"``): 10 warm-started SCS iterations per batch, so
      ``q`` depends on the previous batches and its group statistics miss the target (by
      4e-4 typically, up to 1e-3, on random batches of 2 x 12 rows); and the
      result is divided by its row mean (not sum), so the "distribution" ``[1 - q, q]`` is
      scaled by 2 and clamped to [0, 1] before the KL. Kept to reproduce the paper; its value
      and gradient are not those of the KL projection loss, and each step is a cvxpy solve.

    With ``weight = 0`` the regulariser is not evaluated at all, so the run is exactly SGD on
    the same balanced batches. On a batch where ``R`` is undefined (a target statistic of 0,
    e.g. ``TruePositiveRate`` on a batch without positives, or no exact projection, e.g.
    ``PositivePredictiveValue`` on a group without positives) the step uses the BCE alone;
    ``step`` returns ``{"fairret_skipped": 1}`` then (else 0).

    Fast path: on the numpy MLP oracle, ``NormLoss``, ``LSELoss`` and the exact
    ``KLProjectionLoss`` are computed with their logit gradient in closed form
    (:mod:`fairbench.algorithms.fairret_numpy`) and no autograd at all.

    Paper run (experiment 1): batch 24 = 12 per group, ``Accuracy``, ``KLProjectionLoss``,
    ``weight = 0.5``, ``lr = 5e-2``; ``conf/algo/sgd_fairret.yaml`` has exactly these.
    """

    def __init__(self, lr: float, per_group: int, weight: float,
                 statistic: str, loss: str, projection: str):
        check_positive("algo.lr", lr)
        check_positive("algo.per_group", per_group, integer=True)
        check_positive("algo.weight", weight, allow_zero=True)
        check_in("algo.statistic", statistic, STATISTICS)
        check_in("algo.loss", loss, LOSSES)
        check_in("algo.projection", projection, PROJECTIONS)
        self.lr, self.per_group, self.weight = float(lr), int(per_group), float(weight)
        self.statistic, self.loss, self.projection = statistic, loss, projection
        self._exact_projection = loss in PROJECTION_LOSSES and projection == "exact"
        if loss in PROJECTION_LOSSES and not self._exact_projection and not cvxpy_available():
            raise_missing_cvxpy()
        self._needs_label = statistic_needs_label(statistic)
        self._fairret = None  # fairret's loss object, built on first use (autograd path only)

    def setup(self, oracle, rng: np.random.Generator) -> None:
        super().setup(oracle, rng)
        check(callable(getattr(oracle, "custom_grad", None)), "problem", type(oracle).__name__,
              "sgd_fairret needs the model's outputs: use problem=unconstrained or problem=constrained")
        self.check_per_group("algo.per_group", self.per_group)
        self._n_groups = oracle.n_groups
        # fast path: the loss in closed form on the numpy MLP oracle
        self._numpy = (callable(getattr(oracle, "logit_grad", None)) and self.statistic in fairret_numpy.COEFFICIENTS
                       and (self.loss in fairret_numpy.LOSSES or self._exact_projection))
        self._last_fairret: torch.Tensor | float | None = None
        self._skipped = 0
        self._multiplier = None  # the projection's per-group solve (None: fairret_numpy's own)

    def _regulariser(self, logits: torch.Tensor, y: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """``R`` in torch (autograd path): fairret's loss, or the KL to the exact projection."""
        if self._exact_projection:
            u = fairret_numpy.projection_logits(self.statistic, logits.detach().double().numpy(),
                                                y.double().numpy(), group.numpy(), self._n_groups)
            q = torch.sigmoid(torch.from_numpy(u)).to(logits.dtype)
            log_pred = torch.stack([F.logsigmoid(-logits), F.logsigmoid(logits)], dim=1)
            return F.kl_div(log_pred, torch.stack([1.0 - q, q], dim=1), reduction="batchmean")
        if self._fairret is None:
            self._fairret = build_fairret(self.statistic, self.loss)
        sens = F.one_hot(group, self._n_groups).to(logits.dtype)
        args = (y.unsqueeze(1),) if self._needs_label else ()
        return self._fairret(logits.unsqueeze(1), sens, *args)

    def _objective(self, logits: torch.Tensor, y: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        value = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean()
        if self.weight == 0:
            return value
        try:
            reg = self._regulariser(logits, y, group)
        except (NotImplementedError, fairret_numpy.InfeasibleProjection):  # fairret: "Target statistic is zero"
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
            if self._exact_projection:
                reg, dreg = fairret_numpy.kl_projection_loss(self.statistic, z64, y, group, self._n_groups,
                                                             multiplier=self._multiplier)
            else:
                reg, dreg = fairret_numpy.violation_loss(self.statistic, self.loss, z64, y, group, self._n_groups)
        except (fairret_numpy.ZeroTarget, fairret_numpy.InfeasibleProjection):
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
