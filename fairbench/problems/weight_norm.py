"""The weight-norm problem: ``min E[BCE]  s.t.  ||W_l||_F - r <= 0`` for every layer l.

A second family of constrained problems beside the fairness constraints, with no fairness
term: one constraint per ``nn.Linear`` weight matrix (biases are free), bounding its Frobenius
norm by the radius ``r`` (``problem.radius``). The constraints depend on the parameters only,
not on data, so the oracle computes them exactly (a deterministic constraint through the same
stochastic interface): ``c_l = ||W_l|| - r`` and ``dc_l/dW_l = W_l / ||W_l||`` (0 at
``W_l = 0``), ``dc_l/d(other parameters) = 0``. A constraint batch holds no rows and counts no
samples. The objective is the census BCE on whichever oracle path the problem's ``fast_path``
picks (compiled, numpy, autograd; the stacked oracle for several seeds).

Fairness is still reported for every run (the true rate gaps of the evaluation, the final
fairness metrics); the trajectory's constraint columns are the norms' constraints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fairbench.backends.oracles import FAST_PATHS, build_fairness_oracle
from fairbench.errors import check_in, check_positive
from fairbench.problems.base import Batch, Oracle, Weights
from fairbench.problems.fairness import TensorSplit


@dataclass(frozen=True)
class WeightNormSpec:
    """The bound ``r`` (reported as the run's ``delta``: the right-hand side of its constraints)."""

    radius: float

    @property
    def delta(self) -> float:
        return self.radius


def weight_slices(model: nn.Module, flat: torch.Tensor) -> list[slice]:
    """Where each ``nn.Linear`` weight lies in the model's flat parameter row ``flat``."""
    base, size = flat.data_ptr(), flat.element_size()
    slices = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            start = (module.weight.data_ptr() - base) // size
            slices.append(slice(start, start + module.weight.numel()))
    if not slices:
        raise ValueError("the weight-norm problem needs a model with nn.Linear layers")
    return slices


class WeightNormConstraints:
    """The bound constraints ``||W_l|| - r`` (l = 1..L); their names are known once a model is
    seen (:meth:`attach`). ``statistic`` is ``None``: the evaluation takes their values from the
    model (:meth:`model_values`), the same for every split and for the "true" column."""

    statistic = None

    def __init__(self, spec: WeightNormSpec, n_groups: int):
        self.spec, self.n_groups = spec, n_groups
        self.names: list[str] = []

    @property
    def n_constraints(self) -> int:
        return len(self.names)

    def attach(self, model: nn.Module) -> None:
        n = sum(isinstance(m, nn.Linear) for m in model.modules())
        self.names = [f"||W{l + 1}||-r" for l in range(n)]

    def model_values(self, model: nn.Module) -> np.ndarray:
        self.attach(model)
        return np.array([float(torch.linalg.vector_norm(m.weight.detach().double())) - self.spec.radius
                         for m in model.modules() if isinstance(m, nn.Linear)])


class WeightNormOracle(Oracle):
    """``inner`` (an objective-only census oracle, single or stacked) with the weight-norm
    constraints of the layers at ``slices`` of ``x``'s last axis. Anything else is ``inner``'s."""

    def __init__(self, inner: Oracle, slices: list[slice], radius: float):
        self.inner, self.slices, self.radius = inner, slices, float(radius)
        self.x, self.counters = inner.x, inner.counters
        self.n_constraints = len(slices)
        self.constraint_names = [f"||W{l + 1}||-r" for l in range(len(slices))]

    def __getattr__(self, name):  # (finite_seeds, stacked, ...)
        # no losses of the logits on balanced group batches: a fairness regulariser (sgd_fairret)
        # has nothing to regularise here and refuses the problem in its setup
        if name in ("inner", "custom_grad", "logit_grad"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def n_groups(self) -> int:
        return self.inner.n_groups

    @property
    def smallest_group(self) -> int:
        return self.inner.smallest_group

    def sample_objective(self, size: int, **kwargs) -> Batch:
        return self.inner.sample_objective(size, **kwargs)

    def sample_constraints(self, per_group: int, stream: int = 0, **kwargs) -> Batch:
        """No rows: the constraints are exact functions of ``x``."""
        return Batch(0, np.zeros(self.x.shape[:-1] + (0,), dtype=np.int64), per_group=per_group)

    def objective(self, batch: Batch, grad: bool = False):
        return self.inner.objective(batch, grad)

    def constraints(self, batch: Batch, jac: bool = False):
        x = self.x
        c = np.empty(x.shape[:-1] + (len(self.slices),), dtype=x.dtype)
        J = np.zeros(x.shape[:-1] + (len(self.slices), x.shape[-1]), dtype=x.dtype) if jac else None
        for l, sl in enumerate(self.slices):
            w = x[..., sl].astype(np.float64)
            norm = np.sqrt((w * w).sum(-1))
            c[..., l] = norm - self.radius
            if jac:
                J[..., l, sl] = w / np.where(norm > 0, norm, 1.0)[..., None]
        return c, J

    def lagrangian_grad(self, obj_batch: Batch | None, con_batch: Batch, weights: Weights):
        if obj_batch is None:
            f, g = np.zeros(self.x.shape[:-1]) if self.x.ndim > 1 else 0.0, np.zeros_like(self.x)
        else:
            f, g = self.inner.objective(obj_batch, grad=True)
        c, J = self.constraints(con_batch, jac=True)
        w = np.asarray(weights(c) if callable(weights) else weights, dtype=self.x.dtype)
        g = g + np.einsum("...l,...lp->...p", np.broadcast_to(w, c.shape), J).astype(self.x.dtype)
        return f, c, g


class WeightNormProblem:
    """``min E[BCE]  s.t.  ||W_l||_F <= r`` for every layer (``conf/problem/weight_norm.yaml``)."""

    kind = "weight_norm"

    def __init__(self, radius: float, fast_path: str):
        check_positive("problem.radius", radius)
        check_in("problem.fast_path", fast_path, FAST_PATHS)
        self.spec = WeightNormSpec(float(radius))
        self.fast_path = fast_path

    def bind(self, proportions: np.ndarray, group_names: list[str], counts: np.ndarray | None = None):
        return WeightNormConstraints(self.spec, len(proportions))

    def bind_data(self, data) -> WeightNormConstraints:
        return self.bind(data.group_proportions(), data.group_names)

    def visible_constraints(self, bound: WeightNormConstraints) -> WeightNormConstraints:
        return bound

    def oracle(self, model: nn.Module, train: TensorSplit, bound: WeightNormConstraints, seed: int) -> Oracle:
        bound.attach(model)
        inner = build_fairness_oracle(model, train, bound.n_groups, None, seed, self.fast_path)
        return WeightNormOracle(inner, weight_slices(model, inner.flat), self.spec.radius)
